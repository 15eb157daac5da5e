"""`from_backbone` on the real bundled MiniLM: pretrained weights kept bit-identical, real tokens flow."""

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModel, AutoTokenizer

from dwatt import DWAttForMaskedLM, DWAttForSequenceClassification, DWAttForTokenClassification, DWAttModel


@pytest.fixture(scope="module")
def pretrained_tensors(minilm_path):
    return load_file(str(minilm_path / "model.safetensors"))


@pytest.mark.parametrize(
    ("cls", "fusion"),
    [(DWAttForTokenClassification, "dwatt"), (DWAttForSequenceClassification, "concat"),
     (DWAttForMaskedLM, "scalar_mix"), (DWAttModel, "deeper")],
)  # fmt: skip
def test_from_backbone_keeps_weights_bit_identical(cls, fusion, minilm_path, pretrained_tensors):
    model = cls.from_backbone(str(minilm_path), fusion=fusion, num_labels=3)
    backbone = model.base_model.backbone
    state = backbone.state_dict()
    for name, tensor in pretrained_tensors.items():
        if name.startswith("pooler."):
            assert not hasattr(backbone.pooler, "dense"), "the unused pooler must be dropped"
            continue
        if name == "embeddings.position_ids":  # a non-persistent buffer in transformers 5
            continue
        assert torch.equal(state[name], tensor), name
    assert model.config.backbone_config is backbone.config
    if cls is DWAttForMaskedLM:
        assert model.lm_head.decoder.weight is backbone.get_input_embeddings().weight


def test_real_forward_backward_on_minilm(minilm_path):
    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    model = DWAttForTokenClassification.from_backbone(str(minilm_path), num_labels=3, dwatt_scale="sqrt_d")
    words = [["EU", "rejects", "German", "call"], ["Peter", "Blackburn"]]
    inputs = tokenizer(words, is_split_into_words=True, padding=True, return_tensors="pt")
    labels = torch.where(inputs["attention_mask"].bool(), 1, -100)
    output = model(**inputs, labels=labels, output_fusion_weights=True)
    assert output.fusion_weights.shape[-1] == 7  # embeddings + 6 layers
    output.loss.backward()
    assert model.dwatt.fusion.value_in_weight.grad.abs().sum() > 0


def test_from_backbone_refuses_a_dwatt_checkpoint(tmp_path, minilm_path):
    DWAttModel.from_backbone(str(minilm_path), fusion="mean").save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="already a DWAtt checkpoint"):
        DWAttForTokenClassification.from_backbone(str(tmp_path))


def test_backbone_keeps_its_attention_implementation(minilm_path, tmp_path):
    """Wrapping must not reset the loaded encoder's attention (sdpa) to None, in memory or after a reload."""
    model = DWAttForTokenClassification.from_backbone(str(minilm_path), num_labels=3)
    assert model.dwatt.backbone.config._attn_implementation == "sdpa"
    assert model.config._attn_implementation == "sdpa"
    model.save_pretrained(tmp_path)
    reloaded = DWAttForTokenClassification.from_pretrained(tmp_path)
    assert reloaded.dwatt.backbone.config._attn_implementation == "sdpa"
    assert reloaded.config._attn_implementation == "sdpa"


def test_padding_does_not_change_real_tokens_after_from_backbone(minilm_path):
    """A regression: wrapping once reset the encoder's attention to None, which ignored the padding mask."""
    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    model = (
        DWAttForTokenClassification.from_backbone(str(minilm_path), num_labels=3).eval().double()
    )  # exact on any CPU
    padded = tokenizer(["a b c d e f g h i", "hello world"], padding=True, return_tensors="pt")
    alone = tokenizer(["hello world"], return_tensors="pt")
    with torch.no_grad():
        in_batch = model(**padded).logits[1, : alone["input_ids"].shape[1]]
        torch.testing.assert_close(in_batch, model(**alone).logits[0], rtol=1e-9, atol=1e-9)


def test_from_backbone_keeps_the_tokenizer_for_the_saved_folder(tiny_bert_dir, tmp_path):
    """Issue 21: `from_backbone(...).save_pretrained(folder)` wrote no tokenizer, so `AutoTokenizer` and
    `pipeline` failed on the folder."""
    from transformers import pipeline

    model = DWAttForTokenClassification.from_backbone(str(tiny_bert_dir), num_labels=3)
    model.save_pretrained(tmp_path / "saved")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "saved")
    original = AutoTokenizer.from_pretrained(tiny_bert_dir)
    assert tokenizer("hello world")["input_ids"] == original("hello world")["input_ids"]
    tagger = pipeline("token-classification", model=str(tmp_path / "saved"), trust_remote_code=True)
    with torch.no_grad():  # the pipeline's entities are the saved model's own argmax labels
        logits = model.eval()(**tokenizer("hello world", return_tensors="pt")).logits[0, 1:-1]
    predicted = [model.config.id2label[int(index)] for index in logits.argmax(-1)]
    tagged = tagger("hello world")
    assert [entity["entity"] for entity in tagged] == [label for label in predicted if label != "O"]
    assert [entity["word"] for entity in tagged] == [word for word, label in zip(["hello", "world"], predicted)
                                                     if label != "O"]  # fmt: skip

    bare = tmp_path / "bare"  # a backbone folder without tokenizer files: the model still builds and saves
    AutoModel.from_pretrained(tiny_bert_dir).save_pretrained(bare)
    model = DWAttForTokenClassification.from_backbone(str(bare), num_labels=3)
    assert model.backbone_tokenizer is None
    model.save_pretrained(tmp_path / "saved-bare")
    assert not (tmp_path / "saved-bare" / "tokenizer_config.json").exists()
