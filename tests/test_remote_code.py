"""Checkpoints saved by the package load with trust_remote_code where dwatt cannot be imported."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import tiny_backbone_config

from dwatt import (
    DWAttConfig,
    DWAttForMaskedLM,
    DWAttForSequenceClassification,
    DWAttForTokenClassification,
    DWAttModel,
)
from dwatt.configuration_dwatt import DWATT_AUTO_MAP

LOADER = Path(__file__).with_name("remote_loader.py")


def load_remotely(loads, inputs, tmp_path, python=sys.executable, save_to=None):
    """Load each (checkpoint, Auto class name) in one fresh isolated interpreter; return the outputs by
    "checkpoint:AutoClass". With `save_to`, the (last) loaded model is saved there."""
    spec = {
        "loads": [[str(checkpoint), auto_name] for checkpoint, auto_name in loads],
        "save_to": str(save_to) if save_to else None,
        "inputs": {name: value.tolist() for name, value in inputs.items()},
        "result": str(tmp_path / "result.json"),
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"), HF_HOME=str(tmp_path / "hf"))
    env.pop("PYTHONPATH", None)
    completed = subprocess.run(
        [python, "-I", str(LOADER), str(tmp_path / "spec.json")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads((tmp_path / "result.json").read_text())
    return {key.replace(str(tmp_path) + os.sep, ""): value for key, value in results.items()}


HEADS = {
    DWAttForTokenClassification: ["AutoModelForTokenClassification", "AutoModel"],
    DWAttForSequenceClassification: ["AutoModelForSequenceClassification", "AutoModel"],
    DWAttForMaskedLM: ["AutoModelForMaskedLM"],
    DWAttModel: ["AutoModel"],
}


def test_saved_checkpoints_load_without_the_package(batch, tmp_path):
    """Every head, through its own Auto class and AutoModel, in one process where dwatt is not importable."""
    expected, loads = {}, []
    for cls, auto_classes in HEADS.items():
        torch.manual_seed(0)
        model = cls(DWAttConfig(backbone_config=tiny_backbone_config(), num_labels=3)).eval()
        checkpoint = tmp_path / cls.__name__
        model.save_pretrained(checkpoint)
        assert {"configuration_dwatt.py", "modeling_dwatt.py", "model.safetensors"} <= set(os.listdir(checkpoint))
        assert json.loads((checkpoint / "config.json").read_text())["auto_map"] == DWATT_AUTO_MAP
        with torch.no_grad():
            output = model(**batch)
        expected[cls.__name__] = output.last_hidden_state if cls is DWAttModel else output.logits
        loads += [(checkpoint, auto_name) for auto_name in auto_classes]

    results = load_remotely(loads, batch, tmp_path)
    for checkpoint, auto_name in loads:
        loaded = results[f"{checkpoint.name}:{auto_name}"]
        assert loaded["module"].startswith("transformers_modules."), loaded["module"]
        wanted = "DWAttModel" if auto_name == "AutoModel" else checkpoint.name
        assert loaded["class"] == wanted
        if auto_name != "AutoModel" or checkpoint.name == "DWAttModel":
            torch.testing.assert_close(torch.tensor(loaded["output"]), expected[checkpoint.name], rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_remote_model_saves_a_loadable_checkpoint_again(tmp_path, batch):
    """A model loaded through remote code re-saves with its .py files (fine-tuning a Hub checkpoint)."""
    model = DWAttForTokenClassification(DWAttConfig(backbone_config=tiny_backbone_config(), num_labels=3))
    model.save_pretrained(tmp_path / "first")
    load_remotely(
        [(tmp_path / "first", "AutoModelForTokenClassification")], batch, tmp_path, save_to=tmp_path / "second"
    )
    assert {"configuration_dwatt.py", "modeling_dwatt.py"} <= set(os.listdir(tmp_path / "second"))
    results = load_remotely([(tmp_path / "second", "AutoModelForTokenClassification")], batch, tmp_path)
    assert results["second:AutoModelForTokenClassification"]["class"] == "DWAttForTokenClassification"
