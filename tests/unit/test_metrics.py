"""SQuAD v1.1 / v2.0 metrics: hand-computed cases, a randomized property test, golden figures of
the official scripts on real dev-set slices, the offline `evaluate` module, and input errors.

No PyPI package ships the unmodified official scripts, so nothing here runs them. The expected
figures come from three independent sources instead: arithmetic done by hand (in the comments),
a closed form on randomly built answers whose token overlap is known by construction, and
figures printed by the official evaluate-v1.1.py / evaluate-v2.0.py on the dev-set slices
shipped in data/squad-sample.

    python -m pytest tests/unit/test_metrics.py -q
"""

import json
import logging
import random
import socket
import string
from fractions import Fraction

import pytest

from components.qa.errors import InvalidInputError
from components.qa.metrics import (
    SQUAD_METRIC_DIR,
    compute_squad_metrics,
    exact_match,
    f1_v1,
    f1_v2,
    normalize_answer,
)


def ref(qid, *texts):
    return {"id": qid, "answers": {"text": list(texts), "answer_start": [0] * len(texts)}}


def pred(qid, text, no_answer_probability=None):
    p = {"id": qid, "prediction_text": text}
    if no_answer_probability is not None:
        p["no_answer_probability"] = no_answer_probability
    return p


def approx(expected):
    return pytest.approx(expected, rel=0, abs=1e-9)


# --- normalization and per-answer scores ------------------------------------------------------


@pytest.mark.parametrize(
    "text, normalized",
    [
        ("The Denver Broncos!", "denver broncos"),  # case, article, punctuation
        ("  a \t cat\n", "cat"),  # whitespace collapsed around a removed article
        ("An apple, the pear", "apple pear"),
        ("Another theater", "another theater"),  # articles only as whole words
        ("the-end", "theend"),  # punctuation goes before articles: no word "the" is left
        ("the, end", "end"),
        ("U.S.A.", "usa"),
        ("Café NAÏVE", "café naïve"),  # Unicode letters kept and lower-cased
        ("“quoted”", "“quoted”"),  # only ASCII punctuation is removed
        ("", ""),
    ],
)
def test_normalize_answer(text, normalized):
    assert normalize_answer(text) == normalized


def test_token_f1_by_hand():
    # pred {denver, broncos, football, team}, gold {denver, broncos}: P = 2/4, R = 2/2, F1 = 2/3
    assert f1_v1("Denver Broncos football team", "the Denver Broncos") == approx(2 / 3)
    assert f1_v2("Denver Broncos football team", "the Denver Broncos") == approx(2 / 3)
    # repeated tokens count at most as often as in the other answer: common {cat, dog}, P = R = 2/3
    assert f1_v1("cat cat dog", "cat dog dog") == approx(2 / 3)
    assert f1_v1("cat", "dog") == 0


def test_empty_answers_differ_between_versions():
    # v1.1: no common token means 0; v2.0: two empty answers agree ("no answer" = "no answer")
    assert exact_match("", "The.")
    assert f1_v1("", "") == 0 and f1_v1("the", "") == 0
    assert f1_v2("", "") == 1 and f1_v2("a.", "the") == 1
    assert f1_v2("", "cat") == 0 and f1_v2("cat", "") == 0


# --- SQuAD v1.1 ---------------------------------------------------------------------------------


def test_v1_by_hand(caplog):
    references = [
        ref("q1", "Denver Broncos", "Broncos"),
        ref("q2", "the Denver Broncos", "football"),
        ref("q3", "Santa Clara"),
    ]
    predictions = [
        pred("q1", "the DENVER broncos."),  # EM 1, F1 1
        pred("q2", "Denver Broncos football team"),  # EM 0, F1 max(2/3, 2*(1/4)*1/(1/4+1) = 0.4)
    ]  # q3 unanswered: 0, counted in the total
    with caplog.at_level(logging.WARNING, logger="components.qa.metrics"):
        metrics = compute_squad_metrics(predictions, references)
    assert metrics == {"exact_match": approx(100 / 3), "f1": approx(100 * (1 + 2 / 3) / 3)}
    assert "1 of 3 references have no prediction" in caplog.text and "q3" in caplog.text


