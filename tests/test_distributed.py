"""Scale-out: FSDP's auto-wrap finds every class a model names, multi-process launches that do not form
one group are refused, torchrun runs real gloo DDP on CPU, and gradient checkpointing is exact."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from accelerate.utils import FullyShardedDataParallelPlugin
from conftest import tiny_backbone_config
from transformers import TrainingArguments

from dwatt import FUSIONS, DWAttConfig, DWAttForTokenClassification
from dwatt.experiments.overhead import saved_activation_bytes
from dwatt.tasks.arguments import check_process_group

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("fusion", FUSIONS)
def test_fsdp_transformer_auto_wrap_finds_every_class_the_model_names(fusion):
    """transformers' fsdp_config falls back to `_no_split_modules`; a named class the model lacks is fatal."""
    model = DWAttForTokenClassification(DWAttConfig(backbone_config=tiny_backbone_config(), fusion=fusion))
    plugin = FullyShardedDataParallelPlugin(
        auto_wrap_policy="transformer_based_wrap", transformer_cls_names_to_wrap=sorted(model._no_split_modules)
    )
    plugin.set_auto_wrap_policy(model)
    wrapped = {cls.__name__ for cls in plugin.auto_wrap_policy.keywords["transformer_layer_cls"]}
    assert "BertLayer" in wrapped  # the backbone's layers are wrapped, not only the fusion
    held = {"dwatt": "DWAttDepthAttention", "concat": "DWAttConcatFusion", "deeper": "DWAttDeeperLayer"}
    assert wrapped - {"BertLayer", "BertEmbeddings"} == ({held[fusion]} if fusion in held else set())


def test_a_launch_whose_processes_form_no_group_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(SystemExit, match="pass --use_cpu"):
        check_process_group(TrainingArguments(output_dir=str(tmp_path), report_to="none"))
    monkeypatch.setenv("WORLD_SIZE", "1")
    check_process_group(TrainingArguments(output_dir=str(tmp_path), report_to="none"))


def torchrun(tiny_bert_dir, output_dir, *extra, port):
    command = [
        shutil.which("torchrun", path=str(Path(sys.executable).parent)), "--nproc_per_node", "2",
        "--master_port", str(port), str(ROOT / "scripts" / "run_ner.py"),
        "--model_name_or_path", str(tiny_bert_dir), "--output_dir", str(output_dir), "--few_shot_k", "32",
        "--max_eval_samples", "16", "--do_train", "--do_eval", "--max_steps", "4", "--per_device_train_batch_size", "4",
        "--report_to", "none", "--disable_tqdm", "true", "--save_strategy", "no", "--log_level", "info", *extra,
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=output_dir.parent)


