"""Model Registry serving records of a deployed version: the Kubeflow Model Registry client
against the registry stand-in (not a cluster), and the embedded registry."""

from __future__ import annotations

import json

import pytest

from components.qa.errors import InvalidInputError
from components.registry.client import TOKEN_ENV, LocalRegistry, open_registry
from components.registry.serving_records import record_serving, registry_ids
from tests.serving.registry_serving_standin import ServingRegistryStandin

TOKEN = "mr-serving-4b1f"


def register(registry, version="run-7"):
    return registry.register("squad-qa", version, "s3://bucket/run-7/model",
                             model_format_name="transformers", model_format_version="5",
                             source_id="run-7", metadata={"f1": 80.0}, author="kfp-squad-qa")


@pytest.fixture
def kubeflow(monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    with ServingRegistryStandin(token=TOKEN) as standin:
        registry = open_registry(standin.url, author="kfp-squad-qa")
        register(registry)
        yield standin, registry


def test_deploy_records_environment_and_inference_service_like_the_controller(kubeflow):
    standin, registry = kubeflow
    ids = registry_ids(registry, "squad-qa", "run-7")
    record = record_serving(registry, "squad-qa", "run-7", environment="team-ns",
                            service="squad-qa/uid-1", runtime="kfp-squad-qa",
                            url="http://squad-qa.team-ns.example.com")
    (env,) = standin.environments.values()
    (saved,) = standin.services.values()
    assert env["name"] == "team-ns"
    assert (saved["name"], saved["servingEnvironmentId"], saved["registeredModelId"],
            saved["modelVersionId"], saved["runtime"], saved["desiredState"]) == (
        "squad-qa/uid-1", env["id"], ids["registered_model_id"], ids["model_version_id"],
        "kfp-squad-qa", "DEPLOYED")
    assert saved["customProperties"]["url"]["string_value"] == "http://squad-qa.team-ns.example.com"
    assert record["id"] == saved["id"] and record["model_version_id"] == ids["model_version_id"]


def test_redeploying_a_new_version_updates_the_same_record(kubeflow):
    standin, registry = kubeflow
    register(registry, "run-8")
    for version in ("run-7", "run-8"):
        record_serving(registry, "squad-qa", version, environment="team-ns",
                       service="squad-qa/uid-1", runtime="kfp-squad-qa", url="http://x")
    (saved,) = standin.services.values()
    assert len(standin.environments) == 1
    assert saved["modelVersionId"] == registry_ids(registry, "squad-qa", "run-8")["model_version_id"]


def test_an_unregistered_version_is_refused(kubeflow):
    _, registry = kubeflow
    with pytest.raises(InvalidInputError, match="record 'squad-qa/run-9', field 'model_version'"):
        registry_ids(registry, "squad-qa", "run-9")


def test_embedded_registry_keeps_one_file_per_inference_service(tmp_path):
    registry = LocalRegistry(tmp_path)
    register(registry)
    for state in ("DEPLOYED", "UNDEPLOYED"):
        record_serving(registry, "squad-qa", "run-7", environment="local", service="squad-qa/local",
                       runtime="kfp-squad-qa", url="http://127.0.0.1:1", desired_state=state)
    (path,) = (tmp_path / "squad-qa" / "serving").glob("*.json")
    assert json.loads(path.read_text())["desired_state"] == "UNDEPLOYED"
    assert [p.name for p in (tmp_path / "squad-qa").glob("*.json")] == ["run-7.json"]  # not a version
    assert registry_ids(registry, "squad-qa", "run-7") == {}
    with pytest.raises(InvalidInputError, match="unknown desired_state"):
        record_serving(registry, "squad-qa", "run-7", environment="local", service="s",
                       runtime="r", url="u", desired_state="GONE")
