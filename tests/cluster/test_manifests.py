"""Render every kustomization under manifests/ and check what the pipeline relies on.

Built-in kinds are validated against the pinned Kubernetes schema (strict: unknown
fields fail); Kubeflow Trainer's kinds against Trainer's own schema, unknown fields
refused too (components/launch/trainer_schema.py); PodDefault has no schema here, so its
fields are checked by hand and its pod-shaped parts are validated inside a Pod.

    python -m pytest tests/cluster/test_manifests.py -q
"""

from __future__ import annotations

import base64
import functools
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

kubernetes_validate = pytest.importorskip("kubernetes_validate")

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
K8S_VERSION = "1.32.0"  # oldest Kubernetes minor the supported Kubeflow releases run on
NAMESPACE = "kubeflow-user-example-com"
SA = "qa-pipeline"
TOKEN_DIR = "/var/run/secrets/kubeflow/pipelines"
GPU_SELECTOR = {"nvidia.com/gpu.present": "true"}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}

# Every directory `kubectl kustomize` can build; a new overlay must be added here.
KUSTOMIZATIONS = [".", "base", "secrets", "overlays/rwx-storage", "overlays/gpu", "overlays/trainer",
                  "overlays/kserve"]
BASE_DIRS = [".", "base", "overlays/rwx-storage", "overlays/gpu", "overlays/trainer",
             "overlays/kserve"]
CRD_KINDS = {("kubeflow.org/v1alpha1", "PodDefault"),
             ("trainer.kubeflow.org/v1alpha1", "TrainingRuntime"),
             ("serving.kserve.io/v1alpha1", "ServingRuntime")}  # tests/serving/test_manifests.py
CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding"}

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl (with kustomize) is not on PATH")


@functools.cache
def render(directory: str) -> tuple[dict, ...]:
    out = subprocess.run([KUBECTL, "kustomize", str(MANIFESTS / directory)],
                         capture_output=True, text=True)
    assert out.returncode == 0, f"kubectl kustomize manifests/{directory} failed:\n{out.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(out.stdout) if doc)


def objects(directory: str) -> dict[tuple[str, str], dict]:
    docs = render(directory)
    index = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    assert len(index) == len(docs), f"manifests/{directory}: duplicate kind/name"
    return index


def get(directory: str, kind: str, name: str) -> dict:
    index = objects(directory)
    assert (kind, name) in index, f"manifests/{directory} has no {kind} {name}; has {sorted(index)}"
    return index[(kind, name)]


def validate_pod_spec(spec: dict, where: str) -> None:
    """Validate a pod spec (or a CRD's pod-shaped fragment) as the core Pod schema."""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "check"}, "spec": spec}
    try:
        kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        pytest.fail(f"{where}: not a valid pod spec for Kubernetes {K8S_VERSION}: {e.message}")


def role_verbs(rules: list[dict], group: str, resource: str) -> set[str]:
    return {verb for rule in rules
            if group in rule.get("apiGroups", []) and resource in rule.get("resources", [])
            for verb in rule["verbs"]}


# --- every rendering ---------------------------------------------------------

def test_kustomization_list_is_complete():
    found = {str(p.parent.relative_to(MANIFESTS)) for p in MANIFESTS.rglob("kustomization.yaml")
             if "kind: Component" not in p.read_text()}
    assert found == set(KUSTOMIZATIONS), "add new kustomizations to KUSTOMIZATIONS (and test them)"


@pytest.mark.parametrize("directory", KUSTOMIZATIONS)
def test_builtin_kinds_validate_against_pinned_kubernetes(directory):
    for obj in render(directory):
        where = f"manifests/{directory}: {obj['kind']} {obj['metadata']['name']}"
        if (obj["apiVersion"], obj["kind"]) in CRD_KINDS:
            continue  # checked against their own schemas below
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            pytest.fail(f"{where}: no schema for {obj['apiVersion']}; add it to CRD_KINDS "
                        "and check its fields by hand")
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{where}: invalid for Kubernetes {K8S_VERSION}: {e.message}")


