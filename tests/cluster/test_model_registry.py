"""components.registry.client.KubeflowModelRegistry (model-registry 0.3.18 client) against the stand-in.

The stand-in (tests/cluster/registry_standin.py) answers the Model Registry REST API on
loopback, one server version's paths at a time; it is not a cluster. SUPPORTED lists the
server APIs we support (each test runs against each); an older server is refused at connect.

    python -m pytest tests/cluster/test_model_registry.py -q
"""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import pytest

from components.qa.errors import InvalidInputError
from components.register import register_model
from components.registry.client import TOKEN_ENV, KubeflowModelRegistry, open_registry, serving_uri
from tests.cluster.registry_standin import ModelRegistryStandin

SUPPORTED = ["v1"]  # model-registry 0.3.18 speaks /api/model_registry/v1 only

TOKEN = "mr-secret-9d2e"
LINEAGE = {"metrics": {"exact_match": 71.5, "f1": 80.25}, "pipeline_run_id": "run-7",
           "dataset": "rajpurkar/squad", "base_model": "bert-base-uncased", "base_model_revision": None,
           "hyperparameters": {"learning_rate": 3e-05, "batch_size": 48}}


@pytest.fixture(params=SUPPORTED)
def server(monkeypatch, request):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    with ModelRegistryStandin(token=TOKEN, api=request.param) as standin:
        yield standin


def register(registry, version="run-7"):
    return registry.register("squad-qa", version, "s3://models/run-7/model",
                             model_format_name="transformers", model_format_version="5",
                             source_id="run-7", metadata=LINEAGE, author="kfp-squad-qa")


def test_register_creates_model_version_and_artifact_with_metadata(server):
    registry = open_registry(server.url, author="kfp-squad-qa")
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
            pipeline_run_id="run-7",
            registration=SimpleNamespace(path=str(tmp_path / "registration.md")))
        return capsys.readouterr().out

    assert "Registered squad-qa version v1 (F1 80.25)" in run_register_step()
    assert "squad-qa version v1 is already registered; nothing to do." in run_register_step()
    assert len(server.versions) == 1 and len(server.artifacts) == 1
    assert (tmp_path / "registration.md").read_text().endswith("nothing to do.\n")


def test_unknown_model_or_version_reads_as_none(server):
    registry = open_registry(server.url, "kfp-squad-qa")
    assert registry.get("squad-qa", "run-7") is None
    register(registry)
    assert registry.get("squad-qa", "run-8") is None


def test_token_comes_from_the_env_var_and_is_never_logged(server, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    registry = open_registry(server.url, "kfp-squad-qa")
    register(registry)
    assert server.requests and set(server.authorization_headers) == {f"Bearer {TOKEN}"}
    out = capsys.readouterr()
    assert TOKEN not in caplog.text + out.out + out.err


def test_a_wrong_token_is_refused_without_echoing_it(server, monkeypatch, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv(TOKEN_ENV, "stale-token-1234")
    from mr_openapi.exceptions import UnauthorizedException

    with pytest.raises(UnauthorizedException, match="401") as refused:
        open_registry(server.url, "kfp-squad-qa")
    out = capsys.readouterr()
    assert "stale-token-1234" not in str(refused.value) + caplog.text + out.out + out.err
    assert server.models == {}


def test_a_v1alpha3_server_is_refused_at_connect_naming_both_versions(monkeypatch):
    # before: the client's first call got chi's "404 page not found" and the step died on a NotFoundException
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    with ModelRegistryStandin(token=TOKEN, api="v1alpha3") as older:
        with pytest.raises(InvalidInputError) as refused:
            open_registry(older.url, "kfp-squad-qa")
        paths = [path for _, path in older.requests]
    message = str(refused.value)
    assert "/api/model_registry/v1alpha3" in message and "/api/model_registry/v1 " in message
    assert "v0.3.8" in message and "pip install model-registry==0.3.8" in message
    assert "registry_uri" in message and TOKEN not in message
    assert paths == ["/api/model_registry/v1/registered_models", "/api/model_registry/v1alpha3/registered_models"]


def test_the_standin_serves_one_version_only():
    with ModelRegistryStandin(token=None, api="v1") as v1:
        import urllib.error
        import urllib.request

        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{v1.url}/api/model_registry/v1alpha3/registered_models")
        assert missing.value.code == 404 and missing.value.read() == b"404 page not found\n"
        with urllib.request.urlopen(f"{v1.url}/api/model_registry/v1/registered_models") as ok:
            assert json.loads(ok.read())["items"] == []


def test_the_standin_refuses_a_body_the_api_model_refuses(server):
    import urllib.error
    import urllib.request

    request = urllib.request.Request(f"{server.url}/api/model_registry/{server.api}/registered_models",
                                     data=json.dumps({"owner": "no name"}).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {TOKEN}",
                                              "Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request)
    body = json.loads(refused.value.read())
    assert refused.value.code == 400 and body["code"] == "Bad Request" and "name" in body["message"]


def test_default_port_is_the_model_registry_services_8080(monkeypatch):
    # before: http://host without a port went to port 80
    seen = {}
    monkeypatch.setattr(KubeflowModelRegistry, "__init__",
                        lambda self, address, port, author: seen.update(address=address, port=port))
    open_registry("http://model-registry-service.kubeflow.svc.cluster.local", "a")
    assert seen == {"address": "http://model-registry-service.kubeflow.svc.cluster.local", "port": 8080}
    open_registry("https://registry.example.com", "a")
    assert seen["port"] == 443


def test_an_empty_registry_uri_is_refused():
    with pytest.raises(InvalidInputError, match="registry_uri is empty.*durable"):
        open_registry("", "a")


@pytest.mark.parametrize("uri, expected", [
    ("minio://mlpipeline/v2/artifacts/qa/run-1/fine-tune/model",
     "s3://mlpipeline/v2/artifacts/qa/run-1/fine-tune/model?endpoint=http://minio-service.kubeflow:9000"
     "&defaultRegion=minio"),
    ("s3://models/run-7/model", "s3://models/run-7/model"),
    ("gs://bucket/model", "gs://bucket/model"),
    ("/tmp/local_outputs/model", "/tmp/local_outputs/model"),
])
def test_serving_uri_turns_kfp_minio_into_s3_with_its_endpoint(monkeypatch, uri, expected):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    assert serving_uri(uri) == expected


def test_serving_uri_takes_the_endpoint_of_the_s3_secret(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://s3.example.com")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    assert serving_uri("minio://bucket/key/model") == \
        "s3://bucket/key/model?endpoint=https://s3.example.com&defaultRegion=eu-west-1"


def test_a_file_uri_names_the_embedded_registry_folder(tmp_path):
    folder = tmp_path / "with space" / "model-registry"
    registry = open_registry(folder.as_uri(), "a")
    register(registry)
    assert (folder / "squad-qa" / "run-7.json").is_file()
