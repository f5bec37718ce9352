"""A stand-in for the Kubeflow Model Registry REST API, for tests. It is not a cluster.

A loopback HTTP server (stdlib, thread, 127.0.0.1, random port) answering the calls that the
`model-registry` 0.3.18 Python client makes for `register_model`, `get_registered_model`,
`get_model_version` and `get_model_artifact`. The paths are those of its generated
`mr_openapi` client, under /api/model_registry/v1 (0.3.18 speaks v1, not v1alpha3):

    GET  registered_models            POST registered_models       GET registered_models/{id}
    GET  registered_model?name=       (find: 404 when there is none)
    GET  registered_models/{id}/versions
    POST model_versions               GET model_versions/{id}     GET model_version?name=&parentResourceId=
    POST model_versions/{id}/artifacts   GET model_versions/{id}/artifacts
    GET  model_artifact?name=&parentResourceId=   GET model_artifacts/{id}

JSON fields are camelCase as in the OpenAPI spec; customProperties are stored as sent
({"f1": {"double_value": 88.1, "metadataType": "MetadataDoubleValue"}}). Every request needs
`Authorization: Bearer <token>` (401 otherwise); duplicate names answer 409 like the server.
What this cannot tell: the real server's MLMD storage, its authorization, its filtering.
"""

from __future__ import annotations

import json
import time
from typing import ClassVar

from tests.cluster.kfp_standin import HttpError, JsonServer

API = "/api/model_registry/v1"


class ModelRegistryStandin(JsonServer):
    routes: ClassVar = [
        ("GET", API + r"/registered_models", "list_models"),
        ("POST", API + r"/registered_models", "create_model"),
        ("GET", API + r"/registered_model", "find_model"),
        ("GET", API + r"/registered_models/([^/]+)", "get_model"),
        ("GET", API + r"/registered_models/([^/]+)/versions", "list_model_versions"),
        ("POST", API + r"/model_versions", "create_version"),
        ("GET", API + r"/model_version", "find_version"),
        ("GET", API + r"/model_versions/([^/]+)", "get_version"),
        ("POST", API + r"/model_versions/([^/]+)/artifacts", "create_version_artifact"),
        ("GET", API + r"/model_versions/([^/]+)/artifacts", "list_version_artifacts"),
        ("GET", API + r"/model_artifact", "find_artifact"),
        ("GET", API + r"/model_artifacts/([^/]+)", "get_artifact"),
    ]

    def __init__(self, token: str | None = "registry-token"):
        super().__init__(token)
        self.models: dict[str, dict] = {}
        self.versions: dict[str, dict] = {}
        self.artifacts: dict[str, dict] = {}
        self.version_artifacts: dict[str, list[str]] = {}

    def _new(self, body: dict, **fields) -> dict:
        stamp = str(int(time.time() * 1000))
        return {**body, **fields, "id": self.new_id(), "createTimeSinceEpoch": stamp,
                "lastUpdateTimeSinceEpoch": stamp}

    @staticmethod
    def _list(items: list[dict]) -> tuple[int, dict]:
        return 200, {"items": items, "size": len(items), "pageSize": max(len(items), 1),
                     "nextPageToken": ""}

    @staticmethod
    def _one(found: list[dict], what: str) -> tuple[int, dict]:
        if not found:
            raise HttpError(404, f"no {what} found", 5)
        return 200, found[0]

    @staticmethod
    def _get(table: dict, key: str, what: str) -> dict:
        if key not in table:
            raise HttpError(404, f"{what} {key} not found", 5)
        return table[key]

    # -- registered models
    def list_models(self, query, raw, headers):
        return self._list(list(self.models.values()))

    def create_model(self, query, raw, headers):
        body = json.loads(raw)
        if any(m["name"] == body["name"] for m in self.models.values()):
            raise HttpError(409, f"registered model {body['name']!r} already exists", 6)
        model = self._new(body, state=body.get("state") or "LIVE")
        self.models[model["id"]] = model
        return 201, model

    def find_model(self, query, raw, headers):
        return self._one([m for m in self.models.values() if m["name"] == query.get("name")],
                         f"registered model named {query.get('name')!r}")

    def get_model(self, query, raw, headers, model_id):
        return 200, self._get(self.models, model_id, "registered model")

    def list_model_versions(self, query, raw, headers, model_id):
        return self._list([v for v in self.versions.values() if v["registeredModelId"] == model_id])

    # -- model versions
    def create_version(self, query, raw, headers):
        body = json.loads(raw)
        self._get(self.models, body.get("registeredModelId", ""), "registered model")
        if any(v["registeredModelId"] == body["registeredModelId"] and v["name"] == body["name"]
               for v in self.versions.values()):
            raise HttpError(409, f"model version {body['name']!r} already exists", 6)
        version = self._new(body, state=body.get("state") or "LIVE")
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
        self._get(self.versions, version_id, "model version")
        body = json.loads(raw)
        if body.get("artifactType") != "model-artifact":
            raise HttpError(400, f"the stand-in stores model-artifact only, not {body.get('artifactType')}", 3)
        artifact = self._new(body, state=body.get("state") or "LIVE")
        self.artifacts[artifact["id"]] = artifact
        self.version_artifacts.setdefault(version_id, []).append(artifact["id"])
        return 200, artifact

    def list_version_artifacts(self, query, raw, headers, version_id):
        return self._list([self.artifacts[a] for a in self.version_artifacts.get(version_id, [])])

    def find_artifact(self, query, raw, headers):
        ids = self.version_artifacts.get(query.get("parentResourceId", ""), [])
        return self._one([self.artifacts[a] for a in ids if self.artifacts[a]["name"] == query.get("name")],
                         f"model artifact named {query.get('name')!r}")

    def get_artifact(self, query, raw, headers, artifact_id):
        return 200, self._get(self.artifacts, artifact_id, "model artifact")
