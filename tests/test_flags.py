"""Every flag of `dwatt ner`, `dwatt classification` and `dwatt mlm` reaches its effect.

Each run is parsed from flags as the commands parse them and stopped where it hands the model and data to the
Trainer (`train_and_save` is replaced by a capture), and what the Trainer would get is checked against values
computed independently (the few-shot sample for that seed, the knob's module shape, ...). `FLAG_CHECKS` names,
for every field of the argument dataclasses, the test that shows its effect; a field without one fails
`test_every_flag_has_a_check`, so a new flag needs a check before it lands.
"""

import dataclasses
from pathlib import Path

import pytest
from transformers import AutoConfig, TrainingArguments

from dwatt.data.corpora import load_wnut16, sample_few_shot
from dwatt.modeling_dwatt import DWAttConcatFusion, DWAttDepthAttention, DWAttScalarMix
from dwatt.tasks import classification, mlm, ner
from dwatt.tasks.arguments import ModelArguments, parse_arguments
from dwatt.tasks.classification import ClassificationDataArguments
from dwatt.tasks.mlm import MlmDataArguments
from dwatt.tasks.ner import NerDataArguments

FIXTURES = Path(__file__).with_name("fixtures")


class Captured(Exception):
    def __init__(self, trainer):
        self.trainer = trainer
        backbone = trainer.model.base_model.backbone
        trainer.backbone_forward_cached = "forward" in vars(backbone)  # seen here, while the run is in progress


def capture(monkeypatch, module, run, dataclass_types, argv, tmp_path):
    """The Trainer a run builds from these flags, stopped before training; the calls to AutoConfig; and the raw
    splits the run tokenised (NER)."""
    config_calls, raw_splits = [], []
    original = AutoConfig.from_pretrained.__func__

    def spy(cls, name, *args, **kwargs):
        config_calls.append(kwargs)
        return original(cls, name, *args, **kwargs)

    def stop(trainer, *args, **kwargs):
        raise Captured(trainer)

    monkeypatch.setattr(AutoConfig, "from_pretrained", classmethod(spy))
    monkeypatch.setattr(module, "train_and_save", stop)
    if hasattr(module, "tokenize_ner_dataset"):
        tokenize = module.tokenize_ner_dataset
        monkeypatch.setattr(module, "tokenize_ner_dataset", lambda raw, *a, **k: raw_splits.append(raw) or
                            tokenize(raw, *a, **k))  # fmt: skip
    parsed = parse_arguments(dataclass_types, argv=["--output_dir", str(tmp_path / "run"), "--do_train",
                                                    "--report_to", "none", "--use_cpu", *map(str, argv)])  # fmt: skip
    with pytest.raises(Captured) as captured:
        run(*parsed)
    monkeypatch.undo()
    return captured.value.trainer, config_calls, raw_splits


NER_TYPES = (ModelArguments, NerDataArguments, TrainingArguments)


