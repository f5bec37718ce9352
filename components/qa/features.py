"""SQuAD examples -> model features (one row per window of a long context).

Both functions take a batch of examples as `datasets.Dataset.map(batched=True)`
passes it and return a dict of columns, one row per feature:

    train_features = train.map(prepare_train_features, batched=True,
                               remove_columns=train.column_names,
                               fn_kwargs={"tokenizer": tokenizer})

Windows: the question comes first and only the context is truncated; a long
context becomes overlapping windows sharing `doc_stride` tokens (the tokenizer's
own `stride`). Tokenizers that pad on the left get (context, question) instead,
as Hugging Face's run_qa.py does.

Labels (train): a window that holds the whole answer is labelled with the first
and the last token covering it; a window holding part of it or none of it, and
every unanswerable example, is labelled with the CLS index for both positions.
A clipped span for a partial overlap would teach the model truncated answers.

Validation features keep `example_id`, `cls_index` and `offset_mapping`, with
the offsets of every non-context token set to None: post-processing can only
pick context tokens.

Features keep their true length (the collator pads each batch); pass
`pad_to_max_length=True` for benchmarks and fixed-shape hardware.

`as_arrow` turns either function's columns into a typed Arrow table, which
`datasets.map` writes as it is instead of inferring (and, for the nested
`offset_mapping`, walking) every value; `validation_features_table` builds that
table for validation features without the per-token lists at all.
`components.io.featurize.map_features` uses both, with the column types `datasets`
would infer.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from itertools import chain
from typing import Any

import numpy as np
import pyarrow as pa

from components.qa.answers import check_answers
from components.qa.errors import InvalidInputError

REQUIRED_COLUMNS = {"train": ("id", "question", "context", "answers"),
                    "validation": ("id", "question", "context")}
# the types `datasets` infers for these columns (its int8/int32 optimisation included)
ARROW_TYPES = {
    "input_ids": pa.list_(pa.int32()), "token_type_ids": pa.list_(pa.int8()),
    "attention_mask": pa.list_(pa.int8()), "start_positions": pa.int64(),
    "end_positions": pa.int64(), "example_id": pa.string(), "cls_index": pa.int64(),
    "offset_mapping": pa.list_(pa.list_(pa.int64())),
}
TOKEN_COLUMNS = ("input_ids", "token_type_ids", "attention_mask")  # one int per token


def _check_columns(examples: dict[str, list], split: str) -> None:
    missing = [c for c in REQUIRED_COLUMNS[split] if c not in examples]
    if missing:
        raise InvalidInputError(
            f"missing column(s) {missing}; the batch has {sorted(examples)}",
            fix="Provide SQuAD columns id, question, context and answers "
                "({'text': [...], 'answer_start': [...]}).", field=missing[0])
    bad = next((i for i, (question, context) in enumerate(zip(examples["question"], examples["context"]))
                if type(question) is not str or type(context) is not str
                or not context or context.isspace()), None)
    if bad is not None:
        example_id, question, context = (examples[c][bad] for c in ("id", "question", "context"))
        field, value = ("question", question) if type(question) is not str else ("context", context)
        if isinstance(value, str):
            raise InvalidInputError("the context is empty",
                                    fix="Remove the example or give it its passage.",
                                    record=str(example_id), field="context")
        raise InvalidInputError(f"expected a string, got {type(value).__name__}",
                                fix="Every example needs a text question and context.",
                                record=str(example_id), field=field)
    if split == "train":
        for example_id, answers in zip(examples["id"], examples["answers"]):
            if (not isinstance(answers, dict) or not isinstance(answers.get("text"), list)
                    or not isinstance(answers.get("answer_start"), list)
                    or len(answers["text"]) != len(answers["answer_start"])
                    or not all(isinstance(t, str) for t in answers["text"])
                    or not all(isinstance(a, int) and not isinstance(a, bool)
                               for a in answers["answer_start"])):
                raise InvalidInputError(
                    f"expected {{'text': [str, ...], 'answer_start': [int, ...]}} of equal "
                    f"lengths, got {answers!r}",
                    fix="Use the SQuAD answers layout (an empty list for unanswerable).",
                    record=str(example_id), field="answers")


def _check_question_lengths(questions: list[str], ids: list, tokenizer,
                            max_length: int, doc_stride: int) -> None:
    """Reject questions that leave no more than `doc_stride` context tokens per window.

    The tokenizer would panic deep in Rust. A question has at most one token
    per UTF-8 byte (plus one prefix token), so only the rare long ones are
    tokenized here.
    """
    specials = tokenizer.num_special_tokens_to_add(pair=True)
    limit = max_length - specials - doc_stride  # question tokens must stay below this
    suspects = [i for i, q in enumerate(questions) if len(q.encode("utf-8")) + 1 >= limit]
    if not suspects:
        return
    lengths = tokenizer([questions[i] for i in suspects], add_special_tokens=False,
                        return_attention_mask=False, return_token_type_ids=False)["input_ids"]
    for i, ids_ in zip(suspects, lengths):
        if len(ids_) >= limit:
            raise InvalidInputError(
                f"the question has {len(ids_)} tokens, which leaves "
                f"{max_length - specials - len(ids_)} context tokens per window; at least "
                f"doc_stride + 1 = {doc_stride + 1} are needed",
                fix="Shorten the question, raise max_length or lower doc_stride.",
                record=str(ids[i]), field="question")


def _tokenize(examples: dict[str, list], tokenizer, max_length: int, doc_stride: int,
              pad_to_max_length: bool):
    if max_length <= doc_stride:
        raise InvalidInputError(f"doc_stride={doc_stride} must be below max_length={max_length}",
                                fix="Use e.g. max_length=384, doc_stride=128.",
                                field="doc_stride")
    questions = [q.lstrip() for q in examples["question"]]
    _check_question_lengths(questions, examples["id"], tokenizer, max_length, doc_stride)
    pad_on_right = tokenizer.padding_side == "right"
    context_id = 1 if pad_on_right else 0
    if not questions:  # the tokenizer itself fails on an empty batch
        return {name: [] for name in (*tokenizer.model_input_names, "offset_mapping",
                                      "overflow_to_sample_mapping")}, context_id
    first, second = (questions, examples["context"]) if pad_on_right else (examples["context"], questions)
    encoded = tokenizer(
        first, second,
        truncation="only_second" if pad_on_right else "only_first",
        max_length=max_length,
        stride=doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding="max_length" if pad_to_max_length else False,
    )
    return encoded, context_id


def _context_span(sequence_ids: list, context_id: int) -> tuple[int, int]:
    """First and last token index of the context in one window."""
    start = sequence_ids.index(context_id)
    end = len(sequence_ids) - 1 - sequence_ids[::-1].index(context_id)
    return start, end


def _cls_index(input_ids: list[int], cls_token_id: int | None) -> int:
    return input_ids.index(cls_token_id) if cls_token_id in input_ids else 0


def as_arrow(features: dict[str, list]) -> pa.Table:
    """The columns of either feature function as an Arrow table of `ARROW_TYPES`
    (the type of any other column, e.g. a tokenizer's `special_tokens_mask`, is inferred)."""
    return pa.table({name: _int_lists(column, ARROW_TYPES[name]) if name in TOKEN_COLUMNS
                     else pa.array(column, type=ARROW_TYPES.get(name))
                     for name, column in features.items()})


def _int_lists(rows: list, list_type: pa.ListType) -> pa.ListArray:
    """Rows of ints as an Arrow list array through one flat numpy buffer: a third faster
    than `pa.array`, which checks the Python type of every value."""
    _, offsets = _row_offsets(rows)
    values = np.fromiter(chain.from_iterable(rows), dtype=list_type.value_type.to_pandas_dtype(),
                         count=int(offsets[-1]))
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(values))


