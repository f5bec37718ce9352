"""Run the whole DAG on this machine through kfp.local, with no cluster.

Subprocess runner: every step runs in this Python environment. Docker runner:
every step runs in the CPU image (built by `make images`), as on a cluster.
Inputs that live in the repository (the SQuAD sample) are staged into the
pipeline root first, since that is the one folder the Docker runner mounts.
"""

from __future__ import annotations

import os
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

from kfp import local

from pipeline.qa_pipeline import PIPELINE_NAME, build_pipeline
from pipeline.settings import CompileSettings

REPO = Path(__file__).resolve().parent.parent


def stage_inputs(params: dict[str, Any], pipeline_root: Path) -> dict[str, Any]:
    """Copy a repository-relative dataset into the pipeline root and point the run at the copy."""
    dataset = params["dataset"]
    source = REPO / Path(dataset).parent
    if "://" in dataset or Path(dataset).is_absolute() or not source.is_dir():
        return params
    target = pipeline_root / "inputs" / source.name
    shutil.copytree(source, target, dirs_exist_ok=True)
    return {**params, "dataset": str(target / Path(dataset).name)}


def run_local(params: dict[str, Any], pipeline_root: str = "local_outputs", runner: str = "subprocess",
              image: str | None = None, cache: bool = True) -> dict[str, Any]:
    """Run the DAG; return the metrics, the run folder and every artifact path."""
    root = Path(pipeline_root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    params = stage_inputs(params, root)
    if runner == "docker":
        if not image:
            raise ValueError("the docker runner needs --image (the CPU image `make images` built)")
        settings = CompileSettings(cpu_image=image, gpu_image=image)
        local_runner = local.DockerRunner()
        os.chmod(root, 0o777)  # the image runs as a non-root user
    else:
        settings = CompileSettings()
        local_runner = local.SubprocessRunner(use_venv=False)
    local.init(runner=local_runner, pipeline_root=str(root), enable_caching=cache)
    started = time.time()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*non-Python base image.*")
        task = build_pipeline(settings, with_deploy=params.get("deploy", False))(**params)
    run_dir = max((p for p in root.glob(f"{PIPELINE_NAME}-*") if p.is_dir()), key=os.path.getmtime)
    artifacts = sorted(str(p) for p in run_dir.glob("*/*") if not p.name.startswith("."))
    return {"metrics": dict(task.outputs["metrics"].metadata), "run_dir": str(run_dir),
            "artifacts": artifacts, "seconds": round(time.time() - started, 1)}


def format_summary(result: dict[str, Any]) -> str:
    width = max(len(k) for k in result["metrics"]) if result["metrics"] else 10
    lines = ["", "metrics", "-------"]
    lines += [f"{name:<{width}}  {value:.4f}" if isinstance(value, float) else f"{name:<{width}}  {value}"
              for name, value in result["metrics"].items()]
    lines += ["", f"artifacts ({result['run_dir']})", "---------"] + result["artifacts"]
    lines += ["", f"finished in {result['seconds']} s"]
    return "\n".join(lines)
