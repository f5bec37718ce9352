"""manifests/overlays/kserve and the InferenceService the deploy step renders, validated
strictly: KServe kinds against the KServe SDK's models (unknown fields refused), built-in
kinds and pod-shaped parts against the pinned Kubernetes schema."""

from __future__ import annotations

import copy

import pytest

from components.qa.errors import InvalidInputError
from components.serving import isvc as kisvc
from pipeline.serving import predictor_settings
from pipeline.settings import CompileSettings
from tests.cluster.test_manifests import NAMESPACE, get, objects, role_verbs, validate_pod_spec

pytest.importorskip("kserve")
OVERLAY = "overlays/kserve"
# KFP's minio:// as components.registry.client.serving_uri writes it, with KFP's default store
KFP_S3 = "s3://mlpipeline/v2/{}?endpoint=http://minio-service.kubeflow:9000&defaultRegion=minio"


@pytest.fixture(autouse=True)
def kfp_default_store(monkeypatch):
    """No S3 secret in the environment: serving_uri falls back to KFP's default store."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)


def test_serving_runtime_matches_the_kserve_schema_and_runs_our_server():
    runtime = get(OVERLAY, "ServingRuntime", kisvc.RUNTIME)
    kisvc.check_schema(runtime)
    assert runtime["spec"]["supportedModelFormats"] == [
        {"name": kisvc.MODEL_FORMAT, "autoSelect": False}]
    assert set(runtime["spec"]["protocolVersions"]) == {"v1", "v2"}
    (container,) = runtime["spec"]["containers"]
    assert container["command"] + container["args"][:2] == [
        "python", "-m", "pipeline", "serve", "--model", "/mnt/models"]
    assert container["args"][container["args"].index("--host") + 1] == "0.0.0.0"
    assert container["image"].startswith("ghcr.io/kfp-squad-qa/qa-cpu:")
    validate_pod_spec({"containers": [container]}, "ServingRuntime container")


def test_check_schema_refuses_unknown_and_mistyped_fields():
    runtime = get(OVERLAY, "ServingRuntime", kisvc.RUNTIME)
    typo = copy.deepcopy(runtime)
    typo["spec"]["containers"][0]["argz"] = ["--port", "8080"]
    with pytest.raises(InvalidInputError, match="unknown field 'argz'"):
        kisvc.check_schema(typo)
    wrong = copy.deepcopy(runtime)
    wrong["spec"]["protocolVersions"] = "v1"
    with pytest.raises(InvalidInputError, match="field 'spec.protocolVersions': expected a list"):
        kisvc.check_schema(wrong)


def test_pipeline_may_create_and_update_inference_services_but_not_delete():
    role = get(OVERLAY, "Role", "qa-pipeline-kserve")
    verbs = role_verbs(role["rules"], "serving.kserve.io", "inferenceservices")
    assert {"get", "list", "watch", "create", "update", "patch"} <= verbs
    assert "delete" not in verbs
    binding = get(OVERLAY, "RoleBinding", "qa-pipeline-kserve")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "qa-pipeline",
                                    "namespace": NAMESPACE}]
    account = get(OVERLAY, "ServiceAccount", kisvc.PREDICTOR_SERVICE_ACCOUNT)
    assert account["secrets"] == [{"name": CompileSettings().s3_secret}]


def rendered(settings: CompileSettings, uri: str = "minio://mlpipeline/v2/artifacts/run/model"):
    spec = kisvc.PredictorSpec.from_dict(predictor_settings(settings))
    service = kisvc.inference_service(
        "squad-qa", NAMESPACE, kisvc.storage_uri(uri), spec,
        kisvc.serving_args(384, 128, 20, 50), labels={kisvc.MODEL_VERSION_ID_LABEL: "7"})
    return kisvc.to_manifest(service)


def test_inference_service_on_a_gpu_validates_and_carries_the_compile_settings():
    settings = CompileSettings(node_selector=(("nvidia.com/gpu.present", "true"),),
                               tolerations=(("nvidia.com/gpu", "Exists", "NoSchedule"),))
    manifest = rendered(settings)
    kisvc.check_schema(manifest)
    predictor = manifest["spec"]["predictor"]
    model = predictor["model"]
    assert model["runtime"] == kisvc.RUNTIME and model["modelFormat"] == {"name": "transformers"}
    assert model["storageUri"] == KFP_S3.format("artifacts/run/model")
    assert model["image"] == settings.gpu_image
    evaluate = settings.resources_for("evaluate")
    assert model["resources"]["limits"] == {"cpu": evaluate.cpu, "memory": evaluate.memory,
                                            "nvidia.com/gpu": "1"}
    assert model["args"] == ["--max-length", "384", "--doc-stride", "128", "--n-best", "20",
                             "--max-answer-length", "50"]
    assert predictor["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert predictor["serviceAccountName"] == kisvc.PREDICTOR_SERVICE_ACCOUNT
    validate_pod_spec({"containers": [{"name": "kserve-container", **{
        k: model[k] for k in ("image", "args", "resources")}}],
        "nodeSelector": predictor["nodeSelector"], "tolerations": predictor["tolerations"]},
        "InferenceService predictor")


def test_inference_service_on_a_cpu_uses_the_runtime_image():
    manifest = rendered(CompileSettings(eval_on_gpu=False))
    kisvc.check_schema(manifest)
    model = manifest["spec"]["predictor"]["model"]
    assert "image" not in model and "nvidia.com/gpu" not in model["resources"]["limits"]


# KFP's minio:// as the Model Registry client writes s3 URIs (registry.serving_uri); KServe's
# storage initializer reads bucket and key with urlparse, so the query is left aside there
# (python/storage/kserve_storage/kserve_storage.py _download_s3, kserve aaac4e2) and the
# endpoint comes from the predictor's S3 secret
@pytest.mark.parametrize("uri, expected", [
    ("minio://mlpipeline/v2/a/model", KFP_S3.format("a/model")),
    ("s3://bucket/model", "s3://bucket/model"), ("gs://bucket/model", "gs://bucket/model")])
def test_storage_uri_is_one_the_storage_initializer_reads(uri, expected):
    assert kisvc.storage_uri(uri) == expected


def test_a_local_path_is_refused_as_a_storage_uri():
    with pytest.raises(InvalidInputError, match="storage initializer"):
        kisvc.storage_uri("/tmp/local_outputs/model")


@pytest.mark.parametrize("name, expected", [("squad-qa", "squad-qa"), ("SQuAD_QA.v2", "squad-qa-v2"),
                                            ("2024-model", "qa-2024-model")])
def test_service_names_are_dns_labels(name, expected):
    assert kisvc.service_name(name) == expected


def test_the_overlay_holds_the_base():
    assert set(objects("base")) <= set(objects(OVERLAY))
