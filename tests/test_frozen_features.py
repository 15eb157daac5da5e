"""The frozen-backbone feature cache: the same training as a frozen backbone in eval mode, step for step."""

import contextlib
import json

import pytest
import torch
from conftest import TINY, VOCAB, parse_run_args
from transformers import BertConfig, BertModel, TrainingArguments

from dwatt import DWAttConfig, DWAttForTokenClassification
from dwatt.tasks import frozen_features
from dwatt.tasks.arguments import ModelArguments
from dwatt.tasks.frozen_features import BackboneFeatureCache, cached_backbone_features, shared_cache
from dwatt.tasks.ner import NerDataArguments, run_ner

FUSIONS = ("dwatt", "concat", "scalar_mix", "mean", "last", "deeper")


def tiny_model(fusion: str, seed: int = 0) -> DWAttForTokenClassification:
    torch.manual_seed(seed)
    backbone = BertConfig(vocab_size=VOCAB, max_position_embeddings=64, **TINY)  # dropout 0.1 in the backbone
    config = DWAttConfig(backbone_config=backbone, fusion=fusion, num_labels=3, fusion_dropout=0.2,
                         classifier_dropout=0.1)  # fmt: skip
    model = DWAttForTokenClassification(config).double()
    for parameter in model.dwatt.backbone.parameters():
        parameter.requires_grad_(False)
    return model


def batches():
    """Six batches over five sentences: each sentence comes back with other padding and other neighbours."""
    generator = torch.Generator().manual_seed(1)
    sentences = [torch.randint(4, VOCAB, (length,), generator=generator) for length in (5, 9, 3, 7, 9)]
    order = [(0, 1), (2, 3, 4), (1, 2), (4, 0), (3,), (0, 1, 2, 3, 4)]
    for rows in order:
        width = max(len(sentences[row]) for row in rows)
        input_ids = torch.zeros(len(rows), width, dtype=torch.long)
        attention_mask = torch.zeros_like(input_ids)
        for position, row in enumerate(rows):
            input_ids[position, : len(sentences[row])] = sentences[row]
            attention_mask[position, : len(sentences[row])] = 1
        labels = torch.randint(0, 3, input_ids.shape, generator=generator).masked_fill(attention_mask == 0, -100)
        yield {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def train(model, steps_context):
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    model.train()
    with steps_context:
        for step, batch in enumerate(batches()):
            torch.manual_seed(100 + step)  # the same dropout draws in both runs, if both draw the same numbers
            loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            losses.append(loss.item())
    return losses


def switch_to_eval(module, args):
    module.eval()  # returns None: the hook leaves the arguments as they are


@pytest.mark.parametrize("fusion", FUSIONS)
def test_cached_training_equals_a_frozen_backbone_in_eval_mode_step_for_step(fusion):
    cached, reference = tiny_model(fusion), tiny_model(fusion)
    # The reference runs its backbone at every step, switched to eval mode (no dropout) just before it runs.
    reference.dwatt.backbone.register_forward_pre_hook(switch_to_eval)
    cache = BackboneFeatureCache("test")
    cached_losses = train(cached, cached_backbone_features(cached, cache))
    reference_losses = train(reference, contextlib.nullcontext())

    assert cached_losses == pytest.approx(reference_losses, rel=1e-12)
    for (name, ours), theirs in zip(cached.state_dict().items(), reference.state_dict().values()):
        torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12, msg=name)
    assert cache.computed == 5  # each sentence through the backbone once
    assert cache.served == sum(len(batch["input_ids"]) for batch in batches()) - 5
    assert "forward" not in vars(cached.dwatt.backbone)  # the block put the class's forward back


def test_the_cache_never_runs_the_backbone_in_training_mode():
    model = tiny_model("dwatt")
    model.train()
    seen = []
    model.dwatt.backbone.embeddings.register_forward_pre_hook(lambda module, args: seen.append(module.training))
    with cached_backbone_features(model, BackboneFeatureCache("test")):
        for batch in batches():
            model(**batch)
    assert seen == [False, False]  # the two batches with sentences not seen before, in eval mode
    assert model.dwatt.backbone.training  # the model's mode is restored


