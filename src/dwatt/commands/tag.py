"""Tag the words of a file of any size with a trained NER model: JSON lines, CoNLL columns or plain text.

    dwatt tag outputs/my-ner --input tweets.jsonl --output tagged.jsonl
    dwatt tag model.onnx --tokenizer outputs/my-ner --input corpus.text --output tagged.jsonl   # ONNX Runtime
    accelerate launch --num_processes 2 -m dwatt tag outputs/my-ner --input big.conll --output tagged.conll

Streamed in chunks with a progress bar; run the same command again after a kill and it goes on where it stopped,
ending with the bytes an uninterrupted run writes. Formats are told by the suffix (`.jsonl`, `.conll`/`.txt`/`.tsv`,
`.text`) or `--format`; see `dwatt.tagging`.
"""

import argparse
from pathlib import Path

from ..cli import command
from ..tagging import OnnxTokenClassifier, format_of, join_parts, tag_file
from ..validation import ArgumentError


@command
def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="dwatt tag", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("model", help="a trained NER checkpoint folder, or an exported .onnx file")
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--format", choices=["jsonl", "conll", "text"], help="default: told by the input's suffix")
    parser.add_argument("--tokenizer", help="where the tokenizer is (default: the model's folder)")
    parser.add_argument("--chunk_size", type=int, default=256, help="records per written chunk (the resume unit)")
    parser.add_argument("--batch_size", type=int, default=32, help="windows per forward pass")
    parser.add_argument("--max_seq_length", type=int, help="sub-words per window (default: the model's)")
    parser.add_argument("--no_progress", action="store_true")
    args = parser.parse_args(argv)
    if args.chunk_size < 1 or args.batch_size < 1:
        raise ArgumentError(f"--chunk_size {args.chunk_size} --batch_size {args.batch_size}; expected both >= 1")
    fmt = format_of(args.input, args.format)
    from accelerate import PartialState

    from ..data.tokenization import load_word_tokenizer

    state = PartialState(cpu=True)
    model_path = Path(args.model)
    onnx = model_path.suffix == ".onnx"
    tokenizer = load_word_tokenizer(args.tokenizer or str(model_path.parent if onnx else model_path))
    if onnx:
        engine = OnnxTokenClassifier(model_path)
    else:
        from transformers import AutoModelForTokenClassification

        engine = AutoModelForTokenClassification.from_pretrained(args.model).eval()
    show_progress = not args.no_progress and state.is_main_process
    tag_file(engine, tokenizer, args.input, args.output, fmt, args.chunk_size, args.batch_size, args.max_seq_length,
             (state.process_index, state.num_processes), progress=show_progress)  # fmt: skip
    if state.num_processes > 1:
        state.wait_for_everyone()
        if state.is_main_process:
            join_parts(args.output, state.num_processes, fmt, args.chunk_size)
    if state.is_main_process:
        print(f"written: {args.output}")
