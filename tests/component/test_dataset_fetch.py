"""The download step's dataset half (components/io/dataset_fetch.py) on the shipped SQuAD
samples: the splits saved as Arrow with their metadata, one SQuAD version for both."""

from __future__ import annotations

import json
import shutil

import datasets
import pytest

from components.io.dataset_fetch import fetch_squad_splits
from components.qa.errors import InvalidInputError
from components.qa.squad_records import MAX_CONTEXT_CHARS, fingerprint
from tests.conftest import REPO

SAMPLE = REPO / "data" / "squad-sample"


def fetch(tmp_path, source: str, train_rows: int = 20, validation_rows: int = 10):
    return fetch_squad_splits(source, "", "", train=("train", train_rows, str(tmp_path / "train")),
                              validation=("validation", validation_rows,
                                          str(tmp_path / "validation")),
                              answer_policy="error", max_context_chars=MAX_CONTEXT_CHARS)


def source_of(tmp_path, train, validation) -> str:
    """A folder with the two split files (paths or JSON documents)."""
    folder = tmp_path / "src"
    folder.mkdir()
    for split, doc in (("train", train), ("validation", validation)):
        if isinstance(doc, dict):
            (folder / f"{split}.json").write_text(json.dumps(doc))
        else:
            shutil.copy(doc, folder / f"{split}.json")
    return str(folder / "{split}.json")


def test_v1_splits_are_saved_with_their_metadata(tmp_path, capsys):
    source = str(SAMPLE / "{split}.json")
    train, validation = fetch(tmp_path, source)
    saved = datasets.load_from_disk(str(tmp_path / "train"))
    assert len(saved) == 20 and len(datasets.load_from_disk(str(tmp_path / "validation"))) == 10
    assert train == {
        "rows": 20, "source": source, "file": train["file"], "split": "train", "config": "",
        "revision": "", "fingerprint": fingerprint(saved), "answer_check": train["answer_check"],
        "answer_policy": "error", "unanswerable": 0, "squad_version": "v1.1"}
    assert train["file"].endswith("train.json") and validation["file"].endswith("validation.json")
    assert validation["split"] == "validation" and validation["squad_version"] == "v1.1"
    out = capsys.readouterr().out
    assert "train: 20 examples from" in out and "taken as SQuAD v2.0" not in out


def test_unanswerable_validation_questions_make_both_splits_v2(tmp_path, capsys):
    source = source_of(tmp_path, SAMPLE / "train.json", SAMPLE / "dev-v2.0-2articles.json")
    train, validation = fetch(tmp_path, source, validation_rows=0)
    assert train["unanswerable"] == 0 and validation["unanswerable"] == 246
    assert train["squad_version"] == validation["squad_version"] == "v2.0"
    # the version came from the rows: the file's declaration is not quoted
    assert ("train: taken as SQuAD v2.0: 0 of 20 questions unanswerable"
            in capsys.readouterr().out)


def test_without_unanswerable_rows_the_first_declared_version_holds_for_both(tmp_path, capsys):
    doc = json.loads((SAMPLE / "train.json").read_text())
    source = source_of(tmp_path, {**doc, "version": "v2.0"}, SAMPLE / "validation.json")
    train, validation = fetch(tmp_path, source)  # validation.json declares 1.1
    assert train["squad_version"] == validation["squad_version"] == "v2.0"
    out = capsys.readouterr().out
    assert ("validation: taken as SQuAD v2.0 (the file declares version 'v2.0'): 0 of 10 "
            "questions unanswerable") in out
    assert "train: taken as SQuAD v2.0 (the file declares version 'v2.0'): 0 of 20" in out


def test_a_training_split_without_answers_is_refused_before_it_is_saved(tmp_path):
    doc = json.loads((SAMPLE / "train.json").read_text())
    for article in doc["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                qa["answers"] = []
    source = source_of(tmp_path, {**doc, "version": "v2.0"}, SAMPLE / "validation.json")
    with pytest.raises(InvalidInputError, match="none of the 20 training questions has an answer"
                       ) as err:
        fetch(tmp_path, source)
    assert "(split 'train')" in err.value.source and err.value.field == "answers"
    assert not (tmp_path / "train").exists() and not (tmp_path / "validation").exists()
