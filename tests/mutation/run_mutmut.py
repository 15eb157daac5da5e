#!/usr/bin/env python
"""Mutation testing with mutmut 3 over the modules that decide behaviour and published results, each against the
tests that exercise it (`make mutation`; not part of `make test`).

    .venv/bin/python tests/mutation/run_mutmut.py                      # every module in MODULES
    .venv/bin/python tests/mutation/run_mutmut.py --only stats,tags    # some (by the file name's stem)
    .venv/bin/python tests/mutation/run_mutmut.py --children 2 --report build/mutation/report.md
    .venv/bin/python tests/mutation/run_mutmut.py --root /tmp/before   # another checkout's code and tests
    .venv/bin/python tests/mutation/run_mutmut.py --collect            # one report of the last run of each module
    .venv/bin/python tests/mutation/run_mutmut.py --only card --rescore   # score a finished run again
    .venv/bin/python tests/mutation/run_mutmut.py --only card --recheck   # its survivors again, on today's tests

Why mutmut (3.x) rather than cosmic-ray: mutmut forks each mutant's test run from a process that has already
imported torch and transformers and run the tests once, and runs only the tests that reached the mutated
function; cosmic-ray starts a fresh interpreter per mutant (several seconds of imports each here), too slow
for thousands of mutants on 2 cores.

Each module runs in its own copy of the repository under build/mutation/<stem>/ with a pyproject.toml whose
[tool.mutmut] section mutates that module only and selects its tests (mutmut reads its configuration from the
working folder's pyproject.toml). Log statements are not mutated (their text is not behaviour; which branch
logs is, and the branch's condition is mutated). A mutant counts as killed when a test fails or times out. The
score is killed / (mutants - equivalent), where `equivalent.toml` lists each survivor judged equivalent (it
cannot change any result) with the reason and the mutated line, so a stale entry is noticed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / "build" / "mutation"
EQUIVALENT = Path(__file__).with_name("equivalent.toml")
COPIED = ("src", "tests", "configs", "results", "scripts", "docs", "model_cards", "README.md", "Makefile", "LICENSE")
#: Statements not mutated: logging (text is not behaviour; the condition that leads to it is mutated).
NOT_MUTATED = [r"^\s*logger\.(debug|info|warning|error)\(", r"logging\.getLogger\(__name__\)\.(info|warning)\("]

#: Module -> the test files that exercise it (mutmut runs, per mutant, those of them that reach the function).
MODULES: dict[str, list[str]] = {  # smallest first: a partial run still covers most modules
    "src/dwatt/experiments/sweep/selection.py": ["tests/test_sweep.py"],
    "src/dwatt/data/tags.py": ["tests/test_data.py", "tests/test_misuse.py", "tests/test_reliability.py"],
    "src/dwatt/tasks/lora.py": ["tests/test_lora.py", "tests/test_regimes.py", "tests/test_flags.py"],
    "src/dwatt/data/corpora.py": ["tests/test_data.py", "tests/test_flags.py", "tests/test_sweep.py"],
    "src/dwatt/metrics.py": ["tests/test_metrics.py", "tests/test_sweep.py", "tests/test_run_ner.py"],
    "src/dwatt/experiments/stats.py": ["tests/test_stats.py", "tests/test_analysis.py"],
    "src/dwatt/tasks/ner.py": [
        "tests/test_ner_task.py", "tests/test_flags.py", "tests/test_run_ner.py", "tests/test_reliability.py",
        "tests/test_misuse.py", "tests/test_sweep.py", "tests/test_frozen_features.py", "tests/test_tokenizers.py",
        "tests/test_faults.py",
        "tests/test_hub.py::test_run_ner_push_to_hub_end_to_end",
        "tests/test_hub.py::test_run_ner_pushes_an_evaluated_model_it_did_not_train",
    ],
    "src/dwatt/tasks/runner.py": [
        "tests/test_regimes.py", "tests/test_flags.py", "tests/test_misuse.py", "tests/test_reliability.py",
        "tests/test_run_ner.py", "tests/test_faults.py", "tests/test_lora.py", "tests/test_runner.py",
    ],
    "src/dwatt/configuration_dwatt.py": [
        "tests/test_config.py", "tests/test_reliability.py", "tests/test_fusions.py", "tests/test_catalogue.py",
        "tests/test_legacy_checkpoints.py", "tests/test_layer_norm.py",
    ],
    "src/dwatt/hub/card.py": ["tests/test_card_text.py", "tests/test_hub.py", "tests/test_reliability.py",
                              "tests/test_layer_norm.py"],
    "src/dwatt/experiments/sweep/summary.py": ["tests/test_stats.py", "tests/test_sweep.py",
                                               "tests/test_golden_summaries.py", "tests/test_summary_tables.py"],
    "src/dwatt/modeling_dwatt.py": [
        "tests/test_fusions.py", "tests/test_reference.py", "tests/test_heads_and_precision.py",
        "tests/test_properties.py", "tests/test_performance.py", "tests/test_regimes.py", "tests/test_config.py",
        "tests/test_frozen_features.py", "tests/test_reliability.py", "tests/test_legacy_checkpoints.py",
        "tests/test_backbone.py", "tests/test_lora.py", "tests/test_misuse.py", "tests/test_layer_norm.py",
        "tests/test_head_contract.py", "tests/test_building_blocks.py", "tests/test_mismatch_message.py",
        "tests/test_load_checks.py",
        "tests/test_remote_surface.py::test_a_checkpoint_with_only_pickled_weights_is_refused",
    ],
    # The frozen-backbone comparison's plumbing: the shots, the test-split scores, the feature cache, the store.
    # samples: test_sweep.py's sweeps write the samples file but none reads it (each survivor cost 50-80 s with
    # them); the golden renders and the tests of the file's content remain.
    "src/dwatt/experiments/sweep/samples.py": [
        "tests/test_golden_summaries.py",
        "tests/test_sweep.py::test_the_samples_file_gives_a_training_files_sentence_ids_its_hash_and_each_seeds_shots",
        "tests/test_sweep.py::test_the_samples_of_a_hub_dataset_are_its_id_column_without_a_file_hash",
        "tests/test_sweep.py::test_the_samples_of_a_config_without_data_are_the_bundled_wnut16s",
    ],
    "src/dwatt/experiments/sweep/evaluator.py": ["tests/test_sweep.py"],
    "src/dwatt/tasks/frozen_features.py": ["tests/test_frozen_features.py", "tests/test_flags.py"],
    "src/dwatt/experiments/sweep/store.py": [
        "tests/test_sweep.py", "tests/test_golden_summaries.py", "tests/test_summary_tables.py",
        "tests/test_misuse.py", "tests/test_reliability.py",
    ],
}  # fmt: skip
LOADED_IN_A_SUBPROCESS = "not (loads_remotely or remote_code or without_dwatt)"
#: Tests left out of a module's selection (pytest -k), each for a reason: a left-out test can only lower the score.
DESELECTED: dict[str, str] = {
    # The hub pair is copied next to checkpoints that tests load in a fresh interpreter (remote code): mutated, it
    # imports mutmut's trampoline there, which fails outside mutmut's runner. The same code runs in-process in the
    # other tests.
    "src/dwatt/configuration_dwatt.py": LOADED_IN_A_SUBPROCESS,
    "src/dwatt/modeling_dwatt.py": LOADED_IN_A_SUBPROCESS,
    # A 60 s training run of the paper's sweep config, reaching every summary function: it made each surviving
    # mutant cost 86 s. The summary's output is pinned by the golden re-renders and the sweep tests that remain.
    "src/dwatt/experiments/sweep/summary.py": "not test_paper_config_runs_mechanically_on_the_conll_fixture",
}
KILLED = {"killed", "timeout"}
#: One thread per mutant's tests (the runner's processes share the cores), offline.
MUTMUT_ENV = {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
SCORE_FILE = "score.json"


@dataclass
class ModuleScore:
    module: str
    counts: Counter
    equivalent: int
    seconds: float

    @property
    def mutants(self) -> int:
        return sum(self.counts.values())

    @property
    def killed(self) -> int:
        return sum(self.counts[status] for status in KILLED)

    @property
    def score(self) -> float | None:
        """Killed among the checked mutants not judged equivalent; None when none was checked. A run stopped early
        (mutants "not checked") scores what it checked: the report's not-checked column says it is partial."""
        judged = self.mutants - self.equivalent - self.counts["not checked"]
        return 100.0 * self.killed / judged if judged > 0 else None


