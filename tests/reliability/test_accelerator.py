"""A fine-tune step that was given a GPU never trains on the CPU in silence (components/launch/accelerator.py).

This machine has no GPU and a CPU build of torch, which is what such a step sees when the
node's driver cannot load the image's CUDA build: the step must fail before any training,
naming torch's build, the driver and what to do.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
import yaml
from kfp import compiler, dsl

from components.fine_tune import fine_tune
from components.launch.accelerator import ACCELERATOR_ENV, AcceleratorMissing, require_accelerator


def run_fine_tune(root: Path):
    out = {name: kind(uri=str(root / name)) for name, kind in (
        ("model", dsl.Model), ("metrics", dsl.Metrics), ("tensorboard", dsl.Artifact))}
    # inputs that do not exist: the check must come before anything reads them
    fine_tune(train_features=dsl.Dataset(uri=str(root / "no-features")),
              base_model=dsl.Model(uri=str(root / "no-model")), learning_rate=3e-4,
              num_train_epochs=1.0, max_steps=4, batch_size=8, weight_decay=0.0, warmup_fraction=0.0,
              seed=42, precision="fp32", sampler="shuffled_length", checkpoint_dir="", **out)
    return out


def test_a_gpu_fine_tune_on_a_machine_without_one_fails_before_training(tmp_path, monkeypatch):
    monkeypatch.setenv(ACCELERATOR_ENV, "nvidia.com/gpu")
    monkeypatch.setattr("shutil.which", lambda name, *a, **k: None)  # no nvidia-smi, as here
    with pytest.raises(AcceleratorMissing) as err:
        run_fine_tune(tmp_path)
    message = str(err.value)
    assert "asked for nvidia.com/gpu but torch sees no GPU" in message
    assert f"torch {torch.__version__}" in message
    assert ("CPU-only build" in message) == (torch.version.cuda is None)
    if not Path("/proc/driver/nvidia/version").exists():
        assert "NVIDIA driver: none found (no nvidia-smi on PATH, no /proc/driver/nvidia/version)" in message
    assert "--accelerator-count 0" in message
    assert not (tmp_path / "model").exists(), "no half-written model"


def test_a_cuda_13_build_on_an_old_driver_names_the_driver_it_needs(monkeypatch):
    def too_old():  # what torch says when the driver is older than its CUDA build
        warnings.warn("CUDA initialization: The NVIDIA driver on your system is too old (found version 12020).")
        return False

    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(torch.cuda, "is_available", too_old)
    monkeypatch.setattr("components.launch.accelerator.driver_version", lambda: "535.104.05")
    monkeypatch.setenv("NVIDIA_VISIBLE_DEVICES", "GPU-1234")
    with pytest.raises(AcceleratorMissing) as err:
        require_accelerator("nvidia.com/gpu")
    message = str(err.value)
    assert "built for CUDA 13.0" in message and "NVIDIA driver: 535.104.05" in message
    assert "driver on your system is too old (found version 12020)" in message
    assert "NVIDIA_VISIBLE_DEVICES='GPU-1234'" in message
    assert "driver is 580.65.06 or newer" in message


def test_no_accelerator_requested_means_no_check(monkeypatch):
    monkeypatch.delenv(ACCELERATOR_ENV, raising=False)
    require_accelerator()  # a CPU step on a CPU machine
    require_accelerator("")


@pytest.mark.parametrize("count, nodes, told", [(1, 1, True), (0, 1, False), (8, 2, False)])
def test_the_compiled_fine_tune_task_is_told_it_has_an_accelerator(tmp_path, count, nodes, told):
    from pipeline.qa_pipeline import build_pipeline
    from pipeline.settings import CompileSettings

    settings = CompileSettings(accelerator_count=count, num_nodes=nodes,
                               pvc_name="qa-hf-cache" if nodes > 1 else "")
    compiler.Compiler().compile(build_pipeline(settings), str(tmp_path / "p.yaml"))
    spec = next(yaml.safe_load_all((tmp_path / "p.yaml").read_text()))
    env = spec["deploymentSpec"]["executors"]["exec-fine-tune"]["container"].get("env", [])
    # a multi-node launcher has no GPU itself: its TrainJob's nodes get the variable
    assert ({"name": ACCELERATOR_ENV, "value": "nvidia.com/gpu"} in env) is told