def _row_offsets(rows: list) -> tuple[np.ndarray, np.ndarray]:
    """(R,) lengths and (R + 1,) offsets of the first item of each row, items end to end."""
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(lengths)
    return lengths, offsets


def answer_token_span(offsets: list, context_start: int, context_end: int,
                      start_char: int, end_char: int) -> tuple[int, int] | None:
    """First and last token covering context[start_char:end_char], or None if the
    window does not hold the whole answer.

    Context offsets increase monotonically, so both ends are binary searches.
    """
    if offsets[context_start][0] > start_char or offsets[context_end][1] < end_char:
        return None
    lo, hi = context_start, context_end + 1
    first = bisect_right(offsets, start_char, lo, hi, key=lambda o: o[1])  # first token ending after start
    last = bisect_left(offsets, end_char, lo, hi, key=lambda o: o[0]) - 1  # last token starting before end
    if first > last:  # the answer covers no token (e.g. only characters the tokenizer drops)
        return None
    return first, last


def prepare_train_features(examples: dict[str, list], tokenizer, max_length: int = 384,
                           doc_stride: int = 128, pad_to_max_length: bool = False,
                           answer_policy: str = "error") -> dict[str, list]:
    """Tokenize a batch of SQuAD examples into labelled training windows."""
    _check_columns(examples, "train")
    examples, _ = check_answers(examples, policy=answer_policy)
    encoded, context_id = _tokenize(examples, tokenizer, max_length, doc_stride, pad_to_max_length)
    sample_map = encoded.pop("overflow_to_sample_mapping")
    offset_mapping = encoded.pop("offset_mapping")
    start_positions, end_positions = [], []
    cls_token_id = tokenizer.cls_token_id  # a property lookup: once, not per window
    for i, (offsets, sample) in enumerate(zip(offset_mapping, sample_map)):
        cls_index = _cls_index(encoded["input_ids"][i], cls_token_id)
        answers = examples["answers"][sample]
        span = None
        if answers["text"]:
            start_char = answers["answer_start"][0]
            end_char = start_char + len(answers["text"][0])
            context_start, context_end = _context_span(encoded.sequence_ids(i), context_id)
            span = answer_token_span(offsets, context_start, context_end, start_char, end_char)
        start, end = span if span else (cls_index, cls_index)
        start_positions.append(start)
        end_positions.append(end)
    features = dict(encoded)
    features["start_positions"] = start_positions
    features["end_positions"] = end_positions
    return features


