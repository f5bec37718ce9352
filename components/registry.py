"""Where trained models are registered: an embedded file registry, or Kubeflow Model Registry.

Both sit behind one interface, `register(...) -> (record, created)`, chosen by URI:

- ``""`` or a path / ``file://`` URI: the embedded registry, a directory tree
  ``<root>/<model name>/<version>.json`` that needs no cluster. Records are
  created with an exclusive create, so two runs can never overwrite each other.
- ``http(s)://host:port`` (the Model Registry REST service): Kubeflow Model
  Registry through its Python client (``model-registry`` on PyPI). The bearer
  token is read from an environment variable (a Kubernetes secret), never a
  parameter.

Registering a version that already exists is a no-op that says so.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from components.qa.errors import InvalidInputError

TOKEN_ENV = "MODEL_REGISTRY_TOKEN"


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

    def versions(self, name: str) -> list[dict]:
        folder = self.root / _check_name(name, "model_name")
        return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]

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

        self.client = ModelRegistry(server_address, port, author=author,
                                    is_secure=server_address.startswith("https://"),
                                    user_token=os.environ.get(TOKEN_ENV) or None)

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


def open_registry(uri: str, pipeline_root: str, author: str) -> Registry:
    """The registry a URI names; an empty URI means the embedded one under the pipeline root."""
    if uri.startswith(("http://", "https://")):
        parsed = urlparse(uri)
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        return KubeflowModelRegistry(f"{parsed.scheme}://{parsed.hostname}", port, author)
    if not uri:
        if "://" in pipeline_root:
            raise InvalidInputError(
                f"the embedded registry needs a local pipeline root, not {pipeline_root}",
                fix="On a cluster set registry_uri to the Model Registry service, e.g. "
                    "http://model-registry-service.kubeflow.svc.cluster.local:8080.",
                field="registry_uri")
        return LocalRegistry(Path(pipeline_root) / "model-registry")
    return LocalRegistry(uri.removeprefix("file://"))