def test_v1_gold_that_normalizes_to_nothing():
    # v1.1 keeps the gold "the": an empty prediction matches it exactly yet has F1 0
    assert compute_squad_metrics([pred("q", "")], [ref("q", "The")]) == {"exact_match": 100.0, "f1": 0.0}


# --- SQuAD v2.0 ---------------------------------------------------------------------------------

V2_REFERENCES = [ref("h1", "Denver Broncos"), ref("h2", "the Denver Broncos"), ref("n1"), ref("n2")]
V2_PREDICTIONS = [
    pred("h1", "Denver Broncos", 0.1),  # raw EM 1, F1 1
    pred("h2", "Denver Broncos football team", 0.6),  # raw EM 0, F1 2/3
    pred("n1", "", 0.3),  # raw EM 1, F1 1: abstained on an unanswerable question
    pred("n2", "Broncos", 0.8),  # raw EM 0, F1 0
]
# The threshold sweep in probability order h1 0.1, n1 0.3, h2 0.6, n2 0.8 starts at 2 (both
# unanswerable right). exact: +1 (3, best at 0.1), +0, +0, -1. f1: +1 (3 at 0.1), +0,
# +2/3 (11/3, best at 0.6), -1. So best_exact = 3/4 at 0.1 and best_f1 = (11/3)/4 at 0.6.
V2_BEST = {
    "best_exact": 75.0, "best_exact_thresh": 0.1, "best_f1": approx(100 * 11 / 12), "best_f1_thresh": 0.6,
}


def test_v2_by_hand_default_threshold():
    metrics = compute_squad_metrics(V2_PREDICTIONS, V2_REFERENCES, version_2_with_negative=True)
    assert metrics == {
        "exact": 50.0, "f1": approx(100 * (1 + 2 / 3 + 1) / 4), "total": 4,
        "HasAns_exact": 50.0, "HasAns_f1": approx(100 * (1 + 2 / 3) / 2), "HasAns_total": 2,
        "NoAns_exact": 50.0, "NoAns_f1": 50.0, "NoAns_total": 2,
        **V2_BEST,
    }
    assert list(metrics) == [  # the order of the official script's output
        "exact", "f1", "total", "HasAns_exact", "HasAns_f1", "HasAns_total",
        "NoAns_exact", "NoAns_f1", "NoAns_total",
        "best_exact", "best_exact_thresh", "best_f1", "best_f1_thresh",
    ]


def test_v2_by_hand_threshold_half():
    # above 0.5: h2 becomes "no answer" (0 on an answerable question), n2 too (1 on an unanswerable)
    metrics = compute_squad_metrics(V2_PREDICTIONS, V2_REFERENCES, True, no_answer_threshold=0.5)
    assert metrics == {
        "exact": 75.0, "f1": 75.0, "total": 4,
        "HasAns_exact": 50.0, "HasAns_f1": 50.0, "HasAns_total": 2,
        "NoAns_exact": 100.0, "NoAns_f1": 100.0, "NoAns_total": 2,
        **V2_BEST,  # the sweep uses the raw scores, whatever the threshold
    }


def test_v2_threshold_is_strict():
    references, predictions = [ref("h", "x")], [pred("h", "x", 0.5)]
    assert compute_squad_metrics(predictions, references, True, no_answer_threshold=0.5)["exact"] == 100.0
    assert compute_squad_metrics(predictions, references, True, no_answer_threshold=0.4)["exact"] == 0.0


def test_v2_subsets_only_when_present():
    metrics = compute_squad_metrics([pred("h", "x", 0.0)], [ref("h", "x")], version_2_with_negative=True)
    assert metrics == {
        "exact": 100.0, "f1": 100.0, "total": 1, "HasAns_exact": 100.0, "HasAns_f1": 100.0, "HasAns_total": 1,
        "best_exact": 100.0, "best_exact_thresh": 0.0, "best_f1": 100.0, "best_f1_thresh": 0.0,
    }
    metrics = compute_squad_metrics([pred("n", "x", 0.9)], [ref("n")], version_2_with_negative=True)
    # unanswered wrongly, unless the threshold drops it: best at the starting state, threshold 0.0
    assert metrics["exact"] == 0.0 and metrics["NoAns_total"] == 1 and "HasAns_total" not in metrics
    assert (metrics["best_exact"], metrics["best_exact_thresh"]) == (100.0, 0.0)


