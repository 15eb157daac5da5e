"""PyTorch eager against ONNX Runtime (float32, int8, and int8 with the fusion kept in float32) on a trained NER
checkpoint: test entity F1 of each engine on the bundled WNUT-16 test split, and inference time at batch 1 and 32,
measured side by side in one process (engines interleaved, order rotated each repeat), reported as ratios to eager.

F1 is scored twice: one tweet per call, and in batches of 64 sorted by length. Dynamic int8 quantises each
activation tensor with one scale taken over the whole batch (every tweet in it), so its predictions for a tweet
depend on the tweets it is batched with; float32 engines give the same F1 both ways."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _batches(tokenized, collator, size: int) -> list[dict]:
    order = sorted(range(len(tokenized)), key=lambda i: len(tokenized[i]["input_ids"]))  # little padding
    return [collator([tokenized[i] for i in order[start : start + size]]) for start in range(0, len(order), size)]


def data_label_indices(id2label: dict, label_list: list[str], checkpoint: str) -> np.ndarray:
    """For each of the checkpoint's label ids, the index of the same label name in the evaluation data's label list
    (the identity when both list the labels in the same order). A checkpoint with another label set is refused,
    naming both: its predictions scored through the data's list would be another label's."""
    names = [id2label[index] for index in sorted(id2label, key=int)]
    if sorted(names) != sorted(label_list) or len(set(names)) != len(names):
        raise ValueError(
            f"{checkpoint}: config.json's id2label has the labels {names}; expected the evaluation data's "
            f"(WNUT-16 test split) {list(label_list)}, in any order"
        )
    return np.array([label_list.index(name) for name in names])


def onnx_speed_report(checkpoint: str, repeats: int, threads: int, command: str) -> str:
    import onnxruntime as ort
    from transformers import AutoModelForTokenClassification

    from ..data.corpora import load_wnut16
    from ..data.tokenization import load_word_tokenizer, make_token_collator, tokenize_ner_dataset
    from ..export import export_onnx, quantize_int8
    from ..metrics import compute_ner_metrics

    torch.set_num_threads(threads)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    from ..hub.space import check_model

    check_model(checkpoint, dwatt_only=False)  # a token classifier's folder (dwatt tag's and dwatt space's check)
    test = load_wnut16()["test"]
    label_list = test.features["ner_tags"].feature.names
    tokenizer = load_word_tokenizer(checkpoint)
    model = AutoModelForTokenClassification.from_pretrained(checkpoint).eval()
    to_data_label = data_label_indices(model.config.id2label, label_list, checkpoint)
    tokenized, _ = tokenize_ner_dataset(test, tokenizer, 128)
    collator = make_token_collator(tokenizer)
    with tempfile.TemporaryDirectory() as scratch:
        exported = export_onnx(model, tokenizer, Path(scratch) / "model.onnx")
        int8_fusion_fp32 = quantize_int8(exported.path, keep_fusion_float32=True)
        sessions = {"ONNX Runtime fp32": ort.InferenceSession(str(exported.path), options),
                    "ONNX Runtime int8": ort.InferenceSession(str(quantize_int8(exported.path)), options),
                    "ONNX Runtime int8, fusion fp32": ort.InferenceSession(str(int8_fusion_fp32), options)}  # fmt: skip
        names = exported.inputs

        def eager(batch):
            with torch.no_grad():
                return model(**{name: batch[name] for name in names}).logits.numpy()

        engines = {"PyTorch eager": eager}
        for label, session in sessions.items():
            engines[label] = lambda batch, s=session: s.run(
                None, {n: batch[n].numpy().astype(np.int64) for n in names}
            )[0]
        rows = []
        one_by_one, batched = _batches(tokenized, collator, 1), _batches(tokenized, collator, 64)
        for label, engine in engines.items():
            scores = []
            for scored in (one_by_one, batched):
                predictions = [to_data_label[row] for batch in scored for row in engine(batch).argmax(-1)]
                labels = [row for batch in scored for row in batch["labels"].numpy()]
                scores.append(compute_ner_metrics(predictions, labels, label_list, entity_level=False)["f1"])
            rows.append((label, *scores))
        timings = {size: {label: [] for label in engines} for size in (1, 32)}
        for size, count in ((1, 100), (32, len(tokenized))):
            batches = _batches(tokenized.select(range(count)), collator, size)
            for repeat in range(repeats):
                order = list(engines)[repeat % len(engines) :] + list(engines)[: repeat % len(engines)]
                for label in order:
                    started = time.perf_counter()
                    for batch in batches:
                        engines[label](batch)
                    timings[size][label].append((time.perf_counter() - started) / count)
    eager_f1 = rows[0][1]
    lines = [
        "# Inference engines: PyTorch eager, ONNX Runtime float32 and int8",
        "",
        f"`{command}` ({threads} thread(s), torch {torch.__version__}, onnxruntime {ort.__version__}). Checkpoint: "
        f"`{Path(checkpoint).name}`. Test entity F1 (seqeval) on the {len(tokenized)} WNUT-16 test tweets, one tweet "
        f"per call and in batches of 64 (sorted by length); change: from eager, one tweet per call; time per tweet: "
        f"median of {repeats} repeats, engines interleaved, at batch 1 (first 100 tweets) and batch 32 (all); ratio: "
        "eager's time over the engine's (above 1: faster than eager).",
        "",
        "| engine | test F1 | change | test F1, batches of 64 | ms / tweet, batch 1 | ratio | ms / tweet, batch 32 "
        "| ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, f1, batched_f1 in rows:
        medians = {size: statistics.median(timings[size][label]) for size in (1, 32)}
        base = {size: statistics.median(timings[size]["PyTorch eager"]) for size in (1, 32)}
        lines.append(
            f"| {label} | {f1:.4f} | {f1 - eager_f1:+.4f} | {batched_f1:.4f} | {1000 * medians[1]:.2f} | "
            f"{base[1] / medians[1]:.2f}x | "
            f"{1000 * medians[32]:.2f} | {base[32] / medians[32]:.2f}x |"
        )
    return "\n".join(lines) + "\n"
