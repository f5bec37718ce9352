"""Multi-node fine-tuning through Kubeflow Trainer, for real: 2 nodes in containers on this machine.

    python -m pytest tests/multinode -q -p no:cacheprovider     # about a minute on 2 cores

The container tests run the fine-tune component with `num_nodes=2` on the SDK's container
backend (two containers of the CPU image `make images` built, gloo DDP over a Docker
network) and compare it with the same component on one node. The last test checks the
TrainJob the launcher would submit to a cluster, built by the SDK without one.

Why the data-parallel run can match the one-node run to float precision here: two things
make `2 nodes x batch 4` differ from `1 node x batch 8` by design, and the fixture removes
both. Dropout draws its masks per rank (the base model's dropout is set to 0), and dynamic
padding pads each rank's half batch to its own longest feature while the QA head's softmax
also runs over padding positions (the features are the full-length windows, which need no
padding). What is left is the distributed arithmetic: gradients all-reduced over gloo in a
different summation order, ~1e-7 on the loss (measured: 4.6108437 vs 4.6108435).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import datasets
import pytest
from kfp import dsl

from components.download import download
from components.fine_tune import fine_tune
from components.launch import trainer_schema
from components.launch.entry import entry_args
from components.launch.trainer_client import (
    RUN_LABEL,
    TrainerTooOld,
    launcher_owner,
    offline_client,
    render_trainjob,
    submit,
)
from components.launch.trainjob_spec import TrainJobFailed, TrainJobSpec
from components.preprocess import preprocess_train, preprocess_validation
from components.qa.train_config import TrainConfig
from pipeline.parameters import profile_parameters
from tests.conftest import REPO

TINY = profile_parameters("tiny")
JOB = re.compile(r"TrainJob (qa-ft-[0-9a-f]+):")
LOSS_TOLERANCE = 1e-3  # ~1e4 x the arithmetic noise; 4 steps move the loss by ~0.7
F1_TOLERANCE = 1.0  # points


# --- fixtures ---------------------------------------------------------------------

def _image() -> str:
    env = REPO / "build" / "images.env"
    if not env.exists():
        pytest.skip("build/images.env is missing: run `make images ARGS=--local-base`")
    image = dict(line.split("=", 1) for line in env.read_text().split() if "=" in line).get("QA_CPU_IMAGE")
    try:
        import docker

        docker.from_env().images.get(image)
    except ImportError:
        pytest.skip("the docker Python package is not installed")
    except Exception as err:  # no daemon, or no image
        pytest.skip(f"Docker or the image {image} is not available ({err}): "
                    "start Docker and run `make images ARGS=--local-base`")
    return image


@pytest.fixture(scope="module")
def image() -> str:
    return _image()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    """The tiny profile's data and MiniLM, with dropout off and full-length train windows."""
    root = tmp_path_factory.mktemp("tiny")
    art = {name: kind(uri=str(root / name)) for name, kind in (
        ("train_data", dsl.Dataset), ("validation_data", dsl.Dataset), ("base_model", dsl.Model),
        ("train_features", dsl.Dataset), ("validation_features", dsl.Dataset))}
    download(dataset=str(REPO / TINY["dataset"]), dataset_config="", dataset_revision="",
             train_split="train", validation_split="validation",
             max_train_samples=TINY["max_train_samples"], max_eval_samples=48,
             answer_policy="error", max_context_chars=TINY["max_context_chars"], model=TINY["model"],
             model_revision="",
             train_data=art["train_data"], validation_data=art["validation_data"],
             base_model=art["base_model"])
    shape = {"max_length": TINY["max_length"], "doc_stride": TINY["doc_stride"]}
    preprocess_train(train_data=art["train_data"], base_model=art["base_model"],
                     train_features=art["train_features"], **shape)
    preprocess_validation(validation_data=art["validation_data"], base_model=art["base_model"],
                          validation_features=art["validation_features"], **shape)

    config = Path(art["base_model"].path) / "config.json"
    values = json.loads(config.read_text())
    values.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    config.write_text(json.dumps(values))
    features = datasets.load_from_disk(art["train_features"].path)
    full = features.filter(lambda row: sum(row["attention_mask"]) == TINY["max_length"])
    assert len(full) >= 4 * 8, "too few full-length windows for 4 steps of 8"
    full.save_to_disk(str(root / "train_windows"))
    art["train_features"] = dsl.Dataset(uri=str(root / "train_windows"),
                                        metadata=dict(art["train_features"].metadata))
    return art


