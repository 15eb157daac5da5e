"""LoRA on the backbone (issue 18's third regime): only the adapters, fusion and head train; the saved model
is a plain DWAtt checkpoint with the adapters merged, which loads through trust_remote_code without peft
(or dwatt) and gives the same logits."""

import pytest
import torch
from safetensors.torch import load_file
from test_remote_code import load_remotely
from test_run_ner import tiny_job
from transformers import AutoModel

from dwatt.modeling_dwatt import DWAttForTokenClassification
from dwatt.tasks.arguments import ModelArguments
from dwatt.tasks.lora import add_lora, has_lora, merge_lora
from dwatt.tasks.ner import run_ner


def test_lora_run_saves_a_merged_checkpoint_that_loads_remotely(tiny_bert_dir, tmp_path):
    output_dir = tmp_path / "run"
    run_ner(*tiny_job(tiny_bert_dir, output_dir, "--lora_r", "4", "--learning_rate", "1e-2"))
    saved = load_file(output_dir / "model.safetensors")
    assert not [name for name in saved if "lora" in name or "base_layer" in name]

    # Only the adapted projections moved: merged LoRA changed query/value, every other backbone weight is as
    # pretrained (the backbone's own weights were frozen).
    original = AutoModel.from_pretrained(tiny_bert_dir).state_dict()
    prefix = "dwatt.backbone."
    changed = {
        name[len(prefix):] for name, value in saved.items()
        if name.startswith(prefix) and not torch.equal(value, original[name[len(prefix):]])
    }  # fmt: skip
    assert changed and all(".query." in name or ".value." in name for name in changed), changed

    model = DWAttForTokenClassification.from_pretrained(output_dir).eval()
    assert not has_lora(model)
    inputs = {"input_ids": torch.tensor([[101, 7592, 2088, 102]]), "attention_mask": torch.ones(1, 4, dtype=torch.long)}
    with torch.no_grad():
        expected = model(**inputs).logits
    remote = load_remotely([(output_dir, "AutoModelForTokenClassification")], inputs, tmp_path)
    got = torch.tensor(next(iter(v for k, v in remote.items() if k != "transformers_version"))["output"])
    torch.testing.assert_close(got, expected)


def test_merging_keeps_the_function_in_float64(tiny_bert_dir):
    torch.manual_seed(0)
    model = DWAttForTokenClassification.from_backbone(str(tiny_bert_dir), num_labels=3).double().eval()
    add_lora(model, rank=4, alpha=8.0, dropout=0.0, target_modules=None)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert any("lora_B" in name for name in trainable)
    assert not [n for n in trainable if n.startswith("dwatt.backbone.") and "lora_" not in n]
    assert any(n.startswith("classifier.") for n in trainable) and any(n.startswith("dwatt.fusion") for n in trainable)
    for name, parameter in model.named_parameters():  # peft starts B at zero: give the adapters a real effect
        if "lora_B" in name:
            parameter.data.normal_(0, 0.1)
    inputs = {"input_ids": torch.tensor([[101, 2023, 2003, 102, 0]]), "attention_mask": torch.tensor([[1, 1, 1, 1, 0]])}
    with torch.no_grad():
        before = model(**inputs).logits
        assert merge_lora(model) == 2 * model.config.backbone_config.num_hidden_layers  # query and value
        after = model(**inputs).logits
    assert not has_lora(model)
    torch.testing.assert_close(after, before, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--lora_r", "4", "--freeze_backbone"], "both set"),
        (["--lora_r", "0"], "positive rank"),
    ],
)
def test_lora_misuse_is_refused(tiny_bert_dir, tmp_path, extra, message):
    with pytest.raises(ValueError, match=message):
        tiny_job(tiny_bert_dir, tmp_path / "run", *extra)


def test_unknown_lora_target_names_the_flag(tiny_bert_dir):
    model = DWAttForTokenClassification.from_backbone(str(tiny_bert_dir), num_labels=3)
    with pytest.raises(ValueError, match="--lora_target_modules"):
        add_lora(model, rank=4, alpha=8.0, dropout=0.0, target_modules="no_such_module")
    assert ModelArguments(lora_r=2).lora_target_modules is None
