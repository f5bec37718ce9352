"""Run an extractive QA model over validation features and score its answers.

    from components.qa.inference import evaluate_qa_model
    metrics, predictions = evaluate_qa_model(model, examples, features)
    metrics["f1"], predictions["56be4db0acb8001400a502ec"]["text"]

`predict_logits` is the forward pass: features sorted by length, large batches each
padded to its own longest feature, gathered back to the original feature order.
(`Trainer.predict` is not used: with length grouping on it returns rows in the
sampler's order.) `evaluate_qa_model` runs it chunk by chunk of examples
(`iter_example_chunks`), post-processes each chunk, and scores all predictions with
the official SQuAD rules, so the logits of a huge validation set are never held at once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from components.qa.errors import InvalidInputError
from components.qa.feature_table import example_rows, read_column
from components.qa.metrics import compute_squad_metrics
from components.qa.postprocess import format_predictions, postprocess_predictions
from components.qa.ragged import flatten, row_sums

MODEL_COLUMNS = ("input_ids", "token_type_ids", "attention_mask")


def predict_logits(model, features, batch_size: int = 128, device=None, pad_value: float = -1e4,
                   *, sort_by_length: bool = True, pad_to_length: int | None = None,
                   autocast_bf16: bool | None = None,
                   progress=None) -> tuple[np.ndarray, np.ndarray]:
    """Start and end logits of every feature, in the order of `features`.

    Args:
        model: a question-answering model whose output has `start_logits`/`end_logits`.
        features: a `datasets.Dataset` or a dict of columns with `input_ids` and
            optionally `attention_mask` and `token_type_ids` (other columns are ignored).
        batch_size: features per forward pass.
        device: where to run; default: where the model is. The model is moved there.
        pad_value: the logit written where a row is shorter than the output.
        sort_by_length: batch features of similar lengths (False: the baseline,
            batches in feature order).
        pad_to_length: pad every batch to this length instead of its longest feature
            rounded up to a multiple of 8 (the baseline).
        autocast_bf16: bf16 autocast; default: on CUDA GPUs that have bf16 (Ampere+).
        progress: a `components.qa.progress.Progress`, advanced by each batch's features.

    Returns:
        (start_logits, end_logits), float32 arrays of shape (num_features, L) with L the
        longest stored feature of this call. Position i of a row is token i of the
        feature as stored; positions of padding, and past the feature's end, hold
        `pad_value`.

    Padding: each feature's real tokens are the ones its attention mask marks (all of
    them without a mask), which must be one contiguous run. The padding is stripped and
    the model sees every feature right-padded, so a feature padded on the left (a
    left-padding tokenizer with pad_to_max_length) gets the same positions, and logits,
    as unpadded; its logits are written back at its stored positions.
    """
    import torch

    if batch_size < 1:
        raise InvalidInputError(f"batch_size={batch_size} must be >= 1",
                                fix="Use e.g. 128.", field="batch_size")
    columns = _model_columns(features)  # name -> (values end to end, row offsets)
    offsets = columns["input_ids"][1]
    stored = np.diff(offsets)  # (F,) stored length of each feature
    num_features = len(stored)
    begin, end = _real_spans(columns.get("attention_mask"), stored)  # (F,), (F,)
    lengths = end - begin
    # Python ints for the per-row copies: numpy scalars would be slower
    first, last = (offsets[:-1] + begin).tolist(), (offsets[:-1] + end).tolist()
    size, out_first, out_last = lengths.tolist(), begin.tolist(), end.tolist()
    width = int(stored.max(initial=0))
    start_out = np.full((num_features, width), pad_value, dtype=np.float32)
    end_out = np.full((num_features, width), pad_value, dtype=np.float32)
    if num_features == 0:
        return start_out, end_out

    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device)
    if autocast_bf16 is None:
        autocast_bf16 = (device.type == "cuda"
                         and torch.cuda.get_device_capability(device) >= (8, 0))
    pad_id = getattr(model.config, "pad_token_id", None) or 0
    max_positions = getattr(model.config, "max_position_embeddings", None) or 1 << 30
    # longest first, so that an out-of-memory error comes at once
    order = (np.argsort(-lengths, kind="stable") if sort_by_length
             else np.arange(num_features))
    was_training = model.training
    model.eval()

    def batch_tensors(rows: np.ndarray) -> dict[str, torch.Tensor]:
        longest = int(lengths[rows].max())
        if pad_to_length is not None:
            if pad_to_length < longest:
                raise InvalidInputError(
                    f"a feature has {longest} tokens, more than pad_to_length={pad_to_length}",
                    fix="Pass pad_to_length >= the longest feature, or None.",
                    field="pad_to_length")
            padded = pad_to_length
        else:  # a multiple of 8 for tensor cores, within the position embeddings
            padded = max(longest, min(-(-longest // 8) * 8, max_positions))
        batch = {}
        for name, (values, _) in columns.items():
            if name == "attention_mask":
                continue
            array = np.full((len(rows), padded), pad_id if name == "input_ids" else 0,
                            dtype=np.int64)
            for j, f in enumerate(rows.tolist()):
                array[j, :size[f]] = values[first[f]:last[f]]
            batch[name] = array
        # the mask is built, not copied: features without one get it too
        batch["attention_mask"] = (np.arange(padded) < lengths[rows, None]).astype(np.int64)
        tensors = {k: torch.from_numpy(v) for k, v in batch.items()}
        if device.type == "cuda":
            tensors = {k: v.pin_memory() for k, v in tensors.items()}
        return {k: v.to(device, non_blocking=True) for k, v in tensors.items()}

    def write_back(rows: np.ndarray, start: torch.Tensor, stop: torch.Tensor) -> None:
        start = start.float().cpu().numpy()  # (B, padded); waits for this batch only
        stop = stop.float().cpu().numpy()
        for j, f in enumerate(rows.tolist()):
            start_out[f, out_first[f]:out_last[f]] = start[j, :size[f]]
            end_out[f, out_first[f]:out_last[f]] = stop[j, :size[f]]

    try:
        pending = None  # the previous batch: copied out while the next one runs
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16,
                                                    enabled=autocast_bf16):
            for i in range(0, num_features, batch_size):
                rows = order[i:i + batch_size]
                output = model(**batch_tensors(rows))
                if pending is not None:
                    write_back(*pending)
                pending = (rows, output.start_logits, output.end_logits)
                if progress is not None:
                    progress.advance(len(rows))
            write_back(*pending)
    finally:
        model.train(was_training)
    return start_out, end_out


def iter_example_chunks(examples, features, chunk_examples: int = 2000
                        ) -> Iterator[tuple[Any, Any]]:
    """Yield (examples, features) chunks of at most `chunk_examples` examples, each with
    exactly the features of its examples: no example is ever split across chunks.

    `examples` and `features` are `datasets.Dataset`s or dicts of columns (the chunks
    are of the same kind); features keep their relative order, wherever they are.
    """
    if chunk_examples < 1:
        raise InvalidInputError(f"chunk_examples={chunk_examples} must be >= 1",
                                fix="Use e.g. 2000.", field="chunk_examples")
    example_ids = read_column(examples, "id", "examples")
    feature_example_ids = read_column(features, "example_id", "features")
    example_of_feature = example_rows(example_ids, feature_example_ids)  # (F,)
    chunk_of_feature = example_of_feature // chunk_examples
    contiguous = bool((np.diff(chunk_of_feature) >= 0).all())
    for c, lo in enumerate(range(0, len(example_ids), chunk_examples)):
        if contiguous:  # the usual case: a slice, no copy of a Dataset's rows
            rows = np.arange(*np.searchsorted(chunk_of_feature, [c, c + 1]))
        else:
            rows = np.flatnonzero(chunk_of_feature == c)
        yield (_take(examples, np.arange(lo, min(lo + chunk_examples, len(example_ids)))),
               _take(features, rows))


def evaluate_qa_model(model, examples, features, batch_size: int = 128, n_best: int = 20,
                      max_answer_length: int = 30, version_2_with_negative: bool | None = None,
                      null_score_diff_threshold: float = 0.0, chunk_examples: int = 2000,
                      device=None,
                      progress=None) -> tuple[dict[str, float], dict[str, dict[str, Any]]]:
    """Predict every example's answer and score them against its gold answers.

    Args:
        model: a question-answering model.
        examples: SQuAD rows with `id`, `context` and `answers` (Dataset or dict of columns).
        features: `prepare_validation_features` of exactly these examples.
        version_2_with_negative: SQuAD v2.0 rules (answers may be ""); default: v2.0 when
            any example has no gold answer.
        n_best, max_answer_length, null_score_diff_threshold: see `postprocess_predictions`.
        chunk_examples: examples post-processed at once; bounds the logits in memory.
        progress: a `components.qa.progress.Progress` over the features, advanced per batch.

    Returns:
        (metrics, predictions): the SQuAD metrics (`exact_match`/`f1` for v1.1; for v2.0
        `exact`/`f1`/`HasAns_*`/... at `null_score_diff_threshold`, which is included, and
        `best_exact`/`best_f1` with their `*_thresh` over all thresholds) plus
        `num_examples`, `num_features`,
        `eval_runtime` (s) and `eval_features_per_second`; the predictions of
        `postprocess_predictions`, by example id.
    """
    answers = read_column(examples, "answers", "examples")
    if version_2_with_negative is None:
        version_2_with_negative = any(not a["text"] for a in answers)
    started = time.perf_counter()
    predictions: dict[str, dict[str, Any]] = {}
    num_features = 0
    for examples_chunk, features_chunk in iter_example_chunks(examples, features, chunk_examples):
        start_logits, end_logits = predict_logits(model, features_chunk, batch_size, device,
                                                  progress=progress)
        predictions.update(postprocess_predictions(
            examples_chunk, features_chunk, start_logits, end_logits, n_best=n_best,
            max_answer_length=max_answer_length,
            version_2_with_negative=version_2_with_negative,
            null_score_diff_threshold=null_score_diff_threshold))
        num_features += len(start_logits)
    runtime = time.perf_counter() - started
    references = [{"id": i, "answers": a}
                  for i, a in zip(read_column(examples, "id", "examples"), answers)]
    metrics = compute_squad_metrics(
        format_predictions(predictions, version_2_with_negative), references,
        version_2_with_negative=version_2_with_negative,
        no_answer_threshold=null_score_diff_threshold)
    if version_2_with_negative:  # the threshold that decided `exact` and `f1`
        metrics["null_score_diff_threshold"] = float(null_score_diff_threshold)
    metrics.update(num_examples=len(references), num_features=num_features,
                   eval_runtime=runtime,
                   eval_features_per_second=num_features / runtime if runtime else 0.0)
    return metrics, predictions


# ---------------------------------------------------------------------------------------
# helpers


def _model_columns(features) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    present = features.keys() if isinstance(features, Mapping) else features.column_names
    if "input_ids" not in present:
        read_column(features, "input_ids", "features")  # raises the usual error
    return {name: _ragged(features, name) for name in MODEL_COLUMNS if name in present}


def _ragged(table, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Column `name` of a Dataset or dict of columns (lists, Arrow, or a padded (F, L)
    array) as `flatten` gives it: (all values end to end, (F + 1,) row offsets)."""
    import pyarrow as pa

    if isinstance(table, Mapping):
        column = table[name]
        if isinstance(column, np.ndarray) and column.ndim == 2:  # (F, L), already padded
            rows, width = column.shape
            return column.reshape(-1).astype(np.int64), np.arange(rows + 1) * width
        if not isinstance(column, (pa.Array, pa.ChunkedArray)):
            column = pa.array(column if isinstance(column, list) else list(column))
    else:  # arrow format honours a Dataset's select/shuffle
        column = table.with_format("arrow")[name]
    return flatten(column)


