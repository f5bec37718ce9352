"""postprocess_predictions: checked against a plain double loop, by hand, and on real SQuAD text."""

from __future__ import annotations

import json
import math
from collections import defaultdict

import datasets
import numpy as np
import pytest

from components.qa.postprocess import format_predictions, postprocess_predictions

# --------------------------------------------------------------------------------------
# reference: the straightforward implementation, one feature and one pair at a time


def reference_postprocess(examples, features, start_logits, end_logits, n_best=20,
                          max_answer_length=30, version_2_with_negative=False,
                          null_score_diff_threshold=0.0):
    spans = defaultdict(list)  # example id -> (-score, feature, start, end, text)
    null_score = {}
    contexts = dict(zip(examples["id"], examples["context"]))
    cls_index = features.get("cls_index", [0] * len(features["example_id"]))
    for f, (example_id, offsets) in enumerate(zip(features["example_id"],
                                                  features["offset_mapping"])):
        context = contexts[example_id]  # a token of whitespace only starts or ends nothing
        context_tokens = [i for i, o in enumerate(offsets)
                          if o is not None and context[o[0]:o[1]].strip()]
        # sorted() is stable: among equal logits the smaller position comes first
        starts = sorted(context_tokens, key=lambda i: -start_logits[f][i])[:n_best]
        ends = sorted(context_tokens, key=lambda i: -end_logits[f][i])[:n_best]
        for s in starts:
            for e in ends:
                if e < s or e - s + 1 > max_answer_length:
                    continue
                score = float(start_logits[f][s]) + float(end_logits[f][e])
                text = context[offsets[s][0]:offsets[e][1]].strip()
                spans[example_id].append((-score, f, s, e, text))
        c = cls_index[f]
        null = float(start_logits[f][c]) + float(end_logits[f][c])
        null_score[example_id] = min(null_score.get(example_id, math.inf), null)
    out = {}
    for example_id in examples["id"]:
        best = sorted(spans[example_id])[:n_best]
        n_best_list = [{"text": text, "score": -neg} for neg, _, _, _, text in best]
        text = best[0][4] if best else ""
        score = -best[0][0] if best else -math.inf
        prediction = {"text": text, "score": score}
        if version_2_with_negative:
            null = null_score[example_id]
            at = sum(1 for c in n_best_list if c["score"] >= null)
            n_best_list.insert(at, {"text": "", "score": null})
            prediction.update(null_score_diff=null - score, span_text=text)
            if null > score + null_score_diff_threshold:
                prediction.update(text="", score=null)
        top = max(c["score"] for c in n_best_list) if n_best_list else 0.0
        weights = [math.exp(c["score"] - top) for c in n_best_list]
        for c, w in zip(n_best_list, weights):
            c["probability"] = w / sum(weights)
        prediction["n_best"] = n_best_list
        out[example_id] = prediction
    return out


def assert_same(got, want):
    assert list(got) == list(want)
    for example_id, w in want.items():
        g = got[example_id]
        assert g["text"] == w["text"], example_id
        assert g["score"] == pytest.approx(w["score"], rel=1e-12, abs=1e-12), example_id
        assert [c["text"] for c in g["n_best"]] == [c["text"] for c in w["n_best"]], example_id
        np.testing.assert_allclose([c["score"] for c in g["n_best"]],
                                   [c["score"] for c in w["n_best"]], rtol=1e-12)
        np.testing.assert_allclose([c["probability"] for c in g["n_best"]],
                                   [c["probability"] for c in w["n_best"]], rtol=1e-9)
        if "null_score_diff" in w:
            assert g["null_score_diff"] == pytest.approx(w["null_score_diff"], rel=1e-12)
            assert g["span_text"] == w["span_text"]


# --------------------------------------------------------------------------------------
# synthetic features laid out as BERT's: [CLS] question [SEP] context window [SEP]


