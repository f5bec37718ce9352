"""predict_logits, iter_example_chunks and evaluate_qa_model on real dev-v1.1 features,
with a tiny random BERT (2 layers, hidden 32, the MiniLM vocabulary) so that it is fast.

    python -m pytest tests/unit/test_inference.py -q
"""

import datasets
import numpy as np
import pytest
import torch

from components.qa.errors import InvalidInputError
from components.qa.features import prepare_validation_features
from components.qa.inference import evaluate_qa_model, iter_example_chunks, predict_logits
from components.qa.metrics import compute_squad_metrics
from components.qa.postprocess import format_predictions, postprocess_predictions
from components.qa.squad_records import parse_squad_json
from tests.conftest import columns

PAD = -1e4


@pytest.fixture(scope="module")
def tiny_model(tokenizer):
    from transformers import BertConfig, BertForQuestionAnswering

    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64,
                        pad_token_id=tokenizer.pad_token_id)
    return BertForQuestionAnswering(config).eval()


@pytest.fixture(scope="module")
def examples(dev_v1_rows):
    """48 questions over contexts from the shortest to the longest of the dev-v1.1 sample."""
    by_length = sorted(dev_v1_rows, key=lambda r: len(r["context"]))
    picked = [by_length[i] for i in np.linspace(0, len(by_length) - 1, 48).astype(int)]
    return columns(picked)


@pytest.fixture(scope="module")
def features(examples, tokenizer):
    return prepare_validation_features(examples, tokenizer, max_length=384, doc_stride=128)


@pytest.fixture(scope="module")
def reference(tiny_model, features):
    """One feature at a time in feature order, no padding at all: (start, end) per feature."""
    rows = []
    with torch.inference_mode():
        for i in range(len(features["input_ids"])):
            out = tiny_model(input_ids=torch.tensor([features["input_ids"][i]]),
                             token_type_ids=torch.tensor([features["token_type_ids"][i]]))
            rows.append((out.start_logits[0].numpy(), out.end_logits[0].numpy()))
    return rows


def assert_rows_match(got_start, got_end, reference, begin=None):
    for i, (start, end) in enumerate(reference):
        lo = 0 if begin is None else begin[i]
        np.testing.assert_allclose(got_start[i, lo:lo + len(start)], start, atol=1e-5, rtol=0)
        np.testing.assert_allclose(got_end[i, lo:lo + len(end)], end, atol=1e-5, rtol=0)
        outside = np.r_[0:lo, lo + len(start):got_start.shape[1]]
        assert (got_start[i, outside] == PAD).all() and (got_end[i, outside] == PAD).all()


def test_sorted_batches_come_back_in_feature_order(tiny_model, features, reference):
    lengths = [len(ids) for ids in features["input_ids"]]
    assert 48 <= len(lengths) <= 60 and min(lengths) < 100 and max(lengths) == 384
    # batch 8: several batches, each padded to its own longest feature
    start, end = predict_logits(tiny_model, features, batch_size=8, pad_value=PAD)
    assert start.dtype == end.dtype == np.float32
    assert start.shape == end.shape == (len(lengths), 384)
    assert_rows_match(start, end, reference)


def test_dataset_input_and_baseline_batches_give_the_same_logits(tiny_model, features):
    sorted_dynamic = predict_logits(tiny_model, features, batch_size=16)
    dataset = datasets.Dataset.from_dict(features)
    for got in (predict_logits(tiny_model, dataset, batch_size=16),
                predict_logits(tiny_model, features, batch_size=16, sort_by_length=False,
                               pad_to_length=384)):
        np.testing.assert_allclose(got[0], sorted_dynamic[0], atol=1e-5, rtol=0)
        np.testing.assert_allclose(got[1], sorted_dynamic[1], atol=1e-5, rtol=0)


def test_padded_features_left_or_right_keep_their_positions(tiny_model, features, reference):
    """Features stored padded (pad_to_max_length): position i of a row is token i as stored."""
    rows = range(len(features["input_ids"]))
    pads = [384 - len(ids) for ids in features["input_ids"]]
    for side in ("right", "left"):
        def pad(values, i, fill, side=side):
            return values + [fill] * pads[i] if side == "right" else [fill] * pads[i] + values
        padded = {
            "input_ids": [pad(features["input_ids"][i], i, 0) for i in rows],
            "token_type_ids": [pad(features["token_type_ids"][i], i, 0) for i in rows],
            "attention_mask": [pad(features["attention_mask"][i], i, 0) for i in rows],
        }
        start, end = predict_logits(tiny_model, padded, batch_size=8, pad_value=PAD)
        assert_rows_match(start, end, reference, begin=pads if side == "left" else None)


