"""SQuAD v1.1 and v2.0 exact match and F1, scored as the official evaluation scripts score them.

`compute_squad_metrics` takes the inputs of Hugging Face `evaluate`'s "squad" and "squad_v2"
metrics and returns their keys. Its figures equal those of the official scripts, evaluate-v1.1.py
and evaluate-v2.0.py from the SQuAD site, which those two metrics wrap. The scripts differ in
details that change the figures, so each version is ported on its own terms:

| detail                         | v1.1                          | v2.0                             |
| ------------------------------ | ----------------------------- | -------------------------------- |
| F1 when a side has no token    | 0 (no common token)           | 1 if both are empty, else 0      |
| gold answers normalizing to "" | kept                          | dropped; none left: gold [""]    |
| reference without prediction   | scores 0, counted in total    | an error (the script fails too)  |
| reference without gold answers | an error (the script fails)   | unanswerable                     |

Beyond those, this module raises InvalidInputError (a ValueError) where the scripts would crash,
or go on with a figure that hides a mistake: a prediction whose id is not among the references
(the scripts ignore it; here it means predictions and references come from different data), an
id used twice (the scripts keep the last, or count it twice), a missing key, a text that is not a
string, a NaN probability, no references at all. On any other input the figures are the scripts'.

    from components.qa.metrics import compute_squad_metrics
    compute_squad_metrics(
        [{"id": "q1", "prediction_text": "the Denver Broncos"}],
        [{"id": "q1", "answers": {"text": ["Denver Broncos"], "answer_start": [177]}}],
    )  # {'exact_match': 100.0, 'f1': 100.0}

`SQUAD_METRIC_DIR` is the same scoring packaged as an `evaluate` module, for code that wants
`evaluate.load(str(SQUAD_METRIC_DIR), "squad_v2")` where it would say `evaluate.load("squad_v2")`.
"""

import logging
import math
import numbers
import re
import string
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path

from components.qa.errors import InvalidInputError

logger = logging.getLogger(__name__)

SQUAD_METRIC_DIR = Path(__file__).parent / "squad_metric"

_PUNCTUATION = frozenset(string.punctuation)  # ASCII only, as in both scripts
# v2.0 compiles this with re.UNICODE; for a str pattern in Python 3 that flag is already the
# default, so one pattern serves both versions.
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_ANSWERS_FIX = 'Give the gold answers as SQuAD datasets hold them: {"text": [...], "answer_start": [...]}.'


def normalize_answer(text: str) -> str:
    """Lower case, drop punctuation, drop the articles a/an/the, collapse whitespace.

    The order is the scripts' and matters: punctuation goes first, so "the-end" becomes "theend"
    and keeps its article, while "the, end" becomes "end".
    """
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, gold: str) -> bool:
    """Whether the two answers are equal after normalization (both versions)."""
    return normalize_answer(prediction) == normalize_answer(gold)


def f1_v1(prediction: str, gold: str) -> float:
    """SQuAD v1.1 token F1; with no common token it is 0, even when both answers are empty."""
    return _token_f1(normalize_answer(prediction).split(), normalize_answer(gold).split())


def f1_v2(prediction: str, gold: str) -> float:
    """SQuAD v2.0 token F1; an empty side means "no answer": 1 if both are empty, else 0."""
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    return _token_f1(pred_tokens, gold_tokens)


def _token_f1(pred_tokens: list[str], gold_tokens: list[str]) -> float:
    """Harmonic mean of token precision and recall, computed as the scripts compute it."""
    num_same = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(pred_tokens)
    recall = num_same / len(gold_tokens)
    return (2 * precision * recall) / (precision + recall)


def compute_squad_metrics(
    predictions: Iterable[Mapping],
    references: Iterable[Mapping],
    version_2_with_negative: bool = False,
    no_answer_threshold: float = 1.0,
) -> dict:
    """Score predictions against SQuAD references as the official v1.1 or v2.0 script does.

    Args:
        predictions: `[{"id", "prediction_text"}]`; v2.0 also needs `"no_answer_probability"`,
            the model's probability that the question has no answer (any real number works, it
            is only compared and sorted).
        references: `[{"id", "answers": {"text": [...], "answer_start": [...]}}]`; in v2.0 an
            empty `text` list marks an unanswerable question. `answer_start` is not read.
        version_2_with_negative: score as SQuAD v2.0 (the `evaluate` metric "squad_v2").
        no_answer_threshold: v2.0 only: a prediction whose no-answer probability is above it
            counts as "no answer", whatever its text.

    Returns:
        v1.1: `exact_match`, `f1` in percent. A reference without a prediction scores 0 and is
        counted (the script prints a line for it; we log one warning).
        v2.0: `exact`, `f1`, `total`; `HasAns_*` and `NoAns_*` for each non-empty subset;
        `best_exact`, `best_f1` with their `*_thresh`: the best figures over all thresholds,
        searched as the script searches them (see `_best_threshold`).
    """
    texts, no_answer_probs = _read_predictions(predictions, version_2_with_negative)
    golds = _read_references(references)
    unknown = [qid for qid in texts if qid not in golds]
    if unknown:
        raise InvalidInputError(
            f"{len(unknown)} prediction id(s) are not among the {len(golds)} references, e.g. {unknown[:3]}",
            fix="Pass the references of the same split and subset as the predictions.",
            source="predictions", record=unknown[0], field="id",
        )
    if version_2_with_negative:
        threshold = _real(no_answer_threshold, None, None, "no_answer_threshold")
        return _squad_v2(texts, no_answer_probs, golds, threshold)
    return _squad_v1(texts, golds)


