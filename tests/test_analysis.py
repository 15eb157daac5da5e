"""dwatt.experiments.analysis: word pooling, what a layer mask changes, first-k-layer inference, and the
script end to end."""

import json
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_backbone_config

from dwatt import DWAttConfig, DWAttForTokenClassification
from dwatt.experiments.analysis.probes import (
    classify_hidden_states,
    find_layer_list,
    first_k_forward,
    first_k_hidden_states,
    first_k_layer_mask,
    pool_to_words,
    truncated_backbone,
)
from dwatt.experiments.stats import rank_disagreements, sentence_entity_counts
from dwatt.metrics import compute_ner_metrics

ROOT = Path(__file__).resolve().parents[1]


def tiny_model(backbone_type="bert", **config_kwargs):
    """A random tiny DWAtt token classifier (2 layers, 3 fused states) in eval mode; a spread-out depth mix."""
    torch.manual_seed(0)
    config_kwargs = {"dwatt_scale": "sqrt_d", **config_kwargs}
    config = DWAttConfig(backbone_config=tiny_backbone_config(backbone_type), num_labels=5, **config_kwargs)
    return DWAttForTokenClassification(config).eval()


def test_pooled_word_weights_sum_to_one_per_word(tiny_bert_dir):
    """Real MiniLM word pieces: each word's mean over its pieces is a distribution over the fused layers."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    model = DWAttForTokenClassification.from_backbone(tiny_bert_dir, num_labels=5, dwatt_scale="sqrt_d").eval()
    words = ["Unbelievably", "@justinbieber", "tweeted", "http://t.co/xyz", "from", "Ouagadougou"]
    encoding = tokenizer([words], is_split_into_words=True, return_tensors="pt")
    word_ids = encoding.word_ids(0)
    with torch.no_grad():
        weights = model(**encoding, output_fusion_weights=True).fusion_weights[0]
    pooled = pool_to_words(weights.numpy(), word_ids, len(words))

    assert pooled.shape == (len(words), 3)
    np.testing.assert_allclose(pooled.sum(axis=-1), 1.0, atol=1e-6)
    pieces = [position for position, word in enumerate(word_ids) if word == 0]
    assert len(pieces) > 1  # the test needs a word made of several pieces
    np.testing.assert_allclose(pooled[0], weights[pieces].double().mean(0).numpy(), atol=1e-7)

    truncated = tokenizer([words], is_split_into_words=True, truncation=True, max_length=6)
    cut = pool_to_words(weights.numpy(), truncated.word_ids(0), len(words))
    assert np.isnan(cut[-1]).all()  # a word with no piece left has no weights, rather than made-up ones


def test_masking_a_layer_removes_its_term_and_renormalises_the_rest(batch):
    """h_masked = z_L + sum_{m != n} a_m / (1 - a_n) v_m, with a and v of the unmasked model: nothing else moves."""
    model = tiny_model()
    fusion = model.dwatt.fusion
    with torch.no_grad():
        full = model.dwatt(**batch, output_fusion_weights=True, output_hidden_states=True)
        stacked, last = fusion.stack(full.hidden_states)
        values = fusion.values(stacked)  # [B, T, N, d]
        weights = full.fusion_weights  # [B, T, N]
        assert 0.05 < float(weights.min()) and float(weights.max()) < 0.95  # a real mix, so the check means something
        cache = {}
        for n in range(fusion.num_fused_layers):
            mask = torch.ones(fusion.num_fused_layers, dtype=torch.bool)
            mask[n] = False
            masked = model.dwatt(**batch, fusion_layer_mask=mask, output_fusion_weights=True)
            renormalised = weights * mask / (1 - weights[..., n : n + 1])
            torch.testing.assert_close(masked.fusion_weights, renormalised, rtol=1e-5, atol=1e-6)
            expected = last + torch.einsum("btn,btnd->btd", renormalised, values)
            torch.testing.assert_close(masked.last_hidden_state, expected, rtol=1e-5, atol=1e-5)

            # The analysis' own path (values shared across masks, the model's fuse + head) gives its logits exactly.
            logits, _ = classify_hidden_states(model, full.hidden_states, mask, batch["attention_mask"], cache)
            assert torch.equal(logits, model(**batch, fusion_layer_mask=mask).logits)
        assert sorted(cache) == list(range(fusion.num_fused_layers))  # each value computed once, then reused


@pytest.mark.parametrize("backbone_type", ["bert", "distilbert", "modernbert"])
def test_first_k_inference(backbone_type, batch):
    model = tiny_model(backbone_type)
    backbone = model.dwatt.backbone
    _, _, layers = find_layer_list(backbone)
    num_layers = backbone.config.num_hidden_layers
    with torch.no_grad():
        # First-k before any full call: transformers 5 installs its hidden-state hooks on the first call
        first_k = {k: first_k_forward(model, batch, k) for k in range(num_layers + 1)}
        reference = model(**batch).logits
        assert torch.equal(first_k[num_layers][0], reference)  # k = L is the full model, bit for bit

        for k in range(num_layers):
            logits, weights = first_k[k]
            assert logits.shape == reference.shape and torch.isfinite(logits).all()
            assert not torch.allclose(logits, reference, atol=1e-4)
            assert torch.equal(weights[..., k + 1 :], torch.zeros_like(weights[..., k + 1 :]))  # missing layers
            torch.testing.assert_close(weights.sum(-1), torch.ones_like(weights[..., 0]))
    assert find_layer_list(backbone)[2] is layers and len(layers) == num_layers  # the layer list is put back


def test_first_k_equals_a_prefix_of_the_full_pass(batch):
    """For BERT, layers 0..k of a full pass are what the truncated run computes: the analysis' shortcut is exact."""
    model = tiny_model()
    with torch.no_grad():
        hidden_states = model.dwatt.backbone(**batch, output_hidden_states=True).hidden_states
        truncated, _ = first_k_forward(model, batch, 1)
        padded = first_k_hidden_states(hidden_states, 1, 2)
        assert len(padded) == 3 and padded[2] is padded[1]
        cache = {}
        classify_hidden_states(model, hidden_states, None, batch["attention_mask"], cache)  # fills the cache
        prefix, _ = classify_hidden_states(
            model, padded, first_k_layer_mask([0, 1, 2], 1), batch["attention_mask"], cache
        )
    assert torch.equal(truncated, prefix)