@pytest.mark.parametrize("directory", KUSTOMIZATIONS)
def test_trainer_kinds_validate_against_trainers_crd_schema(directory):
    from components.launch import trainer_schema

    for obj in render(directory):
        if obj["apiVersion"].startswith("trainer.kubeflow.org/"):
            assert trainer_schema.problems(obj) == [], f"manifests/{directory}: {obj['kind']} " \
                f"{obj['metadata']['name']} would be refused by Trainer {trainer_schema.API_VERSION}"


@pytest.mark.parametrize("directory", KUSTOMIZATIONS)
def test_everything_lands_in_the_profile_namespace_and_is_labelled(directory):
    for obj in render(directory):
        meta = obj["metadata"]
        if obj["kind"] in CLUSTER_SCOPED:
            assert "namespace" not in meta, f"cluster-scoped {obj['kind']} {meta['name']}"
        else:
            assert meta.get("namespace") == NAMESPACE, f"{obj['kind']} {meta['name']}"
        assert meta.get("labels", {}).get("app.kubernetes.io/part-of") == "kfp-squad-qa", meta["name"]
        for subject in obj.get("subjects", []):
            assert subject == {"kind": "ServiceAccount", "name": SA, "namespace": NAMESPACE}


@pytest.mark.parametrize("directory", BASE_DIRS)
def test_base_is_in_every_overlay(directory):
    assert set(objects("base")) <= set(objects(directory))


def test_top_level_is_the_base_and_needs_no_cluster_admin():
    assert render(".") == render("base")
    assert not [o for o in render(".") if o["kind"] in CLUSTER_SCOPED]


# --- identity and RBAC ---------------------------------------------------------

def test_service_account_and_binding():
    get(".", "ServiceAccount", SA)
    binding = get(".", "RoleBinding", SA)
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": SA}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": SA, "namespace": NAMESPACE}]


def test_role_lets_the_pipeline_drive_trainjobs():
    rules = get(".", "Role", SA)["rules"]
    assert {"create", "get", "list", "watch", "delete"} <= role_verbs(rules, "trainer.kubeflow.org", "trainjobs")
    assert {"get", "list", "watch"} <= role_verbs(rules, "trainer.kubeflow.org", "trainingruntimes")
    # cluster-scoped: a Role cannot grant it, the optional ClusterRole does
    assert not role_verbs(rules, "trainer.kubeflow.org", "clustertrainingruntimes")


def test_role_covers_kfp_step_pods():
    rules = get(".", "Role", SA)["rules"]
    assert {"get", "list", "watch", "create", "delete", "patch"} <= role_verbs(rules, "", "pods")
    assert "get" in role_verbs(rules, "", "pods/log")
    assert {"get", "list", "watch"} <= role_verbs(rules, "", "configmaps")
    assert {"create", "patch"} <= role_verbs(rules, "argoproj.io", "workflowtaskresults")


def test_role_reads_only_the_named_secrets_and_has_no_wildcards():
    rules = get(".", "Role", SA)["rules"]
    secret_rules = [r for r in rules if "secrets" in r["resources"]]
    assert secret_rules and all(r["verbs"] == ["get"] for r in secret_rules)
    names = {n for r in secret_rules for n in r.get("resourceNames", [])}
    assert {"hf-token", "s3-credentials", "model-registry-token"} <= names
    assert all(r.get("resourceNames") for r in secret_rules), "secrets readable without resourceNames"
    for rule in rules:
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], rule


def test_cluster_runtime_reader_is_only_in_the_trainer_overlay():
    role = get("overlays/trainer", "ClusterRole", "qa-pipeline-clustertrainingruntime-reader")
    assert role_verbs(role["rules"], "trainer.kubeflow.org", "clustertrainingruntimes") == {"get", "list", "watch"}
    assert len(role["rules"]) == 1
    binding = get("overlays/trainer", "ClusterRoleBinding", "qa-pipeline-clustertrainingruntime-reader")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": SA, "namespace": NAMESPACE}]
    for directory in ("overlays/gpu", "overlays/rwx-storage"):
        assert not [o for o in render(directory) if o["kind"] in CLUSTER_SCOPED], directory


# --- storage -------------------------------------------------------------------

