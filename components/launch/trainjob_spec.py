"""The settings of a multi-node fine-tune's TrainJob (where and how its nodes run), and the
error a failed TrainJob raises. Plain data: the pipeline compiler builds a TrainJobSpec without
the Kubeflow SDK (pipeline/settings.py), and it travels in the compiled pipeline as a dict."""

from __future__ import annotations

import dataclasses
from typing import Any

from components.qa.errors import InvalidInputError

BACKENDS = ("kubernetes", "container")


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

