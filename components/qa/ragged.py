"""List columns (one list per feature: token ids, masks, offsets) as flat numpy arrays.

    values, offsets = flatten(features.with_format("arrow")["input_ids"])
    values[offsets[f]:offsets[f + 1]]   # the input ids of feature f

Inference, post-processing and training read whole columns this way: one Arrow
buffer to numpy, instead of a Python list per row.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def row_offsets(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """(R + 1,) int64: row r holds values offsets[r]:offsets[r + 1] of the column's values
    end to end (a null row none), so per-row work is array arithmetic, not Python rows."""
    offsets = np.zeros(len(column) + 1, dtype=np.int64)
    if len(column):  # an empty column may have no list type (pa.array([]))
        lengths = pc.fill_null(pc.list_value_length(column), 0)
        np.cumsum(lengths.to_numpy(zero_copy_only=False), out=offsets[1:])
    return offsets


def flatten(column: pa.Array | pa.ChunkedArray, dtype=np.int64) -> tuple[np.ndarray, np.ndarray]:
    """A list column of numbers as (its values end to end as `dtype`, `row_offsets`): the
    whole column in two numpy arrays, without a Python list per row."""
    if not len(column):
        return np.zeros(0, dtype), row_offsets(column)
    values = pc.list_flatten(column).to_numpy(zero_copy_only=False).astype(dtype)
    return values, row_offsets(column)


def row_sums(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """(R,) sum of each row of a flattened column (e.g. the real tokens of an attention
    mask): one running sum, which gives 0 for an empty row where `np.add.reduceat` does not."""
    running = np.r_[0, np.cumsum(values)]
    return running[offsets[1:]] - running[offsets[:-1]]