@pytest.mark.parametrize("backbone_type", ["bert", "modernbert"])
def test_analysis_tags_match_direct_model_runs(backbone_type, minilm_path):
    """Every condition of `analyze_layers` tags the sentences as the model's own forward / first_k_forward do.

    BERT takes the prefix shortcut for first-k; ModernBERT (final norm on the last state) must fall back to
    truncated runs.
    """
    from transformers import AutoTokenizer

    from dwatt.data.corpora import load_wnut16
    from dwatt.experiments.analysis.probes import analyze_layers, encode_batches

    dataset = load_wnut16()["test"].select(range(12))
    label_list = dataset.features["ner_tags"].feature.names
    backbone = tiny_backbone_config(backbone_type)
    backbone.vocab_size = 30522  # the MiniLM tokenizer's ids
    torch.manual_seed(0)
    config = DWAttConfig(backbone_config=backbone, id2label=dict(enumerate(label_list)), dwatt_scale="sqrt_d")
    model = DWAttForTokenClassification(config).eval()
    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    result = analyze_layers(model, tokenizer, dataset, batch_size=5, bootstrap_samples=0)

    assert result.first_k_from_full_pass == (backbone_type == "bert")
    np.testing.assert_allclose(result.words.weights.sum(axis=-1), 1.0, atol=1e-6)
    assert len(result.words.words) == sum(len(tokens) for tokens in dataset["tokens"])
    mask = torch.tensor([True, False, True])
    direct = {"full": [], "without 1": [], "first 1": []}
    rows = []
    with torch.no_grad():
        for batch in encode_batches(dataset, tokenizer, label_list, batch_size=4):
            outputs = {
                "full": model(**batch.inputs).logits,
                "without 1": model(**batch.inputs, fusion_layer_mask=mask).logits,
                "first 1": first_k_forward(model, batch.inputs, 1)[0],
            }
            for row, labels in enumerate(batch.labels):
                for name, logits in outputs.items():
                    direct[name].append([label_list[i] for i in logits[row].argmax(-1)[labels != -100]])
            rows += batch.sentences
    for name, tags in direct.items():
        in_dataset_order = [tags[rows.index(sentence)] for sentence in range(len(dataset))]
        assert result.predicted_tags[name] == in_dataset_order, name