def test_v2_gold_that_normalizes_to_nothing():
    # v2.0 drops the gold "The": beside "Broncos" an empty prediction no longer matches anything
    metrics = compute_squad_metrics([pred("q", "", 0.0)], [ref("q", "The", "Broncos")], True)
    assert (metrics["exact"], metrics["f1"]) == (0.0, 0.0)
    # alone, it leaves no gold, so "" is the only right answer, though the question counts as HasAns
    metrics = compute_squad_metrics([pred("q", "", 0.0)], [ref("q", "The")], version_2_with_negative=True)
    assert (metrics["exact"], metrics["f1"], metrics["HasAns_total"]) == (100.0, 100.0, 1)
    assert "NoAns_total" not in metrics


def test_v2_ties_follow_prediction_order():
    # Equal probabilities are swept one question at a time in prediction order, so the best can
    # stop inside a tie: 100 below is reached by no threshold (one keeps or drops both answers).
    references = [ref("a", "x"), ref("b")]
    a_first = [pred("a", "x", 0.5), pred("b", "y", 0.5)]  # start 1; a +1 = 2 (best); b -1
    b_first = a_first[::-1]  # start 1; b -1 = 0; a +1 = 1, not above the start
    assert _best(compute_squad_metrics(a_first, references, True)) == (100.0, 0.5, 100.0, 0.5)
    assert _best(compute_squad_metrics(b_first, references, True)) == (50.0, 0.0, 50.0, 0.0)


def test_v2_sweep_reads_raw_prediction_text():
    # "  ." normalizes to "" and scores 1 on the unanswerable n, but the sweep tests the raw text,
    # which is not empty, so it costs 1 there: best_exact (50) ends below exact (100), officially.
    references = [ref("h", "x"), ref("n")]
    predictions = [pred("h", "x", 0.2), pred("n", "  .", 0.1)]
    metrics = compute_squad_metrics(predictions, references, version_2_with_negative=True)
    assert (metrics["exact"], metrics["best_exact"], metrics["best_exact_thresh"]) == (100.0, 50.0, 0.0)
    predictions[1]["prediction_text"] = ""
    metrics = compute_squad_metrics(predictions, references, version_2_with_negative=True)
    assert (metrics["exact"], metrics["best_exact"], metrics["best_exact_thresh"]) == (100.0, 100.0, 0.2)


def _best(metrics):
    return metrics["best_exact"], metrics["best_exact_thresh"], metrics["best_f1"], metrics["best_f1_thresh"]


# --- randomized property test -------------------------------------------------------------------
# Answers are built from clean distinct tokens, so the overlap c of a prediction with a gold is
# known and F1 = 2PR/(P+R) = 2c/(|pred|+|gold|); the text handed over hides those tokens behind
# random case, ASCII punctuation, articles and whitespace, which normalization must undo.

CONTENT = ["denver", "broncos", "carolina", "panthers", "santa", "clara", "levi", "1976", "gold", "x"]
EXTRA = ["football", "team", "bay", "area", "february", "7"]


def _decorate(tokens, rng):
    def noise():
        return "".join(rng.choice(string.punctuation) for _ in range(rng.randint(0, 2)))

    words = []
    for token in tokens:
        if rng.random() < 0.3:
            words.append(noise() + rng.choice(["a", "an", "the", "A", "An", "THE"]) + noise())
        if rng.random() < 0.1:
            words.append(noise() or "--")
        words.append(noise() + rng.choice([str.lower, str.upper, str.title])(token) + noise())
    separators = [rng.choice([" ", "  ", "\t", "\n"]) for _ in words]
    return "".join(sep + word for sep, word in zip(separators, words)) + rng.choice(["", " ", "."])


def _answered(rng):
    """Decorated golds and prediction, with the prediction's best EM and F1 against them."""
    golds = [rng.sample(CONTENT, rng.randint(1, 4)) for _ in range(rng.randint(1, 3))]
    kept = [t for t in rng.choice(golds) if rng.random() < 0.7]
    predicted = kept + rng.sample(EXTRA, rng.choice([0, 0, 1, 2]))
    if rng.random() < 0.3:  # same tokens in another order: F1 unchanged, no exact match
        rng.shuffle(predicted)
    em = max(Fraction(predicted == gold) for gold in golds)
    f1 = max(Fraction(2 * len(set(predicted) & set(gold)), len(predicted) + len(gold)) for gold in golds)
    return [_decorate(g, rng) for g in golds], (_decorate(predicted, rng) if predicted else ""), em, f1


