"""Multi-node fine-tuning: submit a Kubeflow Trainer TrainJob and follow it from a pipeline step.

    from components.launch.trainjob import TrainJobSpec, run_trainjob
    spec = TrainJobSpec(image="reg.example/qa-cuda:1.2.3", gpus_per_node=8, pvc_name="qa-hf-cache")
    metrics = run_trainjob(spec, num_nodes=4, features="/tmp/in/features", base_model="/tmp/in/model",
                           output="/tmp/out/model", config=TrainConfig(per_device_train_batch_size=32))

Every node runs the one training entry point, `components.launch.entry`, under torchrun:
the runtime's torch plugin (or the container backend) sets the rendezvous, torchrun sets
RANK / WORLD_SIZE / LOCAL_RANK, the Trainer runs DDP and rank 0 saves the model. The step
that calls `run_trainjob` is only the launcher:

1. stage    copy the features and the base model to storage every node mounts
2. submit   `TrainerClient.train(runtime, CustomTrainer(func=node_main, ...), options)`
3. follow   stream the nodes' logs into this process's log, wait for Complete
4. fail     raise `TrainJobFailed` naming the failed node(s), with the tail of their log
5. collect  copy rank 0's model (and TensorBoard logs) back, return its train_metrics.json
6. always   delete the TrainJob and the staging folder (on SIGTERM too, if the step lives that long)

What outlives a killed launcher: the TrainJob is owned by the launcher's pod (an
ownerReference, so Kubernetes deletes it with the pod, i.e. with the run), labelled with the
run, and stopped by Trainer at its activeDeadlineSeconds (`timeout_s`). Every TrainJob is
checked against Trainer's CRD schema before it is sent (components/launch/trainer_schema.py) and
created with fieldValidation=Strict, so a Trainer older than v2.2 (no spec.runtimePatches)
refuses it instead of dropping the PVC mount.

Storage, by backend:
- "kubernetes": a ReadWriteMany PVC mounted at the same path in the launcher pod and in
  every node (`<mount_path>/trainjobs/<job>`); the nodes get it through a runtime patch.
- "container" (Docker or Podman on this machine, for tests): the SDK's per-job folder
  (~/.kubeflow/trainer/containers/<job>), which it mounts at /workspace in every node.

`render_trainjob` builds, without a cluster, the TrainJob the kubernetes backend would create.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import shutil
import signal
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from components.launch import trainer_schema
from components.launch.accelerator import ACCELERATOR_ENV
from components.qa.errors import InvalidInputError
from components.qa.training import TrainConfig
from components.launch.entry import METRICS_FILE, entry_args

BACKENDS = ("kubernetes", "container")
VOLUME = "qa-cache"  # the volume name of manifests/overlays/trainer's runtime: patches merge into it
LABELS = {"app.kubernetes.io/part-of": "kfp-squad-qa", "app.kubernetes.io/component": "fine-tune"}
RUN_LABEL = "pipelines.kubeflow.org/run_id"  # the KFP run a TrainJob belongs to (TrainJobSpec.run_id)
TAIL_LINES = 25  # log lines of a failed node quoted in the error


@dataclasses.dataclass
class TrainJobSpec:
    """Where and how the nodes of a TrainJob run. Plain JSON types: it travels in the compiled
    pipeline as a constant input of the fine-tune step."""

    image: str  # the nodes' image: torch (torchrun), bash, and this repository installed
    backend: str = "kubernetes"  # or "container" (Docker/Podman on this machine)
    runtime: str = "torch-distributed"  # TrainingRuntime or ClusterTrainingRuntime name
    always: bool = False  # train in a TrainJob even with one node (the launcher has no GPU)
    # per node: processes = GPUs (1 process without GPUs); limits = requests
    gpus_per_node: int = 1
    accelerator_type: str = "nvidia.com/gpu"
    cpu: str = "8"
    memory: str = "32Gi"
    node_selector: dict[str, str] = dataclasses.field(default_factory=dict)
    tolerations: list[dict[str, str]] = dataclasses.field(default_factory=list)  # as in a pod spec
    # shared storage (kubernetes): the RWX claim, mounted here in the launcher and in the nodes
    pvc_name: str = ""
    mount_path: str = "/mnt/qa"
    # environment of the nodes: values, and {ENV: "secret-name/key"} read from Secrets
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    secret_env: dict[str, str] = dataclasses.field(default_factory=dict)
    namespace: str = ""  # "" = the launcher's own namespace
    # Secrets to pull `image` from a private registry (names, in the job's namespace)
    image_pull_secrets: list[str] = dataclasses.field(default_factory=list)
    run_id: str = ""  # the KFP run, as a label on the TrainJob (kubectl delete trainjobs -l ...)
    start_timeout_s: int = 2 * 3600  # for every node to run (image pulls, GPU capacity, queues)
    # for the job to finish; also its activeDeadlineSeconds, which stops the nodes of a run whose
    # launcher was killed before it could delete them (CompileSettings.train_timeout_hours)
    timeout_s: int = 24 * 3600
    poll_s: int = 10

    def __post_init__(self):
        def bad(field: str, problem: str, fix: str):
            raise InvalidInputError(problem, fix=fix, source="TrainJobSpec", field=field)

        if self.backend not in BACKENDS:
            bad("backend", f"unknown backend {self.backend!r}", f"Use one of {BACKENDS}.")
        if not self.image:
            bad("image", "no image for the nodes", "Give the image `make images` built.")
        if self.gpus_per_node < 0:
            bad("gpus_per_node", f"gpus_per_node={self.gpus_per_node} is negative", "Use 0 or more.")
        if not 0 < self.poll_s < min(self.start_timeout_s, self.timeout_s):
            bad("poll_s", f"poll_s={self.poll_s} must be positive and below the timeouts",
                "Poll every few seconds.")
        for env, ref in self.secret_env.items():
            if ref.count("/") != 1:
                bad("secret_env", f"secret_env[{env!r}]={ref!r} is not 'secret-name/key'",
                    "Name the Secret and its key, e.g. {'HF_TOKEN': 'hf-token/HF_TOKEN'}.")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainJobSpec:
        """From `to_dict`, also after a trip through KFP (a Struct: every number a float)."""
        fields = {f.name: f.type for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise InvalidInputError(f"unknown TrainJob settings {unknown}", source="TrainJobSpec",
                                    fix=f"Known settings: {sorted(fields)}.", field=unknown[0])
        return cls(**{name: int(v) if fields[name] == "int" and isinstance(v, float) and v.is_integer()
                      else v for name, v in values.items()})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class TrainJobFailed(RuntimeError):
    """A node of the TrainJob failed; the message names it and quotes the end of its log."""

    def __init__(self, job: str, message: str):
        super().__init__(message)
        self.job = job


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


# --- the TrainJob -----------------------------------------------------------------

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
    # defined on first use: the SDK's backend imports the Kubernetes client, which compiling
    # the pipeline (pipeline.settings imports this module) has no need for
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


# --- the launcher -------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class SharedDir:
    """One folder, as this process and as the nodes see it."""

    local: Path
    nodes: str

    def node_path(self, name: str) -> str:
        return f"{self.nodes}/{name}"


def shared_dir(spec: TrainJobSpec, job: str) -> SharedDir:
    if spec.backend == "container":
        from kubeflow.trainer.backends.container.utils import create_workdir
        from kubeflow.trainer.constants import constants

        return SharedDir(Path(create_workdir(job)), constants.WORKSPACE_PATH)
    if not spec.pvc_name:
        raise InvalidInputError(
            "a multi-node fine-tune needs storage every node mounts, and no PVC is configured",
            fix="Compile with --pvc <ReadWriteMany claim> (manifests/overlays/trainer/rwx; "
                "see docs/multinode.md).", source="TrainJobSpec", field="pvc_name")
    if not Path(spec.mount_path).is_dir():
        raise InvalidInputError(f"the PVC {spec.pvc_name} is not mounted at {spec.mount_path} here",
                                fix="Mount it in the launcher step too (the pipeline does when "
                                    "compiled with --pvc).", source="TrainJobSpec", field="mount_path")
    path = Path(spec.mount_path) / "trainjobs" / job
    path.mkdir(parents=True)
    return SharedDir(path, str(path))


def _copy(src: str, dst: Path) -> None:
    """Copy a file tree; hard links where the file system allows (the same disk)."""
    def link_or_copy(a, b):
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    shutil.copytree(src, dst, copy_function=link_or_copy)


def _writable_dir(path: Path) -> None:
    path.mkdir()
    path.chmod(0o777)  # the nodes' user may not be ours (uid 1000 in our image, root here)


def _check_checkpoint_dir(spec: TrainJobSpec, checkpoint_dir: str | None) -> None:
    if not checkpoint_dir:
        return
    if spec.backend == "container":
        raise InvalidInputError("checkpoint_dir is not available with the container backend: the "
                                "nodes see only the job's own folder", fix="Leave it empty.",
                                field="checkpoint_dir")
    if not Path(checkpoint_dir).is_relative_to(spec.mount_path):
        raise InvalidInputError(f"checkpoint_dir={checkpoint_dir!r} is not on the shared PVC",
                                fix=f"Use a folder under {spec.mount_path}, e.g. "
                                    f"{spec.mount_path}/checkpoints/<run name>.", field="checkpoint_dir")


def run_trainjob(spec: TrainJobSpec, num_nodes: int, features: str, base_model: str, output: str,
                 config: TrainConfig, logging_dir: str | None = None,
                 checkpoint_dir: str | None = None, log: Callable[[str], None] | None = None) -> dict:
    """Train on `num_nodes` nodes of a TrainJob; like `entry.launch`, rank 0's model ends up
    in `output` (TensorBoard events in `logging_dir`) and its training metrics are returned."""
    log = log or (lambda line: print(line, flush=True))
    if num_nodes < 1:
        raise InvalidInputError(f"num_nodes={num_nodes} must be >= 1", fix="Use 1 or more.",
                                field="num_nodes")
    _check_checkpoint_dir(spec, checkpoint_dir)
    client = trainer_client(spec)
    job = f"qa-ft-{uuid.uuid4().hex[:10]}"
    if spec.backend == "kubernetes" and not launcher_owner(spec):
        log(f"TrainJob {job}: no ownerReference (not in a KFP pod of its namespace): if this step is "
            f"killed, the TrainJob runs until its activeDeadlineSeconds ({spec.timeout_s} s)")
    shared = None
    on_sigterm = _exit_on_sigterm()
    try:
        shared = shared_dir(spec, job)
        _copy(features, shared.local / "features")
        _copy(base_model, shared.local / "base_model")
        _writable_dir(shared.local / "model")
        if logging_dir:
            _writable_dir(shared.local / "tensorboard")
        argv = entry_args(shared.node_path("features"), shared.node_path("base_model"),
                          shared.node_path("model"), config,
                          shared.node_path("tensorboard") if logging_dir else None, checkpoint_dir)
        submit(client, spec, job, num_nodes, argv)
        log(f"TrainJob {job}: {num_nodes} node(s) x {spec.gpus_per_node or 'no'} "
            f"{spec.accelerator_type if spec.gpus_per_node else 'GPU'} of {spec.image} "
            f"({spec.backend}, runtime {spec.runtime}); waiting for the nodes to start")
        follow(client, spec, job, num_nodes, log)
        produced = shared.local / "model"
        if not (produced / METRICS_FILE).is_file():
            raise TrainJobFailed(job, f"TrainJob {job} completed, but rank 0 left no {METRICS_FILE} "
                                      f"in {produced}")
        shutil.copytree(produced, output, dirs_exist_ok=True)
        if logging_dir:
            shutil.copytree(shared.local / "tensorboard", logging_dir, dirs_exist_ok=True)
        return json.loads((produced / METRICS_FILE).read_text())
    finally:
        cleanup(client, spec, job, shared, log)
        on_sigterm()


def _exit_on_sigterm() -> Callable[[], None]:
    """Turn SIGTERM (a cancelled run) into SystemExit, so the TrainJob is deleted; returns undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    return lambda: signal.signal(signal.SIGTERM, previous)


