"""Word-level token-classification prediction on input of any length, with overlapping windows.

Training truncates sentences to `max_seq_length` sub-words (and counts what it cuts). Prediction must
not: `predict_word_labels` labels every word of sentences or whole documents many times longer than
that. Each input is tokenised once, its sub-words are cut into windows of `max_seq_length` (special
tokens included) that overlap by `stride` sub-words, every window goes through the model, and each
word takes its label from the first sub-word of the word in the window where that sub-word has the
most context on its smaller side. So with a stride `s`, a word is scored with at least `(s - 1) // 2`
sub-words of context on either side wherever the document has them (`stride` defaults to a quarter
of a window).

Words that the tokenizer turns into no sub-word at all (a zero-width space, a control character) are
fed as the unknown token so they still get a label; they are counted and logged.

Works with any `...ForTokenClassification` model whose tokenizer is a fast one (`word_ids`) and whose
special tokens sit only at the two ends of a single sequence (BERT, RoBERTa, XLM-R, DeBERTa, ELECTRA,
DistilBERT, MPNet, ModernBERT).
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from .data.tokenization import replace_words_without_subwords, words_without_subwords

__all__ = ["Window", "plan_windows", "predict_word_labels", "run_batches"]
T = TypeVar("T")
logger = logging.getLogger(__name__)

#: Fallback window length when the tokenizer does not state a usable `model_max_length`.
DEFAULT_MAX_SEQ_LENGTH = 512


@dataclass(frozen=True)
class Window:
    """Content sub-words `[start, end)` of one input that go through the model together."""

    start: int
    end: int


def plan_windows(num_subwords: int, window_size: int, stride: int) -> list[Window]:
    """Windows of at most `window_size` content sub-words covering `[0, num_subwords)`, each overlapping
    the previous one by `stride` sub-words (the last one may overlap more, ending at `num_subwords`)."""
    if window_size < 1:
        raise ValueError(f"window_size={window_size}; expected at least 1 content sub-word per window")
    if not 0 <= stride < window_size:
        raise ValueError(f"stride={stride}; expected 0 <= stride < {window_size} (the content sub-words per window)")
    if num_subwords <= window_size:
        return [Window(0, num_subwords)]
    step = window_size - stride
    windows = [Window(start, start + window_size) for start in range(0, num_subwords - window_size, step)]
    windows.append(Window(num_subwords - window_size, num_subwords))  # flush with the end: full context
    return windows


def _best_window(position: int, windows: Sequence[Window], starts: Sequence[int]) -> int:
    """Index of the window where `position` has the most context on its smaller side (first on ties).

    `starts` are the windows' start positions (increasing, as are their ends), so only the few windows
    that hold `position` are looked at: those just left of where `position` would be inserted.
    """
    best, best_context = 0, -1
    index = bisect.bisect_right(starts, position) - 1
    while index >= 0 and windows[index].end > position:
        window = windows[index]
        context = min(position - window.start, window.end - 1 - position)
        if context >= best_context:  # walking leftwards: ">=" keeps the first window on ties
            best, best_context = index, context
        index -= 1
    return best


def _encode_words(words: list[str], tokenizer: Any) -> tuple[Any, int]:
    """Encode a whole input (no truncation); words without sub-words become the unknown token.

    Returns the encoding and how many words were replaced.
    """

    def encode(items):
        # verbose=False: the input is longer than the model on purpose, windows come next.
        return tokenizer(items, is_split_into_words=True, truncation=False, verbose=False)

    encoding = encode(words)
    missing = words_without_subwords(encoding.word_ids(), len(words))
    if missing:
        encoding = encode(replace_words_without_subwords(words, missing, tokenizer))
    return encoding, len(missing)


def _split_special_tokens(encoding: Any) -> tuple[int, int]:
    """(number of special tokens before the content, number after) of a single-sequence encoding."""
    word_ids = encoding.word_ids()
    content = [position for position, word in enumerate(word_ids) if word is not None]
    if not content:
        return len(word_ids), 0
    if any(word_ids[position] is None for position in range(content[0], content[-1] + 1)):
        raise ValueError("special tokens inside the sequence are not supported; expected them only at the two ends")
    return content[0], len(word_ids) - content[-1] - 1


def _normalise_inputs(inputs: Sequence[str] | Sequence[Sequence[str]]) -> list[list[str]]:
    """A list of word lists: a string is split on whitespace (a document), a list of words is kept."""
    if isinstance(inputs, str):
        raise TypeError("inputs must be a list of texts or of word lists, not one string; wrap it in a list")
    normalised = []
    for index, item in enumerate(inputs):
        if isinstance(item, str):
            normalised.append(item.split())
        elif isinstance(item, Sequence) and all(isinstance(word, str) for word in item):
            normalised.append(list(item))
        else:
            raise TypeError(f"inputs[{index}] is {type(item).__name__}; expected a string or a list of strings")
    return normalised


def _default_max_seq_length(tokenizer: Any) -> int:
    limit = getattr(tokenizer, "model_max_length", None)
    return int(limit) if isinstance(limit, int) and 0 < limit < 100_000 else DEFAULT_MAX_SEQ_LENGTH


def learned_positions(model: Any) -> int | None:
    """How many positions the model's learned position embeddings can number (RoBERTa-style embeddings start
    after the padding index); None when it has none (relative or rotary positions)."""
    for name, module in model.named_modules():
        if name.endswith("position_embeddings") and isinstance(module, torch.nn.Embedding):
            offset = module.padding_idx + 1 if module.padding_idx is not None else 0
            return module.num_embeddings - offset
    return None


def _windows_of(
    words: list[str], tokenizer: Any, max_seq_length: int, stride: int | None
) -> tuple[list[dict[str, list[int]]], list[tuple[int, int]], int]:
    """Model inputs of one input's windows, each word's (window, position of its first sub-word there),
    and how many words were fed as the unknown token."""
    if not words:
        return [], [], 0
    encoding, num_replaced = _encode_words(words, tokenizer)
    before, after = _split_special_tokens(encoding)
    window_size = max_seq_length - before - after
    if window_size < 1:
        raise ValueError(f"max_seq_length={max_seq_length} leaves no room next to {before + after} special tokens")
    overlap = window_size // 4 if stride is None else stride
    if not 0 <= overlap < window_size:
        raise ValueError(
            f"stride={stride}; expected 0 <= stride < {window_size} (max_seq_length={max_seq_length} minus "
            f"{before + after} special tokens)"
        )
    total = len(encoding["input_ids"]) - before - after
    columns = {name: list(values) for name, values in encoding.items() if name != "offset_mapping"}
    windows = plan_windows(total, window_size, overlap)
    inputs = []
    for window in windows:
        keep = [*range(before), *range(before + window.start, before + window.end)]
        keep += range(before + total, before + total + after)
        inputs.append({name: [values[position] for position in keep] for name, values in columns.items()})

    first_subword: dict[int, int] = {}  # word -> content position of its first sub-word
    for position, word in enumerate(encoding.word_ids()):
        if word is not None and word not in first_subword:
            first_subword[word] = position - before
    starts = [window.start for window in windows]
    slots = []
    for word in range(len(words)):
        best = _best_window(first_subword[word], windows, starts)
        slots.append((best, before + first_subword[word] - windows[best].start))
    return inputs, slots, num_replaced


def predict_word_labels(
    model: Any,
    tokenizer: Any,
    inputs: Sequence[str] | Sequence[Sequence[str]],
    max_seq_length: int | None = None,
    stride: int | None = None,
    batch_size: int = 16,
) -> list[list[str]]:
    """One label per word for every input, however long, using overlapping windows.

    Args:
        model: a token-classification model (`model.config.id2label` names the labels).
        tokenizer: its fast tokenizer.
        inputs: word lists (pre-split, as in CoNLL files) or texts, which are split on whitespace.
        max_seq_length: sub-words per window, special tokens included (default: the tokenizer's
            `model_max_length`, else 512, at most the model's learned positions). Use the length the model
            was trained with.
        stride: sub-words shared by neighbouring windows; more overlap gives border words more
            context and costs more windows. Must be below the content sub-words per window
            (default: a quarter of them, e.g. 127 for 512-token windows).
        batch_size: windows per forward pass.

    Returns:
        For each input, a list with exactly one label per word (an empty input gives an empty list).
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("predict_word_labels needs a fast tokenizer (word_ids); load it with use_fast=True")
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}; expected a positive number of windows per forward pass")
    positions = learned_positions(model)
    if max_seq_length is None:
        max_seq_length = _default_max_seq_length(tokenizer)
        max_seq_length = max_seq_length if positions is None else min(max_seq_length, positions)
    elif positions is not None and max_seq_length > positions:
        raise ValueError(
            f"max_seq_length={max_seq_length} is more than the {positions} positions the model has learned; "
            f"expected at most {positions} (longer inputs are still labelled in full: windows of that size)"
        )
    id2label = {int(index): label for index, label in model.config.id2label.items()}
    words_per_input = _normalise_inputs(inputs)

    # Cut every input into windows; keep, per word, (window number, position in that window).
    windows_inputs: list[dict[str, list[int]]] = []
    word_slots: list[list[tuple[int, int]]] = []
    replaced = 0
    for words in words_per_input:
        windows, slots, num_replaced = _windows_of(words, tokenizer, max_seq_length, stride)
        word_slots.append([(len(windows_inputs) + window, position) for window, position in slots])
        windows_inputs.extend(windows)
        replaced += num_replaced
    if replaced:
        logger.warning(
            "%d word(s) gave no sub-word (zero-width or control characters?) and were fed as %r so they get a label",
            replaced, tokenizer.unk_token,
        )  # fmt: skip

    predicted_ids = _predict_windows(model, tokenizer, windows_inputs, batch_size)
    return [[id2label[predicted_ids[window][position]] for window, position in slots] for slots in word_slots]


