"""What the deploy step does, apart from reading and writing its artifacts (components/deploy.py).

    plan = plan_deployment(deploy, metrics, model_name, model_version, min_f1, registry_uri,
                           pipeline_run_id, (max_length, doc_stride, n_best, max_answer_length),
                           predictor)
    # write plan.manifest_text; if plan.skip: write plan.skipped_report and stop
    result = serve_and_smoke(plan, model_dir)   # result.report, result.metadata

In a pod (KUBERNETES_SERVICE_HOST set) the InferenceService goes to the pod's namespace with
the registered version's storage URI, and KServe serves it; elsewhere (kfp.local) it is
rendered with the local path, and the model server runs on loopback for the smoke query only.
Either way the endpoint is recorded with the version in the Model Registry.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from components.qa.answers import SQUAD_V2
from components.registry.client import AUTHOR, below_gate, open_registry, registered_version
from components.registry.serving_records import record_serving, registry_ids
from components.serving import isvc as kisvc

NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"  # the pod's own


@dataclasses.dataclass
class Plan:
    """The InferenceService rendered for the registered version, or why nothing is deployed
    (`skip`: then only model_name, version, name and f1 are set)."""

    model_name: str
    version: str
    name: str  # the InferenceService's, and the served model's
    f1: float
    skip: str | None = None
    registry: Any = None
    runtime: str = ""
    args: list[str] = dataclasses.field(default_factory=list)  # `python -m pipeline serve` arguments
    in_cluster: bool = False
    namespace: str = ""
    uri: str = ""
    service: Any = None  # the KServe SDK object
    manifest: dict | None = None

    @property
    def manifest_text(self) -> str:
        """The inference_service artifact: the manifest as YAML, or a comment saying why none."""
        if self.skip:
            return f"# not deployed: {self.skip}\n"
        import yaml

        return yaml.safe_dump(self.manifest, sort_keys=False)

    @property
    def skipped_report(self) -> str:
        return f"# Deployment\n\nNot deployed: {self.skip}.\n"

    @property
    def metadata(self) -> dict[str, str]:
        """The inference_service artifact's metadata."""
        return {"name": self.name, "storage_uri": self.uri, "model_version": self.version}


def plan_deployment(deploy: bool, metrics: dict[str, Any], model_name: str, model_version: str,
                    min_f1: float, registry_uri: str, pipeline_run_id: str,
                    windows: tuple[int, int, int, int], predictor: dict) -> Plan:
    """Render and check the InferenceService of `model_name`'s registered version, unless
    deploy is off or the register gate refused the run's F1 (`metrics`: evaluate's metadata).

    windows: (max_length, doc_stride, n_best, max_answer_length), the settings evaluate used;
    a model trained on SQuAD v2.0 data may answer "", with evaluate's threshold.
    """
    f1 = float(metrics.get("f1", 0.0))
    version = registered_version(model_version, pipeline_run_id)
    name = kisvc.service_name(model_name)
    skip = "deploy=false" if not deploy else below_gate(metrics, min_f1)
    if skip:
        return Plan(model_name, version, name, f1, skip=skip)

    registry = open_registry(registry_uri, author=AUTHOR)
    record = registry.get(model_name, version)
    if record is None:
        raise RuntimeError(f"{model_name} version {version} is not in the registry; "
                           "register must succeed first")
    spec = kisvc.PredictorSpec.from_dict(predictor)
    v2 = metrics.get("squad_version") == SQUAD_V2
    args = kisvc.serving_args(*windows, v2, float(metrics.get("null_score_diff_threshold", 0.0)))
    labels = {"app.kubernetes.io/part-of": AUTHOR}
    ids = registry_ids(registry, model_name, version)  # {} for the embedded registry
    if ids:
        labels.update({kisvc.REGISTERED_MODEL_ID_LABEL: ids["registered_model_id"],
                       kisvc.MODEL_VERSION_ID_LABEL: ids["model_version_id"]})
    annotations = {"kfp-squad-qa/model-version": version,
                   "kfp-squad-qa/pipeline-run-id": pipeline_run_id}
    in_cluster = "KUBERNETES_SERVICE_HOST" in os.environ
    if in_cluster:
        with open(NAMESPACE_FILE) as f:
            namespace = f.read().strip()
        uri = kisvc.storage_uri(record["uri"])
    else:  # a local path, which no storage initializer reads: rendered as it is
        namespace, uri = "", record["uri"]
    service = kisvc.inference_service(name, namespace, uri, spec, args, labels, annotations)
    manifest = kisvc.to_manifest(service)
    kisvc.check_schema(manifest)
    return Plan(model_name, version, name, f1, registry=registry, runtime=spec.runtime, args=args,
                in_cluster=in_cluster, namespace=namespace, uri=uri, service=service,
                manifest=manifest)


@dataclasses.dataclass(frozen=True)
class Deployment:
    """What serving the plan gave: where, the endpoint, the smoke answer and the registry's
    serving record."""

    plan: Plan
    where: str
    endpoint: str
    answer: dict  # the server's prediction of the smoke question
    latency_ms: float
    served: dict  # the registry's InferenceService record

    @property
    def report(self) -> str:
        """The deployment artifact (Markdown)."""
        from components.serving.server import SMOKE_QUESTION

        plan, answer, served = self.plan, self.answer, self.served
        return (
            f"# Deployment\n\n{self.where}.\n\n| | |\n|---|---|\n"
            f"| model | {plan.model_name} version {plan.version} (F1 {plan.f1:.2f}) |\n"
            f"| storage URI | `{plan.uri}` |\n"
            f"| endpoint | {self.endpoint}/v1/models/{plan.name}:predict |\n"
            f"| smoke question | {SMOKE_QUESTION} |\n"
            f"| smoke answer | {answer['answer']!r} (score {answer['score']}) |\n"
            f"| smoke latency | {self.latency_ms:.0f} ms |\n"
            f"| registry record | {served['serving_environment']} / {served['name']} "
            f"({served['desired_state']}) |\n")

    @property
    def metadata(self) -> dict[str, Any]:
        """The deployment artifact's metadata."""
        return {"endpoint": self.endpoint, "smoke_answer": self.answer["answer"],
                "smoke_latency_ms": round(self.latency_ms, 1)}


def serve_and_smoke(plan: Plan, model_dir: str) -> Deployment:
    """Serve the planned InferenceService, ask it the smoke question, record the endpoint.

    In a cluster KServe creates or updates it and the record is DEPLOYED; under kfp.local the
    model server (`model_dir`) runs on loopback for the query, then stops: UNDEPLOYED.
    """
    from components.serving.server import LocalServer, smoke_query

    name = plan.name
    if plan.in_cluster:
        where, endpoint, answer, latency_ms, served = kisvc.apply_and_smoke(
            plan.service, name, plan.namespace, lambda url: smoke_query(url, name))
        served = record_serving(plan.registry, plan.model_name, plan.version,
                                environment=plan.namespace, service=served,
                                runtime=plan.runtime, url=endpoint)
    else:
        with LocalServer(model_dir, name, plan.args) as server:
            answer, latency_ms = smoke_query(server.url, name)
        endpoint = server.url
        where = "kfp.local: the model server ran on loopback for the smoke query, then stopped"
        served = record_serving(plan.registry, plan.model_name, plan.version, environment="local",
                                service=f"{name}/local", runtime=plan.runtime, url=endpoint,
                                desired_state="UNDEPLOYED")
    return Deployment(plan, where, endpoint, answer, latency_ms, served)