def _log_steps(spec: TrainJobSpec, num_nodes: int) -> list[str]:
    # the container backend answers step "node-0" with every node's log in turn
    return ["node-0"] if spec.backend == "container" else [f"node-{i}" for i in range(num_nodes)]


def _stream(client, spec: TrainJobSpec, job: str, step: str, done: threading.Event,
            log: Callable[[str], None]) -> None:
    prefix = job if spec.backend == "container" else f"{job} {step}"
    pending = ""
    try:
        for chunk in client.get_job_logs(job, step=step, follow=True):
            if done.is_set():
                return
            # containers: raw output in pieces; kubernetes: one line per item
            pending += chunk if spec.backend == "container" else chunk + "\n"
            *lines, pending = pending.split("\n")
            for line in lines:
                log(f"[{prefix}] {line}")
    except Exception as err:  # the job is being deleted under us; the waiter reports failures
        if not done.is_set():
            log(f"[{prefix}] (log stream ended: {err})")
    if pending and not done.is_set():
        log(f"[{prefix}] {pending}")


def follow(client, spec: TrainJobSpec, job: str, num_nodes: int, log: Callable[[str], None]) -> None:
    """Stream the nodes' logs and wait for Complete; TrainJobFailed if a node fails."""
    from kubeflow.trainer.constants.constants import TRAINJOB_COMPLETE, TRAINJOB_FAILED, TRAINJOB_RUNNING

    try:
        client.wait_for_job_status(job, {TRAINJOB_RUNNING, TRAINJOB_COMPLETE, TRAINJOB_FAILED},
                                   timeout=spec.start_timeout_s, polling_interval=spec.poll_s)
    except TimeoutError:
        events = [f"  {e.involved_object_kind} {e.involved_object_name}: {e.reason}: {e.message}"
                  for e in _events(client, job)[-10:]]
        headline = (f"the nodes of TrainJob {job} were not all running after {spec.start_timeout_s} s "
                    "(image pull? GPU capacity? the PVC?); its last events:")
        raise TrainJobFailed(job, "\n".join([headline, *events])) from None
    done = threading.Event()
    streams = [threading.Thread(target=_stream, args=(client, spec, job, step, done, log), daemon=True)
               for step in _log_steps(spec, num_nodes)]
    for stream in streams:
        stream.start()
    try:
        client.wait_for_job_status(job, {TRAINJOB_COMPLETE}, timeout=spec.timeout_s,
                                   polling_interval=spec.poll_s)
    except RuntimeError as err:
        done.set()
        raise TrainJobFailed(job, failure_report(client, spec, job, err)) from None
    for stream in streams:  # the last lines of every node
        stream.join(timeout=60)
    done.set()


