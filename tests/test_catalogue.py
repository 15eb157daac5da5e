"""The fusion catalogue agrees with the hub-portable config, and every knob reaches every run_* script."""

import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from dwatt import DWAttConfig
from dwatt.configuration_dwatt import FUSIONS, FUSIONS_WITH_IDENTITY_INIT
from dwatt.fusions import CATALOGUE, KNOBS, parse_fusion_layers, sweep_methods
from dwatt.protocol import METHODS

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
RUN_SCRIPTS = ("run_ner.py", "run_classification.py", "run_mlm.py")


def test_every_fusion_has_an_entry_and_every_entry_is_a_fusion():
    assert list(CATALOGUE) != [] and set(CATALOGUE) == set(FUSIONS)
    assert {name for name, fusion in CATALOGUE.items() if fusion.identity_init} == set(FUSIONS_WITH_IDENTITY_INIT)


def test_every_knob_is_a_config_field_with_the_configs_default():
    parameters = inspect.signature(DWAttConfig.__init__).parameters
    for name, knob in KNOBS.items():
        assert name in parameters, name
        assert knob.default == parameters[name].default, name
    for fusion in CATALOGUE.values():
        assert set(fusion.knobs) <= set(KNOBS), fusion.name


def test_the_configs_own_field_list_matches_its_signature():
    """OWN_FIELDS (used to catch misspelled keywords) is read from the code object, which must match the signature."""
    from dwatt.configuration_dwatt import OWN_FIELDS

    assert set(OWN_FIELDS) == set(inspect.signature(DWAttConfig.__init__).parameters) - {"self", "kwargs"}


def test_every_config_fusion_field_is_a_knob():
    """A new fusion field of the config must be added to the catalogue (or listed here as not a knob)."""
    not_knobs = {"self", "backbone_config", "initializer_range", "tie_word_embeddings", "kwargs"}
    assert set(inspect.signature(DWAttConfig.__init__).parameters) - not_knobs == set(KNOBS)


def test_sweep_methods_come_from_the_catalogue_and_build_valid_configs(tiny_config_kwargs):
    assert METHODS == sweep_methods()
    assert set(METHODS) >= set(FUSIONS) - {"dwatt"} | {"dwatt", "dwatt_sqrt_d"}
    for values in METHODS.values():
        DWAttConfig(**tiny_config_kwargs, **values)


@pytest.fixture
def tiny_config_kwargs():
    from conftest import tiny_backbone_config

    return {"backbone_config": tiny_backbone_config()}


@pytest.mark.parametrize("script", RUN_SCRIPTS)
def test_every_knob_is_a_flag_of_every_run_script(script):
    completed = subprocess.run(
        [sys.executable, str(SCRIPTS / script), "--help"], capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    for name in KNOBS:
        assert f"--{name} " in completed.stdout or f"--{name}\n" in completed.stdout, (script, name)


def test_fusion_layers_text():
    assert parse_fusion_layers("all") == "all" and parse_fusion_layers(" 0, 3,-1") == [0, 3, -1]
    with pytest.raises(ValueError, match="comma-separated integers"):
        parse_fusion_layers("0,,3")