def test_truncation_is_undone_after_an_error():
    model = tiny_model()
    _, _, layers = find_layer_list(model.dwatt.backbone)
    with pytest.raises(RuntimeError, match="inside"), truncated_backbone(model.dwatt.backbone, 1):
        assert len(model.dwatt.backbone.encoder.layer) == 1 and model.dwatt.backbone.encoder.layer[0] is layers[0]
        raise RuntimeError("inside")
    assert model.dwatt.backbone.encoder.layer is layers
    with pytest.raises(ValueError, match="no fused hidden state"):
        first_k_layer_mask([2], 1)  # fusing only the last layer leaves nothing to fuse after one layer
    assert first_k_layer_mask([0, 1, 2], 2) is None  # nothing missing: no mask, the full model's own path


def test_entity_counts_give_seqeval_f1_and_rank_rule():
    labels = ["O", "B-person", "I-person", "B-loc", "I-loc"]
    gold = [[0, 1, 2, 0, 3], [3, 4, 0], [0, 0]]
    predicted = [[0, 1, 2, 0, 1], [3, 0, 0], [1, 0]]
    counts = sentence_entity_counts(
        [[labels[i] for i in row] for row in predicted], [[labels[i] for i in row] for row in gold]
    )
    tp, found, wanted = counts.sum(axis=0)
    f1 = compute_ner_metrics([np.array(row) for row in predicted], [np.array(row) for row in gold], labels)
    assert 2 * tp / (found + wanted) == pytest.approx(f1["f1"])

    # ranks (1 = largest) of mass and drop differ by >= 3 for the first and last layer only
    flags = rank_disagreements([0.5, 0.2, 0.15, 0.1, 0.05], [0.0, 0.02, 0.03, 0.04, 0.05], min_gap=3)
    assert flags == ["high mass, small effect", "", "", "", "low mass, large effect"]


def test_script_end_to_end(tiny_bert_dir, tmp_path, monkeypatch):
    """A random tiny checkpoint with the WNUT-16 label map, on a slice of the test split: report + figures."""
    from transformers import AutoTokenizer

    from dwatt.data.corpora import load_wnut16

    label_list = load_wnut16()["test"].features["ner_tags"].feature.names
    checkpoint = tmp_path / "tiny-dwatt"
    model = DWAttForTokenClassification.from_backbone(
        tiny_bert_dir, num_labels=len(label_list), id2label=dict(enumerate(label_list)), dwatt_scale="sqrt_d"
    )
    model.save_pretrained(checkpoint)
    AutoTokenizer.from_pretrained(tiny_bert_dir).save_pretrained(checkpoint)

    output = tmp_path / "analysis"
    arguments = [
        "--model_name_or_path", checkpoint, "--max_sentences", "24", "--output_dir", output, "--batch_size", "8",
        "--timing_sentences", "8", "--timing_repeats", "2", "--bootstrap_samples", "50",
    ]  # fmt: skip
    monkeypatch.setattr(sys, "argv", ["analyze_layers.py", *map(str, arguments)])
    runpy.run_path(str(ROOT / "scripts" / "analyze_layers.py"), run_name="__main__")  # as `python scripts/...` does

    report = (output / "report.md").read_text()
    for heading in ("## Findings", "## 1. Where each word draws from", "## 2. Layer ablation", "## 3. First-k"):
        assert heading in report
    figures = sorted(path.name for path in output.glob("*.png"))
    assert figures == ["ablation.png", "first_k.png", "sentence_heatmaps.png", "type_profiles.png"]
    assert all((output / name).stat().st_size < 300_000 for name in figures)
    assert all(f"]({name})" in report for name in figures)  # every figure is shown in the report


