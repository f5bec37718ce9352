"""The KServe InferenceService we deploy, built from the KServe SDK's models, and a strict
schema check for it and for our ServingRuntime.

    spec = PredictorSpec(image="ghcr.io/kfp-squad-qa/qa-cpu:0.1.0")
    isvc = inference_service("squad-qa", "kubeflow-user", "s3://bucket/model", spec,
                             serving_args(128, 64, 20, 50), labels={...})
    manifest = to_manifest(isvc)          # plain dict, camelCase, as the API server takes it
    check_schema(manifest)                # unknown or mistyped fields raise

The predictor runs our image through the `kfp-squad-qa` ServingRuntime
(manifests/overlays/kserve/serving-runtime.yaml), whose container is
`python -m pipeline serve --model /mnt/models --host 0.0.0.0`; the InferenceService adds the
windowing and post-processing arguments of the run (KServe appends a model's `args` to the
runtime container's). The storage initializer copies `storageUri` to /mnt/models.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from components.qa.errors import InvalidInputError
from components.registry.client import MODEL_FORMAT, serving_uri

RUNTIME = "kfp-squad-qa"  # the ServingRuntime's name (manifests/overlays/kserve)
PREDICTOR_SERVICE_ACCOUNT = "qa-predictor"  # carries the S3 credentials for storage-initializer
# The Model Registry integration's labels (kubeflow/hub pkg/inferenceservice-controller,
# commit bd07139): its controller links the InferenceService to these registry ids.
REGISTERED_MODEL_ID_LABEL = "modelregistry.kubeflow.org/registered-model-id"
MODEL_VERSION_ID_LABEL = "modelregistry.kubeflow.org/model-version-id"
# storage initializer schemes (kserve python/storage/kserve_storage/kserve_storage.py, v0.21.0)
STORAGE_SCHEMES = ("s3://", "gs://", "pvc://", "hf://", "https://", "http://", "oci://")


@dataclasses.dataclass(frozen=True)
class PredictorSpec:
    """Where and on what the predictor runs: the compile settings' image, resources and GPU."""

    image: str
    cpu: str = "2"
    memory: str = "4Gi"
    accelerator_type: str = ""
    accelerator_count: int = 0
    node_selector: dict = dataclasses.field(default_factory=dict)
    tolerations: list = dataclasses.field(default_factory=list)  # {key, operator, effect}
    service_account: str = PREDICTOR_SERVICE_ACCOUNT
    runtime: str = RUNTIME

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> PredictorSpec:
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise InvalidInputError(f"unknown predictor settings {sorted(unknown)}",
                                    fix="Recompile the pipeline.", field="serving")
        # a KFP dict parameter is a protobuf Struct: its numbers come back as floats
        return cls(**{**values, "accelerator_count": int(values.get("accelerator_count", 0))})


def serving_args(max_length: int, doc_stride: int, n_best: int, max_answer_length: int,
                 version_2_with_negative: bool = False,
                 null_score_diff_threshold: float = 0.0) -> list[str]:
    """`python -m pipeline serve` arguments for the settings the model was evaluated with."""
    args = ["--max-length", str(max_length), "--doc-stride", str(doc_stride),
            "--n-best", str(n_best), "--max-answer-length", str(max_answer_length)]
    if version_2_with_negative:
        args += ["--version-2-with-negative",
                 "--null-score-diff-threshold", str(null_score_diff_threshold)]
    return args


def service_name(model_name: str) -> str:
    """A DNS-1035 label KServe accepts (lowercase, '-', a letter first, at most 45 characters
    so that the predictor's Knative/Deployment names stay within 63)."""
    name = re.sub(r"[^a-z0-9-]+", "-", model_name.lower()).strip("-")
    name = name if name[:1].isalpha() else f"qa-{name}"
    name = name[:45].rstrip("-")
    if not name:
        raise InvalidInputError(f"cannot make an InferenceService name of {model_name!r}",
                                fix="Use a model_name with letters.", field="model_name")
    return name


def storage_uri(uri: str) -> str:
    """The registered model's URI as the storage initializer reads it.

    register already records KFP's `minio://bucket/key` as s3:// with its endpoint
    (`components.registry.client.serving_uri`); a record made before that is converted the same way.
    """
    uri = serving_uri(uri)
    if not uri.startswith(STORAGE_SCHEMES):
        raise InvalidInputError(
            f"the registered model URI {uri!r} is not one KServe's storage initializer reads",
            fix="Run the pipeline with an object-store pipeline root (s3://, gs://, minio://).",
            field="storage_uri")
    return uri


