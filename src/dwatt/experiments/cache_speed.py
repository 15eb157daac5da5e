"""How much faster a frozen-backbone run is with cached backbone features: frozen `run_ner` runs with and
without `--cache_backbone_features`, timed side by side in one process (ratios, not seconds, are the result)."""

from __future__ import annotations

import contextlib
import io
import tempfile
import time
from pathlib import Path

import torch

from ..tasks import frozen_features
from ..tasks.ner import parse_run_values, run_ner

#: A frozen sweep run, shortened: K=100 WNUT-16 tweets, 50 steps, dev (200) and test (500) scored every 25 steps.
BENCH_RUN = {
    "fusion": "dwatt", "dwatt_scale": "sqrt_d", "freeze_backbone": True, "few_shot_k": 100, "max_steps": 50,
    "learning_rate": 1e-3, "per_device_train_batch_size": 16, "per_device_eval_batch_size": 64, "do_train": True,
    "do_eval": True, "do_predict": True, "eval_strategy": "steps", "eval_steps": 25, "save_strategy": "no",
    "report_to": "none", "disable_tqdm": True,
}  # fmt: skip


def timed_run(model_name_or_path: str, cached: bool, seed: int, output_dir: Path) -> float:
    """Wall seconds of one frozen run (its logs kept out of the console)."""
    values = {**BENCH_RUN, "model_name_or_path": model_name_or_path, "cache_backbone_features": cached,
              "few_shot_seed": seed, "seed": seed, "output_dir": str(output_dir)}  # fmt: skip
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        run_ner(*parse_run_values(values))
    return time.perf_counter() - started


def cache_speed_report(backbones: dict[str, str], threads: int, command: str) -> str:
    """Per backbone: an uncached run, a first cached run (the cache fills) and a second one on another seed
    (dev and test come from the cache; only the new training sample runs through the backbone)."""
    torch.set_num_threads(threads)
    lines = [
        "# Frozen backbone: cached features against running the backbone at every step",
        "",
        f"`{command}` ({threads} torch thread(s); run as written, same process, same machine). One run: "
        f"{BENCH_RUN['max_steps']} steps at batch {BENCH_RUN['per_device_train_batch_size']} on K = "
        f"{BENCH_RUN['few_shot_k']} WNUT-16 tweets, dev (200) and test (500) scored every "
        f"{BENCH_RUN['eval_steps']} steps and at the end; DWAtt (sqrt d), backbone frozen.",
        "",
        "| backbone | uncached (s) | cached, first run (s) | cached, next run (s) | speed-up, first | speed-up, next |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    with tempfile.TemporaryDirectory() as scratch:
        for name, path in backbones.items():
            frozen_features._SHARED.clear()
            uncached = timed_run(path, False, 0, Path(scratch) / f"{name}-plain")
            first = timed_run(path, True, 0, Path(scratch) / f"{name}-cached-0")
            following = timed_run(path, True, 1, Path(scratch) / f"{name}-cached-1")
            lines.append(f"| {name} | {uncached:.0f} | {first:.0f} | {following:.0f} | {uncached / first:.1f}x | "
                         f"{uncached / following:.1f}x |")  # fmt: skip
            print(lines[-1], flush=True)
    lines += [
        "",
        "A sweep's frozen runs in one process share the cache (it is keyed by the backbone's content), so every run "
        "after a process's first is a 'next run'.",
    ]
    return "\n".join(lines) + "\n"
