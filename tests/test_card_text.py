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
from dwatt.hub.card import (
    _show,
    eval_results,
    limitations,
    loss_rows,
    parameter_rows,
    per_type_rows,
    result_rows,
    training_rows,
    usage_snippet,
)
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


def fake_run(metrics: dict | None = None, arguments: dict | None = None, log_history: list | None = None):
    files = metrics or {}
    return SimpleNamespace(metrics=lambda name: files.get(name, {}), arguments=arguments or {},
                           trainer_state={"log_history": log_history or []}, config={})  # fmt: skip


def test_the_loss_table_takes_logged_losses_with_or_without_a_rate():
    run = fake_run(log_history=[{"step": 5, "loss": 1.25, "learning_rate": 1e-4}, {"step": 10, "loss": 0.5},
                                {"step": 10, "train_loss": 0.9}])  # fmt: skip
    assert loss_rows(run) == [("5", "1.2500", "0.0001"), ("10", "0.5000", "")]


def test_a_split_without_scores_is_skipped_not_the_end():
    """No test scores (predict_results.json absent): the validation row and its model-index entries remain."""
    run = fake_run({"eval_results.json": {"eval_f1": 0.5, "eval_recall": 0.25, "eval_samples": 20}})
    assert [(row["split"], row["f1"], row["precision"]) for row in result_rows(run)] == [
        ("validation", "0.5000", NOT_RECORDED)
    ]
    dataset = SimpleNamespace(type="wnut16", name="WNUT-16")
    assert [(r.dataset_split, r.metric_type, r.metric_value) for r in eval_results(run, dataset)] == [
        ("validation", "f1", 0.5), ("validation", "recall", 0.25)
    ]  # fmt: skip


def test_per_type_rows_leave_out_only_the_empty_rows_of_old_runs():
    """Runs before 0.2 listed every type with zeros; a zero row (or one with its scores missing) says nothing
    and is left out; a type with gold entities and nothing right is kept."""
    predict = {
        "predict_person_number": 3, "predict_person_f1": 0.0, "predict_person_precision": 0.0,
        "predict_person_recall": 0.0,  # gold entities, none found: kept
        "predict_corp_number": 0, "predict_corp_f1": 0.0, "predict_corp_precision": 0.0,  # an old zero row
        "predict_band_number": 0,  # an old row whose scores are missing
        "predict_movie_number": 0, "predict_movie_f1": 0.0,  # ... or whose precision is missing
        "predict_loc_number": 2, "predict_loc_f1": 0.5, "predict_loc_precision": 0.5, "predict_loc_recall": 0.5,
        "predict_f1": 0.3,
    }  # fmt: skip
    split, rows = per_type_rows(fake_run({"predict_results.json": predict}))
    assert split == "test" and [row["type"] for row in rows] == ["loc", "person"]
    assert rows[1] == {"type": "person", "precision": "0.0000", "recall": "0.0000", "f1": "0.0000", "number": "3"}


def test_the_limitations_name_the_backbone_and_the_test_slice():
    from dwatt.assets import ALL_MPNET_BASE_V2, BUNDLED_MINILM_HUB_ID

    wnut = SimpleNamespace(bundled_wnut16=True)
    run = fake_run({"predict_results.json": {"predict_samples": 500}}, arguments={"few_shot_k": 100})
    items = limitations(run, wnut, BUNDLED_MINILM_HUB_ID)
    assert items[0] == ("The backbone is all-MiniLM-L6-v2: a small (6 layers × 384), **uncased** sentence-embedding "
                        "model, not an encoder tuned for NER. Casing, a strong cue for names, is lost; a cased or "
                        "larger encoder would score differently.")  # fmt: skip
    assert any("**fixed 500-tweet slice of the WNUT-16 training file**" in item for item in items)
    assert any(item.startswith("Few-shot: trained on 100 sentences") for item in items)
    assert limitations(run, wnut, ALL_MPNET_BASE_V2.hub_id)[0] == (
        "The backbone is all-mpnet-base-v2: MPNet-base (12 layers × 768) tuned for **uncased** sentence embeddings, "
        "not an encoder tuned for NER. Casing, a strong cue for names, is lost."
    )
    unsized = limitations(fake_run(), wnut, None)
    assert not any("backbone is" in item for item in unsized)
    assert any("**fixed slice of the WNUT-16 training file**" in item for item in unsized)  # size not recorded
    assert any(f"were {NOT_RECORDED} (no `run_arguments.json`)" in item for item in unsized)


