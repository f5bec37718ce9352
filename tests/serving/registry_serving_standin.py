"""The Model Registry stand-in (tests/cluster/registry_standin.py) plus the serving records
the deploy step writes: ServingEnvironments and InferenceServices. It is not a cluster.

Routes, under the stand-in's one API prefix (/api/model_registry/v1 by default, as the 0.3.18
client's mr_openapi calls them; the server, kubeflow/hub
internal/server/openapi/api_model_registry_service.go, commit bd07139, serves the same under
v1alpha3):

    POST serving_environments        GET serving_environment?name=      (find: 404 when none)
    POST inference_services          GET inference_service?name=&parentResourceId=
    PATCH inference_services/{id}    GET inference_services/{id}

As the server does (internal/core/inference_service.go UpsertInferenceService): creating an
InferenceService needs an existing ServingEnvironment (404 otherwise) and a registered model;
names are unique within their serving environment (409); PATCH merges the fields sent. Bodies
are parsed, and answers checked, with the client's mr_openapi models, as the base stand-in does.
"""

from __future__ import annotations

from typing import ClassVar

from tests.cluster.kfp_standin import HttpError
from tests.cluster.registry_standin import ModelRegistryStandin, _request, _response


class ServingRegistryStandin(ModelRegistryStandin):
    _paths: ClassVar = ModelRegistryStandin._paths + [
        ("POST", r"/serving_environments", "create_environment"),
        ("GET", r"/serving_environment", "find_environment"),
        ("POST", r"/inference_services", "create_service"),
        ("GET", r"/inference_service", "find_service"),
        ("GET", r"/inference_services/([^/]+)", "get_service"),
        ("PATCH", r"/inference_services/([^/]+)", "update_service"),
    ]

    def __init__(self, token: str | None = "registry-token", api: str = "v1"):
        super().__init__(token, api)
        self.environments: dict[str, dict] = {}
        self.services: dict[str, dict] = {}

    def create_environment(self, query, raw, headers):
        from mr_openapi.models import ServingEnvironment, ServingEnvironmentCreate

        body = _request(ServingEnvironmentCreate, raw).to_dict()
        if any(e["name"] == body["name"] for e in self.environments.values()):
            raise HttpError(409, f"serving environment {body['name']!r} already exists")
        env = _response(ServingEnvironment, self._new(body))
        self.environments[env["id"]] = env
        return 201, env

    def find_environment(self, query, raw, headers):
        return self._one([e for e in self.environments.values() if e["name"] == query.get("name")],
                         f"serving environment named {query.get('name')!r}")

    def create_service(self, query, raw, headers):
        from mr_openapi.models import InferenceService, InferenceServiceCreate

        body = _request(InferenceServiceCreate, raw).to_dict()
        self._get(self.environments, body.get("servingEnvironmentId", ""), "serving environment")
        self._get(self.models, body.get("registeredModelId", ""), "registered model")
        if any(s["name"] == body.get("name") and s["servingEnvironmentId"] == body["servingEnvironmentId"]
               for s in self.services.values()):
            raise HttpError(409, f"inference service {body.get('name')!r} already exists")
        service = _response(InferenceService,
                            self._new(body, desiredState=body.get("desiredState") or "DEPLOYED"))
        self.services[service["id"]] = service
        return 201, service

    def find_service(self, query, raw, headers):
        return self._one([s for s in self.services.values() if s["name"] == query.get("name")
                          and s["servingEnvironmentId"] == query.get("parentResourceId")],
                         f"inference service named {query.get('name')!r}")

    def get_service(self, query, raw, headers, service_id):
        return 200, self._get(self.services, service_id, "inference service")

    def update_service(self, query, raw, headers, service_id):
        from mr_openapi.models import InferenceService, InferenceServiceUpdate

        service = self._get(self.services, service_id, "inference service")
        service.update(_request(InferenceServiceUpdate, raw).to_dict())
        return 200, _response(InferenceService, service)