def _squad_v1(texts: dict[str, str], golds: dict[str, list[str]]) -> dict:
    """evaluate-v1.1.py's compute_score."""
    exact = f1 = 0
    unanswered = []
    for qid, answers in golds.items():
        if not answers:
            raise InvalidInputError(
                "no gold answer, and SQuAD v1.1 has no unanswerable questions",
                fix="Score SQuAD v2.0 data with version_2_with_negative=True (the 'squad_v2' metric).",
                source="references", record=qid, field="answers.text",
            )
        if qid not in texts:
            unanswered.append(qid)
            continue
        prediction = texts[qid]
        exact += max(exact_match(prediction, gold) for gold in answers)
        f1 += max(f1_v1(prediction, gold) for gold in answers)  # += in order, as the script sums
    if unanswered:
        logger.warning(
            "%d of %d references have no prediction and score 0, e.g. %s",
            len(unanswered), len(golds), unanswered[:3],
        )
    return {"exact_match": 100.0 * exact / len(golds), "f1": 100.0 * f1 / len(golds)}


def _squad_v2(
    texts: dict[str, str], no_answer_probs: dict[str, float], golds: dict[str, list[str]], threshold: float
) -> dict:
    """evaluate-v2.0.py's main, with the best-threshold search that `evaluate`'s squad_v2 always runs."""
    unanswered = [qid for qid in golds if qid not in texts]
    if unanswered:
        # The script skips such a reference in get_raw_scores, then fails with a KeyError when it
        # averages the HasAns/NoAns subset the reference belongs to.
        raise InvalidInputError(
            f"{len(unanswered)} of {len(golds)} references have no prediction, e.g. {unanswered[:3]}",
            fix="SQuAD v2.0 scores every reference: to abstain, predict '' (or a no_answer_probability "
                "above no_answer_threshold).",
            source="references", record=unanswered[0], field="id",
        )
    has_answer = {qid: bool(answers) for qid, answers in golds.items()}
    exact_raw, f1_raw = {}, {}
    for qid, answers in golds.items():
        # A gold answer that normalizes to nothing (say "the") is dropped; none left means the
        # only correct answer is "", even though has_answer (taken from the raw list) says True.
        gold_answers = [answer for answer in answers if normalize_answer(answer)] or [""]
        exact_raw[qid] = max(int(exact_match(texts[qid], gold)) for gold in gold_answers)
        f1_raw[qid] = max(f1_v2(texts[qid], gold) for gold in gold_answers)

    exact = _apply_no_answer_threshold(exact_raw, no_answer_probs, has_answer, threshold)
    f1 = _apply_no_answer_threshold(f1_raw, no_answer_probs, has_answer, threshold)
    metrics = _averages(exact, f1, list(golds))
    for prefix, wanted in (("HasAns", True), ("NoAns", False)):
        subset = [qid for qid, has in has_answer.items() if has is wanted]
        if subset:
            metrics.update({f"{prefix}_{key}": value for key, value in _averages(exact, f1, subset).items()})
    for name, raw in (("exact", exact_raw), ("f1", f1_raw)):
        metrics[f"best_{name}"], metrics[f"best_{name}_thresh"] = _best_threshold(
            texts, raw, no_answer_probs, has_answer)
    return metrics


def _apply_no_answer_threshold(
    scores: dict[str, float], no_answer_probs: dict[str, float], has_answer: dict[str, bool], threshold: float
) -> dict[str, float]:
    """Score a prediction whose probability is strictly above the threshold as "no answer":
    1 on an unanswerable question, 0 on an answerable one."""
    return {
        qid: float(not has_answer[qid]) if no_answer_probs[qid] > threshold else score
        for qid, score in scores.items()
    }