def copied_run(source, tmp_path, **arguments):
    """A copy of the test run with some recorded arguments changed."""
    import json
    import shutil

    folder = tmp_path / "run"
    shutil.copytree(source, folder)
    recorded = json.loads((folder / "run_arguments.json").read_text())
    (folder / "run_arguments.json").write_text(json.dumps({**recorded, **arguments}))
    return folder


def test_card_metadata_follows_the_base_model_the_data_and_the_repo_id(run_dir, tmp_path):  # noqa: F811
    from dwatt.assets import BUNDLED_MINILM_HUB_ID, BUNDLED_MINILM_LICENSE
    from dwatt.hub.card import render_model_card

    minilm = render_model_card(run_dir, REPO_ID, base_model=BUNDLED_MINILM_HUB_ID)
    assert minilm.data.license == BUNDLED_MINILM_LICENSE  # inherited from the base model
    assert render_model_card(run_dir, REPO_ID, base_model=BUNDLED_MINILM_HUB_ID, license="mit").data.license == "mit"
    assert render_model_card(run_dir, REPO_ID).data.license is None  # unknown base model: left out
    assert 'revision = "main"' in render_model_card(run_dir, REPO_ID).text  # the default revision
    assert render_model_card(run_dir, "tiny-dwatt-ner").data.model_name == "tiny-dwatt-ner"  # a repo id alone
    hub_data = copied_run(run_dir, tmp_path, dataset_name="eriktks/conll2003")
    assert render_model_card(hub_data, REPO_ID).data.datasets == ["eriktks/conll2003"]
    assert render_model_card(run_dir, REPO_ID).data.datasets is None  # the bundled WNUT-16 has no Hub id


def test_the_card_says_not_fine_tuned_only_when_nothing_was_trained(run_dir, tmp_path):  # noqa: F811
    import shutil

    from dwatt.hub.card import render_model_card

    folder = tmp_path / "run"
    shutil.copytree(run_dir, folder)
    for name in ("train_results.json", "all_results.json"):  # (all_results.json holds the train_ keys too)
        (folder / name).unlink()
    assert "fine-tuned for named-entity recognition" in render_model_card(folder, REPO_ID).text  # the state says so
    (folder / "trainer_state.json").unlink()
    assert "**Not fine-tuned**" in render_model_card(folder, REPO_ID).text


@pytest.mark.parametrize("lower, shown", [(True, "English, uncased (the tokenizer lower-cases)"),
                                          (False, "English, cased"), (None, "English")])  # fmt: skip
