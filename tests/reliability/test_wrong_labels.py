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