@pytest.mark.parametrize("directory, modes", [
    (".", ["ReadWriteOnce"]),
    ("overlays/gpu", ["ReadWriteOnce"]),
    ("overlays/trainer", ["ReadWriteMany"]),  # built on rwx-storage: TrainJob nodes share the claim
    ("overlays/rwx-storage", ["ReadWriteMany"]),
])
def test_cache_pvc_access_modes(directory, modes):
    spec = get(directory, "PersistentVolumeClaim", "qa-hf-cache")["spec"]
    assert spec["accessModes"] == modes
    assert spec["resources"]["requests"]["storage"]


def test_only_the_steps_that_need_the_claim_mount_it(tmp_path):
    """On ReadWriteOnce storage every mount pins a step to the claim's node: the two preprocess
    steps (and evaluate, register) must not wait for it."""
    from kfp import compiler

    from pipeline.qa_pipeline import build_pipeline
    from pipeline.settings import CompileSettings
    from pipeline.steps import STEPS

    for nodes, mounted in ((1, {"download", "fine-tune"}), (2, {"download", "fine-tune"})):
        settings = CompileSettings(pvc_name="qa-hf-cache", num_nodes=nodes)
        compiler.Compiler().compile(build_pipeline(settings), str(tmp_path / "p.yaml"))
        spec, platform = yaml.safe_load_all((tmp_path / "p.yaml").read_text())
        executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
        with_claim = {name.removeprefix("exec-") for name, cfg in executors.items() if "pvcMount" in cfg}
        assert with_claim == mounted, (nodes, with_claim)
        for name in with_claim:
            (mount,) = executors[f"exec-{name}"]["pvcMount"]
            assert mount["mountPath"] == "/mnt/qa"
            env = spec["deploymentSpec"]["executors"][f"exec-{name}"]["container"]["env"]
            assert {"name": "HF_HOME", "value": "/mnt/qa/hf-cache"} in env
    assert {"download", "fine-tune", "trainjob-launcher"} == {step.key for step in STEPS if step.pvc}


def test_rwx_overlay_names_a_storage_class_placeholder():
    assert "storageClassName" not in get(".", "PersistentVolumeClaim", "qa-hf-cache")["spec"]
    spec = get("overlays/rwx-storage", "PersistentVolumeClaim", "qa-hf-cache")["spec"]
    assert "placeholder" in spec["storageClassName"]


# --- secrets -------------------------------------------------------------------

