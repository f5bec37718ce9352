"""The Kubeflow Trainer SDK, adapted: the TrainJob a TrainJobSpec describes, created through the
SDK's Kubernetes (or container) backend with what ours adds (Secret env, processes per node, a
schema check, an ownerReference, fieldValidation=Strict), and what every node runs (`node_main`).

`render_trainjob` builds, without a cluster, the TrainJob the kubernetes backend would create.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
from pathlib import Path
from typing import Any

from components.launch import trainer_schema
from components.launch.accelerator import ACCELERATOR_ENV
from components.launch.trainjob_spec import TrainJobFailed, TrainJobSpec
from components.qa.errors import InvalidInputError

VOLUME = "qa-cache"  # the volume name of manifests/overlays/trainer's runtime: patches merge into it
LABELS = {"app.kubernetes.io/part-of": "kfp-squad-qa", "app.kubernetes.io/component": "fine-tune"}
RUN_LABEL = "pipelines.kubeflow.org/run_id"  # the KFP run a TrainJob belongs to (TrainJobSpec.run_id)


def node_main(argv: list[str]) -> None:
    """What every node runs under torchrun: components.launch.entry with argv.

    The SDK ships this function's source, not this module, so it imports what it uses; and
    the Kubernetes backend pastes that source into an unquoted bash heredoc, so it holds no
    dollar sign, backquote or backslash (node_trainer checks).
    """
    import os
    import sys

    node = os.environ.get("GROUP_RANK", "0")  # torchrun: this node's index
    print(f"qa-trainjob node {node}: rank {os.environ.get('RANK', '0')} of world size "
          f"{os.environ.get('WORLD_SIZE', '1')}, local rank {os.environ.get('LOCAL_RANK', '0')}",
          flush=True)
    if os.environ.get("QA_NODE_UMASK"):  # container backend: the host user must delete our files
        os.umask(int(os.environ["QA_NODE_UMASK"], 8))
    if os.environ.get("QA_TEST_FAIL_NODE") == node:  # fault injection, for tests/multinode only
        print(f"qa-trainjob node {node}: failing on purpose (QA_TEST_FAIL_NODE)", file=sys.stderr,
              flush=True)
        sys.exit(3)
    from components.launch.entry import main

    main(argv)


def node_trainer(spec: TrainJobSpec, num_nodes: int, argv: list[str], env: dict[str, str]):
    """The SDK's CustomTrainer: node_main(argv) on `num_nodes` nodes of `spec.image`."""
    from kubeflow.trainer import CustomTrainer

    if spec.backend == "kubernetes":  # the SDK pastes the source and repr(func_args) in a heredoc
        odd = sorted(set(inspect.getsource(node_main) + repr(argv)) & set("$`\\"))
        if odd:
            raise InvalidInputError(f"the training arguments hold {odd}, which the TrainJob's bash "
                                    "heredoc would expand", fix="Use paths and values without them.",
                                    field="argv")
    resources: dict[str, Any] = {"cpu": spec.cpu, "memory": spec.memory}
    if spec.gpus_per_node:  # "gpu" is the SDK's alias of nvidia.com/gpu (it sets the processes)
        key = "gpu" if spec.accelerator_type == "nvidia.com/gpu" else spec.accelerator_type
        resources[key] = str(spec.gpus_per_node)
    return CustomTrainer(func=node_main, func_args={"argv": argv}, image=spec.image,
                         num_nodes=num_nodes, resources_per_node=resources, env=env)


def processes_per_node(spec: TrainJobSpec) -> int:
    """One torchrun process per GPU; one without GPUs (Trainer's `auto` would start one per CPU)."""
    return max(spec.gpus_per_node, 1)


def job_options(spec: TrainJobSpec, name: str) -> list:
    """The TrainJob's name; on Kubernetes also labels, scheduling, the shared PVC and a deadline."""
    from kubeflow.trainer import options as opt

    if spec.backend == "container":  # the other options are Kubernetes-only in the SDK
        return [opt.Name(name)]
    pod = opt.PodSpecPatch(
        volumes=[{"name": VOLUME, "persistentVolumeClaim": {"claimName": spec.pvc_name}}],
        containers=[opt.ContainerPatch(name="node", volume_mounts=[{"name": VOLUME,
                                                                    "mountPath": spec.mount_path}])],
        node_selector=dict(spec.node_selector) or None,
        tolerations=[dict(t) for t in spec.tolerations] or None,
        image_pull_secrets=[{"name": name} for name in spec.image_pull_secrets] or None)
    node = opt.ReplicatedJobPatch(name="node", template=opt.JobTemplatePatch(
        spec=opt.JobSpecPatch(template=opt.PodTemplatePatch(spec=pod))))
    patch = opt.RuntimePatch(training_runtime_spec=opt.TrainingRuntimeSpecPatch(
        template=opt.JobSetTemplatePatch(spec=opt.JobSetSpecPatch(replicated_jobs=[node]))))
    labels = {**LABELS, **({RUN_LABEL: spec.run_id} if spec.run_id else {})}
    return [opt.Name(name), opt.Labels(labels), patch, opt.ActiveDeadlineSeconds(spec.timeout_s)]


