"""Tag the words of a file of any size with a trained NER model: JSON lines, CoNLL columns or plain text.

    dwatt tag outputs/my-ner --input tweets.jsonl --output tagged.jsonl
    dwatt tag model.onnx --tokenizer outputs/my-ner --input corpus.text --output tagged.jsonl   # ONNX Runtime
    accelerate launch --num_processes 2 -m dwatt tag outputs/my-ner --input big.conll --output tagged.conll

Streamed in chunks with a progress bar; run the same command again after a kill and it goes on where it stopped,
ending with the bytes an uninterrupted run writes. Formats are told by the suffix (`.jsonl`, `.conll`/`.txt`/`.tsv`,
`.text`) or `--format`; see `dwatt.tagging`. Refused before anything is written: an output that is the input, an
output suffix of another format than the one written (a JSON-lines or plain-text input is written as JSON lines, a
CoNLL one as CoNLL), a checkpoint that is not a token classifier (as `dwatt space` refuses it), a column file whose
lines have different column counts (plain text named .txt), a .txt/.tsv file that looks like plain text or a table of
texts (a first column of several words; one sentence of several columns, the last not a tag: `--format conll` or a
.conll name reads it as columns all the same), a JSON-lines record that already has `tags`, and an existing output
of another run (another input, model, tokenizer, chunk size, ...: see `<output>.tagging.json`; remove the output to
start afresh).
"""

import argparse
import logging
from pathlib import Path

from ..cli import command
from ..hub.space import check_model, check_token_classifier
from ..tagging import OnnxTokenClassifier, check_paths, format_of, join_parts, tag_file
from ..validation import ArgumentError


@command
def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="dwatt tag", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("model", help="a trained NER checkpoint folder, or an exported .onnx file")
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--format", choices=["jsonl", "conll", "text"],
                        help="default: told by the input's suffix (.txt/.tsv also checked for plain text)")  # fmt: skip
    parser.add_argument("--tokenizer", help="where the tokenizer is (default: the model's folder)")
    parser.add_argument("--chunk_size", type=int, default=256, help="records per written chunk (the resume unit)")
    parser.add_argument("--batch_size", type=int, default=32, help="windows per forward pass")
    parser.add_argument("--max_seq_length", type=int, help="sub-words per window (default: the model's)")
    parser.add_argument("--no_progress", action="store_true")
    args = parser.parse_args(argv)
    if args.chunk_size < 1 or args.batch_size < 1:
        raise ArgumentError(f"--chunk_size {args.chunk_size} --batch_size {args.batch_size}; expected both >= 1")
    fmt = format_of(args.input, args.format)
    check_paths(args.input, args.output, fmt)
    model_path = Path(args.model)
    onnx = model_path.suffix == ".onnx"
    if not onnx:
        check_model(args.model, dwatt_only=False)  # dwatt space's check; any token classifier can tag
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s - %(name)s - %(message)s")
    logging.getLogger("dwatt").setLevel(logging.INFO)  # what tagging counts and reports
    from accelerate import PartialState

    from ..data.tokenization import load_word_tokenizer

    state = PartialState(cpu=True)
    if onnx:
        engine = OnnxTokenClassifier(model_path)
    else:
        from transformers import AutoModelForTokenClassification

        engine = AutoModelForTokenClassification.from_pretrained(args.model).eval()
        if not model_path.exists():  # a Hub repo id: its config is known once loaded
            check_token_classifier(engine.config.to_dict(), args.model, dwatt_only=False)
    tokenizer = load_word_tokenizer(args.tokenizer or str(model_path.parent if onnx else model_path))
    show_progress = not args.no_progress and state.is_main_process
    tag_file(engine, tokenizer, args.input, args.output, args.format, args.chunk_size, args.batch_size,
             args.max_seq_length, (state.process_index, state.num_processes), progress=show_progress)  # fmt: skip
    if state.num_processes > 1:
        state.wait_for_everyone()
        if state.is_main_process:
            join_parts(args.output, state.num_processes, fmt, args.chunk_size)
    if state.is_main_process:
        print(f"written: {args.output}")
