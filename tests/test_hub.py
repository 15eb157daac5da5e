"""Push-ready export, model card and (mocked) Hub push of a run folder, offline.

The run folders are tiny random DWAtt models saved like `run_ner` saves them, next to fake but
plausible metrics files. Pushes are captured by patching `HfApi` at class level (docs/HF_RULES.md, section 5).
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest
import torch
import yaml
from conftest import tiny_backbone_config
from huggingface_hub import CommitOperationAdd, HfApi, ModelCard
from test_remote_code import LOADER
from transformers import BertTokenizer, TrainingArguments

from dwatt import DWAttConfig, DWAttForTokenClassification
from dwatt.configuration_dwatt import DWATT_AUTO_MAP
from dwatt.hub.card import render_model_card, usage_snippet
from dwatt.hub.push import export_push_ready, push_run, push_trained_run, scrub_local_paths
from dwatt.hub.record import NOT_RECORDED, save_run_arguments
from dwatt.tasks.arguments import ModelArguments
from dwatt.tasks.ner import NerDataArguments

REPO_ID = "someone/tiny-dwatt-ner"
LABELS = ["O", "B-person", "I-person", "B-geo-loc", "I-geo-loc"]
WORDS = [f"w{index}" for index in range(94)]
COMMIT = "0123456789abcdef0123456789abcdef01234567"

TRAIN_RESULTS = {
    "epoch": 6.15,
    "total_flos": 1234.0,
    "train_loss": 0.4321,
    "train_runtime": 12.5,
    "train_samples": 40,
    "train_samples_per_second": 51.2,
    "train_steps_per_second": 3.2,
    "train_truncated_sentences": 0,
    "train_wall_seconds": 14.1,
}
EVAL_RESULTS = {
    "epoch": 6.15,
    "eval_loss": 0.71,
    "eval_overall_accuracy": 0.9123,
    "eval_overall_f1": 0.3137254901960784,
    "eval_overall_precision": 0.4,
    "eval_overall_recall": 0.25806451612903225,
    "eval_person_f1": 0.4,
    "eval_person_number": 20,
    "eval_person_precision": 0.5,
    "eval_person_recall": 0.3333333333333333,
    "eval_samples": 20,
    "eval_truncated_sentences": 0,
}
PREDICT_RESULTS = {
    "predict_loss": 0.69,
    "predict_overall_accuracy": 0.9087,
    "predict_overall_f1": 0.2857142857142857,
    "predict_overall_precision": 0.375,
    "predict_overall_recall": 0.23076923076923078,
    "predict_geo-loc_f1": 0.2,
    "predict_geo-loc_number": 9,
    "predict_geo-loc_precision": 0.25,
    "predict_geo-loc_recall": 0.16666666666666666,
    "predict_person_f1": 0.3333333333333333,
    "predict_person_number": 17,
    "predict_person_precision": 0.42857142857142855,
    "predict_person_recall": 0.2727272727272727,
    "predict_samples": 30,
    "predict_truncated_sentences": 0,
}


def _write_json(path: Path, payload: dict) -> None:
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")


def make_run(folder: Path, fusion: str = "dwatt", record_arguments: bool = True) -> list[str]:
    """A folder shaped like run_ner's output (plus leftovers that must not be pushed); returns tokenizer files."""
    torch.manual_seed(0)
    config = DWAttConfig(
        backbone_config=tiny_backbone_config(),
        fusion=fusion,
        dwatt_scale="sqrt_d",
        id2label=dict(enumerate(LABELS)),
        label2id={label: index for index, label in enumerate(LABELS)},
    )
    DWAttForTokenClassification(config).save_pretrained(folder)
    tokenizer = BertTokenizer(
        vocab={word: i for i, word in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS)}
    )
    tokenizer_files = [Path(name).name for name in tokenizer.save_pretrained(folder)]

    # Local paths where save_pretrained from a local backbone may put them: they must not reach the Hub.
    saved = json.loads((folder / "config.json").read_text())
    saved["_name_or_path"] = str(folder.parent / "backbones" / "minilm")
    saved["backbone_config"]["_name_or_path"] = str(folder.parent / "backbones" / "minilm")
    _write_json(folder / "config.json", saved)

    all_results = {**TRAIN_RESULTS, **EVAL_RESULTS, **PREDICT_RESULTS}
    for name, payload in (
        ("train_results.json", TRAIN_RESULTS),
        ("eval_results.json", EVAL_RESULTS),
        ("predict_results.json", PREDICT_RESULTS),
        ("all_results.json", all_results),
    ):
        _write_json(folder / name, payload)
    log_history = [
        {"epoch": 2.0, "grad_norm": 3.1, "learning_rate": 8e-05, "loss": 1.52, "step": 10},
        {"epoch": 4.0, "grad_norm": 2.2, "learning_rate": 4e-05, "loss": 0.61, "step": 20},
        {"epoch": 6.15, "step": 30, "total_flos": 1234.0, "train_loss": 0.4321, "train_runtime": 12.5},
    ]
    _write_json(
        folder / "trainer_state.json",
        {"best_model_checkpoint": str(folder / "checkpoint-20"), "epoch": 6.15, "global_step": 30,
         "max_steps": 30, "log_history": log_history, "train_batch_size": 8},
    )  # fmt: skip
    sentences = [[WORDS[(3 * s + t) % len(WORDS)] for t in range(5 + s % 4)] for s in range(12)]
    conll = "\n\n".join("\n".join(f"{word} O O" for word in sentence) for sentence in sentences)
    (folder / "predictions.conll").write_text(conll + "\n")
    (folder / "training_args.bin").write_bytes(b"not a pickle anyone should open")
    (folder / "checkpoint-20").mkdir()
    (folder / "checkpoint-20" / "optimizer.pt").write_bytes(b"\0" * 16)
    (folder / "optimizer.pt").write_bytes(b"\0" * 16)
    if record_arguments:
        # The real argument dataclasses: a renamed field would render "not recorded" and fail the card tests.
        model_args = ModelArguments(model_name_or_path="prajjwal1/bert-tiny", fusion_learning_rate=1e-3)
        data_args = NerDataArguments(dataset_name="wnut16-bundled", few_shot_k=40, few_shot_seed=0)
        training_args = TrainingArguments(
            output_dir=str(folder), learning_rate=1e-4, max_steps=30, warmup_steps=3, per_device_train_batch_size=8,
            seed=0, use_cpu=True, report_to="none", optim="adamw_torch",
        )  # fmt: skip
        save_run_arguments(folder, model_args, data_args, training_args)
    return tokenizer_files


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs") / "tiny-dwatt"
    folder.mkdir()
    make_run(folder)
    return folder