def launcher_owner(spec: TrainJobSpec) -> list[dict[str, Any]]:
    """An ownerReference to this launcher's pod, so that deleting the run (its Argo pods) deletes
    the TrainJob too; [] outside a KFP pod or when the job goes to another namespace.

    KFP's Argo compiler gives every executor container KFP_POD_NAME and KFP_POD_UID from the
    downward API (kubeflow/pipelines backend/src/v2/compiler/argocompiler/common.go, commonEnvs).
    """
    name, uid = os.environ.get("KFP_POD_NAME"), os.environ.get("KFP_POD_UID")
    if not (name and uid) or spec.namespace not in ("", _own_namespace()):
        return []
    return [{"apiVersion": "v1", "kind": "Pod", "name": name, "uid": uid}]


def _own_namespace() -> str:
    path = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
    return path.read_text().strip() if path.exists() else ""


class TrainerTooOld(TrainJobFailed):
    """The Trainer API server refused fields of the v2.2+ TrainJob (e.g. spec.runtimePatches)."""


class GuardedCreate:
    """Wraps the CustomObjectsApi the SDK's backend creates TrainJobs with: checks the TrainJob
    against Trainer's CRD schema first, adds `owners` as ownerReferences, and asks the server for
    fieldValidation=Strict, so that unknown fields fail the create instead of being dropped."""

    def __init__(self, api, owners: list[dict[str, Any]]):
        self.api, self.owners = api, owners

    def create_namespaced_custom_object(self, group, version, namespace, plural, body, **kwargs):
        if self.owners:
            body = {**body, "metadata": {**body["metadata"], "ownerReferences": list(self.owners)}}
        trainer_schema.validate(body, where=f"TrainJob {body['metadata'].get('name')}")
        return self.api.create_namespaced_custom_object(group, version, namespace, plural, body,
                                                        field_validation="Strict", **kwargs)

    def __getattr__(self, name):
        return getattr(self.api, name)


def submit(client, spec: TrainJobSpec, job: str, num_nodes: int, argv: list[str]) -> None:
    """Create the TrainJob; the server's or the schema's refusal as one clear error."""
    try:
        client.train(runtime=spec.runtime, trainer=node_trainer(spec, num_nodes, argv, node_env(spec)),
                     options=job_options(spec, job))
    except RuntimeError as err:  # the SDK wraps every create failure in "Failed to create TrainJob"
        cause = err.__cause__
        if isinstance(cause, trainer_schema.SchemaError):
            raise cause from None
        body = str(getattr(cause, "body", "") or "")
        if getattr(cause, "status", None) == 400 and "unknown field" in body:
            try:  # a metav1.Status
                body = json.loads(body).get("message", body)
            except ValueError:
                pass
            raise TrainerTooOld(job, f"the Kubeflow Trainer in the cluster refused TrainJob {job}: "
                                     f"{body.strip()}. It is older than v2.2, which added "
                                     "spec.runtimePatches; install Trainer v2.2 or later "
                                     "(docs/multinode.md)") from None
        raise


def secret_env_vars(spec: TrainJobSpec) -> list:
    """`env` entries of the node container that read `spec.secret_env` from Secrets."""
    from kubeflow_trainer_api import models

    return [models.IoK8sApiCoreV1EnvVar.from_dict({"name": env, "valueFrom": {"secretKeyRef": {
        "name": ref.split("/")[0], "key": ref.split("/")[1], "optional": True}}})
        for env, ref in sorted(spec.secret_env.items())]


def node_env(spec: TrainJobSpec) -> dict[str, str]:
    env = dict(spec.env)
    if spec.gpus_per_node:  # a node whose torch sees none of them fails (components/launch/accelerator.py)
        env[ACCELERATOR_ENV] = spec.accelerator_type
    if spec.backend == "kubernetes" and spec.pvc_name:
        env.setdefault("HF_HOME", f"{spec.mount_path}/hf-cache")  # as the pipeline's steps
    if spec.backend == "container":
        env["QA_NODE_UMASK"] = "000"
        # no Secrets on this machine: the launcher's own values, if it has them
        env.update({name: os.environ[name] for name in spec.secret_env if name in os.environ})
    return env


