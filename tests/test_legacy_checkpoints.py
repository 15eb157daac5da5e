"""Checkpoints saved by the code before the package layout changed (tests/fixtures/legacy_checkpoints,
built by its make.py at commit 1398586) load with today's code, in the package and through
`trust_remote_code` with today's hub files, and give the logits they gave then."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from test_remote_code import load_remotely

import dwatt
from dwatt import DWAttForTokenClassification

FIXTURES = Path(__file__).parent / "fixtures" / "legacy_checkpoints"
CHECKPOINTS = sorted(path.name for path in FIXTURES.iterdir() if (path / "config.json").is_file())
INPUTS = {
    "input_ids": torch.tensor([[2, 7, 11, 19, 23, 3], [2, 5, 9, 3, 0, 0]]),
    "attention_mask": torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]]),
}


def expected_logits(name: str) -> torch.Tensor:
    return torch.tensor(json.loads((FIXTURES / name / "expected_logits.json").read_text()), dtype=torch.float64)


def assert_same_logits(got: torch.Tensor, want: torch.Tensor) -> None:
    # Saved as float32 results on one CPU; another CPU's kernels round differently, so scale to the logits.
    torch.testing.assert_close(got.double(), want, rtol=0, atol=1e-5 * float(want.abs().max()))


def test_every_fusion_of_the_old_layout_has_a_fixture():
    assert set(CHECKPOINTS) == {"dwatt-defaults", "dwatt-sqrt-d-layers", "concat", "scalar-mix", "deeper"}


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_old_checkpoint_loads_in_the_package_with_the_same_logits(name):
    model = DWAttForTokenClassification.from_pretrained(FIXTURES / name).eval()
    with torch.no_grad():
        logits = model.double()(**INPUTS).logits
    assert_same_logits(logits, expected_logits(name))


def test_old_checkpoint_keeps_the_dwatt_scale_it_was_saved_with():
    """The default changed to "sqrt_d"; a checkpoint saved under the old default ("none") keeps "none"."""
    model = DWAttForTokenClassification.from_pretrained(FIXTURES / "dwatt-defaults")
    assert model.config.dwatt_scale == "none"


def test_old_checkpoints_load_through_remote_code_with_todays_hub_files(tmp_path):
    loads = []
    for name in CHECKPOINTS:
        folder = tmp_path / name
        shutil.copytree(FIXTURES / name, folder)
        for hub_file in ("configuration_dwatt.py", "modeling_dwatt.py"):
            shutil.copy(Path(dwatt.__file__).with_name(hub_file), folder / hub_file)
        loads.append((folder, "AutoModelForTokenClassification"))
    results = load_remotely(loads, INPUTS, tmp_path)
    for name in CHECKPOINTS:
        result = results[f"{name}:AutoModelForTokenClassification"]
        assert result["module"].startswith("transformers_modules.")
        assert_same_logits(torch.tensor(result["output"]), expected_logits(name))