def test_ner_model_knobs_and_data_flags_reach_the_trainer(monkeypatch, tiny_bert_dir, tmp_path):
    trainer, config_calls, (raw,) = capture(monkeypatch, ner, ner.run_ner, NER_TYPES, [
        "--model_name_or_path", tiny_bert_dir, "--fusion", "dwatt", "--fusion_layers", "0,2", "--dwatt_scale", "none",
        "--dwatt_pos_dim", "5", "--dwatt_query_ratio", "0.25", "--dwatt_value_ratio", "0.75",
        "--dwatt_recompute_values", "false", "--fusion_dropout", "0.3", "--fusion_init", "identity",
        "--classifier_dropout", "0.2", "--few_shot_k", "8", "--few_shot_seed", "3", "--max_seq_length", "12",
        "--label_all_tokens", "--do_eval", "--max_eval_samples", "5", "--fusion_learning_rate", "0.02",
        "--freeze_backbone", "--cache_backbone_features", "--revision", "main", "--trust_remote_code",
    ], tmp_path)  # fmt: skip
    model = trainer.model
    fusion = model.dwatt.fusion
    assert model.dwatt.backbone.config.hidden_size == 32  # model_name_or_path: the tiny backbone
    assert isinstance(fusion, DWAttDepthAttention) and fusion.layer_indices == [0, 2]  # fusion, fusion_layers
    assert fusion.score_scale == 1.0  # dwatt_scale none (sqrt_d: 1/sqrt(32))
    assert tuple(fusion.depth_embedding.shape) == (2, 5)  # dwatt_pos_dim
    assert fusion.query_in.out_features == 8 and fusion.value_in_weight.shape[-1] == 24  # query/value ratios
    assert fusion.recompute_values is False and fusion.fusion_dropout == 0.3
    assert not fusion.value_norm_weight.any()  # fusion_init identity: every v_n starts at 0
    assert model.dropout.p == 0.2  # classifier_dropout
    assert not any(p.requires_grad for p in model.dwatt.backbone.parameters())  # freeze_backbone
    assert trainer.backbone_forward_cached  # cache_backbone_features: the backbone answers from the cache
    _, optimizer_kwargs = trainer.optimizer_cls_and_kwargs
    assert [group["lr"] for group in optimizer_kwargs["params"] if "lr" in group] == [0.02]  # fusion_learning_rate
    assert all(call.get("revision") == "main" and call.get("trust_remote_code") is True for call in config_calls)

    assert raw["train"]["id"] == sample_few_shot(load_wnut16()["train"], 8, 3)["id"]  # few_shot_k, few_shot_seed
    assert len(trainer.train_dataset) == 8
    lengths = [len(ids) for ids in trainer.train_dataset["input_ids"]]
    assert max(lengths) == 12  # max_seq_length: the longest tweets are cut there
    assert len(trainer.eval_dataset) == 5  # max_eval_samples
    continuation_labels = [label for labels in trainer.train_dataset["labels"] for label in labels[1:-1]]
    assert -100 not in continuation_labels  # label_all_tokens: every sub-word of a word carries its label


def test_ner_data_files_dataset_names_and_test_limits(monkeypatch, tiny_bert_dir, tmp_path):
    sample = FIXTURES / "conll2003_iob1_sample.txt"
    trainer, *_ = capture(monkeypatch, ner, ner.run_ner, NER_TYPES, [
        "--model_name_or_path", tiny_bert_dir, "--train_file", sample, "--validation_file",
        FIXTURES / "conll2003_iob1_dev.txt", "--do_eval",
    ], tmp_path)  # fmt: skip
    assert len(trainer.train_dataset) == len(ner.load_ner_files(str(sample), None, None)["train"])  # train_file
    dev = ner.load_ner_files(None, str(FIXTURES / "conll2003_iob1_dev.txt"), None)["validation"]
    assert len(trainer.eval_dataset) == len(dev)  # validation_file
    files = ner.load_ner_data(NerDataArguments(test_file=str(sample), max_predict_samples=2))
    assert list(files) == ["test"] and len(files["test"]) == 2  # test_file, max_predict_samples

    asked = []
    monkeypatch.setattr(ner, "load_dataset", lambda *args: asked.append(args) or load_wnut16())
    ner.load_ner_data(NerDataArguments(dataset_name="someone/ner", dataset_config_name="en"))
    assert asked == [("someone/ner", "en")]  # dataset_name, dataset_config_name


def test_lora_flags_reach_the_adapters(monkeypatch, tiny_bert_dir, tmp_path):
    trainer, *_ = capture(monkeypatch, ner, ner.run_ner, NER_TYPES, [
        "--model_name_or_path", tiny_bert_dir, "--few_shot_k", "8", "--lora_r", "3", "--lora_alpha", "6",
        "--lora_dropout", "0.1", "--lora_target_modules", "query",
    ], tmp_path)  # fmt: skip
    adapted = {name: module for name, module in trainer.model.named_modules() if hasattr(module, "lora_A")}
    assert adapted and all(name.endswith(".query") for name in adapted)  # lora_target_modules
    for module in adapted.values():
        assert module.r["default"] == 3 and module.scaling["default"] == 2.0  # lora_r, lora_alpha / lora_r
        assert module.lora_dropout["default"].p == 0.1  # lora_dropout