def _kubernetes_backend_class():
    # defined on first use: the SDK's backend imports the Kubernetes client, which the
    # container backend (and importing this module) has no need for
    from kubeflow.trainer.backends.kubernetes.backend import KubernetesBackend

    class Backend(KubernetesBackend):
        """The SDK's Kubernetes backend, plus env read from Secrets on the `node` container.

        kubeflow 0.5.0's CustomTrainer.env takes plain values and the Trainer webhook refuses
        env patches on `node`, so the secretKeyRef entries join spec.trainer.env here
        (upstream: kubeflow/sdk#477, a TrainerEnvFrom option).
        """

        secret_env: tuple = ()  # IoK8sApiCoreV1EnvVar
        num_proc_per_node: int | None = None  # kubeflow 0.5.0 leaves it unset (Trainer: auto)

        def _get_trainjob_spec(self, *args, **kwargs):
            job = super()._get_trainjob_spec(*args, **kwargs)
            if self.secret_env:
                job.trainer.env = [*(job.trainer.env or []), *self.secret_env]
            if self.num_proc_per_node:
                job.trainer.num_proc_per_node = self.num_proc_per_node
            return job

    return Backend


def _client_over(backend):
    """A TrainerClient over a backend built here (the SDK builds its own from a config)."""
    from kubeflow.trainer import TrainerClient

    client = TrainerClient.__new__(TrainerClient)
    client.backend = backend
    return client


def trainer_client(spec: TrainJobSpec):
    from kubeflow.trainer import (
        ContainerBackendConfig,
        KubernetesBackendConfig,
        TrainerClient,
        TrainingRuntimeSource,
    )

    if spec.backend == "container":
        # no runtime sources: no network; the SDK's built-in torch-distributed, our image
        return TrainerClient(ContainerBackendConfig(
            pull_policy="IfNotPresent", runtime_source=TrainingRuntimeSource(sources=[])))
    backend = _kubernetes_backend_class()(KubernetesBackendConfig(namespace=spec.namespace or None))
    _configure(backend, spec, backend.custom_api, launcher_owner(spec))
    return _client_over(backend)


def _configure(backend, spec: TrainJobSpec, api, owners: list[dict[str, Any]]) -> None:
    """What our backend adds to the SDK's: Secret env, processes per node, the guarded create."""
    backend.secret_env = tuple(secret_env_vars(spec))
    backend.num_proc_per_node = processes_per_node(spec)
    backend.custom_api = GuardedCreate(api, owners)


def offline_client(spec: TrainJobSpec, api, namespace: str = "kubeflow-user-example-com",
                   runtime_kind: str = "ClusterTrainingRuntime", owners: list[dict[str, Any]] = ()):
    """A TrainerClient over our Kubernetes backend with no kube config: `api` stands in for the
    CustomObjectsApi, and the runtime is assumed to be a torch runtime of `runtime_kind`."""
    from kubeflow.trainer import Runtime, RuntimeKind, RuntimeTrainer, TrainerType
    from kubeflow.trainer.constants import constants

    runtime = Runtime(name=spec.runtime, kind=RuntimeKind(runtime_kind), trainer=RuntimeTrainer(
        trainer_type=TrainerType.CUSTOM_TRAINER, framework="torch", image=spec.image))
    runtime.trainer.set_command(constants.TORCH_COMMAND)

    class Offline(_kubernetes_backend_class()):
        def __init__(self):  # no kube config, no cluster
            self.namespace = namespace
            _configure(self, spec, api, list(owners))

        def get_runtime(self, name):
            return runtime

    return _client_over(Offline())


def render_trainjob(spec: TrainJobSpec, num_nodes: int, argv: list[str], name: str = "qa-ft-preview",
                    namespace: str = "kubeflow-user-example-com",
                    runtime_kind: str = "ClusterTrainingRuntime",
                    owners: list[dict[str, Any]] = ()) -> dict[str, Any]:
    """The TrainJob (a dict) that `run_trainjob` would create on a cluster, built by the SDK's
    Kubernetes backend with no cluster, schema-checked; the create call is kept instead of sent."""
    spec = dataclasses.replace(spec, backend="kubernetes")
    created: dict[str, Any] = {}

    class Api:  # stands in for CustomObjectsApi
        def create_namespaced_custom_object(self, group, version, ns, plural, body, **kwargs):
            created.update(body, metadata={**body["metadata"], "namespace": ns})

    submit(offline_client(spec, Api(), namespace, runtime_kind, owners), spec, name, num_nodes, argv)
    return created
