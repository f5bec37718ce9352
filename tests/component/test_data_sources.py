"""Dataset sources the download step accepts, on real SQuAD records, and their errors."""

import json

import datasets
import pytest

from components.qa.errors import InvalidInputError
from components.qa.squad_io import load_split
from components.qa.squad_records import fingerprint, validate_examples
from tests.conftest import SQUAD_SAMPLE, write_json


def sample_doc(articles=1):
    doc = json.loads((SQUAD_SAMPLE / "validation.json").read_text())
    return {"version": doc["version"], "data": doc["data"][:articles]}


def test_sample_by_split_pattern_and_by_folder_agree():
    by_pattern = load_split(str(SQUAD_SAMPLE / "{split}.json"), "validation")
    by_folder = load_split(str(SQUAD_SAMPLE), "validation")
    assert len(by_pattern) == 721
    assert fingerprint(by_pattern) == fingerprint(by_folder)
    row = by_pattern[0]
    assert row["context"][row["answers"]["answer_start"][0]:].startswith(row["answers"]["text"][0])


def test_jsonl_parquet_and_folder_of_json_files(tmp_path):
    reference = load_split(str(SQUAD_SAMPLE / "{split}.json"), "validation").select(range(50))
    reference.to_json(tmp_path / "train.jsonl")
    reference.to_parquet(tmp_path / "validation.parquet")
    assert fingerprint(load_split(str(tmp_path), "train")) == fingerprint(reference)
    assert fingerprint(load_split(str(tmp_path), "validation")) == fingerprint(reference)
    (tmp_path / "test").mkdir()
    doc = sample_doc(2)
    write_json(tmp_path / "test" / "a.json", {"data": doc["data"][:1]})
    write_json(tmp_path / "test" / "b.json", {"data": doc["data"][1:]})
    both = load_split(str(tmp_path), "test")
    assert len(both) == sum(len(p["qas"]) for a in doc["data"] for p in a["paragraphs"])


def test_v2_unanswerable_records(dev_v2_path):
    data = load_split(str(dev_v2_path), "validation")
    assert len(data) == 534 and sum(not a["text"] for a in data["answers"]) == 246


@pytest.mark.parametrize("content, field, message", [
    ('{"data": [', None, "malformed JSON at line 1"),
    ('{"version": "1.1"}', "data", "expected list"),
    ('{"data": [{"paragraphs": [{"qas": []}]}]}', "context", "expected str"),
    ('{"data": [{"paragraphs": [{"context": "c", "qas": [{"id": "q1", "answers": []}]}]}]}',
     "question", "expected str"),
    ('{"data": [{"paragraphs": [{"context": "c", "qas": [{"id": "q1", "question": "?", '
     '"answers": [{"text": "c", "answer_start": "0"}]}]}]}]}', "answers[0].answer_start", "expected int"),
    ('{"data": [{"paragraphs": [{"context": "c", "qas": [{"id": "q1", "question": "?", '
     '"is_impossible": true, "answers": [{"text": "c", "answer_start": 0}]}]}]}]}', "answers", "is_impossible"),
])
def test_bad_squad_json_names_file_record_and_field(tmp_path, content, field, message):
    path = tmp_path / "validation.json"
    path.write_text(content)
    with pytest.raises(InvalidInputError) as err:
        load_split(str(path), "validation")
    assert str(path) in str(err.value) and message in str(err.value)
    if field:
        assert err.value.field == field


def test_non_utf8_file(tmp_path):
    path = tmp_path / "validation.json"
    path.write_bytes(b'{"data": [{"title": "caf\xe9"}]}')
    with pytest.raises(InvalidInputError, match="not UTF-8.*byte 24"):
        load_split(str(path), "validation")


def test_missing_split_and_missing_columns(tmp_path):
    with pytest.raises(InvalidInputError, match="no data for split 'train2'"):
        load_split(str(SQUAD_SAMPLE), "train2")
    datasets.Dataset.from_dict({"id": ["a"], "question": ["q"]}).to_json(tmp_path / "train.jsonl")
    with pytest.raises(InvalidInputError, match=r"record 'line 1, id a', field 'context': expected str, "
                                                r"got nothing"):
        load_split(str(tmp_path), "train")


def test_duplicate_ids_are_rejected():
    data = load_split(str(SQUAD_SAMPLE / "{split}.json"), "validation").select([0, 1, 0])
    with pytest.raises(InvalidInputError, match="id is used twice .the same question"):
        validate_examples(data, "x")


def test_s3_source_through_fsspec(s3):
    s3.put_object(Bucket="squad", Key="v1/validation.json", Body=(SQUAD_SAMPLE / "validation.json").read_bytes())
    remote = load_split("s3://squad/v1/{split}.json", "validation")
    local = load_split(str(SQUAD_SAMPLE / "{split}.json"), "validation")
    assert fingerprint(remote) == fingerprint(local)
    with pytest.raises(InvalidInputError, match="s3://squad/v1/train.json does not exist"):
        load_split("s3://squad/v1/{split}.json", "train")


def test_network_errors_are_retried_with_backoff_and_bad_input_is_not():
    from components.qa.retry import with_retries

    calls, waits = [], []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("connection reset by peer")
        return "rows"

    assert with_retries(flaky, "reading s3://x", sleep=waits.append) == "rows"
    assert waits == [2.0, 4.0]

    def always_down():
        raise TimeoutError("read timed out")

    with pytest.raises(TimeoutError):
        with_retries(always_down, "reading s3://x", attempts=3, sleep=waits.append)

    def bad():
        calls.append(1)
        raise InvalidInputError("no such split", fix="fix it")

    calls.clear()
    with pytest.raises(InvalidInputError):
        with_retries(bad, "reading", sleep=waits.append)
    assert len(calls) == 1
