"""The model card's text, line by line: a golden rendering of the test run's card (every sentence, table row and
setting a user reads), the parameter table counted against the model itself, and the cells whose format has
cases (missing values, booleans, warm-up given as steps, as a ratio, or by older transformers as warmup_ratio).

Regenerate the golden file after an intended change of the card: DWATT_UPDATE_GOLDEN=1 pytest tests/test_card_text.py
(then read its diff)."""

import os
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import transformers
from conftest import tiny_backbone_config
from test_hub import REPO_ID, run_dir  # noqa: F401  (the module-scoped run folder fixture)

from dwatt import DWAttConfig, DWAttForTokenClassification
from dwatt.hub.card import _show, parameter_rows, training_rows, usage_snippet
from dwatt.hub.push import export_push_ready
from dwatt.hub.record import NOT_RECORDED

GOLDEN = Path(__file__).parent / "golden" / "card-tiny-dwatt.md"
#: Rows that name this machine and its library versions: replaced by a marker before comparing.
MACHINE_ROWS = {"hardware": r"\| hardware \| .* \|", "transformers version": r"\| transformers version \| .* \|"}


def normalised(card: str) -> str:
    assert f"| transformers version | {transformers.__version__} |" in card
    for name, pattern in MACHINE_ROWS.items():
        card, found = re.subn(pattern, f"| {name} | <this machine> |", card)
        assert found == 1, name
    return card


def test_the_card_of_the_test_run_reads_as_the_golden_file(run_dir, tmp_path):  # noqa: F811
    export = export_push_ready(run_dir, tmp_path / "export", repo_id=REPO_ID, figure=False).folder
    card = normalised((export / "README.md").read_text())
    if os.environ.get("DWATT_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(card)
    golden = GOLDEN.read_text()
    changed = [(i + 1, a, b) for i, (a, b) in enumerate(zip(golden.splitlines(), card.splitlines())) if a != b]
    assert card == golden, f"{GOLDEN}: first changed lines (line, golden, now): {changed[:3]}"


def test_the_parameter_table_counts_the_model_with_its_settings(tmp_path):
    """Non-default fusion settings: the card's counts are those of the saved model's own modules."""
    config = DWAttConfig(backbone_config=tiny_backbone_config(), dwatt_pos_dim=8, dwatt_query_ratio=0.25,
                         num_labels=3)  # fmt: skip
    model = DWAttForTokenClassification(config)
    model.save_pretrained(tmp_path)

    def count(module):
        return f"{sum(p.numel() for p in module.parameters()):,}"

    rows, note = parameter_rows(SimpleNamespace(path=tmp_path), config)
    assert rows == [
        ("backbone (pretrained encoder, pooler removed)", count(model.dwatt.backbone)),
        ("fusion `dwatt`", count(model.dwatt.fusion)),
        ("classification head", count(model.classifier)),
        ("total (counted in the checkpoint)", count(model)),
    ]
    fusion, backbone = (sum(p.numel() for p in m.parameters()) for m in (model.dwatt.fusion, model.dwatt.backbone))
    assert note.startswith(f"The fusion adds {fusion:,} parameters, {100 * fusion / backbone:.2f}% of the backbone ")
    assert note.endswith(" Settings: `fusion_layers='all'`, `dwatt_scale='sqrt_d'`, `dwatt_pos_dim=8`, "
                         "`dwatt_query_ratio=0.25`, `dwatt_value_ratio=0.5`, `dwatt_recompute_values=True`, "
                         "`fusion_dropout=0.0`, `fusion_init='paper'`.")  # fmt: skip
    rows, _ = parameter_rows(SimpleNamespace(path=tmp_path / "no-weights"), config)
    assert [name for name, _ in rows] == ["backbone (pretrained encoder, pooler removed)", "fusion `dwatt`"]


def test_cells_show_missing_values_booleans_and_rounded_metrics():
    assert _show(None) == NOT_RECORDED and _show(NOT_RECORDED) == NOT_RECORDED
    assert _show(True) == "true" and _show(False) == "false"
    assert _show(0.123456, 4) == "0.1235" and _show(0.5) == "0.5" and _show(3, 2) == "3"


@pytest.mark.parametrize(
    "arguments, shown",
    [
        ({"warmup_steps": 0.1}, "ratio 0.1"),  # transformers 5: a value below 1 is a ratio
        ({"warmup_steps": 1}, "1 steps"),
        ({"warmup_steps": 40}, "40 steps"),
        ({"warmup_steps": 0, "warmup_ratio": 0.2}, "ratio 0.2"),  # older runs recorded warmup_ratio
        ({"warmup_ratio": 0.2}, "ratio 0.2"),
        ({"warmup_steps": 0, "warmup_ratio": 0.0}, "none"),
        ({"seed": 1}, "none"),
        ({}, NOT_RECORDED),  # no run_arguments.json at all
    ],
)
def test_the_warm_up_cell(arguments, shown):
    run = SimpleNamespace(arguments=arguments, trainer_state={}, metrics=lambda name: {}, config={})
    rows = dict(training_rows(run, SimpleNamespace(name="data")))
    assert rows["schedule / warm-up"].split(" / ", 1)[1] == shown
    assert rows["training sentences"] == NOT_RECORDED  # no train_results.json: None, shown as not recorded


def test_the_usage_snippet_is_the_first_python_block():
    card = "text\n```python\nfirst()\n```\nmore\n```python\nsecond()\n```\n"
    assert usage_snippet(card) == "first()\n"
