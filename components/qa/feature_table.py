"""The example and feature tables of post-processing, read into Python lists and numpy arrays.

Both come as a `datasets.Dataset` (read whole columns through Arrow, honouring
select/shuffle) or a dict of columns; a missing column, columns of unequal length or a
malformed offset_mapping is one InvalidInputError. `example_rows` is the one index from a
feature's example_id to its example (inference's chunking uses it too).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from components.qa.errors import InvalidInputError
from components.qa.ragged import row_offsets

__all__ = ["FeatureArrays", "read_column", "example_columns", "feature_arrays", "example_rows",
           "feature_to_example"]


class FeatureArrays:
    """The feature columns as numpy: per feature, and per token of all features end to end.

    Character offsets stay in the Arrow buffers they came in; `span_chars` reads only the
    tokens asked for.
    """

    def __init__(self, example_ids: list[str], offsets: pa.ChunkedArray, cls_index: np.ndarray):
        self.example_ids = example_ids  # (F,)
        self.cls_index = cls_index  # (F,)
        row_offset = row_offsets(offsets)  # (F + 1,) first token of each, tokens end to end
        self.lengths = np.diff(row_offset)  # (F,)
        self.row_start = row_offset[:-1]  # (F,)
        in_context = []
        self._chunks = []  # (first token, token -> value index (T_c + 1,), values) per chunk
        first = 0
        for chunk in offsets.chunks:
            tokens = chunk.flatten()  # one [start, end] or null per token, slice-aware
            in_context.append(tokens.is_valid().to_numpy(zero_copy_only=False))
            value_index = tokens.offsets.to_numpy()
            if (np.diff(value_index)[in_context[-1]] != 2).any():
                raise InvalidInputError(
                    "an offset_mapping entry is not a [start, end] pair or None",
                    fix="Rebuild the features with prepare_validation_features.",
                    field="offset_mapping")
            values = tokens.values  # a null token's slots may hold nulls (after a cast)
            values = pc.fill_null(values, -1) if values.null_count else values
            self._chunks.append((first, value_index, values.to_numpy()))
            first += len(tokens)
        self.in_context = np.concatenate(in_context) if in_context else np.zeros(0, bool)

    def span_chars(self, feature: np.ndarray, start: np.ndarray,
                   end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Character bounds of spans given as (feature, start token, end token) arrays."""
        token_start, token_end = self.row_start[feature] + start, self.row_start[feature] + end
        char_start = np.empty(len(feature), dtype=np.int64)
        char_end = np.empty(len(feature), dtype=np.int64)
        chunk = np.searchsorted([c[0] for c in self._chunks], token_start, side="right") - 1
        in_order = bool((np.diff(chunk) >= 0).all())  # features by example: chunk by chunk
        bounds = np.searchsorted(chunk, np.arange(len(self._chunks) + 1)) if in_order else None
        for c, (first, value_index, values) in enumerate(self._chunks):
            mine = slice(bounds[c], bounds[c + 1]) if in_order else chunk == c
            char_start[mine] = values[value_index[token_start[mine] - first]]
            char_end[mine] = values[value_index[token_end[mine] - first] + 1]
        return char_start, char_end


def _table_columns(table: Any, names: tuple[str, ...], optional: tuple[str, ...], what: str):
    """Columns of a dict of columns (lists) or a `datasets.Dataset` (pyarrow arrays)."""
    if isinstance(table, Mapping):
        present = set(table.keys())
        get = table.__getitem__
    elif hasattr(table, "with_format") and hasattr(table, "column_names"):
        present = set(table.column_names)
        # arrow format: whole columns without Python rows (and honouring select/shuffle)
        get = table.with_format("arrow").__getitem__
    else:
        raise TypeError(f"{what} must be a datasets.Dataset or a dict of columns, "
                        f"not {type(table).__name__}")
    for name in names:
        if name not in present:
            raise InvalidInputError(
                f"{what} have no {name!r} column (they have {sorted(present)})", field=name,
                fix="Pass SQuAD examples with id/context and the features made from them "
                    "by prepare_validation_features.")
    return [get(n) if n in present else None for n in names + optional]


def _to_list(column: Any) -> list:
    return column.to_pylist() if isinstance(column, (pa.Array, pa.ChunkedArray)) else list(column)