def test_the_other_fusions_knobs_reach_their_modules(tiny_bert_dir):
    from dwatt.modeling_dwatt import DWAttForTokenClassification
    from dwatt.tasks.runner import load_model

    def built(*argv):
        (model_args,) = parse_arguments((ModelArguments,), argv=["--model_name_or_path", str(tiny_bert_dir), *argv])
        return load_model(model_args, DWAttForTokenClassification, num_labels=3).dwatt

    deeper = built("--fusion", "deeper", "--deeper_num_layers", "2", "--deeper_intermediate_size", "7")
    assert len(deeper.deeper) == 2 and deeper.deeper[0].intermediate.out_features == 7
    mix = built("--fusion", "scalar_mix", "--scalar_mix_layer_norm", "true")
    assert isinstance(mix.fusion, DWAttScalarMix) and mix.fusion.layer_norm is True
    concat = built("--fusion", "concat", "--fusion_layers", "1,2")
    assert isinstance(concat.fusion, DWAttConcatFusion) and concat.fusion.layer_indices == [1, 2]
    assert concat.fusion.layer_norm is False  # BERT is post-LN: fusion_layer_norm's default is off
    for fusion in ("concat", "scalar_mix", "mean"):
        assert built("--fusion", fusion, "--fusion_layer_norm", "true").fusion.layer_norm is True


CLASSIFICATION_TYPES = (ModelArguments, ClassificationDataArguments, TrainingArguments)


def test_classification_flags_reach_the_trainer(monkeypatch, tiny_bert_dir, tmp_path):
    rows = "".join(f'{{"sentence": "{i} text", "second": "other {i}", "y": "{"ab"[i % 2]}"}}\n' for i in range(30))
    (tmp_path / "train.jsonl").write_text(rows)
    (tmp_path / "dev.jsonl").write_text(rows)
    trainer, *_ = capture(monkeypatch, classification, classification.run_classification, CLASSIFICATION_TYPES, [
        "--model_name_or_path", tiny_bert_dir, "--train_file", tmp_path / "train.jsonl", "--validation_file",
        tmp_path / "dev.jsonl", "--text_column", "sentence", "--text_pair_column", "second", "--label_column", "y",
        "--few_shot_k", "10", "--few_shot_seed", "2", "--max_eval_samples", "4", "--max_seq_length", "6",
        "--do_eval", "--freeze_backbone", "--cache_backbone_features",
    ], tmp_path)  # fmt: skip
    assert trainer.model.config.id2label == {0: "a", 1: "b"}  # label_column
    assert trainer.backbone_forward_cached  # cache_backbone_features (it was recorded and ignored here)
    assert len(trainer.train_dataset) == 10 and len(trainer.eval_dataset) == 4  # few_shot_k, max_eval_samples
    first = trainer.train_dataset[0]["input_ids"]
    assert len(first) == 6  # max_seq_length (a pair of two words each: 2 x [CLS/SEP] + words, cut at 6)
    assert first.count(102) == 2  # text_pair_column: two segments, each closed by [SEP]
    raw, _ = classification.load_classification_data(ClassificationDataArguments(
        train_file=str(tmp_path / "train.jsonl"), test_file=str(tmp_path / "dev.jsonl"), text_column="sentence",
        label_column="y", max_predict_samples=3))  # fmt: skip
    assert "test" in raw  # test_file (max_predict_samples is applied by run_classification, below)
    expected = sample_few_shot(raw["train"], 10, 2)["sentence"]  # few_shot_seed: that seed's sample
    texts = [
        trainer.processing_class.decode(ids, skip_special_tokens=True) for ids in trainer.train_dataset["input_ids"]
    ]
    assert [text.split()[0] for text in texts] == [sentence.split()[0] for sentence in expected]


def test_classification_dataset_names_and_predict_limit(monkeypatch, tmp_path):
    asked = []
    monkeypatch.setattr(classification, "load_dataset", lambda *args, **kwargs: asked.append(args) or
                        classification.load_bundled_polarity())  # fmt: skip
    classification.load_classification_data(
        ClassificationDataArguments(dataset_name="glue", dataset_config_name="sst2")
    )
    assert asked == [("glue", "sst2")]
    assert len(classification._first_n(classification.load_bundled_polarity()["test"], 3)) == 3


MLM_TYPES = (ModelArguments, MlmDataArguments, TrainingArguments)


