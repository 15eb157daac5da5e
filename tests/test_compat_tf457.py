"""Checkpoints saved under transformers 5.x load, with the same outputs, under transformers 4.57.6.

Needs the second venv made by `tests/compat/setup_tf457.sh` (`make test` makes it and sets
DWATT_REQUIRE_COMPAT=1, which turns a missing venv into a failure instead of a skip).
"""

import os
from pathlib import Path

import pytest
import torch
from conftest import tiny_backbone_config
from test_remote_code import load_remotely

from dwatt import (
    FUSIONS,
    DWAttConfig,
    DWAttForMaskedLM,
    DWAttForSequenceClassification,
    DWAttForTokenClassification,
    DWAttModel,
)

VENV_PYTHON = Path(__file__).resolve().parents[1] / ".venv-tf457" / "bin" / "python"


@pytest.fixture(scope="module")
def tf457_python():
    if not VENV_PYTHON.exists():
        if os.environ.get("DWATT_REQUIRE_COMPAT") == "1":
            pytest.fail(f"{VENV_PYTHON} is missing: run tests/compat/setup_tf457.sh")
        pytest.skip("no transformers 4.57.6 venv (tests/compat/setup_tf457.sh makes one)")
    return str(VENV_PYTHON)


def test_checkpoints_load_under_transformers_4_57(tf457_python, batch, tmp_path):
    cases = [(DWAttForTokenClassification, fusion, "AutoModelForTokenClassification") for fusion in FUSIONS]
    cases += [
        (DWAttForSequenceClassification, "dwatt", "AutoModelForSequenceClassification"),
        (DWAttForMaskedLM, "dwatt", "AutoModelForMaskedLM"),
        (DWAttModel, "concat", "AutoModel"),
    ]
    expected, loads = {}, []
    for cls, fusion, auto_name in cases:
        torch.manual_seed(0)
        model = cls(DWAttConfig(backbone_config=tiny_backbone_config(), fusion=fusion, num_labels=3)).eval()
        checkpoint = tmp_path / f"{cls.__name__}-{fusion}"
        model.save_pretrained(checkpoint)
        with torch.no_grad():
            output = model(**batch)
        expected[checkpoint.name] = output.last_hidden_state if cls is DWAttModel else output.logits
        loads.append((checkpoint, auto_name))

    results = load_remotely(loads, batch, tmp_path, python=tf457_python)
    assert results["transformers_version"] == "4.57.6"
    for checkpoint, auto_name in loads:
        loaded = results[f"{checkpoint.name}:{auto_name}"]
        assert loaded["module"].startswith("transformers_modules.")
        torch.testing.assert_close(
            torch.tensor(loaded["output"]), expected[checkpoint.name], rtol=1e-5, atol=1e-5, msg=checkpoint.name
        )
        # 4.x does not gather the backbone's unsplittable layers into the model's list (5.x's post_init does):
        # FSDP's auto-wrap and device_map="auto" would cut a BERT layer in two.
        assert "BertLayer" in loaded["no_split_modules"], checkpoint.name
    dwatt = results["DWAttForTokenClassification-dwatt:AutoModelForTokenClassification"]["no_split_modules"]
    concat = results["DWAttModel-concat:AutoModel"]["no_split_modules"]
    assert "DWAttDepthAttention" in dwatt and "DWAttConcatFusion" not in dwatt and "DWAttConcatFusion" in concat