def synthetic(rng, num_examples, max_windows=4, max_context=12, pad=3, integer_logits=False,
              empty_window_rate=0.0, metaspace=False):
    """Examples, features (dict of columns) and padded logits with huge padding values.

    `metaspace`: offsets as SentencePiece/Metaspace tokenizers give them: a word's token
    covers the whitespace before it, and some whitespace runs are tokens of their own.
    """
    examples = {"id": [], "context": []}
    features = {"example_id": [], "offset_mapping": [], "cls_index": []}
    for e in range(num_examples):
        example_id = f"q{e}"
        words = [("abcdefgh"[rng.integers(8)] * int(rng.integers(1, 4))) for _ in range(40)]
        gaps = [" \n\u3000"[:int(rng.integers(1, 4))] if metaspace else " " for _ in words]
        context = "".join(gap + w for gap, w in zip(gaps, words))[len(gaps[0]):]
        bounds, pos = [], 0
        for i, w in enumerate(words):
            if metaspace and i and rng.random() < 0.2:  # the gap alone, then the word
                bounds.append([pos - len(gaps[i]), pos])
            bounds.append([pos - (len(gaps[i]) if metaspace and i else 0), pos + len(w)])
            pos += len(w) + (len(gaps[i + 1]) if i + 1 < len(words) else 0)
        examples["id"].append(example_id)
        examples["context"].append(context)
        for _ in range(int(rng.integers(1, max_windows + 1))):
            question = int(rng.integers(1, 4))
            n_context = int(rng.integers(1, max_context + 1))
            if rng.random() < empty_window_rate:
                n_context = 0
            first = int(rng.integers(0, len(words) - n_context + 1))
            offsets = ([None] * (question + 2) + bounds[first:first + n_context] + [None])
            features["example_id"].append(example_id)
            features["offset_mapping"].append(offsets)
            features["cls_index"].append(0)
    width = max(len(o) for o in features["offset_mapping"]) + pad
    shape = (len(features["example_id"]), width)
    if integer_logits:  # many ties
        start, end = (rng.integers(-2, 3, size=shape).astype(np.float32) for _ in range(2))
    else:
        start, end = (rng.normal(size=shape).astype(np.float32) for _ in range(2))
    for f, offsets in enumerate(features["offset_mapping"]):
        start[f, len(offsets):] = 1e6
        end[f, len(offsets):] = 1e6
    return examples, features, start, end


CASES = [  # (seed, examples, context tokens per window up to, n_best, max_answer_length, v2,
    #          null_score_diff_threshold)
    (0, 1, 12, 20, 30, False, 0.0),
    (1, 7, 12, 20, 30, False, 0.0),
    (2, 30, 12, 5, 4, False, 0.0),
    (3, 30, 12, 1, 30, False, 0.0),
    (4, 30, 12, 3, 1, False, 0.0),
    (5, 50, 12, 40, 6, False, 0.0),
    (6, 40, 40, 20, 30, False, 0.0),
    (7, 40, 40, 20, 8, False, 0.0),
    (8, 7, 12, 20, 30, True, 0.0),
    (9, 40, 12, 5, 3, True, 0.0),
    (10, 40, 40, 20, 30, True, 1.5),
    (11, 40, 40, 2, 10, True, -1.0),
]


@pytest.mark.parametrize("seed,num_examples,max_context,n_best,max_len,v2,threshold", CASES)
def test_matches_double_loop_on_random_logits(seed, num_examples, max_context, n_best, max_len,
                                              v2, threshold):
    rng = np.random.default_rng(seed)
    examples, features, start, end = synthetic(rng, num_examples, max_context=max_context)
    kwargs = dict(n_best=n_best, max_answer_length=max_len, version_2_with_negative=v2,
                  null_score_diff_threshold=threshold)
    got = postprocess_predictions(examples, features, start, end, **kwargs)
    assert_same(got, reference_postprocess(examples, features, start, end, **kwargs))


@pytest.mark.parametrize("seed,v2", [(20, False), (21, True), (22, False)])
def test_answers_are_stripped_like_the_double_loop(seed, v2):
    # offsets that include the space before a word, and tokens of whitespace only
    rng = np.random.default_rng(seed)
    examples, features, start, end = synthetic(rng, 40, max_context=12, metaspace=True)
    contexts = dict(zip(examples["id"], examples["context"]))
    assert any(contexts[e][o[0]].isspace() for e, offsets in
               zip(features["example_id"], features["offset_mapping"]) for o in offsets if o)
    got = postprocess_predictions(examples, features, start, end, version_2_with_negative=v2)
    assert_same(got, reference_postprocess(examples, features, start, end,
                                           version_2_with_negative=v2))
    for example_id, p in got.items():
        assert all(c["text"] == c["text"].strip() for c in p["n_best"])
        if p["text"]:
            assert p["text"].strip() == p["text"]
            assert contexts[example_id][p["start"]:p["end"]] == p["text"]