def test_words_past_max_seq_length_are_counted_in_the_report_and_the_log(tiny_bert_dir, tmp_path, caplog):
    """Before: `dwatt analyze --max_seq_length 16` on 4 sentences of 32 words said "4 sentences, 56 words" and
    nothing of the 72 words cut; and the report said "(1,000 resamples)" whatever --bootstrap_samples was."""
    import logging

    from transformers import AutoTokenizer

    from dwatt.experiments.analysis.run import AnalysisArguments, run_analysis

    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    checkpoint = tmp_path / "tiny-dwatt"
    DWAttForTokenClassification.from_backbone(
        str(tiny_bert_dir), num_labels=len(labels), id2label=dict(enumerate(labels))
    ).save_pretrained(checkpoint)
    words = ["John", "lives", "in", "Paris"] * 8  # one sub-word each
    tags = ["B-PER", "O", "O", "B-LOC"] * 8
    sentences = [words] * 3 + [words[:8]]  # three long sentences and a short one
    data = tmp_path / "long.txt"
    data.write_text("\n\n".join("\n".join(f"{w}\t{t}" for w, t in zip(s, tags, strict=False)) for s in sentences))
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    kept = [len({w for w in tokenizer(s, is_split_into_words=True, truncation=True, max_length=16).word_ids()
                 if w is not None}) for s in sentences]  # fmt: skip
    assert kept == [14, 14, 14, 8]
    args = AnalysisArguments(model_name_or_path=str(checkpoint), data_file=str(data), max_seq_length=16,
                             output_dir=str(tmp_path / "out"), timing_sentences=0, bootstrap_samples=37,
                             num_heatmaps=1)  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="dwatt.experiments.analysis.probes"):
        result, report = run_analysis(args, "dwatt analyze")
    assert (result.words_truncated, result.sentences_truncated, len(result.words.words)) == (54, 3, 50)
    note = (
        "54 of 104 words were not scored: past max_seq_length 16 sub-words, cut from the end of 3 of 4 sentences (F1, "
        "ablation, first-k and weights are over the other 50 words); raise --max_seq_length to score them"
    )
    assert [r.getMessage() for r in caplog.records if r.name == "dwatt.experiments.analysis.probes"] == [note]
    text = report.read_text()
    assert "on 4 sentences, 50 words." in text and f"**Not all words scored:** {note}." in text
    assert "(37 resamples)" in text and "1,000" not in text


def _tiny_checkpoint(tiny_bert_dir, folder, labels, seed=0, **config_kwargs):
    """A random tiny DWAtt token classifier with `labels`, saved (with its tokenizer) in `folder`."""
    from transformers import AutoTokenizer

    torch.manual_seed(seed)
    DWAttForTokenClassification.from_backbone(
        str(tiny_bert_dir), num_labels=len(labels), id2label=dict(enumerate(labels)), **config_kwargs
    ).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_bert_dir).save_pretrained(folder)
    return folder


