"""A stand-in for the Kubeflow Model Registry REST API, for tests. It is not a cluster.

A loopback HTTP server (stdlib, thread, 127.0.0.1, random port) answering the calls that the
`model-registry` 0.3.18 Python client makes for `register_model`, `get_registered_model`,
`get_model_version` and `get_model_artifact`, under ONE API version's prefix, as one server
release serves it:

- ``api="v1"``: ``/api/model_registry/v1/...``, the paths of model-registry 0.3.18's generated
  `mr_openapi` client (the v1 paths came with kubeflow/hub#2992, after the v0.3.8 tag; the
  stored hub mirror ends before it, so the client's generated code is the reference here).
- ``api="v1alpha3"``: ``/api/model_registry/v1alpha3/...``, what servers up to at least v0.3.8
  serve (kubeflow/hub v0.3.8: internal/server/openapi/api_model_registry_service.go).

    GET  registered_models            POST registered_models       GET registered_models/{id}
    GET  registered_model?name=       (find: 404 when there is none)
    GET  registered_models/{id}/versions
    POST model_versions               GET model_versions/{id}     GET model_version?name=&parentResourceId=
    POST model_versions/{id}/artifacts   GET model_versions/{id}/artifacts
    GET  model_artifact?name=&parentResourceId=   GET model_artifacts/{id}

Request bodies are parsed with the client's own `mr_openapi` models (RegisteredModelCreate,
ModelVersionCreate, ArtifactCreate): a body they refuse is answered 400. Responses are checked
against the response models (RegisteredModel, ModelVersion, Artifact) before they are sent.
Errors carry the server's body, `{"code": "<HTTP status text>", "message": ...}`
(v0.3.8 internal/server/openapi/helpers.go ErrorResponse); a path the router does not know
gets chi's plain-text "404 page not found" (routers.go, chi.NewRouter). Every request needs
`Authorization: Bearer <token>` (401 otherwise, as the auth proxy in front of the server
answers); duplicate names answer 409.
What this cannot tell: the real server's storage, its authorization proxy, its filtering.
"""

from __future__ import annotations

import http
import json
import time
from typing import ClassVar

from tests.cluster.kfp_standin import HttpError, JsonServer

PREFIX = "/api/model_registry/"
SERVED = ("v1", "v1alpha3")


def _request(model, raw: bytes):
    """A request body parsed with the client's model; 400 when the model refuses it."""
    try:
        return model.from_dict(json.loads(raw))
    except (ValueError, TypeError) as e:  # pydantic.ValidationError is a ValueError
        raise HttpError(400, f"invalid request body: {str(e)[:300]}") from None


def _response(model, body: dict) -> dict:
    model.from_dict(body)  # raises if the client could not read what we answer
    return body


