"""Record where a registered model version is served, as KServe's Model Registry integration does.

Kubeflow Model Registry keeps serving records beside the versions: a ServingEnvironment per
namespace and an InferenceService entity (name "<isvc name>/<uid>", registeredModelId,
modelVersionId, runtime, desiredState, customProperties.url). Its InferenceService controller
writes them for InferenceServices labelled with the registry ids (kubeflow/hub
pkg/inferenceservice-controller/controller.go, commit bd07139: getOrCreateServingEnvironment,
createMRInferenceService). The deploy step writes the same records itself, so that they exist
whether or not that controller is installed.

    record_serving(registry, "squad-qa", "v3", environment="kubeflow-user",
                   service="squad-qa/2f1c...", runtime="kfp-squad-qa", url="http://...")

The embedded registry (components.registry.client.LocalRegistry) gets one JSON file per
InferenceService under <root>/<model>/serving/.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from components.qa.errors import InvalidInputError
from components.registry.client import LocalRegistry


def record_serving(registry, model_name: str, version: str, *, environment: str, service: str,
                   runtime: str, url: str, desired_state: str = "DEPLOYED") -> dict[str, Any]:
    """Create or update the InferenceService record of `service`; return it as a dict.

    desired_state: DEPLOYED, or UNDEPLOYED for a server that is gone (the controller sets it
    when the InferenceService is deleted; the local deploy stops its server at once).
    """
    if desired_state not in ("DEPLOYED", "UNDEPLOYED"):
        raise InvalidInputError(f"unknown desired_state {desired_state!r}",
                                fix="Use DEPLOYED or UNDEPLOYED.", field="desired_state")
    args = (model_name, version, environment, service, runtime, url, desired_state)
    if isinstance(registry, LocalRegistry):
        return _record_local(registry.root, *args)
    return _record_kubeflow(registry, *args)


def registry_ids(registry, model_name: str, version: str) -> dict[str, str]:
    """The registered model's and version's ids (for the InferenceService labels); {} when the
    registry has none (the embedded one)."""
    if isinstance(registry, LocalRegistry):
        return {}
    client = registry.client
    model = client.get_registered_model(model_name)
    found = client.get_model_version(model_name, version) if model else None
    if found is None:
        raise InvalidInputError(f"{model_name} version {version} is not in the Model Registry",
                                fix="Deploy only after register succeeded (min_f1 gate).",
                                record=f"{model_name}/{version}", field="model_version")
    return {"registered_model_id": model.id, "model_version_id": found.id}


def _record_local(root: Path, model_name, version, environment, service, runtime, url,
                  desired_state) -> dict:
    record = {"serving_environment": environment, "name": service, "registered_model": model_name,
              "model_version": version, "runtime": runtime, "desired_state": desired_state,
              "url": url}
    folder = root / model_name / "serving"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (f"{environment}--{service}".replace("/", "--") + ".json")
    scratch = path.with_suffix(f".tmp{os.getpid()}")
    scratch.write_text(json.dumps(record, indent=2, sort_keys=True))
    os.replace(scratch, path)  # update in place: the record follows the latest deploy
    return record


def _record_kubeflow(registry, model_name, version, environment, service, runtime, url,
                     desired_state) -> dict:
    from mr_openapi import (
        InferenceServiceCreate,
        InferenceServiceState,
        InferenceServiceUpdate,
        MetadataStringValue,
        MetadataValue,
        ServingEnvironmentCreate,
    )
    from mr_openapi.exceptions import NotFoundException

    ids = registry_ids(registry, model_name, version)
    state = InferenceServiceState(desired_state)
    properties = {"url": MetadataValue(MetadataStringValue(
        string_value=url, metadataType="MetadataStringValue"))}

    async def upsert() -> Any:
        async with registry.client._api.get_client() as api:
            try:
                env = await api.find_serving_environment(name=environment)
            except NotFoundException:
                env = await api.create_serving_environment(
                    ServingEnvironmentCreate(name=environment))
            try:
                found = await api.find_inference_service(name=service,
                                                         parent_resource_id=env.id)
            except NotFoundException:
                return await api.create_inference_service(InferenceServiceCreate(
                    name=service, registeredModelId=ids["registered_model_id"],
                    modelVersionId=ids["model_version_id"], servingEnvironmentId=env.id,
                    runtime=runtime, desiredState=state,
                    customProperties=properties))
            return await api.update_inference_service(found.id, InferenceServiceUpdate(
                modelVersionId=ids["model_version_id"], runtime=runtime,
                desiredState=state, customProperties=properties))

    saved = registry.client.async_runner(upsert())
    return {"serving_environment": environment, "name": service, "id": saved.id,
            "registered_model": model_name, "model_version": version,
            "model_version_id": ids["model_version_id"], "runtime": runtime,
            "desired_state": desired_state, "url": url}
