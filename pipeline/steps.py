"""The DAG's steps, declared once: resources key, KFP task names, claim, image.

A step is what `CompileSettings.resources` sizes; `pipeline/qa_pipeline.py` sizes each task
with one of these, and the tests read task names from here. A seventh component adds one
`Step` here and one resources entry in pipeline/settings.py (CompileSettings refuses a step
without one). KFP names a task after its component function, `_` -> `-` (`register_model`
-> `register-model`); tests/pipeline/test_compile.py asserts the compiled names literally.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Step:
    key: str  # its CompileSettings.resources entry
    tasks: tuple[str, ...]  # the KFP tasks it sizes, named after their component functions
    # why it mounts the cache PVC (--pvc); "" = it never does, so it never waits for the
    # claim: on ReadWriteOnce storage the preprocess steps run side by side (docs/multinode.md)
    pvc: str = ""
    gpu: bool = False  # the GPU image and the accelerator (evaluate: when CompileSettings.eval_on_gpu)


DOWNLOAD = Step("download", ("download",),
                pvc="the Hugging Face cache (HF_HOME): Hub models and datasets are fetched once")
PREPROCESS = Step("preprocess", ("preprocess-train", "preprocess-validation"))
FINE_TUNE = Step("fine-tune", ("fine-tune",), pvc="checkpoint_dir, to resume after preemption", gpu=True)
# fine-tune when num_nodes > 1: it submits a Kubeflow Trainer TrainJob, whose nodes have the GPUs
TRAINJOB_LAUNCHER = Step("trainjob-launcher", ("fine-tune",),
                         pvc="stages the features and base model for the TrainJob's nodes, which mount "
                             "the claim too, and checkpoint_dir (ReadWriteMany)")
EVALUATE = Step("evaluate", ("evaluate",), gpu=True)
REGISTER = Step("register", ("register-model",))
DEPLOY = Step("deploy", ("deploy-model",))  # compiled in only with --deploy

STEPS = (DOWNLOAD, PREPROCESS, FINE_TUNE, TRAINJOB_LAUNCHER, EVALUATE, REGISTER, DEPLOY)


def task_names(*, deploy: bool = False) -> list[str]:
    """The compiled DAG's task names, in DAG order (the deploy task only when compiled in)."""
    steps = [s for s in STEPS if s is not TRAINJOB_LAUNCHER and (deploy or s is not DEPLOY)]
    return [task for step in steps for task in step.tasks]