def test_the_language_line_says_whether_the_tokenizer_lower_cases(lower, shown, tmp_path):
    import json

    from dwatt.hub.card import language_text

    if lower is not None:
        (tmp_path / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": lower}))
    assert language_text(tmp_path) == shown


def headline(card) -> str:
    return card.text.split("\n# ", 1)[1].split("\n\n", 2)[1]  # the paragraph under the title


def test_the_headline_of_a_trained_and_of_an_untrained_folder(run_dir, tmp_path):  # noqa: F811
    import shutil

    from dwatt.hub.card import render_model_card

    folder = copied_run(run_dir, tmp_path)
    recorded = (folder / "run_arguments.json").read_text().replace('"base_model": "prajjwal1/bert-tiny"', '"x": 1')
    (folder / "run_arguments.json").write_text(recorded)
    card = render_model_card(folder, REPO_ID)
    assert headline(card) == (
        "A pretrained encoder fine-tuned for named-entity recognition on WNUT-16 (train file, fixed held-out "
        "split), with the layer fusion `dwatt` (Depth-Wise Attention). Entity F1 on the test split: **0.2857** "
        "(`predict_results.json`)."
    )
    assert "- **Base model:** not recorded" in card.text
    for name in ("train_results.json", "all_results.json", "trainer_state.json", "predict_results.json"):
        (folder / name).unlink(missing_ok=True)
    assert headline(render_model_card(folder, REPO_ID)) == (
        "**Not fine-tuned**: a pretrained encoder with the layer fusion `dwatt` (Depth-Wise Attention) and a "
        "token-classification head that are newly initialised (this folder records no training run: no "
        "train_results.json, no trainer_state.json). Train it before use."
    )
    shutil.rmtree(folder)


def test_a_pinned_revision_is_said_to_be_the_commit_and_the_limitations_know_the_base_model(run_dir):  # noqa: F811
    from dwatt.assets import BUNDLED_MINILM_HUB_ID
    from dwatt.hub.card import render_model_card

    pinned = render_model_card(run_dir, REPO_ID, revision="0123abc", revision_is_commit=True).text
    assert 'revision = "0123abc"  # the commit that holds these weights and this code' in pinned
    unpinned = render_model_card(run_dir, REPO_ID).text
    assert 'revision = "main"  # pin a commit hash from this repo\'s history to fix the code you run' in unpinned
    minilm = render_model_card(run_dir, REPO_ID, base_model=BUNDLED_MINILM_HUB_ID).text
    assert "- The backbone is all-MiniLM-L6-v2: a small (6 layers × 384), **uncased**" in minilm


@pytest.mark.parametrize(
    "arguments, state, shown",
    [
        ({"bf16": True, "lora_r": 8, "lora_alpha": 16.0, "cache_backbone_features": True, "freeze_backbone": True},
         {"global_step": 30, "max_steps": 30},
         ("bf16", "8 / 16.0", "yes, run once per sentence without dropout (cached features)", "30 of 30")),
        ({"fp16": True, "freeze_backbone": False}, {"global_step": 7}, ("fp16", "no", "false", "7")),
        ({"seed": 1}, {"max_steps": 30}, ("fp32", "no", NOT_RECORDED, NOT_RECORDED)),  # flags recorded later
        ({}, {}, (NOT_RECORDED, NOT_RECORDED, NOT_RECORDED, NOT_RECORDED)),  # no run_arguments.json
    ],
)  # fmt: skip
def test_precision_lora_frozen_and_step_cells(arguments, state, shown):
    """A run recorded before a flag existed must not read as using it ("not recorded" is a truthy string)."""
    run = SimpleNamespace(arguments=arguments, trainer_state=state, metrics=lambda name: {}, config={})
    rows = dict(training_rows(run, SimpleNamespace(name="data")))
    lora = rows["LoRA on the backbone (rank / alpha, merged into the saved weights)"]
    assert (rows["precision"], lora, rows["backbone frozen"], rows["optimizer steps"]) == shown


def test_epochs_are_rounded_and_the_fusion_rate_falls_back_to_the_learning_rate():
    run = SimpleNamespace(arguments={"learning_rate": 1e-4}, trainer_state={"epoch": 2.33333}, metrics=lambda n: {},
                          config={})  # fmt: skip
    rows = dict(training_rows(run, SimpleNamespace(name="data")))
    assert rows["epochs"] == "2.33" and rows["learning rate (fusion and head)"] == "0.0001"


def test_the_hardware_and_the_training_loss_cells():
    train = {"train_loss": 0.123456}
    run = SimpleNamespace(arguments={"hardware": "2 x Intel CPU"}, trainer_state={},
                          metrics=lambda name: train if name == "train_results.json" else {}, config={})  # fmt: skip
    rows = dict(training_rows(run, SimpleNamespace(name="data")))
    assert rows["hardware"] == "2 x Intel CPU" and rows["mean training loss"] == "0.1235"


def test_a_run_with_train_results_but_no_recorded_step_is_trained(run_dir, tmp_path):  # noqa: F811
    """Only train_results.json (trainer_state.json lost): the card is the trained model's, not "Not fine-tuned"."""
    import shutil

    from dwatt.hub.card import render_model_card

    folder = tmp_path / "results-only"
    shutil.copytree(run_dir, folder)
    (folder / "trainer_state.json").unlink()
    assert not headline(render_model_card(folder, REPO_ID)).startswith("**Not fine-tuned**")


def test_the_card_says_english_only_for_data_known_to_be_english(run_dir, tmp_path):  # noqa: F811
    """Every card said `language: en` and "English", whatever the data; now the bundled WNUT-16 is English, a Hub
    dataset or the user's files leave the field out (and say how to state it), and a given code is kept."""
    from dwatt.hub.card import render_model_card

    assert render_model_card(run_dir, REPO_ID).data.language == "en"  # the bundled WNUT-16 tweets
    other = copied_run(run_dir, tmp_path, dataset_name="someone/german-ner")
    unknown = render_model_card(other, REPO_ID)
    assert unknown.data.language is None and "language:" not in unknown.content.split("---")[1]
    assert (
        f"- **Language:** {NOT_RECORDED} (the run's data do not say; `dwatt push --language <code>` states it), uncased"
        in unknown.text
    )
    given = render_model_card(other, REPO_ID, language="de")
    assert given.data.language == "de" and "- **Language:** `de`, uncased" in given.text
