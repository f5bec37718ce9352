"""Compile-time settings: images, accelerators, nodes, resources, scheduling, storage, secrets.

These shape the compiled YAML, not a run, so they are not pipeline parameters.
Secrets are referenced by Kubernetes Secret name only; values never enter the YAML.
"""

from __future__ import annotations

import dataclasses
import tomllib
from importlib.metadata import version
from pathlib import Path

from components.qa.errors import InvalidInputError
from pipeline.steps import DEPLOY, DOWNLOAD, EVALUATE, FINE_TUNE, PREPROCESS, REGISTER, STEPS, TRAINJOB_LAUNCHER


def _package_version() -> str:
    """pyproject.toml's version: the default image tag here and in images/build.sh (one fact)."""
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    if pyproject.exists():
        return tomllib.loads(pyproject.read_text())["project"]["version"]
    return version("kfp-squad-qa")  # installed without the source tree (the images)


VERSION = _package_version()

@dataclasses.dataclass(frozen=True)
class Resources:
    cpu: str
    memory: str


@dataclasses.dataclass(frozen=True)
class CompileSettings:
    # images (pushed by `make images`; never :latest)
    cpu_image: str = f"ghcr.io/kfp-squad-qa/qa-cpu:{VERSION}"
    gpu_image: str = f"ghcr.io/kfp-squad-qa/qa-cuda:{VERSION}"
    # Secrets (type kubernetes.io/dockerconfigjson) to pull the images from a private registry:
    # set on every task and on the TrainJob's nodes
    image_pull_secrets: tuple[str, ...] = ()
    # accelerator for fine-tune (and evaluate when eval_on_gpu)
    accelerator_type: str = "nvidia.com/gpu"
    accelerator_count: int = 1
    eval_on_gpu: bool = True
    # scheduling of accelerator tasks (kfp-kubernetes); e.g. {"nvidia.com/gpu.present": "true"}
    node_selector: tuple[tuple[str, str], ...] = ()
    tolerations: tuple[tuple[str, str, str], ...] = ()  # (key, operator, effect)
    # storage for the HF cache and checkpoints (kfp-kubernetes mount_pvc); "" = none
    pvc_name: str = ""
    pvc_mount_path: str = "/mnt/qa"
    # multi-node fine-tune (docs/multinode.md): > 1 compiles fine-tune as the launcher of a
    # Kubeflow Trainer TrainJob (no GPU itself) of num_nodes x accelerator_count GPUs, the
    # default of the num_nodes pipeline parameter; it needs pvc_name on RWX storage
    num_nodes: int = 1
    trainer_runtime: str = "torch-distributed"  # or qa-torch-distributed (manifests/overlays/trainer)
    # the TrainJob's activeDeadlineSeconds: Trainer stops its nodes then, also when the launcher
    # was killed before it could delete them (a cancelled run); set it above the longest training
    train_timeout_hours: float = 24.0
    # Kubernetes Secrets consumed as environment (optional: a missing secret is not an error)
    hf_token_secret: str = "hf-token"
    s3_secret: str = "s3-credentials"
    registry_token_secret: str = "model-registry-token"
    # per-task requests (limits are set equal: guaranteed QoS for long GPU jobs)
    resources: tuple[tuple[str, Resources], ...] = (
        (DOWNLOAD.key, Resources("1", "4Gi")),
        (PREPROCESS.key, Resources("2", "8Gi")),
        (FINE_TUNE.key, Resources("8", "32Gi")),  # per node in a TrainJob
        (TRAINJOB_LAUNCHER.key, Resources("1", "2Gi")),
        (EVALUATE.key, Resources("4", "16Gi")),
        (REGISTER.key, Resources("500m", "1Gi")),
        (DEPLOY.key, Resources("500m", "1Gi")),  # API calls on a cluster; the predictor has its own
    )

    def __post_init__(self):
        for image in (self.cpu_image, self.gpu_image):
            if image.endswith(":latest") or ":" not in image.rsplit("/", 1)[-1] and "@" not in image:
                raise InvalidInputError(f"image {image!r} has no pinned tag",
                                        fix="Use the reference `make images` printed (tag or digest).",
                                        field="image")
        if self.accelerator_count < 0:
            raise InvalidInputError("accelerator_count is negative", fix="Use 0 (CPU) or more.",
                                    field="accelerator_count")

        if self.num_nodes < 1:
            raise InvalidInputError(f"num_nodes={self.num_nodes} is below 1", fix="Use 1 or more.",
                                    field="num_nodes")
        if not 0 < self.train_timeout_hours <= 24 * 30:
            raise InvalidInputError(f"train_timeout_hours={self.train_timeout_hours} is outside (0, 720]",
                                    fix="Give the longest training you expect, in hours (e.g. 24).",
                                    field="train_timeout_hours")
        if self.num_nodes > 1 and not self.pvc_name:
            raise InvalidInputError("a multi-node fine-tune needs a PVC every node mounts",
                                    fix="Add --pvc qa-hf-cache, ReadWriteMany (apply "
                                        "manifests/overlays/trainer/rwx).", field="pvc_name")
        self._check_resources()

    def _check_resources(self) -> None:
        """Every declared step (pipeline/steps.py) has an entry and every entry names a step:
        caught here, not as a KeyError while the DAG compiles."""
        declared = [step.key for step in STEPS]
        keys = [key for key, _ in self.resources]
        for key in keys:
            if key not in declared:
                raise InvalidInputError(f"resources has an entry for {key!r}, which is no step of the pipeline",
                                        fix=f"Name one of {', '.join(declared)}, or declare the step in "
                                            "pipeline/steps.py.", field="resources")
        for key in declared:
            if key not in keys:
                raise InvalidInputError(f"step {key!r} has no resources entry",
                                        fix=f'Add ("{key}", Resources(cpu, memory)) to CompileSettings.resources '
                                            "(pipeline/settings.py).", field="resources")

    def resources_for(self, step: str) -> Resources:
        """The requests of a step, by its key (pipeline/steps.py: `FINE_TUNE.key`)."""
        return dict(self.resources)[step]

    def toleration_specs(self) -> list[dict[str, str]]:
        """The tolerations as Kubernetes Toleration objects (TrainJob nodes, the predictor)."""
        return [{"key": k, "operator": op, "effect": effect} for k, op, effect in self.tolerations]

    def trainjob(self) -> dict:
        """The fine-tune step's TrainJob settings (components.launch.trainjob_spec.TrainJobSpec, as a dict)."""
        from components.launch.trainjob_spec import TrainJobSpec

        node = self.resources_for(FINE_TUNE.key)
        return TrainJobSpec(
            image=self.gpu_image, runtime=self.trainer_runtime, always=self.num_nodes > 1,
            gpus_per_node=self.accelerator_count, accelerator_type=self.accelerator_type,
            cpu=node.cpu, memory=node.memory, node_selector=dict(self.node_selector),
            tolerations=self.toleration_specs(),
            pvc_name=self.pvc_name, mount_path=self.pvc_mount_path,
            secret_env={"HF_TOKEN": f"{self.hf_token_secret}/HF_TOKEN"},
            image_pull_secrets=list(self.image_pull_secrets),
            timeout_s=round(self.train_timeout_hours * 3600)).to_dict()

    @classmethod
    def from_images_env(cls, path: str | Path, **overrides) -> "CompileSettings":
        """Settings with the image references written by images/build.sh (KEY=VALUE lines)."""
        values = dict(line.split("=", 1) for line in Path(path).read_text().split()
                      if "=" in line)
        images = {"cpu_image": values.get("QA_CPU_IMAGE"), "gpu_image": values.get("QA_GPU_IMAGE")}
        return cls(**{k: v for k, v in images.items() if v}, **overrides)