def expected_files(run_dir: Path, figure: bool = True) -> list[str]:
    names = {
        "README.md", "config.json", "configuration_dwatt.py", "modeling_dwatt.py", "model.safetensors",
        "tokenizer.json", "tokenizer_config.json", "all_results.json", "train_results.json", "eval_results.json",
        "predict_results.json", "trainer_state.json", "run_arguments.json", "layer_map.py", "handler.py",
    }  # fmt: skip
    return sorted(names | ({"fusion_weights.png"} if figure else set()))


def committed(create_commit: mock.Mock) -> list[list[str]]:
    """Paths of every commit the mock saw, in call order."""
    return [
        sorted(op.path_in_repo for op in call.kwargs["operations"] if isinstance(op, CommitOperationAdd))
        for call in create_commit.call_args_list
    ]


def committed_contents(call) -> dict[str, tuple[str | None, bytes]]:
    """path_in_repo -> (the local file it came from, or None for in-memory bytes; the bytes committed)."""
    contents = {}
    for op in call.kwargs["operations"]:
        if isinstance(op, CommitOperationAdd):
            source = op.path_or_fileobj
            if isinstance(source, (str, Path)):
                contents[op.path_in_repo] = (str(source), Path(source).read_bytes())
            else:
                contents[op.path_in_repo] = (None, source if isinstance(source, bytes) else source.read())
    return contents


def walk_strings(value):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from walk_strings(key)
            yield from walk_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk_strings(item)
    elif isinstance(value, str):
        yield value


@pytest.fixture
def hub_mocks():
    """HfApi patched at class level: every push path ends in these mocks (docs/HF_RULES.md, section 5)."""
    commit_info = SimpleNamespace(oid=COMMIT, commit_url=f"https://huggingface.co/{REPO_ID}/commit/{COMMIT}")
    with (
        mock.patch.object(HfApi, "create_repo", return_value=SimpleNamespace(repo_id=REPO_ID)) as create_repo,
        mock.patch.object(HfApi, "create_branch") as create_branch,
        mock.patch.object(HfApi, "create_commit", return_value=commit_info) as create_commit,
        mock.patch.object(ModelCard, "validate") as validate,
    ):
        yield SimpleNamespace(
            create_repo=create_repo, create_branch=create_branch, create_commit=create_commit, validate=validate
        )