SECRET_KEYS = {
    "hf-token": {"HF_TOKEN"},
    "s3-credentials": {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"},
    "model-registry-token": {"token"},
}


def test_secret_templates_have_stable_names_keys_and_no_values():
    secrets = {name: obj for (kind, name), obj in objects("secrets").items() if kind == "Secret"}
    assert set(secrets) == set(SECRET_KEYS), "names must be stable (no hash suffix)"
    for name, keys in SECRET_KEYS.items():
        data = {**secrets[name].get("data", {}), **secrets[name].get("stringData", {})}
        assert set(data) == keys, name
        values = {k: base64.b64decode(v).decode() if "data" in secrets[name] else v for k, v in data.items()}
        assert all(v in ("", "REPLACE_ME") for v in values.values()), f"{name} carries a value"


def test_secrets_are_not_in_the_base():
    # re-applying the base must not overwrite filled-in credentials
    for directory in BASE_DIRS:
        assert not [o for o in render(directory) if o["kind"] == "Secret"], directory


def test_secret_names_match_the_pipeline_settings():
    settings = pytest.importorskip("pipeline.settings")
    defaults = settings.CompileSettings()
    assert {defaults.hf_token_secret, defaults.s3_secret, defaults.registry_token_secret} == set(SECRET_KEYS)


# --- notebooks -> KFP API ---------------------------------------------------------

def test_poddefault_gives_notebooks_a_pipelines_token():
    pd = get(".", "PodDefault", "access-ml-pipeline")
    assert pd["apiVersion"] == "kubeflow.org/v1alpha1"
    spec = pd["spec"]
    assert spec["selector"] == {"matchLabels": {"access-ml-pipeline": "true"}}
    assert spec["desc"]
    env = {e["name"]: e["value"] for e in spec["env"]}
    assert env == {"KF_PIPELINES_SA_TOKEN_PATH": f"{TOKEN_DIR}/token"}
    (volume,) = spec["volumes"]
    (source,) = volume["projected"]["sources"]
    token = source["serviceAccountToken"]
    assert token["audience"] == "pipelines.kubeflow.org"
    assert token["path"] == "token"
    assert 600 <= token["expirationSeconds"] <= 86400
    (mount,) = spec["volumeMounts"]
    assert mount == {"name": volume["name"], "mountPath": TOKEN_DIR, "readOnly": True}
    validate_pod_spec({"containers": [{"name": "nb", "image": "nb:1", "env": spec["env"],
                                       "volumeMounts": spec["volumeMounts"]}],
                       "volumes": spec["volumes"]}, "PodDefault access-ml-pipeline")


# --- GPU scheduling ---------------------------------------------------------------

def gpu_scheduling() -> dict:
    return get("overlays/gpu", "ConfigMap", "qa-gpu-scheduling")["data"]


def test_gpu_configmap_selects_and_tolerates_gpu_nodes():
    data = gpu_scheduling()
    assert data["accelerator_type"] == "nvidia.com/gpu"
    assert json.loads(data["node_selector"]) == GPU_SELECTOR
    tolerations = json.loads(data["tolerations"])
    assert GPU_TOLERATION in tolerations
    validate_pod_spec({"containers": [{"name": "c", "image": "c:1"}],
                       "nodeSelector": json.loads(data["node_selector"]),
                       "tolerations": tolerations}, "qa-gpu-scheduling")


def test_gpu_configmap_file_reads_without_kustomize():
    # the pipeline compiler reads the file directly
    doc = yaml.safe_load((MANIFESTS / "overlays/gpu/gpu-scheduling.yaml").read_text())
    assert doc["kind"] == "ConfigMap" and doc["data"] == gpu_scheduling()


# --- Kubeflow Trainer runtime ------------------------------------------------------

def test_training_runtime_runs_torchrun_on_the_cuda_image():
    rt = get("overlays/trainer", "TrainingRuntime", "qa-torch-distributed")
    assert rt["apiVersion"] == "trainer.kubeflow.org/v1alpha1"
    # the kubeflow SDK skips runtimes without the framework label
    assert rt["metadata"]["labels"]["trainer.kubeflow.org/framework"] == "torch"
    policy = rt["spec"]["mlPolicy"]
    # Trainer v2.2 removed torch.numProcPerNode (its CRD refuses it): the TrainJob sets it
    assert policy["numNodes"] >= 1 and policy["torch"] == {}
    jobs = {j["name"]: j for j in rt["spec"]["template"]["spec"]["replicatedJobs"]}
    node = jobs["node"]["template"]
    assert node["metadata"]["labels"]["trainer.kubeflow.org/trainjob-ancestor-step"] == "trainer"
    pod = node["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in pod["containers"]}
    trainer = containers["node"]
    assert trainer["command"][0] == "torchrun"
    image = trainer["image"]
    settings = pytest.importorskip("pipeline.settings")
    assert image == settings.CompileSettings().gpu_image  # the tag images/build.sh builds by default
    assert pod["serviceAccountName"] == SA
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 1000
    claims = {v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v}
    assert claims == {"qa-hf-cache"}
    validate_pod_spec(pod, "TrainingRuntime qa-torch-distributed pod template")


def test_trainer_overlay_pins_the_image_at_the_package_version():
    settings = pytest.importorskip("pipeline.settings")
    kustomization = yaml.safe_load((MANIFESTS / "overlays/trainer/kustomization.yaml").read_text())
    (image,) = kustomization["images"]
    assert f"{image['name']}:{image['newTag']}" == settings.CompileSettings().gpu_image


def test_training_runtime_uses_the_gpu_scheduling_of_the_gpu_overlay():
    rt = get("overlays/trainer", "TrainingRuntime", "qa-torch-distributed")
    pod = rt["spec"]["template"]["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
    data = gpu_scheduling()
    assert pod["nodeSelector"] == json.loads(data["node_selector"])
    assert pod["tolerations"] == json.loads(data["tolerations"])
