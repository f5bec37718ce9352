"""components.registry.KubeflowModelRegistry (model-registry 0.3.18 client) against the stand-in.

The stand-in (tests/cluster/registry_standin.py) answers the Model Registry REST API on
loopback; it is not a cluster.

    python -m pytest tests/cluster/test_model_registry.py -q
"""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from components.register import register_model
from components.registry import TOKEN_ENV, KubeflowModelRegistry, open_registry
from tests.cluster.registry_standin import ModelRegistryStandin

TOKEN = "mr-secret-9d2e"
LINEAGE = {"metrics": {"exact_match": 71.5, "f1": 80.25}, "pipeline_run_id": "run-7",
           "dataset": "rajpurkar/squad", "base_model": "bert-base-uncased", "base_model_revision": None,
           "hyperparameters": {"learning_rate": 3e-05, "batch_size": 48}}


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    with ModelRegistryStandin(token=TOKEN) as standin:
        yield standin


def register(registry, version="run-7"):
    return registry.register("squad-qa", version, "s3://models/run-7/model",
                             model_format_name="transformers", model_format_version="5",
                             source_id="run-7", metadata=LINEAGE, author="kfp-squad-qa")


def test_register_creates_model_version_and_artifact_with_metadata(server):
    registry = open_registry(server.url, pipeline_root="s3://bucket/root", author="kfp-squad-qa")
    assert isinstance(registry, KubeflowModelRegistry)
    record, created = register(registry)
    assert created
    (model,) = server.models.values()
    (version,) = server.versions.values()
    (artifact,) = server.artifacts.values()
    assert model["name"] == "squad-qa" and model["owner"] == "kfp-squad-qa"
    assert (version["name"], version["registeredModelId"], version["author"]) == ("run-7", model["id"], "kfp-squad-qa")
    props = version["customProperties"]
    assert props["metrics"] == {"string_value": '{"exact_match": 71.5, "f1": 80.25}',
                                "metadataType": "MetadataStringValue"}
    assert props["pipeline_run_id"]["string_value"] == "run-7"
    assert "base_model_revision" not in props  # None is left out, not stored as "null"
    assert artifact["uri"] == "s3://models/run-7/model"
    assert (artifact["modelFormatName"], artifact["modelFormatVersion"]) == ("transformers", "5")
    assert (artifact["modelSourceKind"], artifact["modelSourceId"]) == ("kfp", "run-7")
    # the record reads back with the metadata decoded, as compare uses it
    assert record["metadata"]["metrics"] == LINEAGE["metrics"]
    assert record["metadata"]["hyperparameters"] == LINEAGE["hyperparameters"]
    assert record["uri"] == "s3://models/run-7/model" and registry.get("squad-qa", "run-7") == record


def test_the_same_version_twice_is_a_no_op_with_a_message(server, tmp_path, capsys):
    def run_register_step():
        register_model(
            model=SimpleNamespace(uri="s3://models/run-7/model",
                                  metadata={"base_model": "bert-base-uncased", "hyperparameters": {}}),
            metrics=SimpleNamespace(metadata={"f1": 80.25, "exact_match": 71.5}),
            train_data=SimpleNamespace(metadata={"source": "rajpurkar/squad", "fingerprint": "f00d"}),
            model_name="squad-qa", model_version="v1", min_f1=50.0, registry_uri=server.url,
            pipeline_run_id="run-7", pipeline_root="s3://bucket/root",
            registration=SimpleNamespace(path=str(tmp_path / "registration.md")))
        return capsys.readouterr().out

    assert "Registered squad-qa version v1 (F1 80.25)" in run_register_step()
    assert "squad-qa version v1 is already registered; nothing to do." in run_register_step()
    assert len(server.versions) == 1 and len(server.artifacts) == 1
    assert (tmp_path / "registration.md").read_text().endswith("nothing to do.\n")


def test_unknown_model_or_version_reads_as_none(server):
    registry = open_registry(server.url, "", "kfp-squad-qa")
    assert registry.get("squad-qa", "run-7") is None
    register(registry)
    assert registry.get("squad-qa", "run-8") is None


def test_token_comes_from_the_env_var_and_is_never_logged(server, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    registry = open_registry(server.url, "", "kfp-squad-qa")
    register(registry)
    assert server.requests and set(server.authorization_headers) == {f"Bearer {TOKEN}"}
    out = capsys.readouterr()
    assert TOKEN not in caplog.text + out.out + out.err


def test_a_wrong_token_is_refused_without_echoing_it(server, monkeypatch, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv(TOKEN_ENV, "stale-token-1234")
    from mr_openapi.exceptions import UnauthorizedException

    with pytest.raises(UnauthorizedException, match="401") as refused:
        open_registry(server.url, "", "kfp-squad-qa")
    out = capsys.readouterr()
    assert "stale-token-1234" not in str(refused.value) + caplog.text + out.out + out.err
    assert server.models == {}