@pytest.mark.parametrize("seed", range(100))
def test_v1_random_against_closed_form(seed):
    rng = random.Random(seed)
    references, predictions, em_sum, f1_sum = [], [], Fraction(0), Fraction(0)
    for i in range(rng.randint(1, 12)):
        golds, text, em, f1 = _answered(rng)
        references.append(ref(f"q{i}", *golds))
        if rng.random() < 0.9:  # else unanswered: 0
            predictions.append(pred(f"q{i}", text))
            em_sum, f1_sum = em_sum + em, f1_sum + f1
    rng.shuffle(predictions)
    metrics = compute_squad_metrics(predictions, references)
    n = len(references)
    assert metrics == {"exact_match": approx(float(100 * em_sum / n)), "f1": approx(float(100 * f1_sum / n))}


@pytest.mark.parametrize("seed", range(100))
def test_v2_random_against_closed_form(seed):
    rng = random.Random(seed)
    references, predictions, raw = [], [], {}  # raw: qid -> (has answer, EM, F1)
    for i in range(rng.randint(1, 12)):
        qid = f"q{i}"
        if rng.random() < 0.6:
            golds, text, em, f1 = _answered(rng)
            raw[qid] = (True, em, f1)
        else:  # unanswerable: abstaining ("") is right, any content is wrong
            golds, text = [], rng.choice(["", _decorate(rng.sample(CONTENT, 2), rng)])
            raw[qid] = (False, Fraction(text == ""), Fraction(text == ""))
        references.append(ref(qid, *golds))
        predictions.append(pred(qid, text, rng.random()))  # distinct, in (0, 1)
    rng.shuffle(predictions)
    probability = {p["id"]: p["no_answer_probability"] for p in predictions}
    threshold = rng.choice([0.0, 1.0, rng.random(), rng.choice(list(probability.values()))])

    def at(t, qids, field):  # percent score with every probability above t answered "no answer"
        points = (Fraction(not raw[q][0]) if probability[q] > t else raw[q][field] for q in qids)
        return 100 * sum(points) / len(qids)

    metrics = compute_squad_metrics(predictions, references, True, threshold)
    expected = {"exact": at(threshold, raw, 1), "f1": at(threshold, raw, 2), "total": len(raw)}
    for prefix, wanted in (("HasAns", True), ("NoAns", False)):
        subset = [q for q in raw if raw[q][0] is wanted]
        if subset:
            expected[f"{prefix}_exact"] = at(threshold, subset, 1)
            expected[f"{prefix}_f1"] = at(threshold, subset, 2)
            expected[f"{prefix}_total"] = len(subset)
    # best: the max over 0.0 (all "no answer") and each probability, and a threshold reaching it;
    # for exact (integer sums) the lowest one. Two F1 sums equal here may differ by an ulp in the
    # sweep's floats, so for F1 any threshold reaching the max will do.
    candidates = [0.0] + sorted(probability.values())
    for field, name in ((1, "exact"), (2, "f1")):
        scores = [at(t, raw, field) for t in candidates]
        expected[f"best_{name}"] = max(scores)
        threshold_found = metrics.pop(f"best_{name}_thresh")
        assert at(threshold_found, raw, field) == max(scores)
        if name == "exact":
            assert threshold_found == candidates[scores.index(max(scores))]
    assert metrics == {key: approx(float(value)) for key, value in expected.items()}


# --- golden figures of the official scripts on real dev-set slices ------------------------------


