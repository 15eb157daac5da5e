"""The contract every task head keeps with the base model and with the Trainer, checked for all five heads: each
argument reaches the base model unchanged, `return_dict` is honoured, the loss is the one a hand computation
gives (with `num_items_in_batch` where the Trainer's gradient accumulation relies on it), and a backbone handed to
the constructor is the one used. Before these tests, a head could drop `token_type_ids`, ignore its labels or
return a dataclass when asked for a tuple, and only shapes would have been checked."""

import pytest
import torch
import torch.nn.functional as F
from conftest import TINY, VOCAB
from transformers import AutoModel, BertConfig

from dwatt import (
    DWAttConfig,
    DWAttForMaskedLM,
    DWAttForMultipleChoice,
    DWAttForQuestionAnswering,
    DWAttForSequenceClassification,
    DWAttForTokenClassification,
)

HEADS = [
    DWAttForTokenClassification,
    DWAttForSequenceClassification,
    DWAttForMaskedLM,
    DWAttForQuestionAnswering,
    DWAttForMultipleChoice,
]
BATCH, CHOICES, LENGTH = 2, 3, 6


def tiny_config(**backbone_extra) -> DWAttConfig:
    backbone = BertConfig(
        vocab_size=VOCAB, max_position_embeddings=64, type_vocab_size=2, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0, attn_implementation="eager", **TINY, **backbone_extra,
    )  # fmt: skip
    return DWAttConfig(backbone_config=backbone, fusion="dwatt", num_labels=3, classifier_dropout=0.0)


def head_model(head_class, config: DWAttConfig | None = None):
    torch.manual_seed(0)
    return head_class(config or tiny_config()).double().eval()


