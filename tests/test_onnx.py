"""The whole model as one ONNX file: onnxruntime gives the PyTorch logits (and fusion weights) for every fusion at
any batch and length, the file runs in a process with onnxruntime and numpy alone, and int8 stays close."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from dwatt import DWAttForSequenceClassification, DWAttForTokenClassification
from dwatt.configuration_dwatt import FUSIONS
from dwatt.export import export_onnx, quantize_int8

ort = pytest.importorskip("onnxruntime")


def tiny(head, tiny_bert_dir, fusion):
    torch.manual_seed(0)
    model = head.from_backbone(str(tiny_bert_dir), fusion=fusion, num_labels=5,
                               id2label={i: f"L{i}" for i in range(5)})  # fmt: skip
    with torch.no_grad():  # a head and fusion away from their initial values
        for parameter in model.parameters():
            parameter.add_(0.02 * torch.randn_like(parameter))
    return model.eval()


def feeds(tokenizer, texts):
    encoded = tokenizer(texts, padding=True, return_tensors="np")
    return {name: value.astype(np.int64) for name, value in encoded.items()}


TEXTS = ["Ada Lovelace lived in London with Charles Babbage", "hello", "Paris is in France"]


@pytest.mark.parametrize("fusion", [pytest.param(f, marks=() if f == "dwatt" else pytest.mark.slow) for f in FUSIONS])
def test_onnx_runtime_gives_the_pytorch_logits_of_every_fusion(fusion, tiny_bert_dir, tmp_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    model = tiny(DWAttForTokenClassification, tiny_bert_dir, fusion)
    weights = fusion in ("dwatt", "scalar_mix", "mean")
    exported = export_onnx(model, tokenizer, tmp_path / "model.onnx", fusion_weights=weights)
    session = ort.InferenceSession(str(exported.path))
    for texts in (TEXTS, TEXTS[:1], ["a b c d e f g h i j k l m n o p q r s t u v w x y z " * 3]):  # any batch, length
        inputs = feeds(tokenizer, texts)
        got = session.run(None, inputs)
        with torch.no_grad():
            expected = model(**{k: torch.from_numpy(v) for k, v in inputs.items()}, output_fusion_weights=weights)
        np.testing.assert_allclose(got[0], expected.logits.numpy(), rtol=0, atol=1e-4)
        if weights:
            np.testing.assert_allclose(got[1], expected.fusion_weights.numpy(), rtol=0, atol=1e-5)
    metadata = session.get_modelmeta().custom_metadata_map
    assert json.loads(metadata["id2label"]) == {str(i): f"L{i}" for i in range(5)} and metadata["fusion"] == fusion


def test_a_sentence_classifier_exports_too(tiny_bert_dir, tmp_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    model = tiny(DWAttForSequenceClassification, tiny_bert_dir, "dwatt")
    session = ort.InferenceSession(str(export_onnx(model, tokenizer, tmp_path / "cls.onnx").path))
    inputs = feeds(tokenizer, TEXTS)
    with torch.no_grad():
        expected = model(**{k: torch.from_numpy(v) for k, v in inputs.items()}).logits.numpy()
    np.testing.assert_allclose(session.run(None, inputs)[0], expected, rtol=0, atol=1e-4)
    assert session.get_modelmeta().custom_metadata_map["task"] == "text-classification"


def test_the_file_runs_with_onnxruntime_and_numpy_alone_and_int8_stays_close(tiny_bert_dir, tmp_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    model = tiny(DWAttForTokenClassification, tiny_bert_dir, "dwatt")
    path = export_onnx(model, tokenizer, tmp_path / "model.onnx").path
    inputs = feeds(tokenizer, TEXTS)
    np.savez(tmp_path / "inputs.npz", **inputs)
    script = (
        "import sys; sys.modules['torch'] = None; sys.modules['dwatt'] = None; sys.modules['transformers'] = None\n"
        "import json, numpy as np, onnxruntime as ort\n"
        f"session = ort.InferenceSession({str(path)!r})\n"
        f"inputs = dict(np.load({str(tmp_path / 'inputs.npz')!r}))\n"
        "logits = session.run(None, inputs)[0]\n"
        "labels = json.loads(session.get_modelmeta().custom_metadata_map['id2label'])\n"
        "print(json.dumps([[labels[str(i)] for i in row] for row in logits.argmax(-1)]))\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-2000:]
    with torch.no_grad():
        expected = model(**{k: torch.from_numpy(v) for k, v in inputs.items()}).logits.argmax(-1)
    assert json.loads(completed.stdout) == [[f"L{int(i)}" for i in row] for row in expected]

    int8 = quantize_int8(path)
    quantised = ort.InferenceSession(str(int8)).run(None, inputs)[0]
    full = ort.InferenceSession(str(path)).run(None, inputs)[0]
    assert np.abs(quantised - full).max() < 0.1 * np.abs(full).max()  # close, not equal: weights in int8
    assert ort.InferenceSession(str(int8)).get_modelmeta().custom_metadata_map["fusion"] == "dwatt"


def test_int8_can_keep_the_fusion_in_float32_and_quantise_the_rest(tiny_bert_dir, tmp_path):
    import onnx
    from transformers import AutoTokenizer

    from dwatt.export import fusion_nodes

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    path = export_onnx(tiny(DWAttForTokenClassification, tiny_bert_dir, "dwatt"), tokenizer, tmp_path / "m.onnx").path
    source = onnx.load(str(path))
    fusion = fusion_nodes(source, path)

    def quantised(file):  # (products in int8 inside the fusion, products in int8 in all)
        names = [n.name for n in onnx.load(str(file)).graph.node if n.op_type == "MatMulInteger"]
        return sum(name.startswith(tuple(fusion)) for name in names), len(names)  # named <source node>..._quant

    in_fusion, in_all = quantised(quantize_int8(path))
    kept_in_fusion, kept_in_all = quantised(quantize_int8(path, keep_fusion_float32=True))
    assert in_fusion > 0 and kept_in_fusion == 0
    assert kept_in_all == in_all - in_fusion  # the backbone and head are quantised as before
    session = ort.InferenceSession(str(path.with_suffix(".int8-fusion-fp32.onnx")))
    assert session.get_modelmeta().custom_metadata_map["quantized"] == "int8 dynamic; fusion in float32"

    stripped = tmp_path / "foreign.onnx"
    del source.metadata_props[:]
    onnx.save(source, str(stripped))
    with pytest.raises(ValueError, match=r"foreign.onnx has no 'fusion_scope' in its metadata"):
        quantize_int8(stripped, keep_fusion_float32=True)


def test_keeping_the_fusion_in_float32_without_int8_is_refused(capsys, tmp_path):
    from dwatt.cli import main

    with pytest.raises(SystemExit) as exit:
        main(["export-onnx", str(tmp_path), "--output", str(tmp_path / "m.onnx"), "--keep_fusion_float32"])
    assert exit.value.code == 2 and "--keep_fusion_float32 changes the int8 copy; add --int8" in capsys.readouterr().err


def saved_as(architecture, tiny_bert_dir, folder):
    """A tiny token classifier saved with the tokenizer, its config.json naming `architecture`."""
    from transformers import AutoTokenizer

    tiny(DWAttForTokenClassification, tiny_bert_dir, "dwatt").save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_bert_dir).save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "architectures": [architecture]}))
    return folder


@pytest.mark.parametrize("architecture", ["DWAttForMaskedLM", "DWAttModel"])
def test_export_refuses_a_head_it_cannot_export_by_name(architecture, tiny_bert_dir, tmp_path, capsys):
    """A masked LM's or a bare backbone's checkpoint was loaded as a token classifier (a new, random 2-label head)
    and exported as 'token-classification', exit 0."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from dwatt.cli import main

    folder = saved_as(architecture, tiny_bert_dir, tmp_path / "mlm")
    with pytest.raises(SystemExit) as exit:
        main(["export-onnx", str(folder), "--output", str(tmp_path / "m.onnx")])
    assert exit.value.code == 1 and not (tmp_path / "m.onnx").exists()
    assert (
        f"error: {folder / 'config.json'}: architectures ['{architecture}']; expected one of "
        "DWAttForTokenClassification, DWAttForSequenceClassification (the heads export-onnx exports, as saved by "
        "`dwatt ner` or `dwatt classification`)"
    ) in capsys.readouterr().err
    model = AutoModelForTokenClassification.from_pretrained(folder)  # the Python API, e.g. with a Hub id
    with pytest.raises(ValueError, match=rf"DWAttForTokenClassification loaded from a checkpoint saved as "
                                         rf"\['{architecture}'\]: its head was not trained"):  # fmt: skip
        export_onnx(model, AutoTokenizer.from_pretrained(folder), tmp_path / "m.onnx")