def test_a_report_folder_holds_one_checkpoint_and_only_its_own_figures(tiny_bert_dir, tmp_path, monkeypatch, capsys):
    """Before: `dwatt analyze` of a/final, then of b/final (a concat model: no weight maps, no ablation) both went
    to results/analysis/final; the second overwrote the first's report.md without a word, kept a's
    sentence_heatmaps.png, type_profiles.png and ablation.png next to it and announced them as written."""
    import shutil

    from dwatt.commands.analyze_layers import main

    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    data = tmp_path / "data.txt"
    data.write_text("John\tB-PER\nlives\tO\nin\tO\nParis\tB-LOC\n\nMary\tB-PER\nleft\tO\nRome\tB-LOC\n")
    a = _tiny_checkpoint(tiny_bert_dir, tmp_path / "a" / "final", labels, dwatt_scale="sqrt_d")
    b = _tiny_checkpoint(tiny_bert_dir, tmp_path / "b" / "final", labels, fusion="concat")
    monkeypatch.chdir(tmp_path)
    options = ["--data_file", str(data), "--timing_sentences", "0", "--bootstrap_samples", "0"]
    folder = Path("results/analysis/final")
    figures = ["ablation.png", "first_k.png", "sentence_heatmaps.png", "type_profiles.png"]

    main(["--model_name_or_path", str(a), *options])
    assert sorted(path.name for path in folder.glob("*.png")) == figures
    written = f"written: {folder}/report.md, analysed_checkpoint.json and {', '.join(figures)}\n"
    assert capsys.readouterr().out.endswith(written)
    report_a = (folder / "report.md").read_text()

    with pytest.raises(SystemExit):
        main(["--model_name_or_path", str(b), *options])
    error = capsys.readouterr().err
    assert error.startswith(
        f"error: --output_dir {folder} (the default, results/analysis/<name>) holds the report of checkpoint "
        "a/final, not of b/final (another folder with other weights, fingerprint "
    )
    assert error.endswith(f"); pass another --output_dir for b/final, or delete {folder} to replace that report\n")
    assert (folder / "report.md").read_text() == report_a  # untouched

    # In its own folder: only the figures a concat model has, and the printed list says so.
    main(["--model_name_or_path", str(b), *options, "--output_dir", "results/analysis/b"])
    assert sorted(path.name for path in Path("results/analysis/b").glob("*.png")) == ["first_k.png"]
    written = "written: results/analysis/b/report.md, analysed_checkpoint.json and first_k.png\n"
    assert capsys.readouterr().out.endswith(written)

    # The same checkpoint again (by another path to the same folder): its folder is rewritten, and a figure
    # this run does not make (no heatmaps) is removed rather than left over from the first run.
    main(["--model_name_or_path", str(tmp_path / "b" / ".." / "a" / "final"), *options, "--num_heatmaps", "0"])
    assert sorted(path.name for path in folder.glob("*.png")) == [f for f in figures if f != "sentence_heatmaps.png"]
    written = (
        f"written: {folder}/report.md, analysed_checkpoint.json and ablation.png, first_k.png, type_profiles.png\n"
    )
    assert capsys.readouterr().out.endswith(written)
    assert "sentence_heatmaps.png" not in (folder / "report.md").read_text()

    # The same weights copied elsewhere are the same checkpoint; a checkpoint retrained in place is its folder's.
    shutil.copytree(a, tmp_path / "copy" / "final")
    main(["--model_name_or_path", "copy/final", *options])
    _tiny_checkpoint(tiny_bert_dir, tmp_path / "copy" / "final", labels, seed=1, dwatt_scale="sqrt_d")
    main(["--model_name_or_path", "copy/final", *options])
    with pytest.raises(SystemExit):
        main(["--model_name_or_path", str(a), *options])
    assert "holds the report of checkpoint copy/final, not of a/final" in capsys.readouterr().err

    # A report written before the record (no analysed_checkpoint.json): its "Checkpoint `...`" line decides.
    (folder / "analysed_checkpoint.json").unlink()
    with pytest.raises(SystemExit):
        main(["--model_name_or_path", str(a), *options])
    assert "of checkpoint copy/final, not of a/final (its report.md names it; there is no `analysed" in (
        capsys.readouterr().err
    )
    main(["--model_name_or_path", "copy/final", *options])


def _predicted_run_folder(tiny_bert_dir, folder, sentences, arguments, predictions=True, recorded=None):
    """A WNUT-16 checkpoint folder as `dwatt ner --do_predict` leaves it: predictions.conll of `sentences`,
    predict_results.json (F1 1.0 on them) and the training run's run_arguments.json (`arguments`)."""
    from dwatt.data.corpora import load_wnut16
    from dwatt.data.ner_files import write_conll_predictions

    labels = load_wnut16()["test"].features["ner_tags"].feature.names
    _tiny_checkpoint(tiny_bert_dir, folder, labels, dwatt_scale="sqrt_d")
    if predictions:
        tags = [[labels[tag] for tag in sentence["ner_tags"]] for sentence in sentences]
        write_conll_predictions(folder / "predictions.conll", [s["tokens"] for s in sentences], tags, tags)
    results = {"predict_f1": 1.0, "predict_samples": len(sentences), **(recorded or {})}
    (folder / "predict_results.json").write_text(json.dumps(results))
    if arguments is not None:
        (folder / "run_arguments.json").write_text(json.dumps(arguments))
    return folder


TRAINED_ON_WNUT16 = {"dataset_name": "wnut16-bundled", "train_file": None, "validation_file": None, "test_file": None}