def test_mlm_flags_reach_the_trainer(monkeypatch, tiny_bert_dir, tmp_path):
    text = "\n".join(f"document number {i} " + "word " * 40 for i in range(20))
    (tmp_path / "train.txt").write_text(text)
    trainer, *_ = capture(monkeypatch, mlm, mlm.run_mlm, MLM_TYPES, [
        "--model_name_or_path", tiny_bert_dir, "--train_file", tmp_path / "train.txt", "--max_seq_length", "16",
        "--max_train_samples", "7", "--mlm_probability", "0.3", "--validation_split_percentage", "10",
        "--do_eval", "--max_eval_samples", "2",
    ], tmp_path)  # fmt: skip
    assert len(trainer.train_dataset) == 7 and {len(ids) for ids in trainer.train_dataset["input_ids"]} == {16}
    assert len(trainer.eval_dataset) == 2  # validation_split_percentage made a validation split; max_eval_samples
    assert trainer.data_collator.mlm_probability == 0.3
    held_out = mlm.load_mlm_data(MlmDataArguments(train_file=str(tmp_path / "train.txt"),
                                                  validation_split_percentage=25), seed=0)  # fmt: skip
    assert len(held_out["validation"]) == 5 and len(held_out["train"]) == 15
    (tmp_path / "data.csv").write_text("body\n" + "\n".join(f'"text {i}"' for i in range(4)))
    with pytest.raises(ValueError, match="no 'text' column"):
        mlm.load_mlm_data(MlmDataArguments(train_file=str(tmp_path / "data.csv")), seed=0)
    assert mlm.load_mlm_data(MlmDataArguments(train_file=str(tmp_path / "data.csv"), text_column="body"), seed=0)
    asked = []
    monkeypatch.setattr(mlm, "load_dataset", lambda *args: asked.append(args) or mlm.load_lee_corpus())
    mlm.load_mlm_data(MlmDataArguments(dataset_name="wikitext", dataset_config_name="wikitext-2-raw-v1"), seed=0)
    assert asked == [("wikitext", "wikitext-2-raw-v1")]


#: Flags whose effect another test shows (file, test).
ELSEWHERE = {
    "ignore_mismatched_sizes": ("test_reliability.py",
                                "test_ignore_mismatched_sizes_continues_a_checkpoint_with_another_label_set"),
    "stride": ("test_reliability.py", "test_a_stride_too_large_for_the_window_is_refused_before_training"),
}  # fmt: skip
PROBED = {
    ModelArguments: {
        "model_name_or_path", "fusion", "fusion_layers", "dwatt_scale", "dwatt_pos_dim", "dwatt_query_ratio",
        "dwatt_value_ratio", "dwatt_recompute_values", "fusion_dropout", "fusion_init", "scalar_mix_layer_norm",
        "fusion_layer_norm", "deeper_num_layers", "deeper_intermediate_size", "classifier_dropout", "freeze_backbone",
        "cache_backbone_features", "lora_r", "lora_alpha", "lora_dropout", "lora_target_modules",
        "fusion_learning_rate", "revision", "trust_remote_code", "ignore_mismatched_sizes",
    },
    NerDataArguments: {
        "dataset_name", "dataset_config_name", "train_file", "validation_file", "test_file", "few_shot_k",
        "few_shot_seed", "max_eval_samples", "max_predict_samples", "max_seq_length", "label_all_tokens", "stride",
    },
    ClassificationDataArguments: {
        "dataset_name", "dataset_config_name", "train_file", "validation_file", "test_file", "text_column",
        "text_pair_column", "label_column", "few_shot_k", "few_shot_seed", "max_eval_samples",
        "max_predict_samples", "max_seq_length",
    },
    MlmDataArguments: {
        "dataset_name", "dataset_config_name", "train_file", "validation_file", "text_column",
        "validation_split_percentage", "max_train_samples", "max_eval_samples", "max_seq_length", "mlm_probability",
    },
}  # fmt: skip


@pytest.mark.parametrize("arguments", list(PROBED), ids=lambda dataclass_type: dataclass_type.__name__)
def test_every_flag_has_a_check(arguments):
    fields = {field.name for field in dataclasses.fields(arguments) if field.init}
    assert fields == PROBED[arguments], "a flag was added or removed: give it a check in this file"
    for file, test in ELSEWHERE.values():
        assert (Path(__file__).parent / file).read_text().count(f"def {test}(") == 1


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[1] / "configs" / "args").glob("*.json")),
                         ids=lambda path: path.name)  # fmt: skip
def test_every_shipped_arguments_file_parses(path):
    """The JSON files the README's launch lines use pass the same checks as flags."""
    model_args, data_args, training_args = parse_arguments(NER_TYPES, argv=[str(path)])
    assert training_args.do_train and model_args.fusion == "dwatt" and data_args.few_shot_k == 200
