"""The run skeleton's decisions, one function at a time (dwatt.tasks.runner): which checkpoint is continued and
which fusion flags it refuses. The end-to-end runs are in test_run_ner.py and test_reliability.py."""

import json
import logging
from types import SimpleNamespace

import pytest
from conftest import parse_run_args, tiny_backbone_config

from dwatt import DWAttConfig, DWAttForTokenClassification
from dwatt.data.fingerprints import BUNDLED_WNUT16
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


def test_a_finished_run_records_its_arguments_and_metrics_and_resumes_only_training(
    tiny_bert_dir, tmp_path, caplog, capsys
):
    """One tiny run inside the test (not a shared fixture, so mutmut sees which test reaches train_and_save)."""
    from transformers import TrainingArguments

    from dwatt.tasks.ner import NerDataArguments, run_ner

    output = tmp_path / "run"
    run_ner(*parse_run_args((ModelArguments, NerDataArguments, TrainingArguments), [
        "--model_name_or_path", str(tiny_bert_dir), "--output_dir", str(output), "--few_shot_k", "8",
        "--few_shot_seed", "3", "--freeze_backbone", "--do_train", "--max_steps", "2", "--learning_rate", "3e-4",
        "--save_strategy", "steps", "--save_steps", "2", "--max_seq_length", "8", "--report_to", "none", "--use_cpu",
    ]))  # fmt: skip
    recorded = json.loads((output / "run_arguments.json").read_text())
    assert recorded["freeze_backbone"] is True and "base_model" in recorded  # from the model arguments
    assert (recorded["few_shot_k"], recorded["few_shot_seed"]) == (8, 3)  # the data arguments
    assert (recorded["max_steps"], recorded["learning_rate"]) == (2, 3e-4)  # the training arguments
    train = json.loads((output / "train_results.json").read_text())
    assert train["train_samples"] == 8 and train["train_truncated_sentences"] > 0  # the task's own metric kept
    wall = train["train_wall_seconds"]
    assert isinstance(wall, float) and wall == round(wall, 1)
    assert train["train_runtime"] - 0.1 <= wall < 600  # the Trainer's time and the saving, in seconds

    def resumes(folder, do_train=True):
        return runner.checkpoint_to_resume(
            TrainingArguments(output_dir=str(folder), do_train=do_train, report_to="none", use_cpu=True)
        )

    assert "***** train metrics *****" in capsys.readouterr().out  # the Trainer's printout names the phase

    with caplog.at_level(logging.INFO, logger="dwatt.tasks.runner"):
        assert resumes(output) == str(output / "checkpoint-2")
        assert f"Resuming from {output / 'checkpoint-2'}" in caplog.text
        caplog.clear()
        assert resumes(output, do_train=False) is None  # evaluating a finished run trains nothing
        (tmp_path / "empty").mkdir()
        assert resumes(tmp_path / "empty") is None and "Resuming" not in caplog.text


def training_arguments(folder, **kwargs):
    from transformers import TrainingArguments

    return TrainingArguments(output_dir=str(folder), report_to="none", use_cpu=True, **kwargs)


def test_the_resume_key_names_each_argument_by_its_group_and_existing_files_by_absolute_path(
    tiny_bert_dir, tmp_path, monkeypatch
):
    """Key files written by earlier runs are compared name by name, so the names are part of the format."""
    from dwatt.tasks.ner import NerDataArguments

    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.txt").write_text("EU B-ORG\n")
    key = runner.resume_key(
        training_arguments(tmp_path, learning_rate=3e-4),
        model_args(tiny_bert_dir, "--fusion", "mean"),
        NerDataArguments(train_file="train.txt", few_shot_k=8),
    )
    assert key["model.fusion"] == "mean" and key["data.few_shot_k"] == 8 and key["training.learning_rate"] == 3e-4
    assert key["data.train_file"] == str((tmp_path / "train.txt").resolve())  # by where it is, not how it was named
    assert len(key["data.train_file.sha256"]) == 64  # and by content