@pytest.mark.parametrize("v2", [False, True])
def test_ties_follow_the_documented_order(v2):
    # integer logits tie everywhere: the order must still equal the stable double loop's
    rng = np.random.default_rng(11)
    examples, features, start, end = synthetic(rng, 60, max_context=30, integer_logits=True)
    for n_best in (1, 3, 20):
        kwargs = dict(n_best=n_best, max_answer_length=5, version_2_with_negative=v2)
        got = postprocess_predictions(examples, features, start, end, **kwargs)
        assert_same(got, reference_postprocess(examples, features, start, end, **kwargs))


@pytest.mark.parametrize("v2", [False, True])
def test_windows_without_context(v2):
    rng = np.random.default_rng(12)
    examples, features, start, end = synthetic(rng, 40, empty_window_rate=0.5)
    got = postprocess_predictions(examples, features, start, end, n_best=4,
                                  version_2_with_negative=v2)
    want = reference_postprocess(examples, features, start, end, n_best=4,
                                 version_2_with_negative=v2)
    assert_same(got, want)
    context_tokens = defaultdict(int)
    null_score = defaultdict(lambda: math.inf)
    for f, (example_id, offsets) in enumerate(zip(features["example_id"],
                                                  features["offset_mapping"])):
        context_tokens[example_id] += sum(o is not None for o in offsets)
        null_score[example_id] = min(null_score[example_id], float(start[f, 0]) + float(end[f, 0]))
    no_context = [e for e in examples["id"] if not context_tokens[e]]
    assert 0 < len(no_context) < len(examples["id"])
    for example_id, p in got.items():
        if example_id not in no_context:
            assert p["text"] or v2, example_id  # v1 answers from the windows with context
        elif v2:  # no span at all: the null answer, certain
            assert (p["text"], p["null_score_diff"]) == ("", math.inf), example_id
            assert p["score"] == pytest.approx(null_score[example_id], rel=1e-12)
            assert [(c["text"], c["probability"]) for c in p["n_best"]] == [("", 1.0)]
        else:  # no span and no null answer to fall back on
            assert (p["text"], p["score"], p["n_best"]) == ("", -math.inf, []), example_id


def test_dataset_input_equals_dict_input_and_honours_select():
    rng = np.random.default_rng(13)
    examples, features, start, end = synthetic(rng, 25)
    want = postprocess_predictions(examples, features, start, end, n_best=5)
    ds_examples = datasets.Dataset.from_dict(examples)
    ds_features = datasets.Dataset.from_dict(features)
    assert_same(postprocess_predictions(ds_examples, ds_features, start, end, n_best=5), want)
    # an indices mapping (select/shuffle): features reversed, logits rows with them
    order = np.arange(len(start))[::-1]
    reversed_features = ds_features.select(order)
    got = postprocess_predictions(ds_examples, reversed_features, start[order], end[order],
                                  n_best=5)
    want_reversed = reference_postprocess(
        examples, {k: [v[i] for i in order] for k, v in features.items()},
        start[order], end[order], n_best=5)
    assert_same(got, want_reversed)


def test_arrow_layouts_and_padding_give_the_same_predictions():
    import pyarrow as pa

    rng = np.random.default_rng(18)
    examples, features, start, end = synthetic(rng, 30)
    want = postprocess_predictions(examples, features, start, end, n_best=5)
    ds = datasets.Dataset.from_dict(features)
    # several Arrow chunks, as a Dataset written in batches has
    parts = [ds.select(range(i, min(i + 7, len(ds)))).flatten_indices()
             for i in range(0, len(ds), 7)]
    chunked = datasets.concatenate_datasets(parts)
    assert chunked.with_format("arrow")["offset_mapping"].num_chunks > 1
    assert_same(postprocess_predictions(examples, chunked, start, end, n_best=5), want)
    # and out of order across chunks: logits rows follow the features
    order = rng.permutation(len(ds))
    got = postprocess_predictions(examples, chunked.select(order), start[order], end[order],
                                  n_best=5)
    assert {i: p["text"] for i, p in got.items()} == {i: p["text"] for i, p in want.items()}
    # fixed-size [start, end] pairs
    pair_type = datasets.List(datasets.List(datasets.Value("int32"), 2))
    pairs = ds.cast_column("offset_mapping", pair_type)
    assert pa.types.is_fixed_size_list(
        pairs.with_format("arrow")["offset_mapping"].type.value_type)
    assert_same(postprocess_predictions(examples, pairs, start, end, n_best=5), want)
    # padded to the logits width (pad_to_max_length=True): None offsets, same answers
    width = start.shape[1]
    padded = dict(features, offset_mapping=[o + [None] * (width - len(o))
                                            for o in features["offset_mapping"]])
    assert_same(postprocess_predictions(examples, padded, start, end, n_best=5), want)


