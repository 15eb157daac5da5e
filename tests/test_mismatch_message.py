"""The message `from_pretrained` gives when a checkpoint's shapes differ from what the config builds: every line a
user reads, whole, for each part that can disagree (head and label map, fusion, backbone) and each model type (a
head with labels, a head without, the base model). Loading tests elsewhere show when it is raised."""

import pytest
from conftest import TINY, VOCAB
from transformers import BertConfig

from dwatt import DWAttConfig, DWAttForMaskedLM, DWAttForTokenClassification, DWAttModel

FUSION_LINE = (
    "The fusion weights do not fit fusion='dwatt', fusion_layers='all', dwatt_pos_dim=24: config.json and the "
    "weights do not belong together (or a config override changed the fusion's shape)."
)
BACKBONE_LINE = "The backbone weights do not fit backbone_config: config.json and the weights disagree."


def built(model_class, **config):
    backbone = BertConfig(vocab_size=VOCAB, max_position_embeddings=64, **TINY)
    return model_class(DWAttConfig(backbone_config=backbone, fusion="dwatt", **config))


def label_line(num_labels: int, shown: int, more: bool) -> str:
    labels = [f"LABEL_{n}" for n in range(shown)]
    return (
        f"The head does not match the label map: the config asks for num_labels={num_labels} ({labels}"
        f"{' ...' if more else ''}). Give the checkpoint's own label map, or pass ignore_mismatched_sizes=True to "
        "start a new, untrained head for a new label set."
    )


def test_a_head_and_deeper_mismatch_names_every_weight_the_label_map_and_the_fusion():
    model = built(DWAttForTokenClassification, num_labels=9)
    mismatched = [
        ("classifier.weight", (3, 32), (9, 32)),
        ("classifier.bias", None, (9,)),  # transformers 4.x gives no checkpoint shape
        ("dwatt.deeper.0.qkv.weight", (), (96, 32)),
    ]
    assert model._mismatch_message("ckpt", mismatched).split("\n") == [
        "ckpt: 3 weight(s) in the checkpoint have other shapes than DWAttForTokenClassification builds from its "
        "config:",
        "  classifier.weight: checkpoint 3x32, model 9x32",
        "  classifier.bias: checkpoint another shape, model 9",
        "  dwatt.deeper.0.qkv.weight: checkpoint scalar, model 96x32",
        label_line(9, shown=8, more=True),
        FUSION_LINE,
    ]


@pytest.mark.parametrize("num_labels", [8, 3])
def test_a_short_label_map_is_shown_whole(num_labels):
    model = built(DWAttForTokenClassification, num_labels=num_labels)
    message = model._mismatch_message("ckpt", [("classifier.bias", (2,), (num_labels,))])
    assert message.split("\n")[-1] == label_line(num_labels, shown=num_labels, more=False)


def test_a_fusion_mismatch_under_a_labelled_head_says_nothing_about_labels():
    model = built(DWAttForTokenClassification, num_labels=3)
    message = model._mismatch_message("ckpt", [("dwatt.fusion.key_weight", (24, 16), (24, 32))])
    assert message.split("\n")[1:] == ["  dwatt.fusion.key_weight: checkpoint 24x16, model 24x32", FUSION_LINE]


def test_a_head_without_labels_blames_the_config_and_the_weights():
    model = built(DWAttForMaskedLM)
    message = model._mismatch_message("ckpt", [("lm_head.dense.weight", (16, 32), (32, 32))])
    assert message.split("\n")[-1] == (
        "The task head's weights do not fit the config: config.json and the weights disagree."
    )


def test_the_base_model_names_fusion_and_backbone_and_has_no_head_to_blame():
    model = built(DWAttModel)
    mismatched = [
        ("fusion.key_weight", (24, 16), (24, 32)),
        ("backbone.embeddings.word_embeddings.weight", (99, 16), (99, 32)),
    ]
    assert model._mismatch_message("ckpt", mismatched).split("\n") == [
        "ckpt: 2 weight(s) in the checkpoint have other shapes than DWAttModel builds from its config:",
        "  fusion.key_weight: checkpoint 24x16, model 24x32",
        "  backbone.embeddings.word_embeddings.weight: checkpoint 99x16, model 99x32",
        FUSION_LINE,
        BACKBONE_LINE,
    ]
