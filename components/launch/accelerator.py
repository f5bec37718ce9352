"""Fail a step that was given a GPU when torch cannot use it, instead of training on the CPU.

A node whose NVIDIA driver is older than the CUDA build of our torch wheels (CUDA 13 in the
CUDA image) schedules the pod, mounts the GPU, and then `torch.cuda.is_available()` is False:
the Trainer would silently train on the CPU, 50x slower, on a GPU node. The pipeline sets
ACCELERATOR_ENV on every task it gives an accelerator (and the launcher on every TrainJob node
with GPUs); `require_accelerator` turns a missing GPU into one error that names torch's CUDA
build, the driver, and what to do.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import warnings
from pathlib import Path

ACCELERATOR_ENV = "QA_ACCELERATOR"  # the accelerator type the task requested, e.g. nvidia.com/gpu
# oldest Linux driver for each CUDA major version (NVIDIA's CUDA Toolkit release notes, table 3)
MIN_DRIVER = {13: "580.65.06", 12: "525.60.13", 11: "450.80.02"}


class AcceleratorMissing(RuntimeError):
    """The step asked for an accelerator and torch sees none."""


def driver_version() -> str:
    """The NVIDIA kernel driver's version, or why none was found."""
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=30)
            if out.returncode == 0 and out.stdout.strip():
                return out.stdout.split()[0]
            return f"unknown (nvidia-smi failed: {(out.stderr or out.stdout).strip()[:200]})"
        except (OSError, subprocess.TimeoutExpired) as err:
            return f"unknown (nvidia-smi failed: {err})"
    proc = Path("/proc/driver/nvidia/version")
    if proc.exists():
        found = re.search(r"Kernel Module\s+(?:for \S+\s+)?(\d+\.\d+(?:\.\d+)?)", proc.read_text())
        return found.group(1) if found else proc.read_text().splitlines()[0]
    return "none found (no nvidia-smi on PATH, no /proc/driver/nvidia/version)"


def require_accelerator(requested: str | None = None) -> None:
    """Raise AcceleratorMissing if a GPU was requested (ACCELERATOR_ENV) and torch sees none."""
    requested = os.environ.get(ACCELERATOR_ENV, "") if requested is None else requested
    if "gpu" not in requested:  # nothing requested, or a kind torch.cuda does not drive
        return
    import torch

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if torch.cuda.is_available() and torch.cuda.device_count() > 0:
            return
    cuda = torch.version.cuda or torch.version.hip
    why = "; ".join(str(w.message).strip() for w in caught) or "torch.cuda.is_available() is False"
    visible = ", ".join(f"{name}={os.environ[name]!r}" for name in ("CUDA_VISIBLE_DEVICES",
                                                                    "NVIDIA_VISIBLE_DEVICES")
                        if name in os.environ) or "no CUDA_VISIBLE_DEVICES / NVIDIA_VISIBLE_DEVICES"
    if cuda is None:
        build = f"torch {torch.__version__} is a CPU-only build"
        fix = ("Run the step on the CUDA image (CompileSettings.gpu_image, `images/build.sh --variant "
               "cuda`)")
    else:
        major = int(str(cuda).split(".")[0])
        need = MIN_DRIVER.get(major)
        build = f"torch {torch.__version__} is built for {'CUDA' if torch.version.cuda else 'ROCm'} {cuda}"
        fix = (f"Schedule the step on nodes whose NVIDIA driver is {need} or newer (a node selector, "
               "--node-selector), or build the CUDA image for the nodes' driver (images/README.md)"
               if need else "Schedule the step on nodes whose driver supports that build")
    raise AcceleratorMissing(
        f"the step asked for {requested} but torch sees no GPU, and training on the CPU instead "
        f"would waste the GPU node: {build}; NVIDIA driver: {driver_version()}; {visible}; "
        f"torch says: {why}. {fix}; or compile with --accelerator-count 0 to train on the CPU "
        "on purpose.")