def _dev_predictions(path):
    """Deterministic imperfect predictions for every question of a SQuAD file, and its references.

    Answerable: cycles through the first gold, the gold less its last word, the gold running 12
    characters on, the gold upper-cased with a period, and the 15 characters before it.
    Unanswerable: alternately "" and the first plausible answer. Every 50th question from the 7th
    is left unanswered in v1.1. Probabilities repeat (101 values), and the predictions are listed
    in reverse, so ties are broken in an order other than the references'.
    """
    predictions, references = [], []
    squad = json.loads(path.read_text())
    version_2 = squad["version"].startswith("v2")
    for article in squad["data"]:
        for paragraph in article["paragraphs"]:
            context = paragraph["context"]
            for qa in paragraph["qas"]:
                i = len(references)
                texts = [a["text"] for a in qa["answers"]]
                references.append({"id": qa["id"], "answers": {
                    "text": texts, "answer_start": [a["answer_start"] for a in qa["answers"]]}})
                if texts:
                    gold, start = texts[0], qa["answers"][0]["answer_start"]
                    text = [
                        gold,
                        " ".join(gold.split()[:-1]),
                        context[start:start + len(gold) + 12],
                        gold.upper() + ".",
                        context[max(0, start - 15):start],
                    ][i % 5]
                else:
                    text = "" if i % 2 else (qa.get("plausible_answers") or [{"text": ""}])[0]["text"]
                if i % 50 == 7 and not version_2:
                    continue
                predictions.append(pred(qa["id"], text, i * 37 % 101 / 100))
    return predictions[::-1], references


# Printed by the official scripts on _dev_predictions of each shipped sample (dev_v1_path: the
# first 24 articles of dev-v1.1; dev_v2_path: two articles of dev-v2.0): evaluate-v1.1.py's
# compute_score and evaluate-v2.0.py's functions, called as Hugging Face evaluate's squad and
# squad_v2 metrics call them (the copies in huggingface/evaluate metrics/squad*/compute_score.py,
# whose only change is reading answers as a dict of lists). The same calls print the figures the
# full dev-v1.1 and the five-article dev-v2.0 file had here before: EM 41.74077578051088 /
# F1 63.7169158941184 and best_exact 50.24875621890547 at 0.1.
GOLDEN_V1 = {"exact_match": 42.14876033057851, "f1": 63.21562395694792}
GOLDEN_V2_BEST = {
    "best_exact": 47.56554307116105, "best_exact_thresh": 0.11,
    "best_f1": 56.69698591046915, "best_f1_thresh": 1.0,
}
GOLDEN_V2 = {
    1.0: {
        "exact": 46.254681647940075, "f1": 56.50971999286607, "total": 534,
        "HasAns_exact": 43.40277777777778, "HasAns_f1": 62.41732804232806, "HasAns_total": 288,
        "NoAns_exact": 49.59349593495935, "NoAns_f1": 49.59349593495935, "NoAns_total": 246,
        **GOLDEN_V2_BEST,
    },
    0.5: {
        "exact": 45.88014981273408, "f1": 50.914481897627965, "total": 534,
        "HasAns_exact": 22.916666666666668, "HasAns_f1": 32.25115740740742, "HasAns_total": 288,
        "NoAns_exact": 72.76422764227642, "NoAns_f1": 72.76422764227642, "NoAns_total": 246,
        **GOLDEN_V2_BEST,
    },
}


def test_v1_dev_set_matches_official_script(dev_v1_path):
    predictions, references = _dev_predictions(dev_v1_path)
    assert (len(predictions), len(references)) == (4861, 4961)
    for p in predictions:
        del p["no_answer_probability"]
    assert compute_squad_metrics(predictions, references) == {k: approx(v) for k, v in GOLDEN_V1.items()}


@pytest.mark.parametrize("threshold", [1.0, 0.5])
def test_v2_dev_articles_match_official_script(dev_v2_path, threshold):
    predictions, references = _dev_predictions(dev_v2_path)
    metrics = compute_squad_metrics(predictions, references, True, threshold)
    assert metrics == {k: approx(v) for k, v in GOLDEN_V2[threshold].items()}
    # the same questions in reference order break ties differently, as the official script does
    assert compute_squad_metrics(predictions[::-1], references, True, threshold)["best_exact"] != approx(
        GOLDEN_V2_BEST["best_exact"]
    )


# --- the evaluate module ------------------------------------------------------------------------


@pytest.fixture
def load_offline(monkeypatch):
    """evaluate.load with every network connection refused, to show the module needs none."""
    import evaluate

    def refuse(*args, **kwargs):
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    return lambda *args: evaluate.load(str(SQUAD_METRIC_DIR), *args, keep_in_memory=True)