def test_chunks_of_examples_give_the_same_predictions():
    rng = np.random.default_rng(14)
    examples, features, start, end = synthetic(rng, 30)
    whole = postprocess_predictions(examples, features, start, end, version_2_with_negative=True)
    ids = examples["id"]
    for chunk in (ids[:7], ids[7:8], ids[8:]):
        rows = [f for f, i in enumerate(features["example_id"]) if i in chunk]
        sub_examples = {k: [v[ids.index(i)] for i in chunk] for k, v in examples.items()}
        sub_features = {k: [v[f] for f in rows] for k, v in features.items()}
        part = postprocess_predictions(sub_examples, sub_features, start[rows], end[rows],
                                       version_2_with_negative=True)
        assert part == {i: whole[i] for i in chunk}


# --------------------------------------------------------------------------------------
# hand-built cases: one example "The quick brown fox jumps", tokens at these offsets

CONTEXT = "The quick brown fox jumps"
WORDS = [[0, 3], [4, 9], [10, 15], [16, 19], [20, 25]]  # The quick brown fox jumps


def one_example(windows, width=None):
    """windows: list of (first word, number of words); 2 question tokens each."""
    offsets = [[None, None, None, None] + WORDS[a:a + n] + [None] for a, n in windows]
    width = width or max(len(o) for o in offsets)
    examples = {"id": ["x"], "context": [CONTEXT]}
    features = {"example_id": ["x"] * len(windows), "offset_mapping": offsets,
                "cls_index": [0] * len(windows)}
    return examples, features, np.zeros((len(windows), width)), np.zeros((len(windows), width))


def test_best_span_across_two_windows():
    examples, features, start, end = one_example([(0, 3), (2, 3)])
    start[0, 4], end[0, 5] = 2.0, 2.0  # window 0: "The quick" scores 4
    start[1, 5], end[1, 6] = 3.0, 2.5  # window 1: "fox jumps" scores 5.5 (tokens 5, 6)
    pred = postprocess_predictions(examples, features, start, end)["x"]
    assert (pred["text"], pred["score"]) == ("fox jumps", 5.5)
    assert CONTEXT[pred["start"]:pred["end"]] == "fox jumps"
    assert pred["n_best"][1]["text"] == "The quick"


def test_too_long_and_reversed_spans_are_rejected():
    examples, features, start, end = one_example([(0, 5)])  # tokens 4..8
    start[0, 4], end[0, 8], end[0, 7] = 5.0, 5.0, 1.0  # (4, 8) is 5 tokens long
    pred = postprocess_predictions(examples, features, start, end, max_answer_length=4)["x"]
    assert (pred["text"], pred["score"]) == ("The quick brown fox", 6.0)
    assert CONTEXT not in [c["text"] for c in pred["n_best"]]
    pred = postprocess_predictions(examples, features, start, end, max_answer_length=5)["x"]
    assert (pred["text"], pred["score"]) == (CONTEXT, 10.0)

    examples, features, start, end = one_example([(0, 5)])
    start[0, 7], end[0, 5], end[0, 7] = 5.0, 5.0, 1.0  # (7, 5) ends before it starts
    pred = postprocess_predictions(examples, features, start, end)["x"]
    assert (pred["text"], pred["score"]) == ("fox", 6.0)
    assert all(c["score"] < 10.0 for c in pred["n_best"])


def test_float32_rounding_does_not_decide():
    # 1 + (1 + 2**-23) rounds to 2.0 in float32, like 1 + 1: the float64 sums decide
    examples, features, start, end = one_example([(0, 5)])
    start, end = start.astype(np.float32), end.astype(np.float32)
    start[0, 4] = start[0, 5] = end[0, 4] = 1.0
    end[0, 5] = np.float32(1.0 + 2.0**-23)
    pred = postprocess_predictions(examples, features, start, end, n_best=2)["x"]
    assert [c["text"] for c in pred["n_best"]] == ["The quick", "quick"]
    assert pred["score"] == 2.0 + 2.0**-23


