"""dwatt.experiments.analysis: word pooling, what a layer mask changes, first-k-layer inference, and the
script end to end."""

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
