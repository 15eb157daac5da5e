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
from dwatt.tasks.lora import (
    ADAPTER_STATE_FILE,
    MergedLoraCheckpoints,
    add_lora,
    has_lora,
    load_adapters,
    lora_target_modules,
    merge_lora,
    write_merged_checkpoint,
)
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


def test_target_modules_are_parsed_or_defaulted_per_backbone_type():
    assert lora_target_modules("bert", " query, value ,") == ["query", "value"]
    assert lora_target_modules("bert", "key") == ["key"]
    assert lora_target_modules("bert", None) == ["query", "value"]  # peft's default for the type
    assert lora_target_modules("no-such-type", None) == "all-linear"
    with pytest.raises(ValueError, match=r"--lora_target_modules ' , '; expected comma-separated module names"):
        lora_target_modules("bert", " , ")


def test_add_lora_adapts_the_named_modules_of_the_backbone_only(tiny_bert_dir):
    model = DWAttForTokenClassification.from_backbone(str(tiny_bert_dir), num_labels=3)
    with pytest.raises(ValueError, match=r"--lora_r 0; expected a positive rank"):
        add_lora(model, rank=0, alpha=1.0, dropout=0.0, target_modules=None)
    backbone_config = model.config.backbone_config
    hidden, layers = backbone_config.hidden_size, backbone_config.num_hidden_layers
    # Rank 1 is allowed; query, key and value each get A (hidden x 1) and B (1 x hidden) in every layer.
    assert add_lora(model, rank=1, alpha=1.0, dropout=0.0, target_modules="query,key,value") == layers * 3 * 2 * hidden
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    backbone_trainable = [name for name in trainable if name.startswith("dwatt.backbone.")]
    assert backbone_trainable and all(".lora_" in name for name in backbone_trainable)
    assert {name.split(".")[-4] for name in backbone_trainable} == {"query", "key", "value"}
    assert len(trainable) > len(backbone_trainable)  # fusion and head train in full


def test_adapters_resume_only_into_a_model_they_fit(tiny_bert_dir, tmp_path):
    def lora_model(rank, targets):
        torch.manual_seed(0)
        model = DWAttForTokenClassification.from_backbone(str(tiny_bert_dir), num_labels=3)
        add_lora(model, rank=rank, alpha=8.0, dropout=0.0, target_modules=targets)
        return model

    assert load_adapters(lora_model(2, None), tmp_path) is False  # no adapter file: the Trainer loads the weights
    saved = lora_model(2, "query,key,value")
    for name, parameter in saved.named_parameters():
        if "lora_B" in name:
            parameter.data.normal_()
    write_merged_checkpoint(saved, tmp_path)
    resumed = lora_model(2, "query,key,value")
    assert load_adapters(resumed, tmp_path) is True
    for name, value in saved.state_dict().items():
        if "lora_" in name:
            torch.testing.assert_close(resumed.state_dict()[name], value, rtol=0, atol=0)
    layers = saved.config.backbone_config.num_hidden_layers
    with pytest.raises(ValueError, match=rf"{ADAPTER_STATE_FILE}: {2 * layers} adapter tensors do not fit .* such as "
                                         r"dwatt\.backbone\..*\.key\.lora_A.*--lora_target_modules"):  # fmt: skip
        load_adapters(lora_model(2, "query,value"), tmp_path)
    hidden = saved.config.backbone_config.hidden_size
    resized = (
        rf"{6 * layers} adapter tensors have another shape than this model's, such as "
        rf"\S+\.lora_A\.\S+ \(2, {hidden}\) against \(4, {hidden}\)"
    )  # the named tensor's own shapes
    with pytest.raises(ValueError, match=rf"{ADAPTER_STATE_FILE}: {resized} \(another --lora_r\?\)"):
        load_adapters(lora_model(4, "query,key,value"), tmp_path)


def test_checkpoint_callback_rewrites_only_lora_models_on_the_main_process(tiny_bert_dir, tmp_path):
    from types import SimpleNamespace

    plain = DWAttForTokenClassification.from_backbone(str(tiny_bert_dir), num_labels=3)
    adapted = DWAttForTokenClassification.from_backbone(str(tiny_bert_dir), num_labels=3)
    add_lora(adapted, rank=2, alpha=4.0, dropout=0.0, target_modules=None)
    args = SimpleNamespace(output_dir=str(tmp_path))
    for main_process, model, written in [(True, plain, False), (False, adapted, False), (True, None, False),
                                         (True, adapted, True)]:  # fmt: skip
        state = SimpleNamespace(is_world_process_zero=main_process, global_step=3)
        MergedLoraCheckpoints().on_save(args, state, None, model=model)
        assert (tmp_path / "checkpoint-3" / ADAPTER_STATE_FILE).is_file() is written, (main_process, model)