def test_push_commits_exactly_the_push_ready_files(run_dir, tmp_path, hub_mocks):
    result = push_run(run_dir, REPO_ID, export_dir=tmp_path / "export", commit_message="Tiny run")

    hub_mocks.create_repo.assert_called_once()
    assert hub_mocks.create_repo.call_args.args[0] == REPO_ID
    assert hub_mocks.create_repo.call_args.kwargs["exist_ok"] is True
    hub_mocks.create_branch.assert_not_called()  # main exists already
    hub_mocks.validate.assert_called_once()
    # The folder, then the card alone, pinned to the first commit.
    assert committed(hub_mocks.create_commit) == [expected_files(run_dir), ["README.md"]]
    first, second = hub_mocks.create_commit.call_args_list
    assert first.kwargs["commit_message"] == "Tiny run" and first.kwargs["revision"] == "main"
    pinned_card = next(op for op in second.kwargs["operations"]).path_or_fileobj
    pinned_text = Path(pinned_card).read_text() if isinstance(pinned_card, str) else pinned_card.decode()
    assert f'revision = "{COMMIT}"' in usage_snippet(pinned_text)
    assert result.commit == COMMIT and result.files == expected_files(run_dir)

    # What was committed: every file is the exported one, byte for byte, and its JSON leaks no local path.
    export = (tmp_path / "export").resolve()
    contents = committed_contents(first)
    assert sorted(contents) == expected_files(run_dir)
    for name, (source, data) in contents.items():
        assert source is not None and Path(source).resolve().parent == export, (name, source)
        assert data == (export / name).read_bytes(), name
        if name.endswith(".json"):
            strings = list(walk_strings(json.loads(data)))
            assert not [s for s in strings if s.startswith("/") or str(run_dir.parent) in s], name
    config = json.loads(contents["config.json"][1])
    assert config["auto_map"] == DWATT_AUTO_MAP
    assert "_name_or_path" not in config and "_name_or_path" not in config["backbone_config"]


def test_push_to_a_new_branch_of_a_private_repo(run_dir, tmp_path, hub_mocks):
    bare_name = REPO_ID.split("/")[1]  # the Hub puts it under the token's user; the card must say where
    result = push_run(run_dir, bare_name, private=True, revision="v1", export_dir=tmp_path / "export")
    assert hub_mocks.create_repo.call_args.args[0] == bare_name
    assert hub_mocks.create_repo.call_args.kwargs["private"] is True
    assert result.repo_id == REPO_ID and f'repo_id = "{REPO_ID}"' in (result.folder / "README.md").read_text()
    assert {call.kwargs["repo_id"] for call in hub_mocks.create_commit.call_args_list} == {REPO_ID}
    hub_mocks.create_branch.assert_called_once()
    assert hub_mocks.create_branch.call_args.kwargs["branch"] == "v1"
    assert {call.kwargs["revision"] for call in hub_mocks.create_commit.call_args_list} == {"v1"}


def test_dry_run_lists_files_and_uploads_nothing(run_dir, tmp_path, hub_mocks, capsys):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    try:
        import push_to_hub
    finally:
        sys.path.pop(0)
    push_to_hub.main([str(run_dir), "--repo_id", REPO_ID, "--dry_run", "--export_dir", str(tmp_path / "export")])
    hub_mocks.create_repo.assert_not_called()
    hub_mocks.create_commit.assert_not_called()
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line.startswith("  ")]
    assert listed == expected_files(run_dir)


def test_push_trained_run_takes_the_trainer_hub_arguments(run_dir, tmp_path, hub_mocks):
    run = shutil.copytree(run_dir, tmp_path / "run")
    training_args = TrainingArguments(
        output_dir=str(run), hub_model_id=REPO_ID, hub_private_repo=True, use_cpu=True, report_to="none"
    )
    result = push_trained_run(training_args)
    assert result.repo_id == REPO_ID and hub_mocks.create_repo.call_args.kwargs["private"] is True
    assert result.folder == run / "hub"  # the default export folder
    assert committed(hub_mocks.create_commit)[0] == expected_files(run)


