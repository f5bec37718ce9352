"""The n-best span search of post-processing, vectorized over all features at once.

Per feature (window): its `n_best` best context starts and ends (a top-k without a full
sort, whitespace-only tokens skipped), the valid (start, end) pairs among them and their
scores; then the order of all candidates by example and score. What makes a candidate and
how ties are broken is documented once, in `components.qa.postprocess`.
"""

from __future__ import annotations

import numpy as np

from components.qa.errors import InvalidInputError

__all__ = ["feature_candidates", "example_order"]


def feature_candidates(start: np.ndarray, end: np.ndarray, n_best: int,
                       max_answer_length: int, blank) -> tuple[np.ndarray, ...]:
    """The n_best best spans of every feature, flat: (feature, start, end, score) arrays.

    `start`/`end` are (F, L) logits with -inf wherever a span cannot start or end;
    `blank(features, tokens)` says which tokens, whitespace only, cannot either (they
    are set to -inf here). The spans come by feature, and in a feature by (-score,
    start token, end token); scores are float64 sums.
    """
    if np.isnan(start).any() or np.isnan(end).any():
        raise InvalidInputError("the logits hold NaN at context tokens",
                                fix="Check the model output (an fp16 overflow?).",
                                field="start_logits")
    num_features, width = start.shape
    k = min(n_best, width)
    top_start = _top_k_of_words(start, k, blank)  # (F, k) token positions, ascending
    top_end = _top_k_of_words(end, k, blank)  # (F, k)
    start_score = np.take_along_axis(start, top_start, axis=1)  # (F, k)
    end_score = np.take_along_axis(end, top_end, axis=1)
    # end - start must lie in [0, max_answer_length): one unsigned compare catches end < start
    top_start, top_end = top_start.astype(np.int32), top_end.astype(np.int32)
    ok = (top_end[:, None, :] - top_start[:, :, None]).view(np.uint32) < max_answer_length

    def pair_scores(rows, dtype) -> np.ndarray:  # (rows, k * k), -inf where invalid
        out = np.full((ok[rows].shape[0], k, k), -np.inf, dtype=dtype)
        np.add(start_score[rows, :, None].astype(dtype), end_score[rows, None, :].astype(dtype),
               out=out, where=ok[rows])
        return out.reshape(-1, k * k)

    # Select in float32 when the logits are float32 (half the memory traffic): rounding is
    # monotonic, so its top-m is the float64 one unless float32 ties at the cut, and those
    # rows are settled in float64. A pair's flat index orders it by (start, end), since
    # both top lists ascend.
    select = np.float32 if start.dtype.itemsize <= 4 else np.float64
    best = _top_k(pair_scores(slice(None), select), min(n_best, k * k),
                  exact=lambda rows: pair_scores(rows, np.float64))  # (F, m)
    start_score, end_score = start_score.astype(np.float64), end_score.astype(np.float64)
    score = (np.take_along_axis(start_score, best // k, axis=1)
             + np.take_along_axis(end_score, best % k, axis=1))
    score[~np.take_along_axis(ok.reshape(num_features, k * k), best, axis=1)] = -np.inf
    by_score = np.argsort(-score, axis=1, kind="stable")  # ties stay in (start, end) order
    best = np.take_along_axis(best, by_score, axis=1)
    score = np.take_along_axis(score, by_score, axis=1)
    found = score > -np.inf
    feature = np.broadcast_to(np.arange(num_features)[:, None], found.shape)[found]
    return (feature, np.take_along_axis(top_start, best // k, axis=1)[found],
            np.take_along_axis(top_end, best % k, axis=1)[found], score[found])



def _top_k_of_words(logits: np.ndarray, k: int, blank) -> np.ndarray:
    """`_top_k` of each row once its tokens of whitespace only are at -inf.

    Only the tokens that reach a top k are checked: a row whose top k holds one gets it
    masked (in place) and its top k taken again, until none is left (rare: one more
    round for a few rows), which gives the top k over the other tokens exactly.
    """
    top = _top_k(logits, k)
    rows = np.arange(len(logits))
    while len(rows):
        scores = np.take_along_axis(logits[rows], top[rows], axis=1)  # (R, k)
        r, c = np.nonzero(scores > -np.inf)
        hit = np.zeros(scores.shape, dtype=bool)
        hit[r, c] = blank(rows[r], top[rows[r], c])
        if not hit.any():
            break
        r, c = np.nonzero(hit)
        logits[rows[r], top[rows[r], c]] = -np.inf
        rows = rows[hit.any(axis=1)]
        top[rows] = _top_k(logits[rows], k)
    return top



def example_order(example: np.ndarray, score: np.ndarray,
                  feature_example: np.ndarray) -> np.ndarray:
    """Order of the candidates by (example, -score), stable.

    The candidates come by feature and in a feature already by (-score, start, end), so a
    stable sort breaks ties by (feature, start, end), as documented. When the features
    come by example (prepare_validation_features makes them so), only the candidates of
    examples with several windows need sorting.
    """
    if (np.diff(feature_example) < 0).any():
        return np.lexsort((-score, example))
    windows = np.bincount(feature_example)
    several = np.flatnonzero(windows[example] > 1)
    order = np.arange(len(example))
    # their blocks are contiguous and stay in place: sort within them
    order[several] = several[np.lexsort((-score[several], example[several]))]
    return order



def _top_k(values: np.ndarray, k: int, exact=None) -> np.ndarray:
    """(rows, k) column indices of the k largest values per row, ascending by column.

    A value partition finds each row's k-th largest (numpy partitions values with SIMD,
    about 3x faster than `argpartition`), and the columns at or above it, read off in
    row-major order, come out ascending with no sort. Rows where more than k values
    reach it (a tie at the cut, or a row with fewer than k finite values) are settled by
    a stable sort of `exact(rows)` (default: the same values), so ties keep the smaller
    columns.
    """
    rows, cols = values.shape
    if k >= cols:
        return np.broadcast_to(np.arange(cols), (rows, cols)).copy()
    kth = np.partition(values, cols - k, axis=1)[:, cols - k]  # (rows,) the k-th largest
    keep = values >= kth[:, None]
    counts = np.count_nonzero(keep, axis=1)
    tied = np.flatnonzero(counts != k)
    keep[tied] = False
    keep[tied, :k] = True  # placeholders, so that every row yields k columns
    top = np.flatnonzero(keep).reshape(rows, k) - (np.arange(rows) * cols)[:, None]
    if len(tied):
        settled = values[tied] if exact is None else exact(tied)
        top[tied] = np.sort(np.argsort(-settled, axis=1, kind="stable")[:, :k], axis=1)
    return top