def _averages(exact: dict[str, float], f1: dict[str, float], qids: list[str]) -> dict:
    """Percent exact and F1 over `qids`, and their count (the script's make_eval_dict)."""
    total = len(qids)
    return {
        "exact": 100.0 * sum(exact[qid] for qid in qids) / total,
        "f1": 100.0 * sum(f1[qid] for qid in qids) / total,
        "total": total,
    }


def _best_threshold(
    texts: dict[str, str],
    raw_scores: dict[str, float],
    no_answer_probs: dict[str, float],
    has_answer: dict[str, bool],
) -> tuple[float, float]:
    """The best percent score over no-answer thresholds, and the threshold (find_best_thresh).

    The sweep starts with every question answered "no answer" (the unanswerable ones score 1),
    then keeps the answers one question at a time in increasing probability: an answerable
    question gains its raw score, an unanswerable one loses 1 if its raw text is non-empty (not
    normalized, as in the script). Only a strict gain moves the best, and questions of equal
    probability are kept one by one in prediction order (a stable sort), so the best may stop
    inside a run of ties; we keep both quirks, since they are the official figures.
    """
    score = best = sum(1 for has in has_answer.values() if not has)
    best_thresh = 0.0
    for qid in sorted(no_answer_probs, key=no_answer_probs.__getitem__):
        if has_answer[qid]:
            score += raw_scores[qid]
        elif texts[qid]:
            score -= 1
        if score > best:
            best, best_thresh = score, no_answer_probs[qid]
    return 100.0 * best / len(raw_scores), best_thresh


def _read_predictions(predictions: Iterable[Mapping], with_probability: bool) -> tuple[dict, dict]:
    """Index the predictions by id, in their order (the threshold search breaks ties by it)."""
    texts, no_answer_probs = {}, {}
    for i, prediction in enumerate(predictions):
        qid = _field(prediction, "id", f"predictions[{i}]", None, "Give every prediction its question's id.")
        if qid in texts:
            raise InvalidInputError("the id is predicted twice", fix="Keep one prediction per question.",
                                    source="predictions", record=qid, field="id")
        text = _field(prediction, "prediction_text", "predictions", qid, "Give the answer text, '' for none.")
        texts[qid] = _text(text, "predictions", qid, "prediction_text")
        if with_probability:
            probability = _field(
                prediction, "no_answer_probability", "predictions", qid,
                "SQuAD v2.0 needs the model's probability (or score) of no answer; 0.0 if it never abstains.",
            )
            no_answer_probs[qid] = _real(probability, "predictions", qid, "no_answer_probability")
    return texts, no_answer_probs


def _read_references(references: Iterable[Mapping]) -> dict[str, list[str]]:
    """Index the gold answer texts by id, in reference order (the order the scripts sum in)."""
    golds = {}
    for i, reference in enumerate(references):
        qid = _field(reference, "id", f"references[{i}]", None, "Give every reference its question's id.")
        if qid in golds:
            raise InvalidInputError("the id appears twice", fix="Keep one reference per question.",
                                    source="references", record=qid, field="id")
        answers = _field(reference, "answers", "references", qid, _ANSWERS_FIX)
        if not isinstance(answers, Mapping):
            raise InvalidInputError(f"expected a dict of lists, got {type(answers).__name__}",
                                    fix=_ANSWERS_FIX, source="references", record=qid, field="answers")
        texts = _field(answers, "text", "references", qid, "Give the gold answer texts, [] if unanswerable.",
                       field="answers.text")
        if isinstance(texts, (str, bytes)) or not isinstance(texts, Iterable):
            raise InvalidInputError(f"expected a list of strings, got {texts!r}",
                                    fix="Wrap a single answer in a list.",
                                    source="references", record=qid, field="answers.text")
        golds[qid] = [_text(text, "references", qid, f"answers.text[{j}]") for j, text in enumerate(texts)]
    if not golds:
        raise InvalidInputError("no references", fix="Pass at least one reference to score against.",
                                source="references")
    return golds


def _field(obj, key: str, source: str, record, fix: str, field: str | None = None):
    """obj[key], or an error naming the record, the field and the fix."""
    field = field or key
    if not isinstance(obj, Mapping):
        raise InvalidInputError(f"expected a dict with {key!r}, got {type(obj).__name__}", fix=fix,
                                source=source, record=record, field=field)
    if key not in obj:
        raise InvalidInputError("missing", fix=fix, source=source, record=record, field=field)
    return obj[key]


def _text(value, source: str, record, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidInputError(f"expected a string, got {value!r}", fix="Pass answer texts as str.",
                                source=source, record=record, field=field)
    return value


def _real(value, source: str | None, record, field: str) -> float:
    # inf is allowed: a null-score difference is infinite when no span is valid
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        raise InvalidInputError(f"expected a real number, got {value!r}", fix="Pass a float (not NaN).",
                                source=source, record=record, field=field)
    return float(value)