def test_run_ner_push_to_hub_end_to_end(tiny_bert_dir, tmp_path, hub_mocks):
    """A real run with the real argument dataclasses: what is committed is the export, byte for byte, with
    no local path, and the card states the run's own hyper-parameters."""
    from conftest import parse_run_args

    from dwatt.tasks.ner import run_ner

    run = tmp_path / "run"
    args = parse_run_args(
        (ModelArguments, NerDataArguments, TrainingArguments),
        ["--model_name_or_path", tiny_bert_dir, "--output_dir", run, "--few_shot_k", "16", "--max_eval_samples", "8",
         "--max_predict_samples", "8", "--do_train", "--do_eval", "--do_predict", "--max_steps", "2",
         "--learning_rate", "3e-4", "--report_to", "none", "--use_cpu", "--push_to_hub", "--hub_model_id", REPO_ID],
    )  # fmt: skip
    run_ner(*args)
    first = hub_mocks.create_commit.call_args_list[0]
    contents = committed_contents(first)
    export = (run / "hub").resolve()
    assert {"model.safetensors", "config.json", "modeling_dwatt.py", "README.md", "tokenizer.json"} <= set(contents)
    assert "training_args.bin" not in contents and not [name for name in contents if "checkpoint-" in name]
    for name, (source, data) in contents.items():
        assert source is not None and Path(source).resolve().parent == export, (name, source)
        assert data == (export / name).read_bytes(), name
        text = data.decode("utf-8", errors="ignore")
        assert str(tmp_path) not in text and str(tiny_bert_dir) not in text, name
    card = contents["README.md"][1].decode()
    assert "| learning rate (backbone) | 0.0003 |" in card
    assert "| few-shot K / sample seed | 16 / 0 |" in card and "| optimizer steps | 2 of 2 |" in card


def test_run_ner_pushes_an_evaluated_model_it_did_not_train(tiny_bert_dir, tmp_path, hub_mocks):
    """`--do_eval --push_to_hub` without `--do_train` (publishing a model with its scores): the model is saved and
    its run recorded before the push, so the Hub gets weights, tokenizer and a card with the evaluation."""
    from conftest import parse_run_args

    from dwatt.tasks.ner import run_ner

    run = tmp_path / "run"
    args = parse_run_args(
        (ModelArguments, NerDataArguments, TrainingArguments),
        ["--model_name_or_path", tiny_bert_dir, "--output_dir", run, "--max_eval_samples", "8", "--do_eval",
         "--report_to", "none", "--use_cpu", "--push_to_hub", "--hub_model_id", REPO_ID],
    )  # fmt: skip
    results = run_ner(*args)
    contents = committed_contents(hub_mocks.create_commit.call_args_list[0])
    assert {"model.safetensors", "config.json", "tokenizer.json", "README.md"} <= set(contents)
    recorded = json.loads((run / "run_arguments.json").read_text())
    assert recorded["freeze_backbone"] is False and recorded["max_seq_length"] == 128  # the model's and the data's
    assert args[2].push_to_hub is True  # the caller's arguments as given (switched off only during the run)
    card = contents["README.md"][1].decode()
    assert f"value: {results['eval_accuracy']}" in card and "**Not fine-tuned**" in card  # said, not hidden


def test_a_card_never_presents_scores_of_other_data_as_the_runs_own(tiny_bert_dir, tmp_path):
    """A predict-only run on the user's own file into the run folder overwrote predict_results.json, and the card
    called its F1 (1.0 on tweets tagged by the model itself) the WNUT-16 test score; `--max_predict_samples 8`
    gave a card saying the test split has 8 tweets, which every dwatt run is scored on."""
    from conftest import parse_run_args

    from dwatt.tasks.ner import run_ner

    run = tmp_path / "run"
    common = ["--output_dir", run, "--report_to", "none", "--use_cpu", "--do_predict"]
    run_ner(*parse_run_args(
        (ModelArguments, NerDataArguments, TrainingArguments),
        ["--model_name_or_path", tiny_bert_dir, "--few_shot_k", "16", "--max_predict_samples", "8", "--do_train",
         "--max_steps", "1", *common],
    ))  # fmt: skip
    predicted = json.loads((run / "predict_results.json").read_text())
    assert (predicted["predict_data"], predicted["predict_max_samples"]) == ("wnut16-bundled", 8)
    assert len(predicted["predict_data_sha256"]) == 64
    card = ModelCard.load(export_push_ready(run, tmp_path / "first", repo_id=REPO_ID, figure=False).folder
                          / "README.md").text  # fmt: skip
    assert "test split (scored on its first 8 tweets only, `--max_predict_samples 8`)" in card
    assert "scored on the same test tweets" not in card and "(8 tweets)" not in card

    mine = tmp_path / "mine.conll"  # every type of the model's label list, so the head fits
    types = sorted({label[2:] for label in json.loads((run / "config.json").read_text())["label2id"] if label != "O"})
    mine.write_text("".join(f"a\tB-{name}\nb\tI-{name}\nc\tO\n\n" for name in types))
    run_ner(*parse_run_args(
        (ModelArguments, NerDataArguments, TrainingArguments),
        ["--model_name_or_path", run, "--test_file", mine, *common],
    ))  # fmt: skip
    assert json.loads((run / "predict_results.json").read_text())["predict_data"] == "mine.conll"
    expected = (f"{run / 'predict_results.json'} scores mine.conll, but the run's run_arguments.json records "
                "wnut16-bundled: a card would present those scores")  # fmt: skip
    with pytest.raises(ValueError, match=re.escape(expected)):
        export_push_ready(run, tmp_path / "second", repo_id=REPO_ID, figure=False)
    with pytest.raises(ValueError, match=re.escape(expected)):
        render_model_card(run, repo_id=REPO_ID)
    assert not (tmp_path / "second").exists()


