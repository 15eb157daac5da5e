"""The overhead benchmark's parts, on a tiny backbone: same weights, FLOPs against an independent count,
per-repeat ratio spreads, the stability check and the script end to end."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import tiny_backbone_config

from dwatt.experiments.overhead import (
    STOCK,
    OverheadRow,
    build_models,
    count_flops,
    measure,
    overhead_table,
    random_batch,
    ratio_spread,
    saved_activation_bytes,
    stability_check,
)

ROOT = Path(__file__).resolve().parents[1]


def test_models_share_backbone_weights_and_last_matches_stock():
    models = build_models(tiny_backbone_config(), fusions=("last", "dwatt"))
    stock, last = models[STOCK].eval(), models["last"].eval()
    last.classifier.load_state_dict(stock.classifier.state_dict())
    batch = random_batch(99, 2, 6, num_labels=9)
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        assert torch.equal(stock(**inputs).logits, last(**inputs).logits)


def test_dwatt_extra_forward_flops_equal_an_independent_count():
    """2 x tokens x the per-token matmul weights of DWAtt's query and value MLPs, plus the scores q.k_n per token
    and the input-independent keys W_K p_n once."""
    config = tiny_backbone_config()
    models = build_models(config, fusions=("last", "dwatt"), dwatt_recompute_values=False)
    batch_size, length = 3, 5
    batch = random_batch(99, batch_size, length, num_labels=9)
    flops = {name: count_flops(model, batch) for name, model in models.items()}
    assert flops["last"] == flops[STOCK]  # `last` does the stock model's work
    d, n_layers, tokens = config.hidden_size, config.num_hidden_layers + 1, batch_size * length
    fusion = models["dwatt"].dwatt.fusion
    q, r, p = fusion.query_in.out_features, fusion.value_in_weight.shape[-1], fusion.depth_embedding.shape[-1]
    per_token_weights = 2 * d * q + n_layers * 2 * d * r
    expected = 2 * tokens * per_token_weights + 2 * tokens * d * n_layers + 2 * n_layers * p * d
    assert flops["dwatt"][0] - flops["last"][0] == expected
    # Recomputation runs the value MLPs once more in backward: 2 x tokens x their weights, no more.
    recomputing = build_models(config, fusions=("dwatt",), dwatt_recompute_values=True)["dwatt"]
    recomputing.load_state_dict(models["dwatt"].state_dict())
    extra = count_flops(recomputing, batch)[1] - flops["dwatt"][1]
    assert extra == 2 * tokens * n_layers * 2 * d * r


def test_dwatt_saves_more_for_backward_than_stock():
    models = build_models(tiny_backbone_config(), fusions=("dwatt",))
    batch = random_batch(99, 2, 6, num_labels=9)
    assert saved_activation_bytes(models["dwatt"], batch) > saved_activation_bytes(models[STOCK], batch) > 0


def test_ratio_spread_and_stability_check():
    assert ratio_spread([2.0, 3.0, 9.0], [1.0, 2.0, 3.0]) == (1.5, 2.0, 3.0)
    with pytest.raises(ValueError):
        ratio_spread([1.0], [1.0, 2.0])

    def row(name, seconds):
        return OverheadRow(name, 1, 1, 1, 1, train_step_seconds=seconds, inference_seconds=seconds)

    steady = [row(STOCK, [1.0, 1.0, 1.0]), row("last", [1.01, 0.99, 1.02])]
    assert "train 1.010 median (within), 0.990 best (within)" in stability_check(steady)
    noisy = [row(STOCK, [1.0, 1.0, 1.0]), row("last", [1.2, 1.1, 1.05])]
    assert "OUTSIDE" in stability_check(noisy)


def test_measure_writes_a_ratio_table():
    models = build_models(tiny_backbone_config(), fusions=("last", "dwatt", "mean"))
    rows = measure(models, random_batch(99, 2, 6, num_labels=9), repeats=2, warmup=0)
    assert [row.name for row in rows] == [STOCK, "last", "dwatt", "mean"]
    assert all(len(row.train_step_seconds) == 2 and row.train_flops > row.forward_flops > 0 for row in rows)
    table = overhead_table(rows)
    assert table.count("\n") == 5 and "| stock |" in table
    assert "| stock | " in table and " 1.000 [1.000, 1.000] / 1.000 " in table  # stock against itself


def test_bench_overhead_script_smoke(tiny_bert_dir, tmp_path):
    output = tmp_path / "overhead.md"
    completed = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_overhead.py"), "--backbones", str(tiny_bert_dir),
         "--repeats", "1", "--warmup", "0", "--shapes", "2x8,1x16", "--output", str(output)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = output.read_text()
    assert report.startswith("# Fusion overhead") and report.count("## ") == 2 and "batch 1 x 16" in report
    assert all(f"| {name} |" in report for name in ("stock", "dwatt", "deeper")) and "Stability:" in report
    bad = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_overhead.py"), "--shapes", "16by128"],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert bad.returncode != 0 and "expected BATCHxLENGTH" in bad.stderr
