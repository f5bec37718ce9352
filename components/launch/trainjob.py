"""Multi-node fine-tuning: submit a Kubeflow Trainer TrainJob and follow it from a pipeline step.

    from components.launch.trainjob import run_trainjob
    from components.launch.trainjob_spec import TrainJobSpec
    spec = TrainJobSpec(image="reg.example/qa-cuda:1.2.3", gpus_per_node=8, pvc_name="qa-hf-cache")
    metrics = run_trainjob(spec, num_nodes=4, features="/tmp/in/features", base_model="/tmp/in/model",
                           output="/tmp/out/model", config=TrainConfig(per_device_train_batch_size=32))

Every node runs the one training entry point, `components.launch.entry`, under torchrun:
the runtime's torch plugin (or the container backend) sets the rendezvous, torchrun sets
RANK / WORLD_SIZE / LOCAL_RANK, the Trainer runs DDP and rank 0 saves the model. The step
that calls `run_trainjob` is only the launcher:

1. stage    copy the features and the base model to storage every node mounts
2. submit   `TrainerClient.train(runtime, CustomTrainer(func=node_main, ...), options)`
            (trainer_client.py: the SDK adapter)
3. follow   stream the nodes' logs into this process's log, wait for Complete (trainjob_logs.py)
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

`trainer_client.render_trainjob` builds, without a cluster, the TrainJob the kubernetes backend
would create.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

from components.launch.entry import METRICS_FILE, entry_args
from components.launch.trainer_client import launcher_owner, submit, trainer_client
from components.launch.trainjob_logs import follow
from components.launch.trainjob_spec import TrainJobFailed, TrainJobSpec
from components.qa.errors import InvalidInputError
from components.qa.train_config import TrainConfig


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