def container_spec(image: str, **env) -> dict:
    return TrainJobSpec(image=image, backend="container", gpus_per_node=0, poll_s=1,
                        env={"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **env}).to_dict()


def run_fine_tune(root: Path, data: dict, batch_size: int, **nodes) -> dict:
    out = {name: kind(uri=str(root / name)) for name, kind in (
        ("model", dsl.Model), ("metrics", dsl.Metrics), ("tensorboard", dsl.Artifact))}
    fine_tune(train_features=data["train_features"], base_model=data["base_model"],
              learning_rate=TINY["learning_rate"], num_train_epochs=TINY["num_train_epochs"],
              max_steps=TINY["max_steps"], batch_size=batch_size, weight_decay=TINY["weight_decay"],
              warmup_fraction=TINY["warmup_fraction"], seed=TINY["seed"],
              precision=TINY["precision"], sampler=TINY["sampler"], checkpoint_dir="", **out,
              **nodes)
    return out


def leftovers(job: str) -> list[str]:
    """Containers, network and folder of `job` that still exist."""
    import docker

    client = docker.from_env()
    found = [c.name for c in client.containers.list(
        all=True, filters={"label": f"trainer.kubeflow.org/trainjob-name={job}"})]
    found += [n.name for n in client.networks.list() if n.name == f"{job}-net"]
    folder = Path.home() / ".kubeflow" / "trainer" / "containers" / job
    return found + ([str(folder)] if folder.exists() else [])


def train_set_loss(model_dir: str, features_dir: str) -> float:
    """The QA loss of a model on the train features, in eval mode (no padding: full windows)."""
    import torch
    from transformers import AutoModelForQuestionAnswering

    model = AutoModelForQuestionAnswering.from_pretrained(model_dir).eval()
    columns = ["input_ids", "token_type_ids", "attention_mask", "start_positions", "end_positions"]
    batch = datasets.load_from_disk(features_dir).with_format("torch", columns=columns)[:]
    with torch.no_grad():
        return model(**batch).loss.item()


def f1(model_dir: str, data: dict) -> float:
    from transformers import AutoModelForQuestionAnswering

    from components.qa.inference import evaluate_qa_model

    model = AutoModelForQuestionAnswering.from_pretrained(model_dir).eval()
    metrics, _ = evaluate_qa_model(model, datasets.load_from_disk(data["validation_data"].path),
                                   datasets.load_from_disk(data["validation_features"].path),
                                   batch_size=32, max_answer_length=30)
    return metrics["f1"]


# --- on this machine: two nodes in containers ------------------------------------------

@pytest.mark.docker
@pytest.mark.slow
def test_two_nodes_train_like_one_node_with_the_same_global_batch(tmp_path, tiny, image, capfd):
    one = run_fine_tune(tmp_path / "one", tiny, batch_size=8)
    capfd.readouterr()
    two = run_fine_tune(tmp_path / "two", tiny, batch_size=4, num_nodes=2,
                        trainjob=container_spec(image))
    log = capfd.readouterr().out

    # both ranks took part, each on its own node
    assert "qa-trainjob node 0: rank 0 of world size 2" in log
    assert "qa-trainjob node 1: rank 1 of world size 2" in log
    (job,) = set(JOB.findall(log))
    assert f"TrainJob {job}: deleted" in log

    # one model published (rank 0's), laid out and measured as a one-node run's
    model = Path(two["model"].path)
    rng = re.compile(r"rng_state(_\d+)?\.pth")  # a DDP checkpoint keeps every rank's RNG state
    files = [sorted({rng.sub("rng_state*.pth", str(p.relative_to(d))) for p in d.rglob("*")})
             for d in (Path(one["model"].path), model)]
    assert files[1] == files[0] and "model.safetensors" in files[1]
    m1, m2 = (json.loads(Path(r["metrics"].path).read_text()) for r in (one, two))
    assert set(m2) == set(m1)
    assert m2["global_step"] == m1["global_step"] == TINY["max_steps"]
    assert m2["num_train_tokens"] == m1["num_train_tokens"]  # the same examples, counted over ranks
    assert two["metrics"].metadata["global_step"] == TINY["max_steps"]
    assert two["model"].metadata["hyperparameters"]["num_nodes"] == 2
    assert list(Path(two["tensorboard"].path).rglob("events.out.tfevents.*"))

    # the same training: loss on the train features after the steps, and F1
    features = tiny["train_features"].path
    loss1, loss2 = train_set_loss(one["model"].path, features), train_set_loss(str(model), features)
    before = train_set_loss(tiny["base_model"].path, features)
    assert abs(loss2 - loss1) < LOSS_TOLERANCE, (loss1, loss2)
    assert before - loss1 > 100 * LOSS_TOLERANCE, "the steps must move the loss for this to mean much"
    f1_one, f1_two = f1(one["model"].path, tiny), f1(str(model), tiny)
    assert abs(f1_two - f1_one) <= F1_TOLERANCE, (f1_one, f1_two)

    assert leftovers(job) == []


@pytest.mark.docker
@pytest.mark.slow
def test_a_failing_node_fails_the_step_with_its_name_and_log(tmp_path, tiny, image):
    with pytest.raises(TrainJobFailed) as failed:
        run_fine_tune(tmp_path, tiny, batch_size=4, num_nodes=2,
                      trainjob=container_spec(image, QA_TEST_FAIL_NODE="1"))
    job, message = failed.value.job, str(failed.value)
    headline, *excerpt = message.splitlines()
    assert headline == f"TrainJob {job} failed on node-1 ({job}-node-1)"
    assert "qa-trainjob node 1: failing on purpose (QA_TEST_FAIL_NODE)" in excerpt
    assert not Path(tmp_path / "model").exists(), "a failed step must publish no model"
    assert leftovers(job) == []


# --- for a cluster: the TrainJob the launcher would submit ---------------------------------

SHARED = "/mnt/qa/trainjobs/qa-ft-0123456789"
ARGV = entry_args(f"{SHARED}/features", f"{SHARED}/base_model", f"{SHARED}/model", TrainConfig(), None, None)
POD = {"KFP_POD_NAME": "qa-finetune-abcde-system-container-impl-123", "KFP_POD_UID": "0b5c-uid"}


def test_the_trainjob_carries_what_the_pipeline_asks_for(tmp_path, monkeypatch):
    import yaml
    from kfp import compiler

    from pipeline.qa_pipeline import build_pipeline
    from pipeline.settings import CompileSettings

    settings = CompileSettings(
        cpu_image="reg.example/qa-cpu:1.2.3", gpu_image="reg.example/qa-cuda:1.2.3", num_nodes=4,
        accelerator_count=8, node_selector=(("nvidia.com/gpu.present", "true"),),
        tolerations=(("nvidia.com/gpu", "Exists", "NoSchedule"),), pvc_name="qa-hf-cache",
        trainer_runtime="qa-torch-distributed", image_pull_secrets=("regcred",), train_timeout_hours=12)
    compiler.Compiler().compile(build_pipeline(settings), str(tmp_path / "p.yaml"))
    spec = next(yaml.safe_load_all((tmp_path / "p.yaml").read_text()))
    task = spec["root"]["dag"]["tasks"]["fine-tune"]["inputs"]["parameters"]
    nodes = spec["root"]["inputDefinitions"]["parameters"]["num_nodes"]["defaultValue"]
    assert task["run_id"]["runtimeValue"]["constant"] == "{{$.pipeline_job_uuid}}"
    monkeypatch.setattr("components.launch.trainer_client._own_namespace", lambda: "kubeflow-user-example-com")
    for name, value in POD.items():
        monkeypatch.setenv(name, value)
    spec = TrainJobSpec.from_dict({**task["trainjob"]["runtimeValue"]["constant"], "run_id": "run-42"})
    job = render_trainjob(spec, int(nodes), ARGV, name="qa-ft-0123456789", runtime_kind="TrainingRuntime",
                          owners=launcher_owner(spec))
    # what Trainer v2.3.0's CRD accepts, unknown fields refused (render_trainjob checked it too)
    assert trainer_schema.problems(job) == []

    assert job["metadata"]["labels"]["app.kubernetes.io/part-of"] == "kfp-squad-qa"
    assert job["metadata"]["labels"][RUN_LABEL] == "run-42"
    # deleted with the launcher's pod, i.e. with the run (Kubernetes garbage collection)
    assert job["metadata"]["ownerReferences"] == [{"apiVersion": "v1", "kind": "Pod",
                                                   "name": POD["KFP_POD_NAME"], "uid": POD["KFP_POD_UID"]}]
    assert job["spec"]["runtimeRef"] == {"name": "qa-torch-distributed", "kind": "TrainingRuntime"}
    assert job["spec"]["activeDeadlineSeconds"] == 12 * 3600
    trainer = job["spec"]["trainer"]
    assert trainer["image"] == "reg.example/qa-cuda:1.2.3"
    assert trainer["numNodes"] == 4
    assert trainer["numProcPerNode"] == 8  # one torchrun process per GPU
    per_node = {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "8"}
    assert trainer["resourcesPerNode"] == {"requests": per_node, "limits": per_node}
    script = trainer["command"][-1]
    assert "torchrun" in script and "from components.launch.entry import main" in script
    assert f"'--features', '{SHARED}/features'" in script
    env = {e["name"]: e for e in trainer["env"]}
    assert env["HF_TOKEN"] == {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {
        "name": "hf-token", "key": "HF_TOKEN", "optional": True}}}  # a reference, never a value
    assert env["HF_HOME"]["value"] == "/mnt/qa/hf-cache"
    assert env["QA_ACCELERATOR"]["value"] == "nvidia.com/gpu"  # a node whose torch sees no GPU fails

    (patch,) = job["spec"]["runtimePatches"]
    (node,) = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    assert node["name"] == "node"
    pod = node["template"]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    (volume,) = pod["volumes"]
    assert volume["persistentVolumeClaim"] == {"claimName": "qa-hf-cache"}
    (container,) = pod["containers"]
    assert container == {"name": "node", "volumeMounts": [{"name": volume["name"], "mountPath": "/mnt/qa"}]}


def test_cpu_nodes_run_one_process_each_and_outside_kfp_the_job_has_no_owner(monkeypatch):
    # Trainer's `auto` would start one torchrun process per CPU on a node without GPUs
    for name in POD:
        monkeypatch.delenv(name, raising=False)
    spec = TrainJobSpec(image="reg.example/qa-cpu:1", gpus_per_node=0, pvc_name="qa-hf-cache")
    job = render_trainjob(spec, 2, ARGV, owners=launcher_owner(spec))
    assert job["spec"]["trainer"]["numProcPerNode"] == 1
    assert "ownerReferences" not in job["metadata"] and RUN_LABEL not in job["metadata"]["labels"]
    assert "QA_ACCELERATOR" not in {e["name"] for e in job["spec"]["trainer"].get("env", [])}
    monkeypatch.setenv("KFP_POD_NAME", "p")
    monkeypatch.setenv("KFP_POD_UID", "u")
    assert launcher_owner(TrainJobSpec(image="x:1", namespace="elsewhere")) == []  # no cross-namespace owner


class TrainerV21Api:
    """Stands in for the Kubernetes API server with Kubeflow Trainer v2.1.0's TrainJob CRD.

    An apiextensions server prunes fields its structural schema lacks; with
    fieldValidation=Strict it refuses them instead, 400 BadRequest with a metav1.Status whose
    message lists each as `unknown field "path"` (k8s.io/apiextensions-apiserver
    pkg/registry/customresource/strategy.go and apimachinery's strict decoding; the CRD's
    fields: kubeflow/trainer v2.1.0 manifests/base/crds/trainer.kubeflow.org_trainjobs.yaml).
    """

    SPEC = {"annotations", "initializer", "labels", "managedBy", "podTemplateOverrides", "runtimeRef",
            "suspend", "trainer"}  # v2.1.0: no runtimePatches, no activeDeadlineSeconds

    def __init__(self):
        self.stored = []

    def create_namespaced_custom_object(self, group, version, namespace, plural, body, field_validation=None):
        from kubernetes.client.exceptions import ApiException

        unknown = sorted(f"spec.{key}" for key in body["spec"] if key not in self.SPEC)
        if unknown and field_validation == "Strict":
            err = ApiException(status=400, reason="Bad Request")
            err.body = json.dumps({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                   "reason": "BadRequest", "code": 400, "message":
                                   'TrainJob in version "v1alpha1" cannot be handled as a TrainJob: '
                                   "strict decoding error: " + ", ".join(f'unknown field "{f}"' for f in unknown)})
            raise err
        kept = {**body, "spec": {k: v for k, v in body["spec"].items() if k in self.SPEC}}
        self.stored.append(kept)
        return kept


def test_a_trainer_older_than_v2_2_refuses_the_job_instead_of_dropping_the_pvc_mount():
    spec = TrainJobSpec(image="reg.example/qa-cuda:1", gpus_per_node=8, pvc_name="qa-hf-cache")
    api = TrainerV21Api()
    with pytest.raises(TrainerTooOld) as err:
        submit(offline_client(spec, api), spec, "qa-ft-0123456789", 4, ARGV)
    assert api.stored == [], "the job must not run without its PVC mount and deadline"
    message = str(err.value)
    assert 'unknown field "spec.runtimePatches"' in message and "Trainer v2.2 or later" in message


def test_a_trainjob_outside_the_schema_is_refused_before_it_is_sent():
    # what we add after the SDK's models built the body (here an ownerReference without its uid)
    spec = TrainJobSpec(image="reg.example/qa-cuda:1", gpus_per_node=8, pvc_name="qa-hf-cache")
    api = TrainerV21Api()
    owner = {"apiVersion": "v1", "kind": "Pod", "name": "launcher"}
    with pytest.raises(trainer_schema.SchemaError, match=r"ownerReferences\[0\]\.uid: required field missing"):
        submit(offline_client(spec, api, owners=[owner]), spec, "qa-ft-0123456789", 4, ARGV)
    assert api.stored == []


def test_the_trainer_overlay_lets_the_launcher_drive_trainjobs_on_shared_storage():
    import subprocess

    import yaml

    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (with kustomize) is not on PATH")
    out = subprocess.run([kubectl, "kustomize", str(REPO / "manifests/overlays/trainer")],
                         capture_output=True, text=True, check=True).stdout
    docs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(out) if d}

    def verbs(rules, group, resource):
        return {v for r in rules if group in r["apiGroups"] and resource in r["resources"] for v in r["verbs"]}

    rules = docs[("Role", "qa-pipeline")]["rules"]
    assert {"create", "get", "watch", "delete"} <= verbs(rules, "trainer.kubeflow.org", "trainjobs")
    assert "get" in verbs(rules, "trainer.kubeflow.org", "trainingruntimes")
    assert "get" in verbs(rules, "", "pods/log") and "list" in verbs(rules, "", "pods")
    cluster_rules = docs[("ClusterRole", "qa-pipeline-clustertrainingruntime-reader")]["rules"]
    assert "get" in verbs(cluster_rules, "trainer.kubeflow.org", "clustertrainingruntimes")
    assert docs[("PersistentVolumeClaim", "qa-hf-cache")]["spec"]["accessModes"] == ["ReadWriteMany"]
    assert ("TrainingRuntime", "qa-torch-distributed") in docs