def test_non_context_and_padding_never_chosen():
    examples, features, start, end = one_example([(1, 2)], width=12)
    start[0, :4] = end[0, :4] = 100.0  # CLS and question
    start[0, 6] = end[0, 6] = 100.0  # SEP
    start[0, 7:] = end[0, 7:] = 1e9  # padding
    start[0, 4], end[0, 5] = 1.0, 1.0
    pred = postprocess_predictions(examples, features, start, end, n_best=1)["x"]
    assert pred["text"] == "quick brown"  # n_best=1 still finds it: masking comes first
    assert pred["score"] == 2.0


def test_null_answer_around_the_threshold():
    examples, features, start, end = one_example([(0, 3), (2, 3)])
    start[:, 0] = [1.0, 3.0]
    end[:, 0] = [1.0, 3.0]  # null scores 2 and 6: the example's is the min, 2
    start[1, 5], end[1, 5] = 0.75, 0.75  # best span "fox", 1.5
    for threshold, text in ((0.0, ""), (0.49, ""), (0.5, "fox"), (2.0, "fox")):
        pred = postprocess_predictions(examples, features, start, end, version_2_with_negative=True,
                                       null_score_diff_threshold=threshold)["x"]
        assert pred["text"] == text, threshold
        assert pred["null_score_diff"] == pytest.approx(0.5)
        assert pred["span_text"] == "fox"
        assert pred["n_best"][0] == {"text": "", "score": 2.0,
                                     "probability": pytest.approx(pred["n_best"][0]["probability"])}
    assert format_predictions({"x": pred}, True) == [
        {"id": "x", "prediction_text": "fox", "no_answer_probability": pytest.approx(0.5)}]
    assert format_predictions({"x": pred}, False) == [{"id": "x", "prediction_text": "fox"}]


@pytest.mark.parametrize("v2", [False, True])
def test_probabilities_sum_to_one(v2):
    rng = np.random.default_rng(15)
    examples, features, start, end = synthetic(rng, 20)
    for pred in postprocess_predictions(examples, features, start * 5, end * 5,
                                        version_2_with_negative=v2).values():
        probabilities = [c["probability"] for c in pred["n_best"]]
        assert sum(probabilities) == pytest.approx(1.0)
        assert probabilities == sorted(probabilities, reverse=True)


def test_v2_format_scores_like_the_decided_text():
    # the metric, told our threshold, must score format_predictions' output as our texts
    from components.qa.metrics import compute_squad_metrics

    rng = np.random.default_rng(16)
    examples, features, start, end = synthetic(rng, 40)
    preds = postprocess_predictions(examples, features, start, end, n_best=5,
                                    version_2_with_negative=True, null_score_diff_threshold=0.3)
    references = [{"id": i, "answers": {"text": [c[:5]] if n % 2 else [], "answer_start": [0]}}
                  for n, (i, c) in enumerate(zip(examples["id"], examples["context"]))]
    formatted = format_predictions(preds, True)
    decided = [{"id": i, "prediction_text": p["text"], "no_answer_probability": 0.0}
               for i, p in preds.items()]
    got = compute_squad_metrics(formatted, references, True, no_answer_threshold=0.3)
    want = compute_squad_metrics(decided, references, True)
    assert (got["exact"], got["f1"]) == (want["exact"], want["f1"])
    assert got["best_f1"] >= got["f1"]


# --------------------------------------------------------------------------------------
# errors