def test_cached_states_equal_the_backbones_own_at_every_real_token():
    model = tiny_model("dwatt").eval()
    batch = next(iter(batches()))
    with torch.no_grad():
        own = model.dwatt.backbone(**{k: batch[k] for k in ("input_ids", "attention_mask")}, output_hidden_states=True)
        with cached_backbone_features(model, BackboneFeatureCache("test")):
            cached = model.dwatt.backbone(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    real = batch["attention_mask"].bool()
    assert len(cached.hidden_states) == len(own.hidden_states) == TINY["num_hidden_layers"] + 1
    for ours, theirs in zip(cached.hidden_states, own.hidden_states):
        torch.testing.assert_close(ours[real], theirs[real], rtol=1e-12, atol=1e-12)
        assert not ours[~real].any()  # padding holds zeros


def test_left_padded_rows_are_answered_as_the_backbone_would_at_their_own_positions():
    """BERT numbers positions from the first column, padding or not: a left-padded sentence's states depend on how
    much padding its batch gave it, so a state cached under one padding must not answer another."""
    model = tiny_model("dwatt").eval()
    sentence = torch.arange(4, 9)
    cache = BackboneFeatureCache("test")
    for padding in (2, 0, 4):  # the same sentence, left-padded by other amounts in three batches
        input_ids = torch.cat([torch.zeros(padding, dtype=torch.long), sentence])[None]
        attention_mask = (input_ids != 0).long()
        with torch.no_grad():
            own = model.dwatt.backbone(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
            with cached_backbone_features(model, cache):
                cached = model.dwatt.backbone(input_ids=input_ids, attention_mask=attention_mask)
        real = attention_mask.bool()
        torch.testing.assert_close(cached.hidden_states[-1][real], own.hidden_states[-1][real], rtol=1e-12,
                                   atol=1e-12)  # fmt: skip
    assert cache.computed == 3


def test_a_trainable_backbone_is_refused():
    model = tiny_model("dwatt")
    model.dwatt.backbone.embeddings.word_embeddings.weight.requires_grad_(True)
    with pytest.raises(ValueError, match="only while it is frozen.*embeddings.word_embeddings"):
        with cached_backbone_features(model):
            pass


def test_calls_the_cache_cannot_answer_run_the_backbone():
    model = tiny_model("dwatt").eval()
    batch = next(iter(batches()))
    cache = BackboneFeatureCache("test")
    with torch.no_grad(), cached_backbone_features(model, cache):
        output = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_attentions=True)
    assert output.attentions is not None and cache.computed == 0


def test_one_shared_cache_per_backbone_content():
    first, same, other = tiny_model("dwatt", seed=0), tiny_model("concat", seed=0), tiny_model("dwatt", seed=1)
    frozen_features._SHARED.clear()
    assert shared_cache(first.dwatt.backbone) is shared_cache(same.dwatt.backbone)
    assert shared_cache(other.dwatt.backbone) is not shared_cache(first.dwatt.backbone)


def test_the_flag_needs_a_frozen_backbone():
    with pytest.raises(ValueError, match="--cache_backbone_features without --freeze_backbone"):
        ModelArguments(cache_backbone_features=True)


@pytest.fixture(scope="module")
def dropout_free_bert_dir(tmp_path_factory, minilm_path):
    """A tiny BERT without backbone dropout (so a frozen run trains as with cached features), MiniLM tokenizer."""
    import shutil

    folder = tmp_path_factory.mktemp("tiny-bert-no-dropout")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, max_position_embeddings=128, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0, **TINY)  # fmt: skip
    BertModel(config, add_pooling_layer=False).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(minilm_path / name, folder / name)
    return folder


def plain_and_cached_runs(run_task, data_arguments, model_dir, tmp_path):
    """(results, training losses) of one short frozen run without the cache and one with it, same seed."""

    def run(name, *extra):
        args = parse_run_args(
            (ModelArguments, data_arguments, TrainingArguments),
            ["--output_dir", tmp_path / name, "--report_to", "none", "--use_cpu", "--seed", "0",
             "--model_name_or_path", model_dir, "--few_shot_k", "24", "--max_eval_samples", "16",
             "--max_predict_samples", "16", "--do_train", "--do_eval", "--do_predict", "--max_steps", "6",
             "--per_device_train_batch_size", "8", "--learning_rate", "1e-2", "--logging_steps", "1",
             "--classifier_dropout", "0.1", "--fusion_dropout", "0.1", "--freeze_backbone", "--disable_tqdm", "true",
             *extra],
        )  # fmt: skip
        results = run_task(*args)
        state = json.loads((tmp_path / name / "trainer_state.json").read_text())
        return results, [entry["loss"] for entry in state["log_history"] if "loss" in entry]

    frozen_features._SHARED.clear()
    plain = run("plain")
    assert not frozen_features._SHARED  # no cache without the flag
    return plain, run("cached", "--cache_backbone_features")


def assert_same_run_and_each_sentence_computed_once(plain, cached, metric_keys):
    (plain, plain_losses), (cached, cached_losses) = plain, cached
    assert len(cached_losses) == 6
    assert cached_losses == pytest.approx(plain_losses, rel=1e-5)
    for key in ("eval_loss", "predict_loss", *metric_keys):
        assert cached[key] == pytest.approx(plain[key], rel=1e-5, abs=1e-7), key
    (cache,) = frozen_features._SHARED.values()
    assert cache.computed == 24 + 16 + 16  # training sample, dev and test: each sentence once
    assert cache.served > 0


def test_run_ner_with_cached_features_trains_as_without_them(dropout_free_bert_dir, tmp_path):
    plain, cached = plain_and_cached_runs(run_ner, NerDataArguments, dropout_free_bert_dir, tmp_path)
    assert_same_run_and_each_sentence_computed_once(plain, cached, ("eval_f1", "predict_f1"))


def test_run_classification_with_cached_features_trains_as_without_them(dropout_free_bert_dir, tmp_path):
    """`dwatt classification --cache_backbone_features` was recorded but ignored: only run_ner applied the cache."""
    from dwatt.tasks.classification import ClassificationDataArguments, run_classification

    plain, cached = plain_and_cached_runs(run_classification, ClassificationDataArguments, dropout_free_bert_dir,
                                          tmp_path)  # fmt: skip
    assert_same_run_and_each_sentence_computed_once(plain, cached, ("eval_accuracy", "predict_accuracy"))
