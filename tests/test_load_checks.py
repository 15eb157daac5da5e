"""`from_pretrained`'s own checks, each message read whole: which names are taken for a local folder (and named
missing) and which go to the Hub, a `config=` that is not a DWAtt one, LoRA adapters never merged, weights in
transformers 4.x's mismatch format, missing `deeper` weights, non-finite tensors, renamed labels."""

import logging

import pytest
import torch
from conftest import TINY, VOCAB
from transformers import AutoModel, BertConfig, PreTrainedModel

from dwatt import DWAttConfig, DWAttForMaskedLM, DWAttForTokenClassification, DWAttModel

MISSING = "no such folder; expected a folder written by save_pretrained"


def built(model_class=DWAttForTokenClassification, **config):
    backbone = BertConfig(vocab_size=VOCAB, max_position_embeddings=64, **TINY)
    torch.manual_seed(0)
    return model_class(DWAttConfig(backbone_config=backbone, fusion=config.pop("fusion", "dwatt"), **config))


@pytest.mark.parametrize("path", ["./missing", ".missing", "~missing", "a/b/c", "a\\b", "runs/missing"])
def test_a_path_that_looks_local_and_is_missing_is_named_as_such(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()  # so runs/missing is a folder's missing child, not a Hub id
    with pytest.raises(FileNotFoundError) as error:
        DWAttForTokenClassification.from_pretrained(path)
    assert str(error.value) == f"{path}: {MISSING}"
    absolute = tmp_path / "missing"
    with pytest.raises(FileNotFoundError, match=f"^{absolute}: {MISSING}$"):
        DWAttForTokenClassification.from_pretrained(str(absolute))


@pytest.mark.parametrize("hub_id", ["someuser/dwatt-model", "dwatt-model"])
def test_a_hub_id_goes_to_the_hub(hub_id, tmp_path, monkeypatch):
    """Before: any name with a "/" was taken for a missing folder on Linux and macOS, so no Hub checkpoint
    (`owner/name`) could be loaded by a DWAtt class. Offline, transformers' own Hub error comes back."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError) as error:
        DWAttForTokenClassification.from_pretrained(hub_id)
    assert MISSING not in str(error.value) and "huggingface.co" in str(error.value)


def test_a_folder_without_a_config_is_named_whole(tmp_path):
    with pytest.raises(ValueError) as error:
        DWAttForTokenClassification.from_pretrained(str(tmp_path))
    assert str(error.value) == (
        f"{tmp_path} has no config.json; expected a folder written by save_pretrained (is it empty, or the parent of "
        "the run folder?)"
    )


def test_a_config_argument_that_is_not_a_dwatt_config_is_refused_with_or_without_a_path(tmp_path):
    built().save_pretrained(tmp_path)
    plain = BertConfig(vocab_size=VOCAB, **TINY)
    for path in (str(tmp_path), None):
        with pytest.raises(ValueError, match="holds a 'bert' config, not a DWAtt checkpoint"):
            DWAttForTokenClassification.from_pretrained(path, config=plain)


def test_unmerged_lora_adapters_are_refused_naming_the_first():
    keys = ["dwatt.backbone.encoder.layer.0.attention.self.query.lora_A.default.weight",
            "dwatt.backbone.encoder.layer.0.attention.self.query.base_layer.weight"]  # fmt: skip
    with pytest.raises(ValueError) as error:
        built()._check_loaded_weights("ckpt", {"unexpected_keys": keys + ["an.unrelated.key"]}, False)
    assert str(error.value) == (
        f"ckpt holds LoRA adapters that were never merged into the backbone (2 tensors, e.g. {keys[0]}): loaded as a "
        "DWAtt model, every adapted layer would get random weights. It is a training-time save of a LoRA run (an "
        "intermediate checkpoint written before dwatt merged them, or a peft model). Load the run's final folder "
        "(merged at the end of training), or resume the run from it."
    )


def test_a_mismatch_in_transformers_4_format_names_the_key_without_a_checkpoint_shape():
    with pytest.raises(ValueError) as error:
        built()._check_loaded_weights("ckpt", {"mismatched_keys": ["classifier.weight"]}, False)
    assert str(error.value).split("\n")[:2] == [
        "ckpt: 1 weight(s) in the checkpoint have other shapes than DWAttForTokenClassification builds from its "
        "config:",
        "  classifier.weight: checkpoint another shape, model 2x32",
    ]


def test_missing_deeper_weights_are_named_in_a_warning_from_the_modeling_logger(caplog):
    model = built(fusion="deeper")
    with caplog.at_level(logging.WARNING, logger="dwatt.modeling_dwatt"):
        model._check_loaded_weights("ckpt", {"missing_keys": ["dwatt.deeper.0.qkv.weight"]}, False)
    [record] = [record for record in caplog.records if record.name == "dwatt.modeling_dwatt"]
    assert "no weights for 1 fusion tensor(s) of fusion='deeper' (dwatt.deeper.0.qkv.weight)" in record.getMessage()


@pytest.mark.parametrize("count", [9, 8])
def test_non_finite_weights_are_refused_naming_the_first_eight_and_counting_more(count):
    model = built()
    names = [name for name, tensor in model.state_dict().items() if tensor.is_floating_point()][:count]
    with torch.no_grad():
        for name in names:
            model.get_parameter(name).view(-1)[0] = float("nan")
    with pytest.raises(ValueError) as error:
        model._check_loaded_weights("ckpt", {}, False)
    sizes = {name: tensor.numel() for name, tensor in model.state_dict().items()}
    shown = ", ".join(f"{name} (1 of {sizes[name]} values)" for name in names[:8])
    assert str(error.value) == (
        f"ckpt: non-finite (NaN or inf) weights in {shown}{', ... (9 tensors)' if count == 9 else ''}. The checkpoint "
        "is corrupt or was saved after training diverged; use an earlier checkpoint (check the loss logged by the run "
        "that wrote it)."
    )


def renamed_warnings(model, saved: dict[int, str], mismatched, caplog) -> list[str]:
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dwatt.modeling_dwatt"):
        model._check_label_names("ckpt", saved, {"mismatched_keys": mismatched})
    return [record.getMessage() for record in caplog.records if record.name == "dwatt.modeling_dwatt"]


def test_renamed_labels_of_a_kept_head_are_listed_and_a_new_head_or_a_head_without_labels_is_not(caplog):
    labels = {index: f"NEW{index}" for index in range(7)}
    model = built(num_labels=7, id2label=labels, label2id={v: k for k, v in labels.items()})
    saved = {index: f"OLD{index}" for index in range(7)}
    [message] = renamed_warnings(model, saved, [], caplog)
    shown = ", ".join(f"{index}: 'OLD{index}' -> 'NEW{index}'" for index in range(5))
    assert f"renames 7 of the 7 outputs of the trained head ({shown}, ...)" in message
    for head_key in ("classifier.weight", ("classifier.weight", (3, 32), (7, 32))):  # 4.x and 5.x formats
        assert renamed_warnings(model, saved, [head_key], caplog) == []  # a new head: nothing was renamed
    for fusion_key in ("dwatt.fusion.key_weight", ("dwatt.fusion.key_weight", (1,), (2,))):  # the head was kept
        assert renamed_warnings(model, saved, [fusion_key], caplog) != []
    assert renamed_warnings(built(DWAttForMaskedLM), {0: "OLD"}, [], caplog) == []


def test_positional_model_arguments_reach_the_model_a_backbone_module_among_them(tmp_path):
    """`from_pretrained(path, backbone)` builds the model around the given backbone module, then loads the saved
    weights into it (transformers hands positional arguments after the path to the model's constructor)."""
    saved = built()
    saved.save_pretrained(tmp_path)
    backbone = AutoModel.from_config(saved.config.backbone_config)
    loaded = DWAttForTokenClassification.from_pretrained(tmp_path, backbone)
    assert loaded.dwatt.backbone is backbone
    torch.testing.assert_close(backbone.embeddings.word_embeddings.weight,
                               saved.dwatt.backbone.embeddings.word_embeddings.weight, rtol=0, atol=0)  # fmt: skip


def test_weights_on_the_meta_device_are_not_read_for_the_finiteness_check():
    """A model materialised later (device_map offloading, init on meta) has no values to check yet."""
    with torch.device("meta"):
        model = built()
    model._check_loaded_weights("ckpt", {}, False)  # reading a meta tensor's values would raise


def pickled_only(folder):
    """A checkpoint whose weights are a `pytorch_model.bin` only."""
    model = built()
    model.save_pretrained(folder)
    torch.save({name: tensor.contiguous() for name, tensor in model.state_dict().items()}, folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()


def test_pickled_weights_are_refused_by_default_and_read_when_the_caller_says_which(tmp_path):
    pickled_only(tmp_path)
    with pytest.raises(OSError) as error:
        DWAttForTokenClassification.from_pretrained(tmp_path)
    assert str(error.value).endswith(
        " DWAtt models read weights from safetensors only, unless told otherwise: unpickling a pytorch_model.bin can "
        "run code. Pass use_safetensors=False to read pickled weights you trust."
    )
    with pytest.raises(OSError) as error:  # asked for explicitly: transformers' own error, not the advice
        DWAttForTokenClassification.from_pretrained(tmp_path, use_safetensors=True)
    assert "unless told otherwise" not in str(error.value)
    DWAttForTokenClassification.from_pretrained(tmp_path, use_safetensors=False)


@pytest.mark.parametrize("error", [OSError("disk read failed"), ValueError("bad safetensors header")])
def test_an_error_other_than_missing_safetensors_comes_through_unchanged(error, tmp_path, monkeypatch):
    built().save_pretrained(tmp_path)

    def failing(*args, **kwargs):
        raise error

    monkeypatch.setattr(PreTrainedModel, "from_pretrained", classmethod(failing))
    with pytest.raises(type(error)) as raised:
        DWAttForTokenClassification.from_pretrained(tmp_path)
    assert raised.value is error


def test_a_checkpoint_in_a_subfolder_of_a_local_folder_loads(tmp_path):
    """Before: the local-path check looked at the parent alone and called it a folder without config.json."""
    saved = built()
    saved.save_pretrained(tmp_path / "model")
    loaded = DWAttForTokenClassification.from_pretrained(tmp_path, subfolder="model")
    torch.testing.assert_close(loaded.classifier.weight, saved.classifier.weight, rtol=0, atol=0)
    with pytest.raises(FileNotFoundError, match=f"^{tmp_path / 'other'}: {MISSING}$"):
        DWAttForTokenClassification.from_pretrained(tmp_path, subfolder="other")


def test_a_plain_encoder_folder_is_pointed_to_from_backbone(tmp_path):
    AutoModel.from_config(BertConfig(vocab_size=VOCAB, **TINY)).save_pretrained(tmp_path)
    with pytest.raises(ValueError) as error:
        DWAttForTokenClassification.from_pretrained(str(tmp_path))
    assert str(error.value) == (
        f"{str(tmp_path)!r} holds a 'bert' config, not a DWAtt checkpoint (model_type 'dwatt'). To put a layer fusion "
        f"on a plain encoder, use DWAttForTokenClassification.from_backbone({str(tmp_path)!r}, fusion='dwatt'), which "
        "keeps its weights."
    )


def test_messages_from_loading_name_the_checkpoint_they_came_from(tmp_path, caplog):
    model = built()
    with torch.no_grad():
        model.classifier.bias[0] = float("inf")
    model.save_pretrained(tmp_path / "broken")
    with pytest.raises(ValueError, match=f"^{tmp_path / 'broken'}: non-finite"):
        DWAttForTokenClassification.from_pretrained(tmp_path / "broken")
    built(num_labels=2, id2label={0: "X", 1: "Y"}, label2id={"X": 0, "Y": 1}).save_pretrained(tmp_path / "labelled")
    with caplog.at_level(logging.WARNING, logger="dwatt.modeling_dwatt"):
        DWAttForTokenClassification.from_pretrained(
            tmp_path / "labelled", id2label={0: "A", 1: "B"}, label2id={"A": 0, "B": 1}
        )
    [message] = [r.getMessage() for r in caplog.records if r.name == "dwatt.modeling_dwatt"]
    assert message.startswith(f"{tmp_path / 'labelled'}: the label map given renames 2 of the 2 outputs")


def test_from_backbone_hands_the_hub_options_to_the_tokenizer_lookup(tiny_bert_dir, tmp_path, monkeypatch):
    import transformers.utils

    from dwatt import modeling_dwatt

    seen, real_cached_file, real_tokenizer = [], transformers.utils.cached_file, modeling_dwatt.AutoTokenizer

    def cached_file(path, filename, **kwargs):
        seen.append(("cached_file", {k: v for k, v in kwargs.items() if not k.startswith("_")}))
        return real_cached_file(path, filename, **kwargs)

    class Tokenizer:
        @staticmethod
        def from_pretrained(path, **kwargs):
            seen.append(("tokenizer", kwargs))
            return real_tokenizer.from_pretrained(path, **kwargs)

    monkeypatch.setattr(transformers.utils, "cached_file", cached_file)
    monkeypatch.setattr(modeling_dwatt, "AutoTokenizer", Tokenizer)
    hub = {"revision": "main", "token": None, "cache_dir": str(tmp_path / "cache"), "local_files_only": True}
    model = DWAttForTokenClassification.from_backbone(str(tiny_bert_dir), backbone_kwargs=hub, num_labels=3)
    assert model.backbone_tokenizer is not None
    assert seen == [("cached_file", hub), ("tokenizer", {"trust_remote_code": False, **hub})]
    seen.clear()
    DWAttForTokenClassification.from_backbone(str(tiny_bert_dir), backbone_kwargs={"trust_remote_code": True})
    assert seen[-1] == ("tokenizer", {"trust_remote_code": True})  # the caller's trust reaches the tokenizer too


def test_from_backbone_passes_its_arguments_to_the_backbone_and_the_config(tmp_path):
    """backbone_kwargs reach AutoModel (pickled weights refused unless asked for), `fusion` and the backbone's
    config reach DWAttConfig (a pre-LN backbone gets its per-layer normalisation by default)."""
    from conftest import tiny_backbone_config

    torch.manual_seed(0)
    AutoModel.from_config(tiny_backbone_config("modernbert")).save_pretrained(tmp_path / "modernbert")
    model = DWAttModel.from_backbone(str(tmp_path / "modernbert"), fusion="concat",
                                     backbone_kwargs={"attn_implementation": "eager"})  # fmt: skip
    assert model.config.fusion == "concat" and model.config.fusion_layer_norm is True
    assert model.backbone.config._attn_implementation == "eager"
    backbone = AutoModel.from_config(BertConfig(vocab_size=VOCAB, **TINY))
    backbone.save_pretrained(tmp_path / "pickled")
    state = {name: tensor.contiguous() for name, tensor in backbone.state_dict().items()}
    torch.save(state, tmp_path / "pickled" / "pytorch_model.bin")
    (tmp_path / "pickled" / "model.safetensors").unlink()
    with pytest.raises(OSError):
        DWAttModel.from_backbone(str(tmp_path / "pickled"))
    DWAttModel.from_backbone(str(tmp_path / "pickled"), backbone_kwargs={"use_safetensors": False})


def test_save_pretrained_writes_the_backbones_tokenizer_once_and_on_the_main_process_only(
    tiny_bert_dir, tmp_path, monkeypatch
):
    model = DWAttForTokenClassification.from_backbone(str(tiny_bert_dir), num_labels=3)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    (elsewhere / "tokenizer_config.json").write_text("{}")  # the working folder's file is not the save's
    monkeypatch.chdir(elsewhere)
    model.save_pretrained(tmp_path / "main")
    assert (tmp_path / "main" / "tokenizer_config.json").is_file()
    model.save_pretrained(tmp_path / "other", is_main_process=False)
    assert not (tmp_path / "other" / "tokenizer_config.json").exists()
    model.save_pretrained(tmp_path / "by_position", False)  # transformers' second parameter
    assert not (tmp_path / "by_position" / "tokenizer_config.json").exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "tokenizer_config.json").write_text('{"written": "by the Trainer"}')
    model.save_pretrained(kept)
    assert (kept / "tokenizer_config.json").read_text() == '{"written": "by the Trainer"}'
    model.save_pretrained(tmp_path / "sharded", max_shard_size="50KB")  # options reach transformers' save
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()


def test_from_backbone_sends_loading_options_to_the_backbone_and_never_saves_them(tiny_bert_dir, tmp_path,
                                                                                  monkeypatch):  # fmt: skip
    """Before: every keyword outside `backbone_kwargs` went to DWAttConfig, so `revision="v2"`, `cache_dir`,
    `local_files_only`, `trust_remote_code` did not reach the backbone and were written into config.json."""
    import json

    from dwatt import modeling_dwatt

    seen, real = [], modeling_dwatt.AutoModel.from_pretrained

    def from_pretrained(path, **kwargs):
        seen.append(kwargs)
        return real(path, **kwargs)

    monkeypatch.setattr(modeling_dwatt.AutoModel, "from_pretrained", from_pretrained)
    options = {"revision": "v2", "cache_dir": str(tmp_path / "cache"), "local_files_only": True, "token": None,
               "trust_remote_code": False, "attn_implementation": "eager"}  # fmt: skip
    model = DWAttForTokenClassification.from_backbone(str(tiny_bert_dir), num_labels=3, fusion_init="identity",
                                                      backbone_kwargs={"revision": "v2"}, **options)  # fmt: skip
    assert seen == [{"use_safetensors": True, **options}]
    assert model.config.fusion_init == "identity" and model.dwatt.backbone.config._attn_implementation == "eager"
    model.save_pretrained(tmp_path / "saved")
    saved = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert not {"revision", "cache_dir", "local_files_only", "token", "trust_remote_code"} & set(saved)
    with pytest.raises(ValueError) as error:
        DWAttForTokenClassification.from_backbone(str(tiny_bert_dir), revision="v2", backbone_kwargs={"revision": "v1"})
    assert str(error.value) == (
        "from_backbone got revision='v2' and backbone_kwargs['revision']='v1'; expected one value"
    )
    with pytest.raises(ValueError, match="^from_backbone does not take device_map: a from_pretrained option it"):
        DWAttForTokenClassification.from_backbone(str(tiny_bert_dir), device_map="cpu")
    with pytest.raises(ValueError, match="^DWAttConfig got an unknown argument 'fusion_layer'; did you mean"):
        DWAttForTokenClassification.from_backbone(str(tiny_bert_dir), fusion_layer=[1])  # still refused
    assert len(seen) == 2  # the two refusals above come before any loading; the misspelling after it