def prepare(module: str, tests: list[str], root: Path) -> Path:
    """A fresh copy of the checkout at `root` whose pyproject.toml tells mutmut what to mutate and which of its
    tests to run (test files that checkout lacks are left out)."""
    folder = WORK / (Path(module).stem + ("" if root == ROOT else "-" + root.name))
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    tests = [test for test in tests if (root / test.split("::")[0]).is_file()]  # a file or one test in it
    for name in COPIED:
        source = root / name
        if source.is_dir():
            shutil.copytree(source, folder / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        elif source.is_file():
            shutil.copy2(source, folder / name)
    settings = {
        "source_paths": ["src/dwatt"],
        "only_mutate": [module],
        "do_not_mutate_patterns": NOT_MUTATED,
        "also_copy": [name for name in COPIED if name not in ("src", "tests")],
        "pytest_add_cli_args_test_selection": [*tests, "-m", "not slow"]
        + (["-k", DESELECTED[module]] if module in DESELECTED else []),
        "pytest_add_cli_args": ["-p", "no:cacheprovider", "-q", "-x"],
    }
    lines = ["[tool.mutmut]"] + [f"{key} = {_toml(value)}" for key, value in settings.items()]
    pytest_settings = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    lines += ["", "[tool.pytest.ini_options]"] + [f"{key} = {_toml(value)}" for key, value in pytest_settings.items()]
    (folder / "pyproject.toml").write_text("\n".join(lines) + "\n")
    return folder


def _toml(value) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    return "'" + str(value).replace("'", "''") + "'" if "\\" in str(value) else '"' + str(value) + '"'


def run_module(module: str, tests: list[str], children: int, root: Path = ROOT,
               only: list[str] | None = None) -> ModuleScore:  # fmt: skip
    """Mutate `module` and run its tests against every mutant (or only the mutants named in `only`)."""
    folder = prepare(module, tests, root)
    started = time.perf_counter()
    mutmut = Path(sys.executable).with_name("mutmut")
    completed = subprocess.run([str(mutmut), "run", "--max-children", str(children), *(only or [])], cwd=folder,
                               env={**os.environ, **MUTMUT_ENV}, capture_output=True, text=True)  # fmt: skip
    seconds = time.perf_counter() - started
    log = folder / "mutmut-run.log"
    log.write_text(completed.stdout[-20000:] + completed.stderr[-20000:])
    if completed.returncode:  # e.g. the tests fail on the unmutated code: no mutant is checked, none is killed
        print(f"{module}: mutmut exited with {completed.returncode}; see {log}", file=sys.stderr, flush=True)
    return score_module(module, folder, seconds)


def recheck_module(module: str, tests: list[str], children: int) -> ModuleScore:
    """Run the last run's surviving, unreached and unchecked (a stopped run) mutants again on the current tests; the
    others keep their status. The module's source must be the one that run mutated (mutant names are numbered
    within it)."""
    folder = WORK / Path(module).stem
    # The run's statuses and score, kept outside its folder (which the recheck replaces) until the recheck ends:
    # a recheck stopped half-way starts again from them rather than losing the run it was checking.
    kept = WORK / f"{folder.name}.before-recheck.json"
    if not kept.is_file():
        if (folder / module).read_bytes() != (ROOT / module).read_bytes():
            raise SystemExit(f"{module} changed since its last mutation run: run it again in full (no --recheck)")
        statuses = dict(re.findall(r"^(\S+): (.+)$", (folder / "statuses.txt").read_text(), re.M))
        source = hashlib.sha256((folder / module).read_bytes()).hexdigest()
        score = json.loads((folder / SCORE_FILE).read_text())
        kept.write_text(json.dumps({"statuses": statuses, "score": score, "source_sha256": source}))
    saved = json.loads(kept.read_text())
    if saved["source_sha256"] != hashlib.sha256((ROOT / module).read_bytes()).hexdigest():
        raise SystemExit(f"{module} changed since its last mutation run: run it again in full (no --recheck)")
    before, previous = saved["statuses"], saved["score"]
    # A survivor listed as equivalent cannot be killed by any test: not run again (its entry is still checked).
    listed = tomllib.loads(EQUIVALENT.read_text()).get(module, {}) if EQUIVALENT.is_file() else {}
    again = sorted(
        name for name, status in before.items()
        if status in ("no tests", "not checked") or (status == "survived" and name not in listed)
    )  # fmt: skip
    if not again:  # `mutmut run` with no names would run every mutant
        kept.unlink()
        return write_score(module, folder, before, previous["seconds"])
    score = run_module(module, tests, children, only=again)
    now = dict(re.findall(r"^(\S+): (.+)$", (folder / "statuses.txt").read_text(), re.M))
    merged = {**before, **{name: now[name] for name in again}}
    result = write_score(module, folder, merged, previous["seconds"] + score.seconds)
    kept.unlink()
    return result


def score_module(module: str, folder: Path, seconds: float) -> ModuleScore:
    """Read the module's mutant statuses from mutmut, count the listed equivalents, write score.json."""
    mutmut = Path(sys.executable).with_name("mutmut")
    results = subprocess.run([str(mutmut), "results", "--all", "true"], cwd=folder, capture_output=True, text=True,
                             env={**os.environ, **MUTMUT_ENV})  # fmt: skip
    statuses = dict(re.findall(r"^\s*(\S+): (.+)$", results.stdout, re.M))
    prefix = module.removeprefix("src/").removesuffix(".py").replace("/", ".") + "."
    statuses = {name: status for name, status in statuses.items() if name.startswith(prefix)}
    return write_score(module, folder, statuses, seconds)


def write_score(module: str, folder: Path, statuses: dict[str, str], seconds: float) -> ModuleScore:
    equivalent = check_equivalents(folder, module, statuses)
    (folder / "statuses.txt").write_text("".join(f"{name}: {status}\n" for name, status in sorted(statuses.items())))
    score = ModuleScore(module, Counter(statuses.values()), equivalent, seconds)
    (folder / SCORE_FILE).write_text(json.dumps({**asdict(score), "counts": dict(score.counts)}) + "\n")
    return score


def collected_scores(root: Path = ROOT) -> list[ModuleScore]:
    """The last score of each module run from `root` (several runner processes may share the modules out)."""
    scores = []
    for module in MODULES:
        path = WORK / (Path(module).stem + ("" if root == ROOT else "-" + root.name)) / SCORE_FILE
        if path.is_file():
            fields = json.loads(path.read_text())
            scores.append(ModuleScore(**{**fields, "counts": Counter(fields["counts"])}))
    return scores


def check_equivalents(folder: Path, module: str, statuses: dict[str, str]) -> int:
    """How many listed equivalent mutants are among this run's survivors; a listed mutant whose mutated line is
    not the recorded one (the source changed under it) raises, so the list cannot rot."""
    listed = tomllib.loads(EQUIVALENT.read_text()).get(module, {}) if EQUIVALENT.is_file() else {}
    mutmut = Path(sys.executable).with_name("mutmut")
    counted = 0
    for name, entry in listed.items():
        if statuses.get(name) in KILLED or name not in statuses:
            continue
        diff = subprocess.run([str(mutmut), "show", name], cwd=folder, capture_output=True, text=True).stdout
        changed = [line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
        added = [line[1:].strip() for line in changed if line.startswith("+")]
        removed = [line[1:].strip() for line in changed if line.startswith("-")]
        # A mutant that deletes a line (an argument left out) is recorded by the line it removes.
        recorded, seen = (entry["removed_line"], removed) if "removed_line" in entry else (entry["mutated_line"], added)
        if recorded not in seen:
            raise SystemExit(f"{EQUIVALENT.name}: {name} now mutates {added or removed}, not {recorded!r}; judge it "
                             "again")  # fmt: skip
        counted += 1
    return counted


def report(scores: list[ModuleScore]) -> str:
    import mutmut

    lines = [
        f"mutmut {mutmut.__version__}, `tests/mutation/run_mutmut.py`, {time.strftime('%Y-%m-%d')}",
        "",
        "| module | mutants | killed | survived | no test reached | not checked | equivalent | score % | seconds |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for score in scores:
        lines.append(
            f"| `{score.module.removeprefix('src/dwatt/')}` | {score.mutants} | {score.killed} | "
            f"{score.counts['survived']} | {score.counts['no tests']} | {score.counts['not checked']} | "
            f"{score.equivalent} | {'—' if score.score is None else f'{score.score:.1f}'} | "
            f"{'—' if score.seconds != score.seconds else f'{score.seconds:.0f}'} |"  # NaN: not timed
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="comma-separated module stems (e.g. stats,tags)")
    parser.add_argument("--children", type=int, default=2, help="mutants tested at once")
    parser.add_argument("--report", default=str(WORK / "report.md"))
    parser.add_argument("--root", default=str(ROOT), help="the checkout whose code and tests to use (default: this)")
    parser.add_argument("--collect", action="store_true",
                        help="run nothing: report the last score of every module run so far")  # fmt: skip
    parser.add_argument(
        "--rescore",
        action="store_true",
        help="run nothing: score the --only modules' last runs again (after equivalent.toml changed)",
    )
    parser.add_argument("--recheck", action="store_true",
                        help="run the --only modules' not-killed mutants again on the current tests")  # fmt: skip
    args = parser.parse_args()
    wanted = set(args.only.split(",")) if args.only else None
    scores = []
    if args.recheck:
        if not wanted:
            parser.error("--recheck needs --only (the modules whose survivors to run again)")
        for module, tests in MODULES.items():
            if Path(module).stem in wanted:
                scores.append(recheck_module(module, tests, args.children))
                print(report(scores[-1:]).splitlines()[-1], flush=True)
        args.collect = True
    if args.rescore:
        for module in MODULES:
            folder = WORK / Path(module).stem
            if wanted and Path(module).stem in wanted and (folder / "mutants").is_dir():
                previous = json.loads((folder / SCORE_FILE).read_text()) if (folder / SCORE_FILE).is_file() else {}
                seconds = previous.get("seconds", float("nan"))
                if (folder / "statuses.txt").is_file():  # after a recheck, mutmut's own results hold only its subset
                    statuses = dict(re.findall(r"^(\S+): (.+)$", (folder / "statuses.txt").read_text(), re.M))
                    scores.append(write_score(module, folder, statuses, seconds))
                else:
                    scores.append(score_module(module, folder, seconds))
        args.collect = True
    for module, tests in MODULES.items():
        if not args.collect and (wanted is None or Path(module).stem in wanted):
            scores.append(run_module(module, tests, args.children, Path(args.root).resolve()))
            print(report(scores[-1:]).splitlines()[-1], flush=True)
    if args.collect:
        scores = collected_scores(Path(args.root).resolve())
    text = report(scores)
    Path(args.report).parent.mkdir(parents=True, exist_ok=True)
    Path(args.report).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
