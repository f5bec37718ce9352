"""Run the whole DAG on this machine through kfp.local, with no cluster.

Subprocess runner: every step runs in this Python environment. Docker runner:
every step runs in the CPU image (built by `make images`), as on a cluster.
Inputs that live in the repository (the SQuAD sample) are staged into the
pipeline root first, since that is the one folder the Docker runner mounts.
`python -m pipeline run --local` (add_run_command) writes the run's whole log to
<pipeline-root>/logs/ and shows one line per step.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from kfp import local

from components.io.artifacts import remove_stale_partials
from components.qa.errors import InvalidInputError
from pipeline.cli_options import key_values
from pipeline.console import RunConsole, StepFailed, StepInputError
from pipeline.parameters import PROFILES, profile_parameters
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
              image: str | None = None, cache: bool = True,
              console: RunConsole | None = None) -> dict[str, Any]:
    """Run the DAG; return the metrics, the run folder and every artifact path.

    With a `console`, everything kfp.local prints goes through it (the log file, and a
    summary on the terminal), and a failed step raises `StepInputError` (it rejected
    its input) or `StepFailed` instead of kfp.local's RuntimeError.
    """
    root = Path(pipeline_root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(root)  # scratch folders of killed steps: no run reads them
    staged = stage_inputs(params, root)
    if not staged["registry_uri"]:  # kfp.local: the embedded registry, beside the runs it records
        staged = {**staged, "registry_uri": (root / "model-registry").as_uri()}
    if console is None:
        return _run(staged, root, runner, image, cache)
    try:
        with console.capturing():
            return _run(staged, root, runner, image, cache)
    except StepInputError as e:
        raise StepInputError(e.step, _unstaged(e.as_record(), staged, params)) from None
    except RuntimeError as e:  # kfp.local: "Pipeline ... finished with status FAILURE"
        if console.failed_step is None or isinstance(e, StepFailed):
            raise
        raise StepFailed(console.failed_step, console.last_error.get(console.failed_step)) from None


def _unstaged(record: dict[str, Any], staged: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """The error record with the staged copy's folder replaced by the user's own."""
    if staged["dataset"] == params["dataset"]:
        return record
    copy, original = str(Path(staged["dataset"]).parent), str(Path(params["dataset"]).parent)
    return {k: v.replace(copy, original) if isinstance(v, str) else v for k, v in record.items()}


def _run(params: dict[str, Any], root: Path, runner: str, image: str | None, cache: bool) -> dict[str, Any]:
    # no accelerator here: a task compiled with one would refuse to train on the CPU
    # (components/launch/accelerator.py)
    if runner == "docker":
        if not image:
            raise ValueError("the docker runner needs --image (the CPU image `make images` built)")
        settings = CompileSettings(cpu_image=image, gpu_image=image, accelerator_count=0)
        local_runner = local.DockerRunner()
        os.chmod(root, 0o777)  # the image runs as a non-root user
    else:
        settings = CompileSettings(accelerator_count=0)
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
    """The run folder, the time, and the metrics table last (what a person looks for)."""
    width = max(len(k) for k in result["metrics"]) if result["metrics"] else 10
    lines = ["", f"run folder: {result['run_dir']}", f"finished in {result['seconds']} s",
             "", "metrics", "-------"]
    lines += [f"{name:<{width}}  {value:.4f}" if isinstance(value, float) else f"{name:<{width}}  {value}"
              for name, value in result["metrics"].items()]
    return "\n".join(lines)


def format_artifacts(result: dict[str, Any]) -> str:
    return "\n".join([f"artifacts ({result['run_dir']})", *result["artifacts"]])


def add_run_command(sub) -> None:
    """Register `run` on the `python -m pipeline` parser."""
    r = sub.add_parser("run", help="run the whole DAG locally through kfp.local")
    r.add_argument("--local", action="store_true", help="run on this machine (kfp.local)")
    r.add_argument("--profile", default="local", choices=list(PROFILES))
    r.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="override a pipeline parameter")
    r.add_argument("--runner", choices=["subprocess", "docker"], default="subprocess")
    r.add_argument("--image", help="CPU image for --runner docker")
    r.add_argument("--pipeline-root", default="local_outputs")
    r.add_argument("--no-cache", action="store_true")
    r.add_argument("-v", "--verbose", action="store_true",
                   help="show everything kfp.local prints (step logs, tracebacks), not only the summary")
    r.set_defaults(func=run_command)


def run_command(args) -> None:
    """`python -m pipeline run --local`: the run's log in <pipeline-root>/logs/, the summary on the terminal."""
    params = profile_parameters(args.profile, key_values(args.set))
    if not args.local:
        raise InvalidInputError("only --local runs are started by `run`",
                                fix="Add --local, or submit to a cluster with `python -m pipeline submit`.",
                                field="--local")
    log_path = (Path(args.pipeline_root).resolve() / "logs"
                / f"{PIPELINE_NAME}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w", encoding="utf-8") as log, \
            RunConsole(log, sys.stderr, verbose=args.verbose, echo=sys.stdout) as console:
        console.tell(f"log: {log_path}")
        args.console = console  # for main(): the failure's last lines
        result = run_local(params, pipeline_root=args.pipeline_root, runner=args.runner,
                           image=args.image, cache=not args.no_cache, console=console)
        log.write(format_artifacts(result) + "\n")
    print(format_summary(result))
