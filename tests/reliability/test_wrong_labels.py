"""Silent wrong results (issue #13): labels that point off their answer, a run trained on no
answer, answers with a leading space, the SQuAD v2.0 threshold. Real SQuAD text through
real (small, offline) tokenizers of several families: tests/tokenizer_families.py."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest

from components.qa.features import prepare_train_features
from components.qa.metrics import normalize_answer
from components.qa.training import QACollator
from tests.tokenizer_families import tokenizer_family_dirs  # noqa: F401 (a fixture)

REPO = Path(__file__).resolve().parents[2]
SAMPLE_TRAIN = REPO / "data" / "squad-sample" / "train.json"


def sample_rows(count: int, skip: int = 0) -> list[dict]:
    """`count` answerable questions of the shipped SQuAD sample, one per paragraph."""
    rows = []
    for article in json.loads(SAMPLE_TRAIN.read_text(encoding="utf-8"))["data"]:
        for paragraph in article["paragraphs"]:
            qa = paragraph["qas"][0]
            rows.append({"id": qa["id"], "title": article["title"],
                         "context": paragraph["context"], "question": qa["question"],
                         "answers": {"text": [a["text"] for a in qa["answers"]],
                                     "answer_start": [a["answer_start"] for a in qa["answers"]]}})
    return rows[skip:skip + count]


def labelled_features(tokenizer, rows: list[dict], max_length: int = 256, doc_stride: int = 64
                      ) -> list[tuple[dict, str]]:
    """(feature, gold answer) for every window that holds its example's answer, built one
    example at a time so each feature knows its answer; unpadded, as the pipeline stores them."""
    out = []
    for row in rows:
        batch = {k: [v] for k, v in row.items()}
        features = prepare_train_features(batch, tokenizer, max_length=max_length,
                                          doc_stride=doc_stride)
        for i, start in enumerate(features["start_positions"]):
            cls = features["input_ids"][i].index(tokenizer.cls_token_id)
            if start != cls:
                out.append(({k: v[i] for k, v in features.items()}, row["answers"]["text"][0]))
    return out


def label_text(tokenizer, input_ids, start: int, end: int) -> str:
    return normalize_answer(tokenizer.decode(list(input_ids[start:end + 1]),
                                             skip_special_tokens=False))


# --------------------------------------------------------------------------------------
# left-padding tokenizers: labels must stay on their tokens in every padded batch


@pytest.mark.parametrize("family", ["roberta-left", "roberta", "bert-cased"])
@pytest.mark.parametrize("pad", ["longest", "multiple_of_8", "max_length"])
def test_collated_batches_keep_labels_on_the_answer(tokenizer_family_dirs, family, pad):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_family_dirs[family])
    assert tokenizer.padding_side == ("left" if family.endswith("-left") else "right")
    pairs = labelled_features(tokenizer, sample_rows(24))
    # features whose stored tokens at the labels read the answer (token boundaries can widen
    # an answer such as "1990" inside "1990s": those prove nothing about padding)
    pairs = [(f, answer) for f, answer in pairs
             if label_text(tokenizer, f["input_ids"], f["start_positions"], f["end_positions"])
             == normalize_answer(answer)]
    assert len(pairs) >= 12
    lengths = [len(f["input_ids"]) for f, _ in pairs]
    assert len(set(lengths)) > 4  # a batch of mixed lengths: most rows get padding
    collate = QACollator(tokenizer, pad_to_multiple_of=8 if pad == "multiple_of_8" else None,
                         max_length=256 if pad == "max_length" else None)
    for lo in range(0, len(pairs), 8):
        chunk = pairs[lo:lo + 8]
        batch = collate([dict(f, length=len(f["input_ids"])) for f, _ in chunk])
        assert "length" not in batch
        width = batch["input_ids"].shape[1]
        assert width == (256 if pad == "max_length" else
                         -(-max(len(f["input_ids"]) for f, _ in chunk) // 8) * 8
                         if pad == "multiple_of_8" else max(len(f["input_ids"]) for f, _ in chunk))
        got = [label_text(tokenizer, batch["input_ids"][j].tolist(),
                          int(batch["start_positions"][j]), int(batch["end_positions"][j]))
               for j in range(len(chunk))]
        assert got == [normalize_answer(answer) for _, answer in chunk]
        # the real tokens stay where the features (and inference) have them: from position 0
        for j, (f, _) in enumerate(chunk):
            n = len(f["input_ids"])
            assert batch["input_ids"][j, :n].tolist() == f["input_ids"]
            assert batch["attention_mask"][j].tolist() == [1] * n + [0] * (width - n)


# --------------------------------------------------------------------------------------
# SentencePiece/Metaspace offsets include the space before a word: answers are stripped


def validation_examples(count: int = 24) -> datasets.Dataset:
    return datasets.Dataset.from_list(sample_rows(count, skip=40))


@pytest.mark.parametrize("family", ["xlmr", "roberta", "bert-cased"])
def test_gold_spans_come_back_without_edge_spaces(tokenizer_family_dirs, family):
    """Logits that point at the tokens covering each gold answer give the gold answer back,
    with no space at its edges, and start/end that cut exactly it out of the context."""
    import numpy as np
    from transformers import AutoTokenizer

    from components.qa.features import prepare_validation_features
    from components.qa.postprocess import postprocess_predictions

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_family_dirs[family])
    examples = validation_examples()
    features = prepare_validation_features(examples.to_dict(), tokenizer, max_length=256,
                                           doc_stride=64)
    width = max(map(len, features["input_ids"]))
    start = np.zeros((len(features["input_ids"]), width), dtype=np.float32)
    end = np.zeros_like(start)
    answers = {row["id"]: row["answers"] for row in examples}
    for f, (example_id, offsets) in enumerate(zip(features["example_id"],
                                                  features["offset_mapping"])):
        first = answers[example_id]["answer_start"][0]
        last = first + len(answers[example_id]["text"][0])
        tokens = [i for i, o in enumerate(offsets) if o is not None and o[0] < last and o[1] > first]
        if tokens:
            start[f, tokens[0]] = end[f, tokens[-1]] = 10.0
    predictions = postprocess_predictions(examples, datasets.Dataset.from_dict(features),
                                          start, end)
    contexts = {row["id"]: row["context"] for row in examples}
    texts = [p["text"] for p in predictions.values()]
    assert [t for t in texts if t != t.strip()] == []
    assert all(contexts[i][p["start"]:p["end"]] == p["text"] for i, p in predictions.items())
    exact = sum(p["text"] == answers[i]["text"][0] for i, p in predictions.items())
    assert exact >= len(texts) - 4  # token boundaries widen a few ("1990" in "1990s")


def test_a_sentencepiece_model_predicts_no_edge_spaces(tokenizer_family_dirs):
    """The whole evaluation path (features, forward pass, post-processing, scoring) with an
    XLM-R-style model: its answers start on "▁word" tokens, whose offsets hold the space."""
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from components.featurize import map_features
    from components.qa.inference import evaluate_qa_model

    path = tokenizer_family_dirs["xlmr"]
    tokenizer = AutoTokenizer.from_pretrained(path)
    examples = validation_examples()
    features = map_features(examples, tokenizer, "validation", 256, 64)
    raw = [(o[0], o[1]) for offsets in features["offset_mapping"] for o in offsets if o]
    context = examples[0]["context"]
    assert sum(context[a:a + 1] == " " for a, _ in raw if a < len(context)) > 0  # the trap is there
    model = AutoModelForQuestionAnswering.from_pretrained(path)
    metrics, predictions = evaluate_qa_model(model, examples, features, batch_size=16)
    texts = [p["text"] for p in predictions.values()]
    assert len(texts) == 24 and all(texts)
    assert [t for t in texts if t != t.strip()] == []
    assert all(c["text"] == c["text"].strip() for p in predictions.values() for c in p["n_best"])
    assert metrics["num_examples"] == 24
