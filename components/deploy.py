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

What it does is components/serving/deployment.py; this step reads its inputs, calls it and
writes what it returns.
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
    from components.serving.deployment import plan_deployment, serve_and_smoke

    plan = plan_deployment(deploy, metrics.metadata, model_name, model_version, min_f1,
                           registry_uri, pipeline_run_id,
                           (max_length, doc_stride, n_best, max_answer_length), predictor)
    with open(inference_service.path, "w", encoding="utf-8") as f:
        f.write(plan.manifest_text)
    if plan.skip:
        print(plan.skipped_report, flush=True)
        with open(deployment.path, "w", encoding="utf-8") as f:
            f.write(plan.skipped_report)
        return
    inference_service.metadata.update(plan.metadata)

    result = serve_and_smoke(plan, model.path)
    deployment.metadata.update(result.metadata)
    print(result.report, flush=True)
    with open(deployment.path, "w", encoding="utf-8") as f:
        f.write(result.report)