def test_a_mask_with_a_hole_is_refused(tiny_model, features):
    broken = {k: [list(v) for v in features[k][:2]] for k in ("input_ids", "attention_mask")}
    broken["attention_mask"][1][3] = 0
    with pytest.raises(InvalidInputError, match="one run of ones") as err:
        predict_logits(tiny_model, broken)
    assert err.value.record == "1"


@pytest.mark.parametrize("chunk", [1, 3, 7, 1000])
def test_chunks_never_split_an_example(examples, features, chunk):
    chunks = list(iter_example_chunks(examples, features, chunk_examples=chunk))
    assert len(chunks) == -(-len(examples["id"]) // chunk)
    seen_examples, seen_features = [], []
    for example_chunk, feature_chunk in chunks:
        assert len(example_chunk["id"]) <= chunk
        assert set(feature_chunk["example_id"]) == set(example_chunk["id"])  # all of them
        seen_examples += example_chunk["id"]
        seen_features += feature_chunk["input_ids"]
    assert seen_examples == examples["id"]
    assert seen_features == features["input_ids"]


def test_chunks_of_datasets_and_of_shuffled_features(examples, features):
    ex, fe = datasets.Dataset.from_dict(examples), datasets.Dataset.from_dict(features)
    shuffled = fe.shuffle(seed=0)
    for feats in (fe, shuffled):
        total = 0
        for example_chunk, feature_chunk in iter_example_chunks(ex, feats, chunk_examples=6):
            assert isinstance(feature_chunk, datasets.Dataset)
            assert set(feature_chunk["example_id"]) == set(example_chunk["id"])
            total += len(feature_chunk)
        assert total == len(fe)


def test_chunks_refuse_features_of_other_examples(examples, features):
    some = {k: v[:5] for k, v in examples.items()}
    with pytest.raises(InvalidInputError, match="not among the 5 examples"):
        list(iter_example_chunks(some, features, chunk_examples=2))


def test_chunked_evaluation_equals_unchunked(tiny_model, examples, features):
    one, one_predictions = evaluate_qa_model(tiny_model, examples, features, batch_size=16,
                                             chunk_examples=10_000)
    chunked, chunked_predictions = evaluate_qa_model(
        tiny_model, datasets.Dataset.from_dict(examples), datasets.Dataset.from_dict(features),
        batch_size=5, chunk_examples=3)
    timing = {"eval_runtime", "eval_features_per_second"}
    assert {k: v for k, v in one.items() if k not in timing} == {
        k: v for k, v in chunked.items() if k not in timing}
    assert {k: p["text"] for k, p in one_predictions.items()} == {
        k: p["text"] for k, p in chunked_predictions.items()}
    # and both equal the plain composition on all the logits at once
    start, end = predict_logits(tiny_model, features)
    direct = postprocess_predictions(examples, features, start, end)
    references = [{"id": i, "answers": a} for i, a in zip(examples["id"], examples["answers"])]
    scores = compute_squad_metrics(format_predictions(direct, False), references)
    assert (one["exact_match"], one["f1"]) == (scores["exact_match"], scores["f1"])
    assert one["num_examples"] == 48 and one["num_features"] == len(features["input_ids"])


def test_unanswerable_examples_switch_to_v2(tiny_model, dev_v2_path, tokenizer):
    rows = parse_squad_json(dev_v2_path.read_text(encoding="utf-8"), str(dev_v2_path))[:30]
    assert any(not r["answers"]["text"] for r in rows)
    examples = columns(rows)
    features = prepare_validation_features(examples, tokenizer)
    metrics, predictions = evaluate_qa_model(tiny_model, examples, features)
    assert {"exact", "f1", "HasAns_f1", "NoAns_f1", "best_f1"} <= set(metrics)
    assert all("null_score_diff" in p for p in predictions.values())
