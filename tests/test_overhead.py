"""The overhead benchmark's parts, on a tiny backbone: same weights, real measurements, a table."""

import torch
from conftest import tiny_backbone_config

from dwatt.experiments.overhead import (
    STOCK,
    build_models,
    measure,
    overhead_table,
    random_batch,
    saved_activation_bytes,
)


def test_models_share_backbone_weights_and_last_matches_stock():
    models = build_models(tiny_backbone_config(), fusions=("last", "dwatt"))
    stock, last = models[STOCK].eval(), models["last"].eval()
    last.classifier.load_state_dict(stock.classifier.state_dict())
    batch = random_batch(99, 2, 6, num_labels=9)
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        assert torch.equal(stock(**inputs).logits, last(**inputs).logits)


def test_dwatt_saves_more_for_backward_than_stock():
    models = build_models(tiny_backbone_config(), fusions=("dwatt",))
    batch = random_batch(99, 2, 6, num_labels=9)
    assert saved_activation_bytes(models["dwatt"], batch) > saved_activation_bytes(models[STOCK], batch) > 0


def test_measure_writes_a_ratio_table():
    models = build_models(tiny_backbone_config(), fusions=("dwatt", "concat"))
    rows = measure(models, random_batch(99, 2, 6, num_labels=9), repeats=2, warmup=0)
    assert [row.name for row in rows] == [STOCK, "dwatt", "concat"]
    assert all(len(row.train_step_seconds) == 2 and row.train_step > 0 and row.inference > 0 for row in rows)
    table = overhead_table(rows)
    assert table.count("\n") == 4 and "| stock |" in table and "| 1.000 |" in table


def test_bench_overhead_script_smoke(tiny_bert_dir, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "bench_overhead.py"
    output = tmp_path / "overhead.md"
    completed = subprocess.run(
        [sys.executable, str(script), "--backbones", str(tiny_bert_dir), "--repeats", "1", "--warmup", "0",
         "--batch_size", "2", "--sequence_length", "8", "--output", str(output)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = output.read_text()
    assert report.startswith("# Fusion overhead")
    assert all(f"| {name} |" in report for name in ("stock", "dwatt", "deeper"))