def prepare_validation_features(examples: dict[str, list], tokenizer, max_length: int = 384,
                                doc_stride: int = 128,
                                pad_to_max_length: bool = False) -> dict[str, list]:
    """Tokenize a batch of SQuAD examples into windows that post-processing maps back."""
    features, offset_mapping, spans = _validation_windows(examples, tokenizer, max_length,
                                                          doc_stride, pad_to_max_length)
    features["offset_mapping"] = [
        [None] * start + offsets[start:end + 1] + [None] * (len(offsets) - end - 1)
        for offsets, (start, end) in zip(offset_mapping, spans)]
    return features


def validation_features_table(examples: dict[str, list], tokenizer, max_length: int = 384,
                              doc_stride: int = 128, pad_to_max_length: bool = False) -> pa.Table:
    """`prepare_validation_features` as the typed Arrow table `as_arrow` would make of it,
    with `offset_mapping` built from flat numpy buffers and a validity mask instead of
    per-token Python lists and Nones (half the cost of that column)."""
    features, offset_mapping, spans = _validation_windows(examples, tokenizer, max_length,
                                                          doc_stride, pad_to_max_length)
    return as_arrow(features).append_column("offset_mapping",
                                            _context_offsets(offset_mapping, spans))


def _validation_windows(examples: dict[str, list], tokenizer, max_length: int, doc_stride: int,
                        pad_to_max_length: bool) -> tuple[dict[str, list], list, list]:
    """The validation columns but `offset_mapping`; the tokenizer's offsets of every
    window; each window's (first, last) context token."""
    _check_columns(examples, "validation")
    encoded, context_id = _tokenize(examples, tokenizer, max_length, doc_stride, pad_to_max_length)
    sample_map = encoded.pop("overflow_to_sample_mapping")
    offset_mapping = encoded.pop("offset_mapping")
    spans = [_context_span(encoded.sequence_ids(i), context_id) for i in range(len(sample_map))]
    features: dict[str, Any] = dict(encoded)
    ids = examples["id"]
    cls_token_id = tokenizer.cls_token_id  # a property lookup: once, not per window
    features["example_id"] = [ids[sample] for sample in sample_map]
    features["cls_index"] = [_cls_index(row, cls_token_id) for row in features["input_ids"]]
    return features, offset_mapping, spans


def _context_offsets(offset_mapping: list, spans: list) -> pa.ListArray:
    """The `offset_mapping` column as Arrow: per token a [start, end] pair, null outside
    the window's context span (its two slots keep the tokenizer's values, unread)."""
    lengths, rows = _row_offsets(offset_mapping)  # rows: (F + 1,) first token of each window
    pairs = np.fromiter(chain.from_iterable(chain.from_iterable(offset_mapping)),
                        dtype=np.int64, count=2 * int(rows[-1]))
    first, last = np.asarray(spans, dtype=np.int64).reshape(-1, 2).T  # (F,) each
    position = np.arange(rows[-1]) - np.repeat(rows[:-1], lengths)  # token index in its window
    outside = (position < np.repeat(first, lengths)) | (position > np.repeat(last, lengths))
    tokens = pa.ListArray.from_arrays(pa.array(np.arange(0, 2 * rows[-1] + 1, 2, dtype=np.int32)),
                                      pa.array(pairs), mask=pa.array(outside))
    return pa.ListArray.from_arrays(pa.array(rows.astype(np.int32)), tokens)
