"""The deploy step's logic (components/serving/deployment.py): what is rendered, for which
namespace and URI, when nothing is deployed, and the report of a real smoke query."""

from __future__ import annotations

import json

import pytest
import yaml

from components.qa.errors import InvalidInputError
from components.registry.client import LocalRegistry
from components.serving import deployment as dep
from components.serving import isvc as kisvc
from components.serving.server import SMOKE_QUESTION

WINDOWS = (128, 64, 20, 50)  # max_length, doc_stride, n_best, max_answer_length
PREDICTOR = {"image": "ghcr.io/kfp-squad-qa/qa-cpu:0.1.0"}
V1_METRICS = {"f1": 61.5, "exact_match": 50.0, "squad_version": "v1.1"}


def registered(tmp_path, uri: str, name: str = "squad-qa", version: str = "run-7") -> str:
    """A registry folder holding `name` `version` at `uri`, as register leaves it."""
    LocalRegistry(tmp_path / "registry").register(
        name, version, uri, model_format_name="transformers", model_format_version="5",
        source_id="job-1", metadata={}, author="kfp-squad-qa")
    return (tmp_path / "registry").as_uri()


def plan(registry_uri: str, metrics=V1_METRICS, deploy: bool = True, min_f1: float = 0.0,
         model_version: str = "run-7"):
    return dep.plan_deployment(deploy, metrics, "squad-qa", model_version, min_f1, registry_uri,
                               "job-1", WINDOWS, PREDICTOR)


@pytest.mark.parametrize("deploy,min_f1,why", [
    (False, 0.0, "deploy=false"),
    (True, 70.0, "F1 61.50 is below min_f1 70.00"),
])
def test_nothing_is_deployed_without_deploy_or_below_the_gate(deploy, min_f1, why):
    # registry_uri "" would be refused if it were opened: a skipped plan never opens it
    skipped = plan("", deploy=deploy, min_f1=min_f1)
    assert skipped.skip == why and skipped.manifest is None
    assert skipped.manifest_text == f"# not deployed: {why}\n"
    assert skipped.skipped_report == f"# Deployment\n\nNot deployed: {why}.\n"


def test_a_version_missing_from_the_registry_is_an_error(tmp_path):
    registry_uri = registered(tmp_path, str(tmp_path / "model"))
    with pytest.raises(RuntimeError, match="squad-qa version run-8 is not in the registry; "
                                           "register must succeed first"):
        plan(registry_uri, model_version="run-8")


def test_outside_a_cluster_the_local_path_is_rendered_without_namespace(tmp_path, monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    model_dir = str(tmp_path / "fine-tune" / "model")
    rendered = plan(registered(tmp_path, model_dir))
    assert rendered.skip is None and not rendered.in_cluster
    manifest = rendered.manifest
    kisvc.check_schema(manifest)
    assert yaml.safe_load(rendered.manifest_text) == manifest
    assert manifest["metadata"] == {
        "name": "squad-qa", "labels": {"app.kubernetes.io/part-of": "kfp-squad-qa"},
        "annotations": {"kfp-squad-qa/model-version": "run-7",
                        "kfp-squad-qa/pipeline-run-id": "job-1"}}
    model = manifest["spec"]["predictor"]["model"]
    assert model["storageUri"] == model_dir and model["runtime"] == kisvc.RUNTIME
    assert model["args"] == kisvc.serving_args(*WINDOWS) == rendered.args
    assert rendered.metadata == {"name": "squad-qa", "storage_uri": model_dir,
                                 "model_version": "run-7"}


def test_a_v2_model_is_served_with_evaluates_threshold(tmp_path, monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    metrics = {"f1": 55.0, "squad_version": "v2.0", "null_score_diff_threshold": -1.5}
    args = plan(registered(tmp_path, str(tmp_path / "model")), metrics=metrics).args
    assert args[-3:] == ["--version-2-with-negative", "--null-score-diff-threshold", "-1.5"]


def test_in_a_pod_the_pods_namespace_and_a_storage_uri(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    namespace_file = tmp_path / "namespace"
    namespace_file.write_text("team-ns\n")
    monkeypatch.setattr(dep, "NAMESPACE_FILE", str(namespace_file))
    rendered = plan(registered(tmp_path, "s3://bucket/run/fine-tune/model"))
    assert rendered.in_cluster and rendered.namespace == "team-ns"
    assert rendered.manifest["metadata"]["namespace"] == "team-ns"
    assert rendered.manifest["spec"]["predictor"]["model"]["storageUri"] == \
        "s3://bucket/run/fine-tune/model"
    # a path no storage initializer reads is refused before anything is applied
    with pytest.raises(InvalidInputError) as err:
        plan(registered(tmp_path / "b", str(tmp_path / "model")))
    assert err.value.field == "storage_uri"


@pytest.mark.slow  # starts a model server (~20 s)
def test_under_kfp_local_the_model_server_answers_the_smoke_question(tmp_path, monkeypatch,
                                                                     qa_model_dir):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    registry_uri = registered(tmp_path, qa_model_dir)
    result = dep.serve_and_smoke(plan(registry_uri), qa_model_dir)
    assert result.endpoint.startswith("http://127.0.0.1:") and result.latency_ms > 0
    assert result.metadata == {"endpoint": result.endpoint,
                               "smoke_answer": result.answer["answer"],
                               "smoke_latency_ms": round(result.latency_ms, 1)}
    assert result.served["desired_state"] == "UNDEPLOYED"
    (record_path,) = (tmp_path / "registry" / "squad-qa" / "serving").glob("*.json")
    record = json.loads(record_path.read_text())
    assert record["url"] == result.endpoint and record["runtime"] == kisvc.RUNTIME
    lines = result.report.splitlines()
    assert lines[2] == ("kfp.local: the model server ran on loopback for the smoke query, "
                        "then stopped.")
    assert "| model | squad-qa version run-7 (F1 61.50) |" in lines
    assert f"| storage URI | `{qa_model_dir}` |" in lines
    assert f"| endpoint | {result.endpoint}/v1/models/squad-qa:predict |" in lines
    assert f"| smoke question | {SMOKE_QUESTION} |" in lines
    assert "| registry record | local / squad-qa/local (UNDEPLOYED) |" in lines
