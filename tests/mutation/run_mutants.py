#!/usr/bin/env python
"""Hand-made mutation check: apply one plausible bug at a time to a copy of the package and run the
tests that should catch it. A mutant is killed when at least one of them fails.

    .venv/bin/python tests/mutation/run_mutants.py              # every mutant (about 15 min on 2 cores)
    .venv/bin/python tests/mutation/run_mutants.py --only 1,5   # some of them
    .venv/bin/python tests/mutation/run_mutants.py --tests_from /tmp/old-checkout  # an older suite

`--tests_from` runs the tests of another checkout (e.g. a `git worktree` of an earlier commit) against
the mutants of this one: the score before and after a change to the suite. Listed test files that
checkout lacks are left out.

Prints a Markdown table (docs/TESTING.md keeps the last one). The working tree is never changed: each
mutant is applied to a copy of src/ that the test processes import through PYTHONPATH.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mutants import MUTANTS

ROOT = Path(__file__).resolve().parents[2]


def run_mutant(index: int, source: Path, mutated_src: Path, tests_root: Path) -> tuple[bool, float]:
    path, old, new, _, tests = MUTANTS[index]
    tests = [test for test in tests if (tests_root / test).is_file()]
    target = mutated_src / path
    original = (source / path).read_text()
    assert original.count(old) == 1, f"mutant {index + 1}: {old!r} must occur once in {path}"
    target.write_text(original.replace(old, new))
    try:
        env = dict(os.environ, PYTHONPATH=str(mutated_src), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
        started = time.perf_counter()
        completed = subprocess.run(
            [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
            cwd=tests_root, env=env, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        return completed.returncode != 0, time.perf_counter() - started
    finally:
        target.write_text(original)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=None, help="comma-separated mutant numbers (1-based)")
    parser.add_argument("--tests_from", type=Path, default=ROOT, help="checkout whose tests/ to run (default: this)")
    args = parser.parse_args()
    chosen = range(len(MUTANTS)) if args.only is None else [int(n) - 1 for n in args.only.split(",")]
    source = ROOT / "src"
    with tempfile.TemporaryDirectory(prefix="dwatt-mutants-") as folder:
        mutated_src = Path(folder) / "src"
        shutil.copytree(source, mutated_src, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
        print("| # | file | mutant | killed | seconds |\n|---:|---|---|---|---:|")
        killed = 0
        for index in chosen:
            was_killed, seconds = run_mutant(index, source, mutated_src, args.tests_from.resolve())
            killed += was_killed
            path, _, _, description, _ = MUTANTS[index]
            print(f"| {index + 1} | `{Path(path).name}` | {description} | {'yes' if was_killed else '**no**'} | "
                  f"{seconds:.0f} |", flush=True)  # fmt: skip
        print(f"\n{killed} of {len(chosen)} mutants killed.")


if __name__ == "__main__":
    main()
