"""The whole DAG in real containers: kfp.local's DockerRunner on the CPU image (`make images`)."""

import json
import subprocess
import time
from pathlib import Path

import pytest

from pipeline.local_run import run_local
from pipeline.parameters import profile_parameters
from pipeline.steps import task_names
from tests.conftest import REPO

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def built_cpu_image() -> str:
    env = REPO / "build" / "images.env"
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        pytest.skip("no Docker daemon (images/ci-setup.sh starts one)")
    if not env.exists():
        pytest.skip("no CPU image built: run `make images ARGS=--local-base`")
    image = dict(line.split("=", 1) for line in env.read_text().split())["QA_CPU_IMAGE"]
    if subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode != 0:
        pytest.skip(f"{image} is not in the local Docker engine: run `make images ARGS=--local-base`")
    return image


def containers(image: str) -> set[str]:
    out = subprocess.run(["docker", "ps", "-aq", "--filter", f"ancestor={image}"],
                         capture_output=True, text=True, check=True).stdout
    return set(out.split())


def settled_containers(image: str, timeout: float = 30.0) -> set[str]:
    """The image's containers once auto-removal (asynchronous in Docker) has caught up."""
    deadline = time.time() + timeout
    while (left := containers(image)) and time.time() < deadline:
        time.sleep(0.5)
    return left


def test_whole_dag_runs_in_the_cpu_image(tmp_path):
    image = built_cpu_image()
    before = containers(image)
    result = run_local(profile_parameters("tiny"), pipeline_root=str(tmp_path / "root"),
                       runner="docker", image=image, cache=False)
    run = Path(result["run_dir"])
    assert {p.name for p in run.iterdir() if p.is_dir()} == set(task_names())
    assert (run / "fine-tune" / "model" / "model.safetensors").exists()
    scores = json.loads((run / "evaluate" / "metrics").read_text())
    assert 0 <= scores["exact_match"] <= scores["f1"] <= 100
    assert result["metrics"]["f1"] == pytest.approx(scores["f1"])
    # written by the image's non-root user
    assert (run / "fine-tune" / "model").stat().st_uid == 1000
    assert settled_containers(image) <= before  # every step's container is removed