def run_batches(
    model: Any, batches: Iterable[Mapping[str, Any]], consume: Callable[[Mapping[str, Any], Any], T], **forward_kwargs
) -> list[T]:
    """The one batched inference loop: `consume(batch, model(**inputs))` for every batch, in eval mode and
    without gradients, the model's mode restored afterwards.

    The inputs are the batch's tensors moved to the model's device, `labels` left out (no loss is computed);
    `consume` reduces each output to what the caller keeps (argmax ids, weights), so outputs are not held.
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            return [
                consume(batch, model(**{name: value.to(device) for name, value in batch.items() if name != "labels"},
                                     **forward_kwargs))
                for batch in batches
            ]  # fmt: skip
    finally:
        model.train(was_training)


def _predict_windows(
    model: Any, tokenizer: Any, windows: list[dict[str, list[int]]], batch_size: int
) -> list[list[int]]:
    """Argmax label id at every position of every window."""
    chunks = [windows[start : start + batch_size] for start in range(0, len(windows), batch_size)]
    # Right padding keeps every window's positions where the word slots expect them.
    batches = (tokenizer.pad(chunk, padding=True, padding_side="right", return_tensors="pt") for chunk in chunks)
    per_batch = run_batches(model, batches, lambda _, output: output.logits.argmax(dim=-1).tolist())
    return [
        row[: len(window["input_ids"])]
        for ids, chunk in zip(per_batch, chunks, strict=True)
        for row, window in zip(ids, chunk, strict=True)
    ]