def _events(client, job: str) -> list:
    try:
        return client.get_job_events(job)
    except Exception:  # the container backend has none
        return []


def node_log_tail(client, spec: TrainJobSpec, job: str, step: str, lines: int = TAIL_LINES) -> list[str]:
    """The end of one node's log, without torchrun's own traceback: that one only says that a
    worker failed, and would push the worker's error (just above it) out of the excerpt."""
    chunks = list(client.get_job_logs(job, step=step, follow=False))
    if spec.backend == "container":
        chunks = chunks[:1]  # one item per container; step "node-0" lists every node
    log = "\n".join(c.rstrip("\n") for c in chunks).splitlines()
    agent = next((i for i, line in enumerate(log) if "ChildFailedError" in line), None)
    if agent is not None:
        start = max((i for i in range(agent) if log[i].startswith("Traceback (most recent call")),
                    default=agent)
        log = log[:start]
    return log[-lines:]


def failure_report(client, spec: TrainJobSpec, job: str, err: Exception) -> str:
    """Which node(s) failed and the end of their logs; the SDK's message when none is known."""
    from kubeflow.trainer.constants.constants import TRAINJOB_FAILED

    try:
        failed = [s for s in client.get_job(job).steps if s.status == TRAINJOB_FAILED]
    except Exception:
        failed = []
    if not failed:
        return f"TrainJob {job} failed: {err}"
    lines = [f"TrainJob {job} failed on " + ", ".join(f"{s.name} ({s.pod_name})" for s in failed)]
    for step in failed:
        try:
            tail = node_log_tail(client, spec, job, step.name)
        except Exception as log_err:
            tail = [f"(no log: {log_err})"]
        lines += [f"--- last {len(tail)} log lines of {step.name}:", *tail]
    return "\n".join(lines)


def cleanup(client, spec: TrainJobSpec, job: str, shared: SharedDir | None,
            log: Callable[[str], None]) -> None:
    """Delete the job (its nodes, network, folder) and the staged data; never raises."""
    try:
        client.delete_job(job)
        log(f"TrainJob {job}: deleted")
    except Exception as err:  # never created (train() failed early), or already gone
        log(f"TrainJob {job}: nothing to delete ({err})")
    if spec.backend == "container":
        _remove_network(f"{job}-net")  # a train() that fails early leaves it behind
    if shared is not None:
        shutil.rmtree(shared.local, ignore_errors=True)


def _remove_network(name: str) -> None:
    try:
        import docker

        for network in docker.from_env().networks.list(names=[name]):
            network.remove()
    except Exception:
        pass  # best effort: Podman, or no daemon