@pytest.mark.slow
def test_torchrun_two_processes_on_cpu(tiny_bert_dir, tmp_path):
    """`torchrun --nproc_per_node 2` with --use_cpu is one gloo group; without it, the launch is refused."""
    refused = torchrun(tiny_bert_dir, tmp_path / "refused", port=29531)
    assert refused.returncode != 0 and "did not form one process group" in refused.stderr + refused.stdout
    assert not (tmp_path / "refused" / "train_results.json").exists()

    completed = torchrun(tiny_bert_dir, tmp_path / "ddp", "--use_cpu", port=29533)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    state = json.loads((tmp_path / "ddp" / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    log = completed.stdout + completed.stderr
    assert "Total train batch size (w. parallel, distributed & accumulation) = 8" in log  # 2 ranks x 4


def test_gradient_checkpointing_gives_the_same_loss_and_gradients_with_fewer_saved_activations(batch):
    labels = torch.randint(0, 3, batch["input_ids"].shape)

    def model_and_grads(checkpointing: bool):
        torch.manual_seed(0)
        config = DWAttConfig(backbone_config=tiny_backbone_config(), num_labels=3, fusion="dwatt")
        model = DWAttForTokenClassification(config).double()
        if checkpointing:
            model.activation_checkpointing_enable()  # what --gradient_checkpointing has the Trainer do
        model.train()
        torch.manual_seed(1)  # the same dropout masks (checkpointing replays the RNG state)
        loss = model(**batch, labels=labels).loss
        loss.backward()
        grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
        torch.manual_seed(1)
        saved = saved_activation_bytes(model, {**batch, "labels": labels})
        return loss, grads, saved

    loss, grads, saved = model_and_grads(False)
    loss_gc, grads_gc, saved_gc = model_and_grads(True)
    torch.testing.assert_close(loss_gc, loss, rtol=1e-12, atol=1e-12)
    assert grads_gc.keys() == grads.keys()
    for name in grads:
        torch.testing.assert_close(grads_gc[name], grads[name], rtol=1e-10, atol=1e-12, msg=name)
    assert saved_gc < saved


def test_launch_configs_are_valid_for_accelerate_and_deepspeed():
    from accelerate.commands.config.config_args import load_config_from_file

    kinds = {
        path.stem: load_config_from_file(str(path)).distributed_type.value
        for path in (ROOT / "configs" / "accelerate").glob("*.yaml")
    }
    assert kinds == {"cpu-ddp": "MULTI_GPU", "ddp": "MULTI_GPU", "ddp-multinode": "MULTI_GPU", "fsdp": "FSDP"}
    for stage in (2, 3):
        config = json.loads((ROOT / "configs" / "deepspeed" / f"zero{stage}.json").read_text())
        assert config["zero_optimization"]["stage"] == stage
        # "auto" lets the Trainer fill batch sizes, accumulation and clipping from its own arguments
        assert config["train_micro_batch_size_per_gpu"] == config["gradient_accumulation_steps"] == "auto"


@pytest.mark.slow
def test_ddp_on_two_processes_trains_the_same_weights_as_one_process(tiny_bert_dir, tmp_path):
    """2 ranks x batch 4 take the same examples per step as 1 process x batch 8 and average the same
    gradients: the trained weights agree to float32 rounding (dropout off, so no rank draws its own)."""
    from conftest import parse_run_args
    from safetensors.torch import load_file

    from dwatt.tasks.arguments import ModelArguments
    from dwatt.tasks.ner import NerDataArguments, run_ner

    backbone = tmp_path / "no-dropout"
    shutil.copytree(tiny_bert_dir, backbone)
    config = json.loads((backbone / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (backbone / "config.json").write_text(json.dumps(config))
    common = [
        "--model_name_or_path", backbone, "--use_cpu", "--few_shot_k", "32", "--do_train", "--max_steps", "4",
        "--report_to", "none", "--disable_tqdm", "true", "--save_strategy", "no", "--learning_rate", "5e-4",
    ]  # fmt: skip
    single = tmp_path / "single"
    run_ner(*parse_run_args(
        (ModelArguments, NerDataArguments, TrainingArguments),
        [*common, "--output_dir", single, "--per_device_train_batch_size", "8"],
    ))  # fmt: skip
    command = [
        shutil.which("torchrun", path=str(Path(sys.executable).parent)), "--nproc_per_node", "2",
        "--master_port", "29535", str(ROOT / "scripts" / "run_ner.py"), *map(str, common),
        "--output_dir", str(tmp_path / "ddp"), "--per_device_train_batch_size", "4",
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    one, two = load_file(single / "model.safetensors"), load_file(tmp_path / "ddp" / "model.safetensors")
    start = load_file(backbone / "model.safetensors")
    assert one.keys() == two.keys()
    moved = max((one[f"dwatt.backbone.{k}"] - v).abs().max().item() for k, v in start.items())
    assert moved > 1e-4  # training changed the weights, so agreeing means something
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=0, atol=1e-6 * max(1.0, one[name].abs().max().item()))


def test_fsdp_asked_for_on_cpu_warns_that_it_runs_as_ddp(monkeypatch, tmp_path, caplog):
    """Found by trying: `accelerate launch --config_file configs/accelerate/fsdp.yaml ... --use_cpu` exits 0
    with whole-weight checkpoints (no FSDP on CPU); now it says so."""
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    monkeypatch.setenv("WORLD_SIZE", "1")
    with caplog.at_level("WARNING", logger="dwatt.tasks.arguments"):
        check_process_group(TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True))
    assert "on CPU the Trainer does not shard" in caplog.text
