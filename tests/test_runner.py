"""The run skeleton's decisions, one function at a time (dwatt.tasks.runner): which checkpoint is continued and
which fusion flags it refuses. The end-to-end runs are in test_run_ner.py and test_reliability.py."""

from types import SimpleNamespace

import pytest
from conftest import tiny_backbone_config

from dwatt import DWAttConfig, DWAttForTokenClassification
from dwatt.tasks import runner
from dwatt.tasks.arguments import ModelArguments, parse_arguments


def model_args(folder, *argv):
    (arguments,) = parse_arguments((ModelArguments,), argv=["--model_name_or_path", str(folder), *argv])
    return arguments


def test_fusion_flags_a_checkpoint_does_not_have_are_refused_by_name_and_value(tiny_bert_dir):
    saved = DWAttConfig(backbone_config=tiny_backbone_config(), fusion="concat", num_labels=3)
    runner.refuse_fusion_arguments_for_a_checkpoint(model_args(tiny_bert_dir), saved)  # defaults: the checkpoint's
    runner.refuse_fusion_arguments_for_a_checkpoint(model_args(tiny_bert_dir, "--fusion", "concat"), saved)  # same
    with pytest.raises(ValueError) as refused:
        runner.refuse_fusion_arguments_for_a_checkpoint(
            model_args(tiny_bert_dir, "--fusion", "mean", "--fusion_dropout", "0.1"), saved
        )
    assert str(refused.value) == (
        f"{tiny_bert_dir} is a DWAtt checkpoint, whose own config decides its fusion; --fusion 'mean' (the checkpoint "
        "has 'concat'), --fusion_dropout 0.1 (the checkpoint has 0.0) would be ignored. Drop the flag to continue "
        "training this checkpoint, or start from a plain encoder to build another fusion"
    )


def test_a_config_without_a_knob_saved_refuses_it_given_and_accepts_it_left_alone(tiny_bert_dir):
    older = SimpleNamespace(**{name: knob.default for name, knob in runner.KNOBS.items() if name != "fusion_dropout"})
    runner.refuse_fusion_arguments_for_a_checkpoint(model_args(tiny_bert_dir), older)
    with pytest.raises(ValueError, match=r"--fusion_dropout 0.2 \(the checkpoint has None\) would be ignored"):
        runner.refuse_fusion_arguments_for_a_checkpoint(model_args(tiny_bert_dir, "--fusion_dropout", "0.2"), older)


def test_a_dwatt_checkpoint_is_told_from_a_plain_encoder_with_the_hub_arguments(tiny_bert_dir, tmp_path, monkeypatch):
    DWAttForTokenClassification(DWAttConfig(backbone_config=tiny_backbone_config(), num_labels=3)).save_pretrained(
        tmp_path / "dwatt"
    )
    assert runner.is_dwatt_checkpoint(str(tmp_path / "dwatt")) is True
    assert runner.is_dwatt_checkpoint(str(tiny_bert_dir)) is False
    asked = []
    real = runner.AutoConfig.from_pretrained
    monkeypatch.setattr(runner.AutoConfig, "from_pretrained",
                        lambda *args, **kwargs: asked.append((args, kwargs)) or real(*args))  # fmt: skip
    assert runner.is_dwatt_checkpoint(str(tiny_bert_dir), revision="v1", trust_remote_code=False) is False
    assert asked == [((str(tiny_bert_dir),), {"revision": "v1", "trust_remote_code": False})]