class ModelRegistryStandin(JsonServer):
    """In-memory Model Registry serving exactly one API version's paths."""

    _paths: ClassVar = [
        ("GET", r"/registered_models", "list_models"),
        ("POST", r"/registered_models", "create_model"),
        ("GET", r"/registered_model", "find_model"),
        ("GET", r"/registered_models/([^/]+)", "get_model"),
        ("GET", r"/registered_models/([^/]+)/versions", "list_model_versions"),
        ("POST", r"/model_versions", "create_version"),
        ("GET", r"/model_version", "find_version"),
        ("GET", r"/model_versions/([^/]+)", "get_version"),
        ("POST", r"/model_versions/([^/]+)/artifacts", "create_version_artifact"),
        ("GET", r"/model_versions/([^/]+)/artifacts", "list_version_artifacts"),
        ("GET", r"/model_artifact", "find_artifact"),
        ("GET", r"/model_artifacts/([^/]+)", "get_artifact"),
    ]

    def __init__(self, token: str | None = "registry-token", api: str = "v1"):
        if api not in SERVED:
            raise ValueError(f"api must be one of {SERVED}")
        super().__init__(token)
        self.api = api
        self.routes = [(method, PREFIX + api + path, name) for method, path, name in self._paths]
        self.models: dict[str, dict] = {}
        self.versions: dict[str, dict] = {}
        self.artifacts: dict[str, dict] = {}
        self.version_artifacts: dict[str, list[str]] = {}

    def error(self, e: HttpError) -> tuple[int, bytes, str]:
        if e.grpc_code == "no-route":
            return 404, b"404 page not found\n", "text/plain; charset=utf-8"
        body = {"code": http.HTTPStatus(e.status).phrase, "message": e.message}
        return e.status, json.dumps(body).encode(), "application/json"

    def _new(self, body: dict, **fields) -> dict:
        stamp = str(int(time.time() * 1000))
        return {**body, **fields, "id": self.new_id(), "createTimeSinceEpoch": stamp,
                "lastUpdateTimeSinceEpoch": stamp}

    @staticmethod
    def _list(items: list[dict], model) -> tuple[int, dict]:
        return 200, _response(model, {"items": items, "size": len(items),
                                      "pageSize": max(len(items), 1), "nextPageToken": ""})

    @staticmethod
    def _one(found: list[dict], what: str) -> tuple[int, dict]:
        if not found:
            raise HttpError(404, f"no {what} found")
        return 200, found[0]

    @staticmethod
    def _get(table: dict, key: str, what: str) -> dict:
        if key not in table:
            raise HttpError(404, f"{what} {key} not found")
        return table[key]

    # -- registered models
    def list_models(self, query, raw, headers):
        from mr_openapi.models import RegisteredModelList

        return self._list(list(self.models.values()), RegisteredModelList)

    def create_model(self, query, raw, headers):
        from mr_openapi.models import RegisteredModel, RegisteredModelCreate

        body = _request(RegisteredModelCreate, raw).to_dict()
        if any(m["name"] == body["name"] for m in self.models.values()):
            raise HttpError(409, f"registered model {body['name']!r} already exists")
        model = _response(RegisteredModel, self._new(body, state=body.get("state") or "LIVE"))
        self.models[model["id"]] = model
        return 201, model

    def find_model(self, query, raw, headers):
        return self._one([m for m in self.models.values() if m["name"] == query.get("name")],
                         f"registered model named {query.get('name')!r}")

    def get_model(self, query, raw, headers, model_id):
        return 200, self._get(self.models, model_id, "registered model")

    def list_model_versions(self, query, raw, headers, model_id):
        from mr_openapi.models import ModelVersionList

        return self._list([v for v in self.versions.values() if v["registeredModelId"] == model_id],
                          ModelVersionList)

    # -- model versions
    def create_version(self, query, raw, headers):
        from mr_openapi.models import ModelVersion, ModelVersionCreate

        body = _request(ModelVersionCreate, raw).to_dict()
        self._get(self.models, body["registeredModelId"], "registered model")
        if any(v["registeredModelId"] == body["registeredModelId"] and v["name"] == body["name"]
               for v in self.versions.values()):
            raise HttpError(409, f"model version {body['name']!r} already exists")
        version = _response(ModelVersion, self._new(body, state=body.get("state") or "LIVE"))
        self.versions[version["id"]] = version
        return 201, version

    def find_version(self, query, raw, headers):
        return self._one([v for v in self.versions.values() if v["name"] == query.get("name")
                          and v["registeredModelId"] == query.get("parentResourceId")],
                         f"model version named {query.get('name')!r}")

    def get_version(self, query, raw, headers, version_id):
        return 200, self._get(self.versions, version_id, "model version")

    # -- model artifacts
    def create_version_artifact(self, query, raw, headers, version_id):
        from mr_openapi.models import Artifact, ArtifactCreate

        self._get(self.versions, version_id, "model version")
        body = _request(ArtifactCreate, raw).to_dict()
        if body.get("artifactType") != "model-artifact":
            raise HttpError(400, f"the stand-in stores model-artifact only, not {body.get('artifactType')}")
        artifact = _response(Artifact, self._new(body, state=body.get("state") or "LIVE"))
        self.artifacts[artifact["id"]] = artifact
        self.version_artifacts.setdefault(version_id, []).append(artifact["id"])
        return 200, artifact

    def list_version_artifacts(self, query, raw, headers, version_id):
        from mr_openapi.models import ArtifactList

        return self._list([self.artifacts[a] for a in self.version_artifacts.get(version_id, [])],
                          ArtifactList)

    def find_artifact(self, query, raw, headers):
        ids = self.version_artifacts.get(query.get("parentResourceId", ""), [])
        return self._one([self.artifacts[a] for a in ids if self.artifacts[a]["name"] == query.get("name")],
                         f"model artifact named {query.get('name')!r}")

    def get_artifact(self, query, raw, headers, artifact_id):
        return 200, self._get(self.artifacts, artifact_id, "model artifact")