def test_the_resume_key_takes_any_argument_objects(tmp_path):
    """Values JSON cannot hold are kept as text; arguments a task's dataclass (or an older TrainingArguments) lacks
    are None; a Hub dataset has no file to fingerprint, the bundled one has."""
    from dataclasses import make_dataclass

    model = make_dataclass("Model", ["model_name_or_path"])(tmp_path / "nowhere")  # a Path, not a string
    hub_data = make_dataclass("Data", ["dataset_name"])("someone/ner")  # no train_file field at all
    older_training = SimpleNamespace(learning_rate=1e-4)  # no other training field
    key = runner.resume_key(older_training, model, hub_data)
    assert key["model.model_name_or_path"] == str(tmp_path / "nowhere")
    assert key["data.dataset_name"] == "someone/ner" and not any(name.endswith(".sha256") for name in key)
    assert key["training.learning_rate"] == 1e-4 and key["training.max_steps"] is None
    no_dataset_field = runner.resume_key(older_training, model, make_dataclass("Data", ["train_file"])(None))
    assert "data.train_file" in no_dataset_field
    bundled = runner.resume_key(older_training, model, make_dataclass("Data", ["dataset_name"])(BUNDLED_WNUT16))
    assert len(bundled["data.dataset_name.sha256"]) == 64


def test_resuming_is_refused_when_an_argument_differs_and_only_then(tmp_path):
    stored = tmp_path / runner.RESUME_KEY_FILE
    stored.write_text(json.dumps({"model.fusion": "dwatt", "training.learning_rate": 1e-4}))
    args = SimpleNamespace(output_dir=str(tmp_path), resume_from_checkpoint=None)

    def check(key, resuming=True):
        runner.check_resume_key(args, key, resuming)

    check({"model.fusion": "dwatt", "training.learning_rate": 1e-4})
    # A key written before data fingerprints existed has none: the new run's fingerprint is not compared.
    check({"model.fusion": "dwatt", "training.learning_rate": 1e-4, "data.train_file.sha256": "ab"})
    check({"model.fusion": "concat", "training.learning_rate": 1e-4}, resuming=False)  # nothing to resume
    with pytest.raises(ValueError) as refused:
        check({"model.fusion": "concat", "training.learning_rate": 1e-3})
    assert str(refused.value) == (
        f"{tmp_path} holds checkpoints of a run with other arguments (fusion: 'dwatt' then, 'concat' now; "
        "learning_rate: 0.0001 then, 0.001 now). Resuming would continue that run, not this one: use another "
        "--output_dir, or delete its checkpoint-* folders to start afresh (or pass --resume_from_checkpoint to "
        "resume on purpose)"
    )
    with pytest.raises(ValueError, match=r"\(lora_r: None then, 4 now\)"):  # an argument the old key lacks
        check({"model.fusion": "dwatt", "training.learning_rate": 1e-4, "model.lora_r": 4})
    stored.write_text(json.dumps({"model.fusion": "dwatt", "data.train_file.sha256": "ab"}))
    check({"model.fusion": "dwatt", "data.train_file.sha256": "ab"})
    with pytest.raises(ValueError, match=r"\(train_file.sha256: 'ab' then, 'cd' now\)"):  # the file edited in place
        check({"model.fusion": "dwatt", "data.train_file.sha256": "cd"})
    args.resume_from_checkpoint = str(tmp_path / "checkpoint-9")  # asked for on purpose: not checked
    check({"model.fusion": "concat", "data.train_file.sha256": "cd"})