def test_card_round_trips_and_reports_the_metrics_files(run_dir, tmp_path):
    export = export_push_ready(run_dir, tmp_path / "export", repo_id=REPO_ID).folder
    card = ModelCard.load(export / "README.md")
    front_matter = yaml.safe_load((export / "README.md").read_text().split("---")[1])
    assert front_matter["model-index"][0]["name"] == "tiny-dwatt-ner"

    data = card.data
    assert data.library_name == "transformers" and data.pipeline_tag == "token-classification"
    assert {"dwatt", "layer-fusion", "custom_code", "token-classification"} <= set(data.tags)
    assert data.base_model == "prajjwal1/bert-tiny" and data.language == "en"
    files = {"test": ("predict", PREDICT_RESULTS), "validation": ("eval", EVAL_RESULTS)}
    metric_keys = {"f1": "overall_f1", "precision": "overall_precision", "recall": "overall_recall"}
    metric_keys["accuracy"] = "overall_accuracy"
    seen = set()
    for result in data.eval_results:
        prefix, metrics = files[result.dataset_split]
        assert result.metric_value == metrics[f"{prefix}_{metric_keys[result.metric_type]}"]
        assert result.task_type == "token-classification"
        seen.add((result.dataset_split, result.metric_type))
    assert seen == {(split, metric) for split in files for metric in metric_keys}

    text = card.text
    assert "trust_remote_code=True" in usage_snippet(text) and "revision=revision" in usage_snippet(text)
    assert "| test | `predict_results.json` | 30 | 0.2857 |" in text
    assert (
        "| learning rate (backbone) | 0.0001 |" in text
        and "| seed | 0 |" in text
        and "| training sentences | 40 |" in text
    )
    assert "![Mean fusion weight per layer](fusion_weights.png)" in text
    assert (export / "fusion_weights.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "@inproceedings{" in text and "2209.15168" in text and "uncased" in text
    assert "fixed 30-tweet slice of the WNUT-16 training file" in text  # predict_samples, not a constant


def test_card_says_not_recorded_where_the_run_did_not_record(tmp_path):
    run = tmp_path / "bare-last"
    run.mkdir()
    make_run(run, fusion="last", record_arguments=False)
    (run / "trainer_state.json").unlink()
    export = export_push_ready(run, tmp_path / "export", repo_id=REPO_ID)
    assert export.files == sorted(set(expected_files(run, figure=False)) - {"run_arguments.json", "trainer_state.json"})
    card = ModelCard.load(export.folder / "README.md")
    assert f"| seed | {NOT_RECORDED} |" in card.text and f"| hardware | {NOT_RECORDED} |" in card.text
    assert "Fusion weights" not in card.text  # `last` has no fusion weights to draw
    assert card.data.base_model is None and card.data.license is None


# Appended to the snippet: what the snippet's `model` is and what it computes.
DUMP_LOADED_MODEL = """
import json, torch
logits = model(input_ids=torch.tensor({inputs})).logits
summary = {{"module": type(model).__module__, "class": type(model).__name__, "logits": logits.tolist()}}
json.dump(summary, open({result!r}, "w"))
"""


def test_pushed_folder_loads_without_dwatt_and_the_card_snippet_runs(run_dir, tmp_path):
    """The card's snippet, as written (repo id -> folder), loads the pushed files where dwatt cannot be imported.

    One isolated interpreter (remote_loader.py's import blocker, python -I, fresh module cache) runs the
    snippet, then dumps the logits of the model it loaded, which must equal the saved model's.
    """
    export = export_push_ready(run_dir, tmp_path / "export", repo_id=REPO_ID).folder
    pushed = tmp_path / "pushed"  # what a download of the repo holds
    shutil.copytree(export, pushed)
    inputs = [[2, 10, 11, 12, 3]]

    snippet = usage_snippet((pushed / "README.md").read_text()).replace(REPO_ID, str(pushed))
    assert str(pushed) in snippet and "trust_remote_code=True" in snippet
    blocker = LOADER.read_text().split("import torch")[0]  # sys.meta_path finder that refuses dwatt
    script = tmp_path / "snippet.py"
    script.write_text(
        blocker
        + "try:\n    import dwatt\nexcept ImportError:\n    pass\nelse:\n    sys.exit('dwatt is importable')\n\n"
        + snippet
        + DUMP_LOADED_MODEL.format(inputs=inputs, result=str(tmp_path / "result.json"))
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"), HF_HOME=str(tmp_path / "hf"))
    env.pop("PYTHONPATH", None)
    completed = subprocess.run(
        [sys.executable, "-I", str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    # trust_remote_code reaches every loader: nothing stops to ask a question (a hang in a notebook).
    assert "Do you wish to run the custom code" not in completed.stdout + completed.stderr
    assert "entity_group" in completed.stdout or completed.stdout.strip() == "[]"  # the pipeline's print

    remote = json.loads((tmp_path / "result.json").read_text())
    assert remote["module"].startswith("transformers_modules.") and remote["class"] == "DWAttForTokenClassification"
    with torch.no_grad():
        expected = DWAttForTokenClassification.from_pretrained(run_dir).eval()(input_ids=torch.tensor(inputs)).logits
    torch.testing.assert_close(torch.tensor(remote["logits"]), expected, rtol=1e-5, atol=1e-5)


def test_scrub_drops_path_fields_and_refuses_unknown_paths():
    clean = scrub_local_paths({"_name_or_path": "models/x", "a": {"_name_or_path": "/home/me/x", "b": [1, "ok"]}})
    assert clean == {"a": {"b": [1, "ok"]}}
    assert scrub_local_paths({"tokenizer_file": "tokenizer.json"}) == {"tokenizer_file": "tokenizer.json"}
    with pytest.raises(ValueError, match=r"a\.data_dir"):
        scrub_local_paths({"a": {"data_dir": "/home/me/data"}})


def test_export_refuses_a_folder_without_the_modeling_code(tmp_path):
    run = tmp_path / "plain"
    run.mkdir()
    (run / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="modeling_dwatt.py"):
        export_push_ready(run, tmp_path / "export", repo_id=REPO_ID)


def test_export_never_deletes_files_it_did_not_write(run_dir, tmp_path):
    target = tmp_path / "somewhere"
    target.mkdir()
    (target / "precious.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="precious.txt"):
        export_push_ready(run_dir, target, repo_id=REPO_ID)
    assert (target / "precious.txt").read_text() == "keep me"


def test_card_quotes_the_layer_analysis_findings_and_ships_its_figure(run_dir, tmp_path):
    analysis_dir = tmp_path / "analysis" / "run"
    analysis_dir.mkdir(parents=True)
    (analysis_dir / "report.md").write_text(
        "# Layer analysis\n\n## Findings\n\n- Entity words draw from layer 0.\n- Masking layer 3 costs 2.5 F1.\n\n"
        "## 1. Details\n\n- not a finding\n"
    )
    (analysis_dir / "type_profiles.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    exported = export_push_ready(run_dir, tmp_path / "export", repo_id="me/run", analysis_dir=analysis_dir)
    card = (exported.folder / "README.md").read_text()
    assert "## Layer analysis" in card and "- Masking layer 3 costs 2.5 F1." in card
    assert "not a finding" not in card and "(type_profiles.png)" in card
    assert "type_profiles.png" in exported.files


def test_every_number_the_card_text_shows_comes_from_its_own_file(run_dir, tmp_path):
    """The sentence users read first, and each table, quote the file they name: test scores from
    predict_results.json, dev scores from eval_results.json, the loss and time from train_results.json, the
    steps from trainer_state.json, the settings from run_arguments.json."""
    export = export_push_ready(run_dir, tmp_path / "export", repo_id=REPO_ID, figure=False).folder
    text = ModelCard.load(export / "README.md").text
    headline = text.split("\n# ", 1)[1].split("\n\n", 2)[1]  # the paragraph under the title
    test_f1, dev_f1 = PREDICT_RESULTS["predict_overall_f1"], EVAL_RESULTS["eval_overall_f1"]
    assert f"Entity F1 on the test split: **{test_f1:.4f}** (`predict_results.json`)" in headline
    assert f"{dev_f1:.4f}" not in headline
    assert f"| validation | `eval_results.json` | {EVAL_RESULTS['eval_samples']} | {dev_f1:.4f} |" in text
    assert f"| test | `predict_results.json` | {PREDICT_RESULTS['predict_samples']} | {test_f1:.4f} |" in text
    assert f"| geo-loc | {PREDICT_RESULTS['predict_geo-loc_precision']:.4f} |" in text  # per type: the test split
    assert f"| mean training loss | {TRAIN_RESULTS['train_loss']:.4f} |" in text
    assert f"| training time | {TRAIN_RESULTS['train_runtime']:.1f} s" in text
    assert "| optimizer steps | 30 of 30 |" in text and "| learning rate (fusion and head) | 0.001 |" in text


def test_the_record_and_card_of_a_run_on_the_users_own_files(tmp_path):
    """Issue 33: a run on user files recorded `dataset_name: wnut16-bundled` (the unused default), and its card
    said "few-shot K: not recorded", "warm-up ratio None" and listed entity types with no gold entity."""
    folder = tmp_path / "run"
    folder.mkdir()
    make_run(folder, record_arguments=False)
    model_args = ModelArguments(model_name_or_path="prajjwal1/bert-tiny")
    data_args = NerDataArguments(
        train_file=str(tmp_path / "mine" / "train.conll"), validation_file=str(tmp_path / "d.conll")
    )
    training_args = TrainingArguments(output_dir=str(folder), warmup_steps=5, use_cpu=True, report_to="none")
    save_run_arguments(folder, model_args, data_args, training_args)
    recorded = json.loads((folder / "run_arguments.json").read_text())
    assert recorded["dataset_name"] is None and recorded["train_file"] == "train.conll"
    predict = {
        **PREDICT_RESULTS,
        "predict_company_f1": 0.0,
        "predict_company_number": 0,
        "predict_company_precision": 0.0,
        "predict_company_recall": 0.0,
    }  # a type of the label list absent from the split, as 0.1 wrote it
    _write_json(folder / "predict_results.json", predict)
    text = ModelCard.load(export_push_ready(folder, tmp_path / "export", repo_id=REPO_ID, figure=False).folder
                          / "README.md").text  # fmt: skip
    assert "| data | local files: train.conll, d.conll |" in text
    assert "| few-shot K / sample seed | no (the whole training set) |" in text
    assert "| schedule / warm-up | linear / 5 steps |" in text and "None" not in text.split("## Training")[1][:2000]
    assert "| company |" not in text and "| geo-loc |" in text


def test_the_pushed_layer_map_pipeline_and_endpoint_handler_run_without_dwatt(run_dir, tmp_path):
    """`pipeline("layer-map", model=repo, trust_remote_code=True)` and the Inference Endpoints handler, in a process
    where dwatt cannot be imported, on the push-ready folder as the Hub would serve it."""
    export = export_push_ready(run_dir, tmp_path / "export", repo_id=REPO_ID, figure=False).folder
    script = f"""
import json, sys
sys.modules["dwatt"] = None
from transformers import pipeline
layer_map = pipeline("layer-map", model={str(export)!r}, trust_remote_code=True)
mapped = layer_map("alpha beta gamma")
sys.path.insert(0, {str(export)!r})
from handler import EndpointHandler
handler = EndpointHandler({str(export)!r})
served = handler({{"inputs": ["alpha", "beta", "gamma"], "parameters": {{"layer_weights": True}}}})
plain = handler({{"inputs": "alpha beta"}})
print(json.dumps({{"mapped": mapped, "served": served, "plain": plain}}))
"""
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                               env={**os.environ, "HF_HUB_OFFLINE": "1"}, cwd=tmp_path)  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    mapped = result["mapped"]
    assert mapped["layers"] == ["embeddings", "layer 1", "layer 2"]  # the tiny backbone: 2 layers
    assert [word["word"] for word in mapped["words"]] == ["alpha", "beta", "gamma"]
    for word in mapped["words"]:
        assert len(word["weights"]) == 3 and sum(word["weights"]) == pytest.approx(1.0, abs=1e-4)
    served = result["served"]
    assert served["words"] == mapped["words"] and isinstance(served["entities"], list)
    assert all({"entity_group", "word", "start", "end", "score"} <= set(entity) for entity in served["entities"])
    assert "words" not in result["plain"]  # layer weights only when asked for


def test_save_pretrained_with_push_to_hub_uploads_the_backbones_tokenizer(tiny_bert_dir, tmp_path, hub_mocks):
    """transformers uploads from inside its own save: a model from `from_backbone` must have written its
    tokenizer into the folder by then, or the Hub repo has weights no one can tokenize for."""
    model = DWAttForTokenClassification.from_backbone(str(tiny_bert_dir), num_labels=3)
    model.save_pretrained(tmp_path / "pushed", push_to_hub=True, repo_id=REPO_ID)
    (uploaded,) = committed(hub_mocks.create_commit)
    assert {"config.json", "model.safetensors", "tokenizer_config.json", "tokenizer.json"} <= set(uploaded)
    assert set(uploaded) == {path.name for path in (tmp_path / "pushed").iterdir()}


@pytest.mark.parametrize("architecture", ["DWAttForSequenceClassification", "DWAttForMaskedLM"])
def test_push_refuses_a_run_that_is_not_a_token_classifier(run_dir, tmp_path, hub_mocks, architecture):
    """The card (pipeline tag token-classification, entity scores, an AutoModelForTokenClassification snippet) and
    the serving files are a NER model's: a sentence classifier's or a masked LM's run was pushed under them."""
    folder = tmp_path / "run"
    shutil.copytree(run_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    _write_json(folder / "config.json", {**config, "architectures": [architecture]})
    with pytest.raises(ValueError) as error:
        push_run(folder, REPO_ID, dry_run=True, export_dir=tmp_path / "export")
    assert str(error.value) == (
        f"{folder / 'config.json'}: architectures ['{architecture}']; expected a token classifier (a checkpoint "
        "written by `dwatt ner`); `dwatt push` publishes NER runs only (its model card, usage snippet and serving "
        "files are a token classifier's)"
    )
    assert not (tmp_path / "export").exists()  # nothing written
    hub_mocks.create_commit.assert_not_called()


def test_push_takes_the_cards_language_and_refuses_a_language_name(run_dir, tmp_path, hub_mocks, capsys):
    from dwatt.cli import main

    main(["push", str(run_dir), "--repo_id", REPO_ID, "--dry_run", "--export_dir", str(tmp_path / "x"),
          "--language", "pt-BR"])  # fmt: skip
    card = ModelCard.load(tmp_path / "x" / "README.md")
    assert card.data.language == "pt-BR" and "- **Language:** `pt-BR`, uncased" in card.text
    with pytest.raises(SystemExit) as exit:
        main(["push", str(run_dir), "--repo_id", REPO_ID, "--dry_run", "--export_dir", str(tmp_path / "y"),
              "--language", "English"])  # fmt: skip
    assert exit.value.code == 2
    assert "--language 'English': expected an ISO 639 language code such as en, de or pt-BR" in capsys.readouterr().err
    assert not (tmp_path / "y").exists()


def test_the_pushed_handler_and_layer_map_cover_every_word_of_a_long_text(run_dir, tmp_path):
    """The tiny model takes 64 positions (and its tokenizer says so): 300 words are several windows. The endpoint's
    entities and layer map covered the first window only before; now every word is mapped and tagged."""
    export = export_push_ready(run_dir, tmp_path / "export", repo_id=REPO_ID, figure=False).folder
    tokenizer_config = json.loads((export / "tokenizer_config.json").read_text())
    _write_json(export / "tokenizer_config.json", {**tokenizer_config, "model_max_length": 64})  # as a real one says
    words = [WORDS[index % len(WORDS)] for index in range(300)]
    script = f"""
import json, sys
sys.modules["dwatt"] = None
sys.path.insert(0, {str(export)!r})
from handler import EndpointHandler
served = EndpointHandler({str(export)!r})({{"inputs": {words!r}, "parameters": {{"layer_weights": True}}}})
print(json.dumps(served))
"""
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                               env={**os.environ, "HF_HUB_OFFLINE": "1"}, cwd=tmp_path)  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    served = json.loads(completed.stdout.strip().splitlines()[-1])
    text = " ".join(words)
    assert [word["word"] for word in served["words"]] == words
    assert all(text[word["start"] : word["end"]] == word["word"] for word in served["words"])
    for word in served["words"]:
        assert len(word["weights"]) == 3 and sum(word["weights"]) == pytest.approx(1.0, abs=1e-4)
    assert served["entities"] and all(text[e["start"] : e["end"]] in text for e in served["entities"])
    # The random head tags words all along the text: entities past the first window (64 sub-words) are found.
    assert max(entity["end"] for entity in served["entities"]) > len(" ".join(words[:100]))
