"""The whole DAG through kfp.local on the tiny profile: every artifact exists and reads back."""

import json
import re
from pathlib import Path

import datasets
import pytest

from pipeline.__main__ import main
from pipeline.local_run import run_local
from pipeline.parameters import profile_parameters
from pipeline.steps import task_names

pytestmark = pytest.mark.slow

TASKS = set(task_names())


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("kfp-root")
    params = profile_parameters("tiny")
    return root, params, run_local(params, pipeline_root=str(root), cache=True)


def artifact(result, task, name) -> Path:
    return Path(result["run_dir"]) / task / name


def test_every_artifact_exists_and_reads_back(tiny_run):
    root, params, result = tiny_run
    train = datasets.load_from_disk(str(artifact(result, "download", "train_data")))
    validation = datasets.load_from_disk(str(artifact(result, "download", "validation_data")))
    assert (len(train), len(validation)) == (48, 24)
    assert set(train.column_names) == {"id", "title", "context", "question", "answers"}
    assert (artifact(result, "download", "base_model") / "tokenizer.json").exists()

    train_features = datasets.load_from_disk(str(artifact(result, "preprocess-train", "train_features")))
    assert {"input_ids", "attention_mask", "start_positions", "end_positions"} <= set(train_features.column_names)
    assert len(train_features) >= 48 and max(len(x) for x in train_features["input_ids"]) <= 128
    validation_features = datasets.load_from_disk(
        str(artifact(result, "preprocess-validation", "validation_features")))
    assert set(validation_features["example_id"]) == set(validation["id"])

    model_dir = artifact(result, "fine-tune", "model")
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        assert (model_dir / name).exists(), name
    assert list(artifact(result, "fine-tune", "tensorboard").rglob("events.out.tfevents.*"))
    train_metrics = json.loads(artifact(result, "fine-tune", "metrics").read_text())
    assert train_metrics["global_step"] == params["max_steps"] and train_metrics["train_loss"] > 0

    scores = json.loads(artifact(result, "evaluate", "metrics").read_text())
    assert 0 <= scores["exact_match"] <= scores["f1"] <= 100
    assert result["metrics"]["f1"] == pytest.approx(scores["f1"])
    lines = artifact(result, "evaluate", "predictions").read_text().splitlines()
    predictions = [json.loads(line) for line in lines]
    assert sorted(p["id"] for p in predictions) == sorted(validation["id"])
    assert all("text" in p and "n_best" in p for p in predictions)
    report = artifact(result, "evaluate", "report").read_text()
    assert report.startswith("# Evaluation") and "| f1 |" in report and "Wrong answers" in report

    registration = artifact(result, "register-model", "registration").read_text()
    assert "Registered squad-qa" in registration
    records = list((root / "model-registry" / "squad-qa").glob("*.json"))
    assert len(records) == 1
    record = json.loads(records[0].read_text())
    assert record["uri"] == str(model_dir)
    assert record["metadata"]["dataset_fingerprint"]
    assert record["metadata"]["hyperparameters"]["learning_rate"] == params["learning_rate"]
    assert record["metadata"]["metrics"]["f1"] == pytest.approx(scores["f1"])


def executed_tasks(result) -> set[str]:
    """A cached task writes nothing into the new run's folder; an executed one does."""
    return {p.name for p in Path(result["run_dir"]).iterdir() if p.is_dir()}


def test_cache_hits_exactly_when_inputs_are_unchanged(tiny_run):
    root, params, first = tiny_run
    assert executed_tasks(first) == TASKS
    again = run_local(params, pipeline_root=str(root), cache=True)
    assert executed_tasks(again) == {"register-model"}  # register is never cached
    assert again["metrics"]["f1"] == pytest.approx(first["metrics"]["f1"])

    changed = run_local({**params, "max_steps": params["max_steps"] - 1}, pipeline_root=str(root), cache=True)
    assert executed_tasks(changed) == {"fine-tune", "evaluate", "register-model"}


@pytest.mark.parametrize("setting, message", [
    ("doc_stride=500", "doc_stride"),
    ("learning_rate=0", "learning_rate"),
    ("batch_size=-1", "batch_size"),
    ("answer_policy=ignore", "answer_policy"),
    ("no_such_parameter=1", "unknown parameter"),
    ("max_steps=many", "valid int"),
])
def test_bad_parameters_are_rejected_before_any_work(tmp_path, capsys, setting, message):
    assert main(["run", "--local", "--profile", "tiny", "--pipeline-root", str(tmp_path / "root"),
                 "--set", setting]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "root").exists()


def test_the_terminal_shows_a_line_per_step_progress_and_ends_with_the_metrics(tiny_run, capsys):
    root, params, first = tiny_run
    assert main(["run", "--local", "--profile", "tiny", "--pipeline-root", str(root),
                 "--set", f"max_steps={params['max_steps'] - 2}"]) == 0
    out, err = capsys.readouterr()
    steps = {line.split()[0]: line.split()[-1] for line in err.splitlines()
             if line.split() and line.split()[-1] in ("ok", "cached", "failed")}
    assert steps == {"download": "cached", "preprocess-train": "cached",
                     "preprocess-validation": "cached", "fine-tune": "ok", "evaluate": "ok",
                     "register-model": "ok"}
    assert re.search(r"^fine-tune .* running  \[[#.]+\] \d+/2  ETA", err, re.M)
    assert re.search(r"^evaluate .* running  \[[#.]+\] \d+/\d+  ETA", err, re.M)
    assert "Got executor_input" not in out + err and "Traceback" not in out + err
    table = out.split("metrics\n-------\n")[1].splitlines()  # the last thing printed
    assert {row.split()[0] for row in table} >= {"exact_match", "f1", "num_examples"}
    log = Path(re.search(r"^log: (\S+)$", err, re.M)[1]).read_text()
    assert "Got executor_input" in log and "qa-progress" in log and "register-model" in log