def test_a_run_that_would_do_nothing_is_refused_and_a_new_nested_output_folder_is_made(tmp_path):
    with pytest.raises(ValueError) as refused:
        runner.check_run_arguments(training_arguments(tmp_path / "none"))
    assert str(refused.value) == (
        "none of --do_train, --do_eval, --do_predict was given, so the run would load the model and stop; pass at "
        "least one (run the script with no arguments at all for its default job)"
    )
    nested = tmp_path / "a" / "b" / "run"
    runner.check_run_arguments(
        training_arguments(nested, do_train=True, per_device_train_batch_size=1, per_device_eval_batch_size=1)
    )
    assert nested.is_dir() and not any(nested.iterdir())  # made, and the write probe removed


def test_the_fusion_rate_groups_of_a_bare_base_model_and_the_backbones_weight_decay(tmp_path):
    """DWAttModel has no `dwatt.` prefix (it is the base model): its backbone is still told from its fusion."""
    from dwatt import DWAttModel

    model = DWAttModel(DWAttConfig(backbone_config=tiny_backbone_config(), fusion="dwatt"))
    optimizer_class, kwargs = runner.fusion_optimizer(
        model, training_arguments(tmp_path, learning_rate=1e-4, weight_decay=0.05), fusion_learning_rate=1e-3
    )
    decay, no_decay, fusion = optimizer_class(**kwargs).param_groups

    def ids(group):
        return {id(parameter) for parameter in group["params"]}

    assert ids(fusion) == {id(parameter) for parameter in model.fusion.parameters()}
    assert ids(decay) | ids(no_decay) == {id(parameter) for parameter in model.backbone.parameters()}
    assert (decay["weight_decay"], no_decay["weight_decay"], fusion["weight_decay"]) == (0.05, 0.0, 0.0)
    assert (decay["lr"], fusion["lr"]) == (1e-4, 1e-3)


def test_a_dwatt_config_of_another_class_counts_as_one():
    """With trust_remote_code the config class comes from the checkpoint's own configuration_dwatt.py, not from
    this package: its model_type decides."""
    assert runner._is_dwatt_config(SimpleNamespace(model_type="dwatt")) is True
    assert runner._is_dwatt_config(SimpleNamespace(model_type="bert")) is False
    assert runner._is_dwatt_config(SimpleNamespace()) is False  # no model_type at all


def test_the_model_and_the_hub_arguments_reach_what_builds_from_them(tiny_bert_dir, tmp_path, monkeypatch):
    """GaLore, Apollo and LOMO build from the model (`get_optimizer_cls_and_kwargs(args, model)`); a DWAtt
    checkpoint is continued from the revision asked for."""
    model = DWAttForTokenClassification(DWAttConfig(backbone_config=tiny_backbone_config(), num_labels=3))
    given = {}
    real = runner.Trainer.get_optimizer_cls_and_kwargs
    monkeypatch.setattr(runner.Trainer, "get_optimizer_cls_and_kwargs",
                        lambda args, model=None: given.update(model=model) or real(args, model))  # fmt: skip
    runner.fusion_optimizer(model, training_arguments(tmp_path), fusion_learning_rate=1e-3)
    assert given["model"] is model

    model.save_pretrained(tmp_path / "checkpoint")
    loaded_with = {}

    class Recording(DWAttForTokenClassification):
        @classmethod
        def from_pretrained(cls, path, **kwargs):
            loaded_with.update(kwargs)
            return DWAttForTokenClassification.from_pretrained(path, **kwargs)

    runner.load_model(model_args(tmp_path / "checkpoint", "--revision", "main"), Recording, num_labels=3)
    assert loaded_with == {"revision": "main", "trust_remote_code": False, "ignore_mismatched_sizes": False,
                           "num_labels": 3}  # fmt: skip


def test_an_output_folder_that_cannot_be_made_is_named_with_the_reason(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError) as refused:
        runner.check_run_arguments(training_arguments(tmp_path / "file" / "run", do_train=True))
    assert str(refused.value) == (
        f"--output_dir {tmp_path / 'file' / 'run'} is not writable (Not a directory); expected a folder this user can "
        "write to"
    )