def inference_service(name: str, namespace: str, uri: str, spec: PredictorSpec,
                      args: list[str], labels: dict[str, str] | None = None,
                      annotations: dict[str, str] | None = None):
    """A `V1beta1InferenceService` serving `uri` (see `storage_uri`) with our runtime."""
    from kserve import (
        V1beta1InferenceService,
        V1beta1InferenceServiceSpec,
        V1beta1ModelFormat,
        V1beta1ModelSpec,
        V1beta1PredictorSpec,
        constants,
    )
    from kubernetes.client import V1ObjectMeta, V1ResourceRequirements, V1Toleration

    resources = {"cpu": spec.cpu, "memory": spec.memory}
    if spec.accelerator_count:
        resources[spec.accelerator_type] = str(spec.accelerator_count)
    model = V1beta1ModelSpec(
        model_format=V1beta1ModelFormat(name=MODEL_FORMAT), runtime=spec.runtime,
        storage_uri=uri, image=spec.image if spec.accelerator_count else None,
        args=args, resources=V1ResourceRequirements(requests=resources, limits=resources))
    predictor = V1beta1PredictorSpec(
        model=model, service_account_name=spec.service_account,
        node_selector=dict(spec.node_selector) or None,
        tolerations=[V1Toleration(**t) for t in spec.tolerations] or None)
    return V1beta1InferenceService(
        api_version=constants.KSERVE_V1BETA1, kind=constants.KSERVE_KIND_INFERENCESERVICE,
        metadata=V1ObjectMeta(name=name, namespace=namespace or None, labels=labels or None,
                              annotations=annotations or None),
        spec=V1beta1InferenceServiceSpec(predictor=predictor))


def to_manifest(obj) -> dict:
    """An SDK model as the plain camelCase dict the API server takes (None fields dropped)."""
    from kserve import ApiClient

    return ApiClient().sanitize_for_serialization(obj)


def check_schema(manifest: dict, model: str | None = None, where: str = "") -> None:
    """Refuse a field the SDK model does not define, or a value of the wrong type.

    `model` is an SDK model class name (V1beta1InferenceService, V1alpha1ServingRuntime,
    V1ResourceRequirements, ...); by default it follows from `kind`. Kubernetes types come
    from the `kubernetes` client's models, KServe's from `kserve.models`.
    """
    if model is None:
        kinds = {"InferenceService": "V1beta1InferenceService",
                 "ServingRuntime": "V1alpha1ServingRuntime",
                 "ClusterServingRuntime": "V1alpha1ClusterServingRuntime"}
        model = kinds.get(manifest.get("kind"))
        if model is None:
            raise InvalidInputError(f"no KServe schema for kind {manifest.get('kind')!r}",
                                    fix="Check built-in kinds with kubernetes-validate.",
                                    field="kind")
        where = where or f"{manifest['kind']}/{manifest.get('metadata', {}).get('name')}"
    _check(manifest, model, where or model)


_PRIMITIVES = {"str": str, "int": int, "bool": bool, "float": (int, float), "object": object,
               "date": str, "datetime": str}


def _model_class(name: str):
    import kserve.models as ks
    import kubernetes.client.models as k8s

    cls = getattr(ks, name, None) or getattr(k8s, name, None)
    if cls is None:
        raise InvalidInputError(f"unknown schema type {name}", fix="Upgrade the SDKs.",
                                field=name)
    return cls


def _check(value: Any, type_name: str, where: str) -> None:
    def fail(problem: str) -> None:
        raise InvalidInputError(problem, fix="Fix the manifest; see the KServe API reference.",
                                source=where.split(".")[0],
                                field=where.partition(".")[2] or None)

    if value is None:
        return
    if type_name.startswith("list["):
        if not isinstance(value, list):
            fail(f"expected a list, got {type(value).__name__}")
        for i, item in enumerate(value):
            _check(item, type_name[5:-1], f"{where}[{i}]")
        return
    if type_name.startswith("dict("):
        if not isinstance(value, dict):
            fail(f"expected a map, got {type(value).__name__}")
        inner = type_name[5:-1].split(", ", 1)[1]
        for key, item in value.items():
            _check(item, inner, f"{where}.{key}")
        return
    if type_name in _PRIMITIVES:
        kind = _PRIMITIVES[type_name]
        if not isinstance(value, kind) or (type_name in ("int", "float") and isinstance(value, bool)):
            fail(f"expected {type_name}, got {type(value).__name__} {value!r}")
        return
    cls = _model_class(type_name)
    if not isinstance(value, dict):
        fail(f"expected an object ({type_name}), got {type(value).__name__}")
    by_json = {json_key: attr for attr, json_key in cls.attribute_map.items()}
    for key, item in value.items():
        if key not in by_json:
            fail(f"unknown field {key!r} in {type_name}")
        _check(item, cls.openapi_types[by_json[key]], f"{where}.{key}")


def apply_and_smoke(service, name: str, namespace: str, smoke, timeout_seconds: int = 1200):
    """Create or update `service` through the KServe SDK, wait until it is ready, run
    `smoke(cluster-local url)`. Returns (what was done, public url, answer, latency ms,
    "<name>/<uid>" as the registry names the InferenceService)."""
    from kserve import KServeClient

    client = KServeClient()
    try:
        existing = client.get(name, namespace=namespace)
    except RuntimeError as e:  # the SDK wraps the API's 404 in a RuntimeError
        if "Not Found" not in str(e) and "404" not in str(e):
            raise
        existing = None
    if existing is None:
        client.create(service, namespace=namespace)
        action = "created"
    else:
        service.metadata.resource_version = existing["metadata"]["resourceVersion"]
        client.replace(name, service, namespace=namespace)
        action = "updated"
    client.wait_isvc_ready(name, namespace=namespace, timeout_seconds=timeout_seconds)
    current = client.get(name, namespace=namespace)
    internal = current["status"]["address"]["url"]
    answer, latency_ms = smoke(internal)
    return (f"InferenceService {namespace}/{name} {action}", current["status"].get("url") or internal,
            answer, latency_ms, f"{name}/{current['metadata']['uid']}")