def read_column(table: Any, name: str, what: str) -> list:
    """One column as a Python list, from a dict of columns or a `datasets.Dataset` (via Arrow)."""
    return _to_list(_table_columns(table, (name,), (), what)[0])


def example_columns(examples: Any) -> tuple[list[str], list[str]]:
    ids, contexts = _table_columns(examples, ("id", "context"), (), "examples")
    ids, contexts = _to_list(ids), _to_list(contexts)
    if len(ids) != len(contexts):
        raise InvalidInputError(f"examples have {len(ids)} ids but {len(contexts)} contexts",
                                fix="Pass columns of equal length.", field="context")
    return ids, contexts


def feature_arrays(features: Any) -> FeatureArrays:
    example_id, offsets, cls_index = _table_columns(
        features, ("example_id", "offset_mapping"), ("cls_index",), "features")
    example_ids = _to_list(example_id)
    if not isinstance(offsets, (pa.Array, pa.ChunkedArray)):
        offsets = pa.array(offsets if isinstance(offsets, list) else list(offsets))
    if isinstance(offsets, pa.Array):
        offsets = pa.chunked_array([offsets])
    if not (pa.types.is_list(offsets.type) and pa.types.is_list(offsets.type.value_type)
            and pa.types.is_integer(offsets.type.value_type.value_type)):
        try:  # e.g. fixed-size pairs, or offsets stored as large lists
            offsets = offsets.cast(pa.list_(pa.list_(pa.int64())))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
            raise InvalidInputError(
                f"offset_mapping has type {offsets.type}, expected lists of [start, end] or None",
                fix="Rebuild the features with prepare_validation_features.",
                field="offset_mapping") from err
    if len(offsets) != len(example_ids):
        raise InvalidInputError(
            f"features have {len(example_ids)} example_ids but {len(offsets)} offset_mappings",
            fix="Pass columns of equal length.", field="offset_mapping")
    if offsets.null_count:
        raise InvalidInputError("a feature has no offset_mapping (null)", field="offset_mapping",
                                fix="Rebuild the features with prepare_validation_features.")
    if cls_index is None:
        cls = np.zeros(len(example_ids), dtype=np.int64)
    else:
        cls = (_numpy(cls_index, np.int64) if isinstance(cls_index, (pa.Array, pa.ChunkedArray))
               else np.asarray(list(cls_index), dtype=np.int64))
        if len(cls) != len(example_ids):
            raise InvalidInputError(
                f"features have {len(example_ids)} example_ids but {len(cls)} cls_index",
                fix="Pass columns of equal length.", field="cls_index")
    return FeatureArrays(example_ids, offsets, cls)


def _numpy(array: pa.Array | pa.ChunkedArray, dtype) -> np.ndarray:
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks() if array.num_chunks != 1 else array.chunk(0)
    return np.asarray(array.to_numpy(zero_copy_only=False), dtype=dtype)


def example_rows(example_ids: list, feature_example_ids: list) -> np.ndarray:
    """(F,) row in `example_ids` of each feature's example: how post-processing (and the
    chunking of `iter_example_chunks`) attaches features to their examples."""
    index = {example_id: i for i, example_id in enumerate(example_ids)}
    rows = np.fromiter((index.get(i, -1) for i in feature_example_ids), dtype=np.int64,
                       count=len(feature_example_ids))
    if (rows < 0).any():
        bad = feature_example_ids[int(np.flatnonzero(rows < 0)[0])]
        raise InvalidInputError(
            f"feature example_id {bad!r} is not among the {len(example_ids)} examples",
            record=str(bad), field="example_id",
            fix="Pass the examples together with exactly the features built from them.")
    return rows


def feature_to_example(example_ids: list[str], feature_example_ids: list[str]) -> np.ndarray:
    """`example_rows`, for examples with unique ids that each have a feature."""
    if len(set(example_ids)) != len(example_ids):
        seen: set[str] = set()
        dup = next(i for i in example_ids if i in seen or seen.add(i))
        raise InvalidInputError("two examples share an id", record=dup, field="id",
                                fix="Give every example its own id.")
    out = example_rows(example_ids, feature_example_ids)
    counts = np.bincount(out, minlength=len(example_ids))
    if (counts == 0).any():
        bad = example_ids[int(np.flatnonzero(counts == 0)[0])]
        raise InvalidInputError(
            "example has no features", record=bad, field="id",
            fix="Pass the examples together with exactly the features built from them.")
    return out