def _real_spans(attention_mask: tuple[np.ndarray, np.ndarray] | None, stored: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """(begin, end) of the run of real tokens in each stored row."""
    if attention_mask is None or len(stored) == 0:
        return np.zeros_like(stored), stored.copy()
    values, offsets = attention_mask
    starts = offsets[:-1]
    real = values != 0
    ones = row_sums(real, offsets)  # (F,)
    if (ones == 0).any():
        raise InvalidInputError("a feature's attention mask has no real token",
                                fix="Drop empty features.",
                                record=str(int(np.flatnonzero(ones == 0)[0])),
                                field="attention_mask")
    # every row holds a one, so it is not empty and reduceat sees each row alone
    index = np.arange(len(values))
    begin = np.minimum.reduceat(np.where(real, index, len(values)), starts) - starts
    last = np.maximum.reduceat(np.where(real, index, -1), starts) - starts
    holes = last - begin + 1 != ones
    if holes.any():
        raise InvalidInputError(
            "a feature's attention mask is not one run of ones (padding inside it)",
            fix="Pad on the right or on the left only.",
            record=str(int(np.flatnonzero(holes)[0])), field="attention_mask")
    return begin, begin + ones


def _take(table, rows: np.ndarray):
    """The rows of a Dataset or dict of columns, as the same kind."""
    if isinstance(table, Mapping):
        return {name: [values[i] for i in rows.tolist()] for name, values in table.items()}
    if len(rows) and rows[-1] - rows[0] + 1 == len(rows):  # contiguous: datasets slices
        return table.select(range(int(rows[0]), int(rows[-1]) + 1))
    return table.select(rows.tolist())
