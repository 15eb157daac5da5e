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
from dwatt.tasks.lora import ADAPTER_STATE_FILE, add_lora, has_lora, merge_lora
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


def test_intermediate_checkpoints_load_merged_and_an_interrupted_run_resumes_exactly(tiny_bert_dir, tmp_path):
    from test_run_ner import StopAt

    extra = ["--lora_r", "4", "--learning_rate", "1e-2", "--save_strategy", "steps", "--save_steps", "4"]
    straight = run_ner(*tiny_job(tiny_bert_dir, tmp_path / "straight", *extra))
    # The final folder and checkpoint-8 hold the same (merged) model; checkpoint-4 the model after 4 steps.
    final = load_file(tmp_path / "straight" / "model.safetensors")
    at_8 = load_file(tmp_path / "straight" / "checkpoint-8" / "model.safetensors")
    assert not [name for name in at_8 if any(part in name for part in (".lora_", ".base_layer."))]
    assert final.keys() == at_8.keys()
    for name in final:
        torch.testing.assert_close(at_8[name], final[name], rtol=0, atol=0, msg=name)
    adapters = load_file(tmp_path / "straight" / "checkpoint-4" / ADAPTER_STATE_FILE)
    assert adapters and all("lora_" in name for name in adapters)

    interrupted = tmp_path / "interrupted"
    run_ner(*tiny_job(tiny_bert_dir, interrupted, *extra), callbacks=[StopAt(4)])
    resumed = run_ner(*tiny_job(tiny_bert_dir, interrupted, *extra))  # from the merged checkpoint-4
    for key in ("eval_loss", "predict_loss", "predict_f1"):
        assert resumed[key] == pytest.approx(straight[key], rel=1e-5, abs=1e-6), key
    resumed_weights = load_file(interrupted / "model.safetensors")
    for name in final:
        torch.testing.assert_close(resumed_weights[name], final[name], rtol=1e-5, atol=1e-6, msg=name)


def test_a_folder_with_unmerged_adapters_is_refused_by_loading_and_push(tiny_bert_dir, tmp_path):
    from safetensors.torch import save_file

    from dwatt.hub.push import export_push_ready

    model = DWAttForTokenClassification.from_backbone(str(tiny_bert_dir), num_labels=3)
    model.save_pretrained(tmp_path / "unmerged")
    add_lora(model, rank=4, alpha=8.0, dropout=0.0, target_modules=None)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp_path / "unmerged" / "model.safetensors",
              metadata={"format": "pt"})  # how a checkpoint was saved before merged checkpoints  # fmt: skip
    with pytest.raises(ValueError, match="LoRA adapters that were never merged.*final folder"):
        DWAttForTokenClassification.from_pretrained(tmp_path / "unmerged")
    with pytest.raises(ValueError, match="LoRA adapters that were never merged.*final folder"):
        export_push_ready(tmp_path / "unmerged", tmp_path / "export")