@pytest.mark.parametrize("config", [None, "squad"])
def test_evaluate_module_v1(load_offline, config):
    references = [ref("q1", "Denver Broncos", "Broncos"), ref("q2", "the Denver Broncos", "football")]
    predictions = [pred("q1", "the DENVER broncos."), pred("q2", "Denver Broncos football team")]
    metric = load_offline(*([config] if config else []))
    got = metric.compute(predictions=predictions, references=references)
    assert got == compute_squad_metrics(predictions, references)
    assert got == {"exact_match": 50.0, "f1": approx(250 / 3)}


def test_evaluate_module_v2(load_offline):
    metric = load_offline("squad_v2")
    for threshold in (1.0, 0.5):
        got = metric.compute(
            predictions=V2_PREDICTIONS, references=V2_REFERENCES, no_answer_threshold=threshold)
        assert got == compute_squad_metrics(V2_PREDICTIONS, V2_REFERENCES, True, threshold)
    # probabilities travel as float64: 0.1 comes back as 0.1, not as float32's 0.10000000149...
    assert got["best_exact_thresh"] == 0.1


def test_evaluate_module_rejects_wrong_config(load_offline):
    with pytest.raises(InvalidInputError, match="unknown config 'squad_v3'.*'squad_v2' for SQuAD v2.0"):
        load_offline("squad_v3")
    with pytest.raises(InvalidInputError, match="Load the metric with 'squad_v2'"):
        load_offline("squad").compute(
            predictions=[pred("q", "x")], references=[ref("q", "x")], no_answer_threshold=0.5)


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "predictions, references, version_2, message",
    [
        ([pred("q9", "x")], [ref("q1", "x")], False,
         r"in predictions, record 'q9', field 'id': 1 prediction id\(s\) are not among the 1 references"),
        ([pred("q1", "x", 0.1)], [ref("q1", "x"), ref("q2")], True,
         r"in references, record 'q2', field 'id': 1 of 2 references have no prediction"
         r".* to abstain, predict ''"),
        ([{"id": "q1"}], [ref("q1", "x")], False,
         r"in predictions, record 'q1', field 'prediction_text': missing"),
        ([{"prediction_text": "x"}], [ref("q1", "x")], False, r"in predictions\[0\], field 'id': missing"),
        ([pred("q1", "x")], [ref("q1", "x")], True,
         r"record 'q1', field 'no_answer_probability': missing\. SQuAD v2\.0 needs"),
        ([pred("q1", "x", float("nan"))], [ref("q1", "x")], True,
         r"field 'no_answer_probability': expected a real number, got nan"),
        ([pred("q1", None)], [ref("q1", "x")], False,
         r"field 'prediction_text': expected a string, got None"),
        ([pred("q1", "x"), pred("q1", "y")], [ref("q1", "x")], False,
         r"record 'q1', field 'id': the id is predicted twice"),
        ([pred("q1", "x")], [ref("q1", "x"), ref("q1", "y")], False,
         r"in references, record 'q1'.*appears twice"),
        ([pred("q1", "x")], [{"id": "q1"}], False, r"in references, record 'q1', field 'answers': missing"),
        ([pred("q1", "x")], [{"id": "q1", "answers": {"text": "x"}}], False,
         r"field 'answers\.text': expected a list of strings, got 'x'\. Wrap a single answer in a list"),
        ([pred("q1", "x")], [{"id": "q1", "answers": [{"text": "x"}]}], False,
         r"field 'answers': expected a dict of lists, got list"),
        ([pred("q1", "x")], [ref("q1", 3)], False, r"field 'answers\.text\[0\]': expected a string, got 3"),
        ([pred("q1", "x")], [ref("q1")], False,
         r"record 'q1', field 'answers\.text': no gold answer.*version_2_with_negative=True"),
        ([], [], False, r"in references: no references"),
    ],
)
def test_bad_input_is_a_clear_error(predictions, references, version_2, message):
    with pytest.raises(InvalidInputError, match=message):
        compute_squad_metrics(predictions, references, version_2_with_negative=version_2)


def test_bad_threshold():
    with pytest.raises(ValueError, match="field 'no_answer_threshold': expected a real number, got 'high'"):
        compute_squad_metrics([pred("q", "x", 0.1)], [ref("q", "x")], True, no_answer_threshold="high")
