"""The tiny profile end to end with the deploy step compiled in (seven tasks), then the trained
model served by `python -m pipeline serve`: every held-out question of the run, sent over HTTP
(V1 and V2), gets the evaluate step's prediction for that id."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest
import yaml

from components.serving import isvc as kisvc
from pipeline.steps import task_names
from tests.serving.conftest import post, v2_answers, v2_body

pytestmark = pytest.mark.slow  # trains (a few minutes on a shared CPU)


@pytest.fixture(scope="module")
def deploy_run(tmp_path_factory):
    from pipeline.local_run import run_local
    from pipeline.parameters import profile_parameters

    root = tmp_path_factory.mktemp("kfp-deploy")
    params = profile_parameters("tiny", {"deploy": "true"})
    result = run_local(params, pipeline_root=str(root), cache=False)
    return root, params, Path(result["run_dir"])


def test_seven_tasks_and_a_valid_inference_service(deploy_run):
    root, params, run_dir = deploy_run
    tasks = {p.name for p in run_dir.iterdir() if p.is_dir()}
    assert tasks == set(task_names(deploy=True))
    manifest = yaml.safe_load((run_dir / "deploy-model" / "inference_service").read_text())
    kisvc.check_schema(manifest)
    model = manifest["spec"]["predictor"]["model"]
    assert model["runtime"] == kisvc.RUNTIME
    assert model["args"] == kisvc.serving_args(params["max_length"], params["doc_stride"],
                                               params["n_best"], params["max_answer_length"])
    assert model["storageUri"].endswith("/fine-tune/model")  # a local path under kfp.local
    report = (run_dir / "deploy-model" / "deployment").read_text()
    assert "smoke answer" in report and "smoke latency" in report
    (record_path,) = (root / "model-registry" / params["model_name"] / "serving").glob("*.json")
    record = json.loads(record_path.read_text())
    assert record["desired_state"] == "UNDEPLOYED" and record["runtime"] == kisvc.RUNTIME
    assert (root / "model-registry" / params["model_name"] / f"{record['model_version']}.json").exists()


def test_served_answers_are_the_evaluate_steps(deploy_run):
    from components.serving.server import LocalServer

    _, params, run_dir = deploy_run
    evaluated = {p["id"]: p for p in map(json.loads, (run_dir / "evaluate" / "predictions")
                                          .read_text().splitlines())}
    held_out = datasets.load_from_disk(str(run_dir / "download" / "validation_data"))
    assert len(held_out) == params["max_eval_samples"] == len(evaluated)
    args = kisvc.serving_args(params["max_length"], params["doc_stride"], params["n_best"],
                              params["max_answer_length"])
    with LocalServer(str(run_dir / "fine-tune" / "model"), "squad-qa", args) as server:
        for lo in range(0, len(held_out), 8):
            rows = held_out.select(range(lo, min(lo + 8, len(held_out))))
            questions, contexts = list(rows["question"]), list(rows["context"])
            status, v1 = post(f"{server.url}/v1/models/squad-qa:predict", {"instances": [
                {"question": q, "context": c} for q, c in zip(questions, contexts)]})
            assert status == 200, v1
            status, v2 = post(f"{server.url}/v2/models/squad-qa/infer", v2_body(questions, contexts))
            assert status == 200, v2
            for example_id, a1, a2 in zip(list(rows["id"]), v1["predictions"], v2_answers(v2)):
                want = evaluated[example_id]
                assert (a1["answer"], a1["start"], a1["end"]) == (want["text"], want["start"], want["end"])
                assert (a2["answer"], a2["start"], a2["end"]) == (want["text"], want["start"], want["end"])
                assert a1["score"] == pytest.approx(want["score"], abs=1e-3)