def inputs_for(head_class) -> dict[str, torch.Tensor]:
    """input_ids and attention_mask (with padding) shaped for the head: multiple choice adds a choice axis."""
    shape = (BATCH, CHOICES, LENGTH) if head_class is DWAttForMultipleChoice else (BATCH, LENGTH)
    generator = torch.Generator().manual_seed(3)
    input_ids = torch.randint(4, VOCAB, shape, generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[..., -2:] = 0
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def record_base_calls(model, monkeypatch) -> list[dict]:
    """Every call of the head's base model, as the keyword arguments it received (the call still runs)."""
    calls, base_forward = [], model.dwatt.forward

    def forward(**kwargs):
        calls.append(dict(kwargs))
        kwargs.pop("marker", None)  # a made-up extra argument, to see that **kwargs are passed on
        return base_forward(**kwargs)

    monkeypatch.setattr(model.dwatt, "forward", forward)
    return calls


@pytest.mark.parametrize("head_class", HEADS, ids=lambda c: c.__name__)
def test_every_argument_reaches_the_base_model_unchanged(head_class, monkeypatch):
    model = head_model(head_class)
    inputs = inputs_for(head_class)
    given = {
        **inputs,
        "token_type_ids": torch.ones_like(inputs["input_ids"]),
        "position_ids": torch.arange(LENGTH).expand_as(inputs["input_ids"]) + 1,
        "fusion_layer_mask": torch.tensor([True, False, True]),
        "output_fusion_weights": True,
        "output_hidden_states": True,
        "output_attentions": True,
    }
    calls = record_base_calls(model, monkeypatch)
    model(**given, marker="passed on", num_items_in_batch=torch.tensor(7))
    embeds = model.dwatt.get_input_embeddings()(inputs["input_ids"]).detach()
    model(inputs_embeds=embeds, attention_mask=inputs["attention_mask"])

    with_ids, with_embeds = calls
    # The loss's token count is the head's, never the backbone's; everything else goes on; a dict comes back.
    assert set(with_ids) == set(given) | {"inputs_embeds", "return_dict", "marker"}
    assert with_ids["return_dict"] is True and with_ids["marker"] == "passed on"
    assert with_ids["inputs_embeds"] is None and with_embeds["input_ids"] is None
    flat = (lambda t: t.flatten(0, 1)) if head_class is DWAttForMultipleChoice else (lambda t: t)
    for name, value in given.items():
        expected = flat(value) if isinstance(value, torch.Tensor) and name != "fusion_layer_mask" else value
        received = with_ids[name]
        assert torch.equal(received, expected) if isinstance(value, torch.Tensor) else received is expected, name
    assert torch.equal(with_embeds["inputs_embeds"], flat(embeds))


@pytest.mark.parametrize("head_class", HEADS, ids=lambda c: c.__name__)
def test_each_argument_changes_what_the_head_outputs(head_class):
    """The same, seen from outside: each input argument changes the head's output, and inputs_embeds made from
    the ids give the ids' output."""
    model = head_model(head_class)
    inputs = inputs_for(head_class)

    def scores(**extra):
        output = model(**inputs, **extra) if "inputs_embeds" not in extra else model(**extra)
        return output.start_logits if head_class is DWAttForQuestionAnswering else output.logits

    plain = scores()
    varied = {
        "token_type_ids": torch.ones_like(inputs["input_ids"]),
        "position_ids": torch.arange(LENGTH).expand_as(inputs["input_ids"]) + 3,
        "fusion_layer_mask": torch.tensor([True, False, False]),
    }
    with torch.no_grad():
        for name, value in varied.items():
            assert not torch.allclose(scores(**{name: value}), plain), f"{name} changed nothing"
        embeds = model.dwatt.get_input_embeddings()(inputs["input_ids"])
        same = scores(inputs_embeds=embeds, attention_mask=inputs["attention_mask"])
    torch.testing.assert_close(same, plain, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("head_class", HEADS, ids=lambda c: c.__name__)
def test_return_dict_is_honoured_from_the_call_and_from_the_config(head_class):
    model = head_model(head_class)
    inputs = inputs_for(head_class)
    with torch.no_grad():
        as_dict = model(**inputs, output_hidden_states=True)
        as_tuple = model(**inputs, output_hidden_states=True, return_dict=False)
        model.config.return_dict = False  # the default a user can set once
        by_config = model(**inputs, output_hidden_states=True)
        asked = model(**inputs, output_hidden_states=True, return_dict=True)
    assert isinstance(as_tuple, tuple) and isinstance(by_config, tuple)
    assert as_dict.loss is None  # no labels: no loss, and no empty field in the tuple
    assert type(asked) is type(as_dict)
    for got in (as_tuple, by_config, asked.to_tuple()):
        assert len(got) == len(as_dict.to_tuple())
        torch.testing.assert_close(got[0], as_dict.to_tuple()[0], rtol=0, atol=0)
        assert len(got[-1]) == TINY["num_hidden_layers"] + 1  # the hidden states came along


def test_token_classification_loss_is_cross_entropy_over_labelled_tokens_or_their_sum_over_the_batch_count():
    model = head_model(DWAttForTokenClassification)
    inputs = inputs_for(DWAttForTokenClassification)
    labels = torch.randint(0, 3, (BATCH, LENGTH), generator=torch.Generator().manual_seed(4))
    labels[inputs["attention_mask"] == 0] = -100
    with torch.no_grad():
        output = model(**inputs, labels=labels)
        summed = model(**inputs, labels=labels, num_items_in_batch=torch.tensor(13)).loss
    # transformers' token losses upcast the logits to float32
    flat_logits, flat_labels = output.logits.reshape(-1, 3).float(), labels.reshape(-1)
    torch.testing.assert_close(output.loss, F.cross_entropy(flat_logits, flat_labels, ignore_index=-100))
    torch.testing.assert_close(summed, F.cross_entropy(flat_logits, flat_labels, reduction="sum") / 13)


def test_sequence_classification_loss_is_cross_entropy_or_its_sum_over_the_batch_count():
    model = head_model(DWAttForSequenceClassification)
    inputs = inputs_for(DWAttForSequenceClassification)
    labels = torch.tensor([2, 0])
    with torch.no_grad():
        output = model(**inputs, labels=labels)
        summed = model(**inputs, labels=labels, num_items_in_batch=torch.tensor(5)).loss
    assert output.logits.shape == (BATCH, 3)
    torch.testing.assert_close(output.loss, F.cross_entropy(output.logits, labels))
    torch.testing.assert_close(summed, F.cross_entropy(output.logits, labels, reduction="sum") / 5)


def test_sequence_regression_loss_is_the_mean_squared_error():
    config = tiny_config()
    config.num_labels = 1
    model = head_model(DWAttForSequenceClassification, config)
    labels = torch.tensor([0.5, -1.5], dtype=torch.float64)
    with torch.no_grad():
        output = model(**inputs_for(DWAttForSequenceClassification), labels=labels)
    torch.testing.assert_close(output.loss, F.mse_loss(output.logits.squeeze(-1), labels))


def test_masked_lm_loss_is_cross_entropy_over_the_vocabulary_at_masked_tokens():
    model = head_model(DWAttForMaskedLM)
    inputs = inputs_for(DWAttForMaskedLM)
    labels = torch.full((BATCH, LENGTH), -100)
    labels[:, 1], labels[0, 3] = torch.tensor([5, 17]), 40
    with torch.no_grad():
        output = model(**inputs, labels=labels)
        summed = model(**inputs, labels=labels, num_items_in_batch=torch.tensor(9)).loss
    flat_logits, flat_labels = output.logits.reshape(-1, VOCAB).float(), labels.reshape(-1)
    torch.testing.assert_close(output.loss, F.cross_entropy(flat_logits, flat_labels, ignore_index=-100))
    torch.testing.assert_close(summed, F.cross_entropy(flat_logits, flat_labels, reduction="sum") / 9)


def test_question_answering_loss_is_the_mean_of_start_and_end_cross_entropy_and_needs_both():
    model = head_model(DWAttForQuestionAnswering)
    inputs = inputs_for(DWAttForQuestionAnswering)
    start, end = torch.tensor([1, 0]), torch.tensor([3, 2])
    with torch.no_grad():
        output = model(**inputs, start_positions=start, end_positions=end)
        start_only = model(**inputs, start_positions=start)
        counted = model(**inputs, start_positions=start, end_positions=end, num_items_in_batch=torch.tensor(50))
    expected = (F.cross_entropy(output.start_logits, start) + F.cross_entropy(output.end_logits, end)) / 2
    torch.testing.assert_close(output.loss, expected)
    torch.testing.assert_close(counted.loss, expected)  # a per-example mean: the token count plays no part
    assert start_only.loss is None


def test_multiple_choice_loss_is_cross_entropy_over_the_choices():
    model = head_model(DWAttForMultipleChoice)
    inputs = inputs_for(DWAttForMultipleChoice)
    labels = torch.tensor([2, 1])
    with torch.no_grad():
        output = model(**inputs, labels=labels)
        counted = model(**inputs, labels=labels, num_items_in_batch=torch.tensor(50))
    assert output.logits.shape == (BATCH, CHOICES)
    torch.testing.assert_close(output.loss, F.cross_entropy(output.logits, labels))
    torch.testing.assert_close(counted.loss, output.loss)


@pytest.mark.parametrize("head_class", HEADS, ids=lambda c: c.__name__)
def test_a_backbone_handed_to_a_head_is_the_one_it_uses(head_class):
    config = tiny_config()
    backbone = AutoModel.from_config(config.backbone_config)
    model = head_class(config, backbone=backbone)
    assert model.dwatt.backbone is backbone


def test_the_masked_lm_head_normalises_with_the_backbones_epsilon():
    model = DWAttForMaskedLM(tiny_config(layer_norm_eps=1e-7))
    assert model.lm_head.layer_norm.eps == 1e-7


def test_embeddings_can_be_swapped_in_and_out_as_transformers_expects():
    """`resize_token_embeddings` and weight tying go through these accessors."""
    model = head_model(DWAttForMaskedLM)
    new_input = torch.nn.Embedding(VOCAB + 5, TINY["hidden_size"])
    model.dwatt.set_input_embeddings(new_input)
    assert model.get_input_embeddings() is new_input and model.dwatt.backbone.get_input_embeddings() is new_input
    new_output = torch.nn.Linear(TINY["hidden_size"], VOCAB + 5)
    model.set_output_embeddings(new_output)
    assert model.get_output_embeddings() is new_output and model.lm_head.decoder is new_output