def test_errors_name_the_problem():
    examples, features, start, end = one_example([(0, 3), (2, 3)])
    with pytest.raises(ValueError, match=r"start_logits has shape \(1, 8\), expected \(2,"):
        postprocess_predictions(examples, features, start[:1], end[:1])
    with pytest.raises(ValueError, match="start_logits .* and end_logits .* differ"):
        postprocess_predictions(examples, features, start, end[:, :5])
    with pytest.raises(ValueError, match="only 5 columns"):
        postprocess_predictions(examples, features, start[:, :5], end[:, :5])
    bad = dict(features, example_id=["x", "nope"])
    with pytest.raises(ValueError, match="'nope' is not among the 1 examples"):
        postprocess_predictions(examples, bad, start, end)
    two = {"id": ["x", "y"], "context": [CONTEXT, CONTEXT]}
    with pytest.raises(ValueError, match="record 'y'.*example has no features"):
        postprocess_predictions(two, features, start, end)
    with pytest.raises(ValueError, match="two examples share an id"):
        postprocess_predictions({"id": ["x", "x"], "context": [CONTEXT] * 2}, features, start, end)
    with pytest.raises(ValueError, match="no 'offset_mapping' column"):
        postprocess_predictions(examples, {"example_id": ["x", "x"]}, start, end)
    with pytest.raises(ValueError, match="2 example_ids but 1 offset_mappings"):
        short = dict(features, offset_mapping=features["offset_mapping"][:1])
        postprocess_predictions(examples, short, start, end)
    bad_pair = [offsets[:] for offsets in features["offset_mapping"]]
    bad_pair[1][5] = [3]
    with pytest.raises(ValueError, match=r"not a \[start, end\] pair"):
        postprocess_predictions(examples, dict(features, offset_mapping=bad_pair), start, end)
    with pytest.raises(ValueError, match="n_best=0"):
        postprocess_predictions(examples, features, start, end, n_best=0)
    with pytest.raises(ValueError, match="cls_index 9"):
        postprocess_predictions(examples, dict(features, cls_index=[0, 9]), start, end,
                                version_2_with_negative=True)
    with pytest.raises(ValueError, match="no null_score_diff"):
        format_predictions(postprocess_predictions(examples, features, start, end), True)


# --------------------------------------------------------------------------------------
# real SQuAD text through the real tokenizer


def real_examples(squad_path, count_short=6, count_long=6):
    rows = []
    for article in json.loads(squad_path.read_text())["data"][:8]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"][:1]:
                answers = {"text": [a["text"] for a in qa["answers"]],
                           "answer_start": [a["answer_start"] for a in qa["answers"]]}
                rows.append({"id": qa["id"], "context": paragraph["context"],
                             "question": qa["question"], "answers": answers})
    rows.sort(key=lambda r: len(r["context"]))
    picked = rows[:count_short] + rows[-count_long:]  # the long ones span several windows
    return {k: [r[k] for r in picked] for k in picked[0]}


def test_real_features_decode_gold_answers(tokenizer, dev_v1_path):
    from components.qa.features import prepare_validation_features

    examples = real_examples(dev_v1_path)
    features = prepare_validation_features(examples, tokenizer, max_length=384, doc_stride=128)
    assert len(features["example_id"]) > len(examples["id"])  # some contexts need 2+ windows
    rng = np.random.default_rng(17)
    width = max(len(ids) for ids in features["input_ids"])
    start = rng.normal(size=(len(features["input_ids"]), width)).astype(np.float32)
    end = rng.normal(size=start.shape).astype(np.float32)
    gold = {}
    for f, (example_id, offsets) in enumerate(zip(features["example_id"],
                                                  features["offset_mapping"])):
        e = examples["id"].index(example_id)
        text, first = examples["answers"][e]["text"][0], examples["answers"][e]["answer_start"][0]
        last = first + len(text)
        tokens = [i for i, o in enumerate(offsets)
                  if o is not None and o[0] < last and o[1] > first]
        start[f, len(offsets):] = end[f, len(offsets):] = 1e4  # padding
        if tokens and offsets[tokens[0]][0] <= first and offsets[tokens[-1]][1] >= last:
            start[f, tokens[0]] = end[f, tokens[-1]] = 10.0
            # the gold text, cut at token boundaries (answers like "1990" inside "1990s" widen)
            gold[example_id] = examples["context"][e][offsets[tokens[0]][0]:offsets[tokens[-1]][1]]
    assert set(gold) == set(examples["id"])
    preds = postprocess_predictions(examples, datasets.Dataset.from_dict(features), start, end)
    assert {i: p["text"] for i, p in preds.items()} == gold
    exact = sum(preds[i]["text"] == examples["answers"][e]["text"][0]
                for e, i in enumerate(examples["id"]))
    assert exact >= len(examples["id"]) - 2  # token boundaries match most gold answers
    assert_same(preds, reference_postprocess(examples, features, start, end))
