"""Turn start/end logits of an extractive QA model into answer texts (SQuAD v1.1 and v2.0).

The same job as Hugging Face `utils_qa.postprocess_qa_predictions`, in numpy, with two
differences: the n-best search runs over all features at once (no Python loop over
features or tokens), and the predictions are returned, not written to files.

    preds = postprocess_predictions(examples, features, start_logits, end_logits)
    preds["56be4db0acb8001400a502ec"]["text"]          # 'Denver Broncos'
    compute_squad_metrics(format_predictions(preds, False), references)

How a prediction is chosen, per example:

1. Candidates, per feature (window). Only context tokens can start or end an answer: the
   question, the special tokens and the padding past a feature's true length are masked
   to -inf FIRST, then the `n_best` highest start logits and the `n_best` highest end
   logits are taken. Hugging Face takes the top-k over all tokens and then discards the
   ones outside the context, so a window whose top logits sit on the question can end up
   with fewer (or no) candidates; here every window keeps its `n_best` context
   candidates. A pair (start, end) is a candidate when end >= start and
   end - start + 1 <= max_answer_length; its score is start_logit + end_logit.
2. The example's n-best list is its `n_best` best candidates over all its windows.
   Order, which is deterministic: higher score first; equal scores go to the earlier
   window, then the smaller start token, then the smaller end token. Ties at the top-k
   cut of a window's start or end logits keep the smaller token positions.
3. The answer is the first of that list: context[offsets[start][0]:offsets[end][1]],
   stripped of whitespace at both edges (SentencePiece offsets include the space before
   a word), `start`/`end` moved with it; tokens of whitespace only are masked like the
   question in step 1, so no span is empty. `probability` is a softmax over the scores
   of the n-best list.
4. SQuAD v2.0: the null score of an example is the MIN over its windows of
   start_logits[cls_index] + end_logits[cls_index] (the window most sure that there is
   an answer decides). The answer is "" when null_score > best_span_score +
   null_score_diff_threshold; `null_score_diff` = null_score - best_span_score. The null
   answer also joins the n-best list (text "", placed by its score, after spans of equal
   score), so that list may hold n_best + 1 entries and its probabilities include it.

An example without any candidate (every window too short to hold context) gets text "",
score -inf and an empty n-best list (plus the null entry in v2.0); with v1.1 that text
is simply wrong, as it would be with any answer.

Memory is O(features x max_length) plus O(features x n_best^2); to bound it, call this
per chunk of examples together with exactly their features (the evaluate step does).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from components.qa.errors import InvalidInputError
from components.qa.feature_table import (
    FeatureArrays,
    example_columns,
    feature_arrays,
    feature_to_example,
)
from components.qa.span_search import example_order, feature_candidates

__all__ = ["postprocess_predictions", "format_predictions"]


def postprocess_predictions(
    examples: Any,
    features: Any,
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    n_best: int = 20,
    max_answer_length: int = 30,
    version_2_with_negative: bool = False,
    null_score_diff_threshold: float = 0.0,
) -> dict[str, dict[str, Any]]:
    """Pick the answer of every example from the logits of its features.

    Args:
        examples: SQuAD rows (a `datasets.Dataset` or a dict of columns) with at least
            `id` and `context`.
        features: the output of `prepare_validation_features` for exactly these
            examples (a `datasets.Dataset` or a dict of columns): `example_id`,
            `offset_mapping` (one [start_char, end_char] per token, None outside the
            context; its length is the feature's true length) and `cls_index` (0 is
            assumed when the column is absent).
        start_logits, end_logits: (num_features, L) arrays, one padded row per feature
            in feature order; columns at or past a feature's true length are ignored.
        n_best: candidates per window for starts and for ends, and length of the
            returned n-best list.
        max_answer_length: longest answer in tokens.
        version_2_with_negative: SQuAD v2.0, where the answer may be "".
        null_score_diff_threshold: v2.0 only; answer "" when
            null_score - best_span_score > this.

    Returns:
        {example_id: prediction}, in the order of `examples`. A prediction holds
        `text`, `score` (the score of `text`: its span score, or with v2.0 the null
        score when `text` is ""), `start`/`end` (context[start:end] == text; None when
        `text` is ""), `n_best` (a list of {text, score,
        probability}, best first) and with v2.0 also `null_score`, `null_score_diff`,
        `span_text` and `span_score` (the best non-null span, whatever the threshold).

    Raises:
        InvalidInputError (a ValueError): logits whose shapes do not match the features,
        a feature whose example_id is not among the examples, an example without
        features, a missing column, or a bad parameter.
    """
    if n_best < 1:
        raise InvalidInputError(f"n_best={n_best} must be at least 1",
                                fix="Pass n_best >= 1 (20 is usual).", field="n_best")
    if max_answer_length < 1:
        raise InvalidInputError(f"max_answer_length={max_answer_length} must be at least 1",
                                fix="Pass max_answer_length >= 1 (30 is usual).",
                                field="max_answer_length")
    example_ids, contexts = example_columns(examples)
    feats = feature_arrays(features)
    num_features = len(feats.lengths)
    start_logits = np.asarray(start_logits)
    end_logits = np.asarray(end_logits)
    for name, logits in (("start_logits", start_logits), ("end_logits", end_logits)):
        if logits.ndim != 2 or logits.shape[0] != num_features:
            raise InvalidInputError(
                f"{name} has shape {logits.shape}, expected ({num_features}, max_length): "
                f"one row per feature", field=name,
                fix="Pass the logits of exactly these features, in feature order.")
    if start_logits.shape != end_logits.shape:
        raise InvalidInputError(
            f"start_logits {start_logits.shape} and end_logits {end_logits.shape} differ",
            fix="Pass both logits of the same batch.", field="end_logits")
    width = start_logits.shape[1]
    if num_features and feats.lengths.max() > width:
        f = int(np.argmax(feats.lengths))
        raise InvalidInputError(
            f"feature {f} has {feats.lengths[f]} tokens but the logits only {width} columns",
            fix="Pad the logits to the longest feature, not beyond the model output.",
            record=feats.example_ids[f], field="offset_mapping")
    feature_example = feature_to_example(example_ids, feats.example_ids)  # (F,)
    if version_2_with_negative:
        null_score = _null_scores(feats, feature_example, len(example_ids),
                                  start_logits, end_logits)

    # (F, L) logits with everything that cannot start or end an answer at -inf
    if (feats.lengths == width).all():
        valid = feats.in_context.reshape(num_features, width)
    else:
        valid = np.zeros((num_features, width), dtype=bool)
        valid[np.arange(width) < feats.lengths[:, None]] = feats.in_context  # row-major order
    start = np.where(valid, start_logits, -np.inf)
    end = np.where(valid, end_logits, -np.inf)

    blanks = _Whitespace(contexts)

    def blank(feature: np.ndarray, token: np.ndarray) -> np.ndarray:
        """Whether each (feature, context token) is whitespace only (SentencePiece's "▁")."""
        return blanks.blank(feature_example[feature], *feats.span_chars(feature, token, token))

    feature, tok_start, tok_end, score = feature_candidates(start, end, n_best,
                                                            max_answer_length, blank)
    example = feature_example[feature]
    order = example_order(example, score, feature_example)
    example = example[order]
    first = np.flatnonzero(np.r_[True, example[1:] != example[:-1]])  # of each example
    rank = np.arange(len(example)) - np.repeat(first, np.diff(np.r_[first, len(example)]))
    order, example = order[rank < n_best], example[rank < n_best]
    feature, score = feature[order], score[order]
    char_start, char_end = blanks.strip(example, *feats.span_chars(feature, tok_start[order],
                                                                   tok_end[order]))
    with _collector_paused():
        return _predictions(example_ids, contexts, example, score, char_start, char_end,
                            null_score if version_2_with_negative else None,
                            null_score_diff_threshold)


def format_predictions(predictions: dict[str, dict[str, Any]],
                       version_2_with_negative: bool) -> list[dict[str, Any]]:
    """The list the `squad` / `squad_v2` metrics take, from `postprocess_predictions`.

    v1.1: [{"id", "prediction_text"}], the chosen answer.

    v2.0: [{"id", "prediction_text", "no_answer_probability"}] with the best NON-NULL span
    as `prediction_text` and `null_score_diff` as `no_answer_probability`, as the official
    v2.0 script reads BERT's null_odds.json. The metric then makes the null decision
    itself (diff > `no_answer_threshold`), so pass it the same threshold:

        compute_squad_metrics(format_predictions(preds, True), references, True,
                              no_answer_threshold=null_score_diff_threshold)

    gives the exact/f1 of the chosen answers, and its best_exact_thresh / best_f1_thresh,
    swept over every diff, are directly a `null_score_diff_threshold` to use next time.
    Hugging Face run_qa passes the decided text with `no_answer_probability: 0.0`, which
    leaves the best-threshold search nothing to search; the decided text with the diff
    would let it lower the threshold but not raise it, as it cannot turn a "" back into
    the span.
    """
    if not version_2_with_negative:
        return [{"id": i, "prediction_text": p["text"]} for i, p in predictions.items()]
    missing = next((i for i, p in predictions.items() if "null_score_diff" not in p), None)
    if missing is not None:
        raise InvalidInputError(
            "predictions have no null_score_diff", record=missing, field="null_score_diff",
            fix="Run postprocess_predictions with version_2_with_negative=True.")
    return [{"id": i, "prediction_text": p["span_text"],
             "no_answer_probability": p["null_score_diff"]} for i, p in predictions.items()]


# ---------------------------------------------------------------------------------------
# helpers


def _null_scores(feats: FeatureArrays, feature_example: np.ndarray, num_examples: int,
                 start_logits: np.ndarray, end_logits: np.ndarray) -> np.ndarray:
    """(E,) MIN over each example's windows of start_logits[cls] + end_logits[cls]."""
    cls = feats.cls_index
    outside = (cls < 0) | (cls >= feats.lengths)
    if outside.any():
        f = int(np.flatnonzero(outside)[0])
        raise InvalidInputError(
            f"feature {f} has cls_index {cls[f]} outside its {feats.lengths[f]} tokens",
            fix="Rebuild the features with prepare_validation_features.",
            record=feats.example_ids[f], field="cls_index")
    rows = np.arange(len(cls))
    feature_null = (start_logits[rows, cls].astype(np.float64)
                    + end_logits[rows, cls].astype(np.float64))
    null_score = np.full(num_examples, np.inf)
    np.minimum.at(null_score, feature_example, feature_null)
    return null_score



class _Whitespace:
    """Where the contexts hold whitespace, as flat arrays over all their characters.

    SentencePiece/Metaspace tokenizers (XLM-R, ALBERT, T5) give a "▁word" token the
    offsets of " word", and some tokens are a lone "▁": an answer must neither start
    nor end on whitespace (the official evaluation strips it; a served answer must too).
    """

    # every code point str.strip() removes; the highest is U+3000
    TABLE = np.array([chr(c).isspace() for c in range(0x3001)])

    def __init__(self, contexts: list[str]):
        unique: dict[str, int] = {}  # SQuAD asks several questions per context
        which = np.fromiter((unique.setdefault(c, len(unique)) for c in contexts),
                            dtype=np.int64, count=len(contexts))
        codes = np.frombuffer("".join(unique).encode("utf-32-le"), dtype=np.uint32)
        self.space = np.zeros(len(codes) + 1, dtype=bool)  # a slot past the end, not a space
        low = codes <= 0x3000
        self.space[:-1][low] = self.TABLE[codes[low]]
        self.nonspace = np.r_[0, np.cumsum(~self.space[:-1])]  # (C + 1,) running count
        first = np.r_[0, np.cumsum([len(c) for c in unique])]  # first char of each context
        self.base = first[which]  # (E,) of each example's context

    def blank(self, example: np.ndarray, char_start: np.ndarray,
              char_end: np.ndarray) -> np.ndarray:
        """Whether each span context[start:end] of its example is whitespace only."""
        base = self.base[example]
        return self.nonspace[base + char_end] == self.nonspace[base + char_start]

    def strip(self, example: np.ndarray, char_start: np.ndarray,
              char_end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The spans' bounds moved inward past whitespace at either edge."""
        base = self.base[example]
        lo, hi = base + char_start, base + char_end
        while True:  # as many rounds as the longest edge whitespace run (usually one)
            head = self.space[lo] & (lo < hi)
            lo = lo + head
            tail = self.space[hi - 1] & (lo < hi)
            hi = hi - tail
            if not (head.any() or tail.any()):
                return lo - base, hi - base


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while the output is built: some 20 small dicts
    an example, none in a reference cycle, which it would otherwise rescan every few
    hundred allocations (about a tenth of the time on SQuAD dev)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _predictions(example_ids: list[str], contexts: list[str], example: np.ndarray,
                 score: np.ndarray, char_start: np.ndarray, char_end: np.ndarray,
                 null_score: np.ndarray | None, null_score_diff_threshold: float
                 ) -> dict[str, dict[str, Any]]:
    """The returned dicts, from the final n-best spans sorted by (example, rank)."""
    num_examples = len(example_ids)
    bounds = np.searchsorted(example, np.arange(num_examples + 1))  # (E + 1,) of each list
    has_span = bounds[1:] > bounds[:-1]
    best_score = np.full(num_examples, -np.inf)
    best_score[has_span] = score[bounds[:-1][has_span]]
    # softmax over each n-best list (with the null answer in v2.0)
    top = best_score if null_score is None else np.maximum(best_score, null_score)
    weight = np.exp(score - top[example])
    total = np.bincount(example, weights=weight, minlength=num_examples)
    if null_score is not None:
        null_weight = np.exp(null_score - top)
        total += null_weight
        null_probability = (null_weight / total).tolist()
        # the null answer goes after the spans scoring at least as much
        null_at = np.bincount(example, weights=score >= null_score[example],
                              minlength=num_examples).astype(int).tolist()
    lo, hi, scores = char_start.tolist(), char_end.tolist(), score.tolist()
    probability = (weight / total[example]).tolist()
    best_scores = best_score.tolist()
    null_scores = null_score.tolist() if null_score is not None else None
    predictions: dict[str, dict[str, Any]] = {}
    for e, (example_id, context, a, b) in enumerate(zip(example_ids, contexts, bounds[:-1].tolist(),
                                                        bounds[1:].tolist())):
        n_best = [{"text": context[x:y], "score": s, "probability": p}
                  for x, y, s, p in zip(lo[a:b], hi[a:b], scores[a:b], probability[a:b])]
        span_score = best_scores[e]
        prediction = {"text": n_best[0]["text"] if n_best else "", "score": span_score,
                      "start": lo[a] if a < b else None, "end": hi[a] if a < b else None,
                      "n_best": n_best}
        if null_score is not None:
            null = null_scores[e]
            n_best.insert(null_at[e], {"text": "", "score": null,
                                       "probability": null_probability[e]})
            prediction.update(null_score=null, null_score_diff=null - span_score,
                              span_text=prediction["text"], span_score=span_score)
            if null > span_score + null_score_diff_threshold:
                prediction.update(text="", score=null, start=None, end=None)
        predictions[example_id] = prediction
    return predictions

