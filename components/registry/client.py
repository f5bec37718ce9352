"""Where trained models are registered: an embedded file registry, or Kubeflow Model Registry.

Both sit behind one interface, `register(...) -> (record, created)`, chosen by URI:

- a path or ``file://`` URI: the embedded registry, a directory tree
  ``<root>/<model name>/<version>.json`` that needs no cluster (kfp.local: the
  local runner passes ``file://<pipeline root>/model-registry``). Records are
  created with an exclusive create, so two runs can never overwrite each other.
- ``http(s)://host[:port]`` (the Model Registry REST service, port 8080 when none
  is given): Kubeflow Model Registry through its Python client (``model-registry``
  on PyPI), which speaks the server's ``/api/model_registry/v1`` API. The bearer
  token is read from an environment variable (a Kubernetes secret), never a
  parameter.
- ``""``: refused. A registration must land somewhere that outlives the step's pod.

Registering a version that already exists is a no-op that says so.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

from components.qa.errors import InvalidInputError

AUTHOR = "kfp-squad-qa"  # who our registrations and serving records name as their author
MODEL_FORMAT = "transformers"  # the model_format_name register records; our ServingRuntime serves it
TOKEN_ENV = "MODEL_REGISTRY_TOKEN"
DEFAULT_PORT = 8080  # model-registry-service's REST port, and the client's own default for http://
IN_CLUSTER_URI = "http://model-registry-service.kubeflow.svc.cluster.local:8080"
CLIENT_API = "v1"  # the REST API model-registry 0.3.18 calls (mr_openapi resource paths)
OLDER_API = "v1alpha3"  # what Model Registry servers up to at least v0.3.8 serve
API_PREFIX = "/api/model_registry/"
# KFP's default artifact store when the pipeline root is minio://mlpipeline (KFP <= 2.15:
# backend/src/v2/config/env.go, tag 2.15.0); region "minio" as KFP's own session uses.
KFP_MINIO_ENDPOINT = "http://minio-service.kubeflow:9000"
KFP_MINIO_REGION = "minio"


class Registry(Protocol):
    def register(self, name: str, version: str, uri: str, *, model_format_name: str,
                 model_format_version: str, source_id: str, metadata: dict[str, Any],
                 author: str) -> tuple[dict, bool]: ...


def _check_name(value: str, field: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", value or ""):
        raise InvalidInputError(f"{value!r} is not a valid registry {field}",
                                fix="Use letters, digits, '.', '_' and '-' (at most 128).",
                                field=field)
    return value


class LocalRegistry:
    """Embedded registry: one JSON record per model version under `root`."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def get(self, name: str, version: str) -> dict | None:
        path = self.root / _check_name(name, "model_name") / f"{_check_name(version, 'version')}.json"
        return json.loads(path.read_text()) if path.exists() else None

    def register(self, name, version, uri, *, model_format_name, model_format_version, source_id,
                 metadata, author):
        record = {"name": name, "version": version, "uri": uri,
                  "model_format_name": model_format_name,
                  "model_format_version": model_format_version, "model_source_kind": "kfp",
                  "model_source_id": source_id, "author": author, "metadata": metadata}
        existing = self.get(name, version)
        if existing is not None:
            return existing, False
        path = self.root / name / f"{version}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch = path.with_suffix(f".tmp{os.getpid()}")
        scratch.write_text(json.dumps(record, indent=2, sort_keys=True))
        try:
            os.link(scratch, path)  # atomic, fails if another run registered it meanwhile
        except FileExistsError:
            return json.loads(path.read_text()), False
        finally:
            scratch.unlink()
        return record, True