def test_bench_onnx_scores_only_checkpoints_with_the_datas_labels(tiny_bert_dir, tmp_path):
    """Predictions were scored through WNUT-16's label list whatever the checkpoint's id2label: refused when the
    label sets differ, mapped by name when only the order differs."""
    from dwatt.data.corpora import load_wnut16
    from dwatt.experiments.onnx_speed import data_label_indices, onnx_speed_report

    folder = saved_as("DWAttForTokenClassification", tiny_bert_dir, tmp_path / "ner")  # labels L0 ... L4
    with pytest.raises(ValueError) as error:
        onnx_speed_report(str(folder), 1, 1, "dwatt bench-onnx")
    wnut = load_wnut16()["test"].features["ner_tags"].feature.names
    assert str(error.value) == (
        f"{folder}: config.json's id2label has the labels ['L0', 'L1', 'L2', 'L3', 'L4']; expected the evaluation "
        f"data's (WNUT-16 test split) {wnut}, in any order"
    )
    reordered = list(reversed(wnut))
    indices = data_label_indices(dict(enumerate(reordered)), wnut, "ckpt")
    assert [wnut[index] for index in indices] == reordered  # model id -> the data's id of the same name
    assert list(data_label_indices({str(i): name for i, name in enumerate(wnut)}, wnut, "ckpt")) == list(
        range(len(wnut))
    )
    cls = saved_as("DWAttForSequenceClassification", tiny_bert_dir, tmp_path / "cls")
    with pytest.raises(ValueError, match=r"architectures \['DWAttForSequenceClassification'\]; expected a token"):
        onnx_speed_report(str(cls), 1, 1, "dwatt bench-onnx")