@pytest.mark.parametrize("predicted", ["--test_file mytest.conll", "--max_predict_samples 20"])
def test_the_reported_f1_is_compared_only_on_the_same_test_tweets(predicted, tiny_bert_dir, tmp_path):
    """Before: a run folder whose predict_results.json came from `dwatt ner --do_predict --test_file mytest.conll`
    (or `--max_predict_samples 20`) got "Note: the checkpoint's own predict_results.json reports test F1 1.0000,
    while its saved weights score 0.0026 here (same test tweets and labels, ...)" in its report."""
    from dwatt.data.corpora import load_wnut16
    from dwatt.experiments.analysis.run import AnalysisArguments, run_analysis

    test = load_wnut16()["test"]
    if predicted.startswith("--test_file"):  # a predict-only rerun: run_arguments.json is the training run's
        sentences = [{"tokens": ["John", "lives", "in", "Paris"], "ner_tags": [13, 0, 0, 5]},
                     {"tokens": ["Mary", "left"], "ner_tags": [13, 0]}]  # fmt: skip
    else:
        sentences = list(test.select(range(20)))
    checkpoint = _predicted_run_folder(tiny_bert_dir, tmp_path / "run", sentences, TRAINED_ON_WNUT16)
    args = AnalysisArguments(model_name_or_path=str(checkpoint), output_dir=str(tmp_path / "out"), batch_size=64,
                             timing_sentences=0, bootstrap_samples=0, num_heatmaps=0)  # fmt: skip
    _, report = run_analysis(args, "dwatt analyze")
    text = report.read_text()
    assert "same test tweets" not in text and "while its saved weights score" not in text
    counts = f"its `predictions.conll` holds {len(sentences)} sentences, against {len(test)} here"
    assert (
        f"The checkpoint's own `predict_results.json` reports test F1 1.0000 on other data than the {len(test)} "
        f"sentences analysed here ({counts}), so it is not compared with the F1 here." in text
    )


def test_what_the_run_folder_records_decides_the_f1_comparison(tiny_bert_dir, tmp_path):
    """The checkpoint's own test F1 is compared only where its folder shows the data analysed here: its
    predictions.conll, or else run_arguments.json and predict_samples."""
    from dwatt.data.corpora import load_wnut16
    from dwatt.experiments.analysis.run import AnalysisArguments, reported_f1_note

    test = load_wnut16()["test"]
    sentences = list(test)

    def note(name, sentences=sentences, arguments=TRAINED_ON_WNUT16, predictions=True, recorded=None, **analysed):
        folder = _predicted_run_folder(tiny_bert_dir, tmp_path / name, sentences, arguments, predictions, recorded)
        return " ".join(reported_f1_note(AnalysisArguments(model_name_or_path=str(folder), **analysed), 0.25, test))

    same = "(same test tweets and labels, the model's plain forward pass)"
    assert note("predicted").endswith(f"score 0.2500 here {same}.")
    assert note("recorded", predictions=False).endswith(f"score 0.2500 here {same}.")
    other = f"on other data than the {len(test)} sentences analysed here"
    changed = [dict(sentence) for sentence in sentences]
    changed[3] = {**changed[3], "tokens": ["another", *changed[3]["tokens"][1:]]}
    assert f"{other} (its `predictions.conll` differs from them at sentence 4)" in note("reworded", changed)
    tagged = next(index for index, sentence in enumerate(sentences) if any(sentence["ner_tags"]))
    changed = [dict(sentence) for sentence in sentences]
    changed[tagged] = {**changed[tagged], "ner_tags": [0] * len(changed[tagged]["ner_tags"])}
    assert f"{other} (its `predictions.conll` differs from them at sentence {tagged + 1})" in note(
        "relabelled", changed
    )
    assert f"{other} (this is the `validation` split)" in note("validation", predictions=False, split="validation")
    recorded = {**TRAINED_ON_WNUT16, "test_file": "mytest.conll"}
    assert f"{other} (its `run_arguments.json` records --test_file mytest.conll)" in note(
        "test-file", arguments=recorded, predictions=False
    )
    # What `dwatt ner --do_predict` records of its data (dwatt.hub.record.phase_data) beside its scores:
    assert f"{other} (its `predict_results.json` records --max_predict_samples 20)" in note(
        "max-predict", predictions=False, recorded={"predict_data": "wnut16-bundled", "predict_max_samples": 20}
    )
    assert f"{other} (its `predict_results.json` scored mytest.conll)" in note(
        "predicted-file", predictions=False, recorded={"predict_data": "mytest.conll"}
    )
    assert note("predicted-same", predictions=False, recorded={"predict_data": "wnut16-bundled"}).endswith(same + ".")
    assert f"{other} (it scored 20 sentences, against {len(test)} here)" in note(
        "fewer", sentences[:20], predictions=False
    )
    unknown = (
        "The checkpoint's own `predict_results.json` reports test F1 1.0000 on data its folder does not identify "
        "(no `predictions.conll` and no `run_arguments.json`), so it is not compared with the F1 here."
    )
    assert note("unrecorded", arguments=None, predictions=False) == unknown