class KubeflowModelRegistry:
    """Kubeflow Model Registry through its Python client (REST, /api/model_registry/v1).

    The bearer token is the value of $MODEL_REGISTRY_TOKEN (a Kubernetes secret as env); the
    client's own `user_token_envvar` wants a variable holding a file path, not a token. With no
    token the client falls back to the mounted service-account token.
    """

    def __init__(self, server_address: str, port: int, author: str):
        from model_registry import ModelRegistry
        from mr_openapi.exceptions import NotFoundException

        token = os.environ.get(TOKEN_ENV) or None
        try:  # the client lists registered models once, under /api/model_registry/v1
            self.client = ModelRegistry(server_address, port, author=author,
                                        is_secure=server_address.startswith("https://"),
                                        user_token=token)
        except NotFoundException:
            raise _api_mismatch(f"{server_address}:{port}", token) from None

    def get(self, name: str, version: str) -> dict | None:
        """The version's record (metadata decoded back from custom properties), or None."""
        if self.client.get_registered_model(name) is None:
            return None
        found = self.client.get_model_version(name, version)
        if found is None:
            return None
        artifact = self.client.get_model_artifact(name, version)
        metadata = {k: json.loads(v) if isinstance(v, str) and v[:1] in "{[" else v
                    for k, v in (found.custom_properties or {}).items()}
        return {"name": name, "version": version, "id": found.id, "author": found.author,
                "uri": artifact.uri if artifact else None,
                "model_source_id": artifact.model_source_id if artifact else None,
                "metadata": metadata}

    def register(self, name, version, uri, *, model_format_name, model_format_version, source_id,
                 metadata, author):
        from model_registry.exceptions import StoreError

        existing = self.get(name, version)
        if existing is not None:
            return existing, False
        flat = {k: v if isinstance(v, (int, float, str, bool)) else json.dumps(v, sort_keys=True)
                for k, v in metadata.items() if v is not None}
        try:
            self.client.register_model(
                name, uri, version=version, model_format_name=model_format_name,
                model_format_version=model_format_version, model_source_kind="kfp",
                model_source_id=source_id, metadata=flat, author=author)
        except StoreError as e:
            if "already exists" not in str(e):  # another run registered it since get()
                raise
            return self.get(name, version), False
        return self.get(name, version), True


def _api_mismatch(address: str, token: str | None) -> InvalidInputError:
    """The error for a server without the v1 paths: names the API it does serve, and the fix."""
    import urllib.error
    import urllib.request

    probe = urllib.request.Request(f"{address}{API_PREFIX}{OLDER_API}/registered_models?pageSize=1")
    if token:
        probe.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(probe, timeout=15):
            older = True
    except (urllib.error.URLError, OSError):
        older = False
    served = (f"serves only {API_PREFIX}{OLDER_API} (Model Registry server v0.3.8 or older)"
              if older else f"answers 404 on {API_PREFIX}{CLIENT_API} and {API_PREFIX}{OLDER_API}")
    return InvalidInputError(
        f"the Model Registry at {address} {served}; the model-registry 0.3.18 client speaks "
        f"{API_PREFIX}{CLIENT_API} only",
        fix=("Upgrade the Model Registry server to a release that serves the v1 API (kubeflow/hub#2992), "
             "or pin the client your server speaks, e.g. `pip install model-registry==0.3.8` for a "
             "v0.3.8 server, in the image and here.") if older else
            "Point registry_uri at the Model Registry REST service (port 8080), e.g. " + IN_CLUSTER_URI,
        field="registry_uri")


def serving_uri(uri: str) -> str:
    """A model URI a deployment can load: KFP's minio:// becomes s3://bucket/key?endpoint=...

    KServe's storage initializer has no minio:// scheme. The form is the Model Registry
    client's own (`model_registry.utils.s3_uri_from`); the endpoint is $AWS_ENDPOINT_URL
    (the S3 secret) or KFP's default store. Other URIs are returned unchanged.
    """
    parsed = urlparse(uri)
    if parsed.scheme != "minio":
        return uri
    from model_registry.utils import s3_uri_from

    return s3_uri_from(parsed.path.lstrip("/"), parsed.netloc,
                       endpoint=os.environ.get("AWS_ENDPOINT_URL") or KFP_MINIO_ENDPOINT,
                       region=os.environ.get("AWS_DEFAULT_REGION") or KFP_MINIO_REGION)


def registered_version(model_version: str, run_id: str) -> str:
    """The version name a run registers under: `model_version`, or the run's id when it is
    empty. register writes it; deploy and `compare` look the record up by it."""
    return model_version or run_id


def below_gate(metrics: dict[str, Any], min_f1: float) -> str | None:
    """Why a run's model is neither registered nor deployed (its F1 is below min_f1), or None.
    register and deploy apply the same gate, so a deployed version is always a registered one."""
    f1 = float(metrics.get("f1", 0.0))
    return f"F1 {f1:.2f} is below min_f1 {min_f1:.2f}" if f1 < min_f1 else None


def open_registry(uri: str, author: str) -> Registry:
    """The registry a URI names: Model Registry for http(s)://, the embedded one for a path."""
    if uri.startswith(("http://", "https://")):
        parsed = urlparse(uri)
        port = parsed.port or (443 if parsed.scheme == "https" else DEFAULT_PORT)
        return KubeflowModelRegistry(f"{parsed.scheme}://{parsed.hostname}", port, author)
    if not uri:
        raise InvalidInputError(
            "registry_uri is empty: there is nowhere durable to register the model",
            fix=f"Set registry_uri to the Model Registry service, e.g. {IN_CLUSTER_URI}, or a "
                "file:// folder that outlives the run (kfp.local sets one under its pipeline root).",
            field="registry_uri")
    return LocalRegistry(unquote(urlparse(uri).path) if uri.startswith("file://") else uri)
