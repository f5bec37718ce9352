"""deploy model: serve the registered version on KServe, smoke-test it, record the endpoint.

Runs after register, only with deploy=True and F1 >= min_f1 (the register gate), never cached.
`registration` is not read: taking it as an input is what orders this step after register.

- In a pod (a cluster): creates or updates the InferenceService `service_name(model_name)` in
  the pipeline's namespace through the KServe SDK, with the registered version's storage URI,
  our runtime and image and the compile settings' resources; waits until it is ready, sends a
  smoke question to its cluster-local address, and records the endpoint with the version in
  the Model Registry (components/registry/serving_records.py).
- Under kfp.local: renders the same InferenceService (the artifact), starts the real model
  server (`python -m pipeline serve`) on a free loopback port, sends the smoke question, stops
  it, and records the (now undeployed) endpoint in the registry.
"""

from kfp.dsl import Artifact, Input, Markdown, Metrics, Model, Output


def deploy_model(
    model: Input[Model],
    metrics: Input[Metrics],
    registration: Input[Markdown],
    deploy: bool,
    model_name: str,
    model_version: str,
    min_f1: float,
    registry_uri: str,
    pipeline_run_id: str,
    max_length: int,
    doc_stride: int,
    n_best: int,
    max_answer_length: int,
    predictor: dict,
    deployment: Output[Markdown],
    inference_service: Output[Artifact],
):
    import os

    import yaml

    from components.qa.answers import SQUAD_V2
    from components.registry.client import below_gate, open_registry, registered_version
    from components.registry.serving_records import record_serving, registry_ids
    from components.serving import isvc as kisvc
    from components.serving.server import SMOKE_QUESTION, LocalServer, smoke_query

    f1 = float(metrics.metadata.get("f1", 0.0))
    version = registered_version(model_version, pipeline_run_id)
    name = kisvc.service_name(model_name)
    skip = "deploy=false" if not deploy else below_gate(metrics.metadata, min_f1)
    if skip:
        message = f"# Deployment\n\nNot deployed: {skip}.\n"
        with open(inference_service.path, "w", encoding="utf-8") as f:
            f.write(f"# not deployed: {skip}\n")
        print(message, flush=True)
        with open(deployment.path, "w", encoding="utf-8") as f:
            f.write(message)
        return

    registry = open_registry(registry_uri, author="kfp-squad-qa")
    record = registry.get(model_name, version)
    if record is None:
        raise RuntimeError(f"{model_name} version {version} is not in the registry; "
                           "register must succeed first")
    spec = kisvc.PredictorSpec.from_dict(predictor)
    # a model trained on SQuAD v2.0 data may answer "", with the threshold evaluate used
    v2 = metrics.metadata.get("squad_version") == SQUAD_V2
    args = kisvc.serving_args(max_length, doc_stride, n_best, max_answer_length, v2,
                              float(metrics.metadata.get("null_score_diff_threshold", 0.0)))
    labels = {"app.kubernetes.io/part-of": "kfp-squad-qa"}
    ids = registry_ids(registry, model_name, version)  # {} for the embedded registry
    if ids:
        labels.update({kisvc.REGISTERED_MODEL_ID_LABEL: ids["registered_model_id"],
                       kisvc.MODEL_VERSION_ID_LABEL: ids["model_version_id"]})
    annotations = {"kfp-squad-qa/model-version": version,
                   "kfp-squad-qa/pipeline-run-id": pipeline_run_id}
    in_cluster = "KUBERNETES_SERVICE_HOST" in os.environ
    if in_cluster:
        with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace") as f:
            namespace = f.read().strip()
        uri = kisvc.storage_uri(record["uri"])
    else:  # a local path, which no storage initializer reads: rendered as it is
        namespace, uri = "", record["uri"]
    service = kisvc.inference_service(name, namespace, uri, spec, args, labels, annotations)
    manifest = kisvc.to_manifest(service)
    kisvc.check_schema(manifest)
    with open(inference_service.path, "w", encoding="utf-8") as f:
        yaml.safe_dump(manifest, f, sort_keys=False)
    inference_service.metadata.update({"name": name, "storage_uri": uri, "model_version": version})

    if in_cluster:
        where, endpoint, answer, latency_ms, served = kisvc.apply_and_smoke(
            service, name, namespace, lambda url: smoke_query(url, name))
        served = record_serving(registry, model_name, version, environment=namespace,
                                service=served, runtime=spec.runtime, url=endpoint)
    else:
        with LocalServer(model.path, name, args) as server:
            answer, latency_ms = smoke_query(server.url, name)
        endpoint = server.url
        where = "kfp.local: the model server ran on loopback for the smoke query, then stopped"
        served = record_serving(registry, model_name, version, environment="local",
                                service=f"{name}/local", runtime=spec.runtime, url=endpoint,
                                desired_state="UNDEPLOYED")
    message = (
        f"# Deployment\n\n{where}.\n\n| | |\n|---|---|\n"
        f"| model | {model_name} version {version} (F1 {f1:.2f}) |\n"
        f"| storage URI | `{uri}` |\n| endpoint | {endpoint}/v1/models/{name}:predict |\n"
        f"| smoke question | {SMOKE_QUESTION} |\n"
        f"| smoke answer | {answer['answer']!r} (score {answer['score']}) |\n"
        f"| smoke latency | {latency_ms:.0f} ms |\n"
        f"| registry record | {served['serving_environment']} / {served['name']} "
        f"({served['desired_state']}) |\n")
    deployment.metadata.update({"endpoint": endpoint, "smoke_answer": answer["answer"],
                                "smoke_latency_ms": round(latency_ms, 1)})
    print(message, flush=True)
    with open(deployment.path, "w", encoding="utf-8") as f:
        f.write(message)
