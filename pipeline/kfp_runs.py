"""Runs of an uploaded pipeline: follow one until it ends, list them, schedule recurring ones.

Plain functions over `kfp.Client` (pipeline/kfp_client.py connects and uploads), shared by
`python -m pipeline submit --wait|schedule|runs` (pipeline/cluster_cli.py) and pipeline.ipynb.

    python -m pipeline schedule --experiment qa --cron "0 0 3 * * *" --max-concurrency 1   # or --cron @daily
    python -m pipeline runs --experiment qa
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from pipeline.kfp_client import DEFAULT_SERVICE_ACCOUNT, ClusterError, api_errors, check_registry, find_experiment

MAX_CONCURRENCY = 10  # the API server's limit (api_converter.go toModelJob)
# robfig/cron v1.2.0 descriptors, which the KFP backend's cron parser accepts
CRON_DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
FINAL_STATES = ("SUCCEEDED", "FAILED", "SKIPPED", "CANCELED")


# ------------------------------------------------------------------------------------------ wait

def _tasks(run) -> list:
    return (run.run_details.task_details or []) if run.run_details else []


def step_names(run) -> list[str]:
    """The pipeline's tasks among the run's task details, in the order they appear.

    The v2beta1 task details are the Argo workflow's nodes (api_converter.go toModelTask):
    for each pipeline task X a driver node `X-driver`, the node `X` and its `executor`
    (`executor(N)` under a retry), plus the workflow's own node and `root`. A pipeline task
    is a node with a `-driver` sibling; `root` is KFP's, not ours.
    """
    names = [t.display_name for t in _tasks(run) if t.display_name]
    drivers = {n.removesuffix("-driver") for n in names if n.endswith("-driver")}
    return list(dict.fromkeys(n for n in names if n in drivers and n != "root"))


def _step_states(run) -> dict[str, str]:
    steps = set(step_names(run))
    return {t.display_name: str(t.state) for t in _tasks(run) if t.display_name in steps}


def progress_line(run) -> str:
    """`RUNNING   done: download, preprocess-train` from what the server returns."""
    states = _step_states(run)
    done = [n for n in step_names(run) if states.get(n) in ("SUCCEEDED", "SKIPPED")]
    return f"{str(run.state or 'PENDING'):<9} done: {', '.join(done) or '-'}"


def wait(client, run_id: str, timeout: float = 24 * 3600, poll: float = 15.0,
         echo: Callable[[str], None] = print, namespace: str | None = None):
    """Poll a run until it ends; one line per change (state + finished tasks).

    Returns the run on success; a ClusterError names the failing task(s) otherwise.
    """
    started, last = time.monotonic(), None
    while True:
        with api_errors(f"run {run_id}"):
            run = client.get_run(run_id)
        state = str(run.state or "PENDING")
        line = progress_line(run)
        if line != last:
            echo(f"[{time.monotonic() - started:6.0f} s] {line}")
            last = line
        if state == "SUCCEEDED":
            return run
        if state in FINAL_STATES:
            raise run_failure(run, namespace)
        if time.monotonic() - started > timeout:
            raise ClusterError(f"run {run_id} is still {state} after {timeout:.0f} s",
                               fix="Wait longer (--timeout) or follow it in the KFP UI; it keeps running.")
        time.sleep(poll)


def run_failure(run, namespace: str | None = None) -> ClusterError:
    """The error for a run that did not succeed: the failed task(s), and where their log is.

    The v2beta1 API returns no error text and no pod name for a task (`error` and `pod_name`
    stay empty; `run.error` is set only when the server cannot convert the run), so the log
    is found through the workflow that carries the run ID as its `pipeline/runid` label.
    """
    states = _step_states(run)
    failed = [n for n in step_names(run) if states.get(n) == "FAILED"]
    done = [n for n in step_names(run) if states.get(n) in ("SUCCEEDED", "SKIPPED")]
    ns = f"-n {namespace} " if namespace else ""
    server_error = f" (server: {run.error.message})" if run.error and run.error.message else ""
    return ClusterError(
        f"run {run.run_id} {run.state}: "
        + (f"task {', '.join(failed)} failed" if failed else "no task reported a failure")
        + f"; finished before it: {', '.join(done) or '-'}{server_error}",
        fix="Read the failed task's log in the KFP UI (run details, task, Logs), or with kubectl: "
            f"`kubectl logs {ns}-c main --prefix -l workflows.argoproj.io/workflow=$(kubectl get "
            f"workflows {ns}-l pipeline/runid={run.run_id} -o jsonpath='{{.items[0].metadata.name}}')`; "
            "fix the cause, then submit again.")


# ------------------------------------------------------------------------------------ schedules

def schedule(client, experiment_id: str, name: str, *, pipeline_id: str, version_id: str,
             params: dict[str, Any], cron: str | None = None, interval_s: int | None = None,
             max_concurrency: int = 1, enabled: bool = True,
             service_account: str = DEFAULT_SERVICE_ACCOUNT) -> str:
    """Create a recurring run (6-field cron, seconds first, a descriptor such as @daily, or an
    interval); no catch-up: after a pause only the latest missed run starts."""
    check_schedule(cron, interval_s, max_concurrency)
    check_registry(params)
    with api_errors(f"schedule {name!r}"):
        job = client.create_recurring_run(
            experiment_id, name, cron_expression=cron, interval_second=interval_s,
            max_concurrency=max_concurrency, no_catchup=True, params=params,
            pipeline_id=pipeline_id, version_id=version_id, enabled=enabled,
            service_account=service_account or None)
    return job.recurring_run_id


def check_schedule(cron: str | None, interval_s: int | None, max_concurrency: int) -> None:
    """Refuse a trigger KFP would reject or misread, before anything is uploaded."""
    if (cron is None) == (interval_s is None):
        raise ClusterError("a schedule needs exactly one of cron or interval",
                           fix="Use --cron '0 0 3 * * *' (daily at 03:00) or --interval 86400.")
    if cron is not None and cron.startswith("@"):
        every = cron.removeprefix("@every ")
        if cron not in CRON_DESCRIPTORS and not (every != cron and _GO_DURATION.fullmatch(every)):
            raise ClusterError(f"cron {cron!r} is not a descriptor KFP's cron parser knows",
                               fix=f"Use one of {', '.join(CRON_DESCRIPTORS)} or '@every 24h'.")
    elif cron is not None and len(cron.split()) != 6:
        # KFP's parser takes 5 fields too, but reads them seconds first: '0 3 * * *' runs hourly
        raise ClusterError(f"cron {cron!r} has {len(cron.split())} fields; KFP's cron has 6 "
                           "(second minute hour day month weekday)",
                           fix=f"Prefix a seconds field: '0 {cron}'.")
    if not 1 <= max_concurrency <= MAX_CONCURRENCY:
        raise ClusterError(f"max_concurrency={max_concurrency}: KFP accepts 1 to {MAX_CONCURRENCY}",
                           fix="Use --max-concurrency 1 for training runs that share a GPU.")
    if interval_s is not None and interval_s < 1:
        raise ClusterError(f"interval {interval_s} s: KFP needs at least 1 second",
                           fix="Use e.g. --interval 86400 (daily).")


_GO_DURATION = re.compile(r"([0-9]*(\.[0-9]*)?(ns|us|µs|ms|s|m|h))+")  # Go's time.ParseDuration


def set_schedule(client, recurring_run_id: str, action: str) -> None:
    """enable, disable or delete a recurring run."""
    calls = {"enable": client.enable_recurring_run, "disable": client.disable_recurring_run,
             "delete": client.delete_recurring_run}
    with api_errors(f"{action} recurring run {recurring_run_id}"):
        calls[action](recurring_run_id)


def list_schedules(client, experiment_id: str | None = None,
                   namespace: str | None = None) -> list[dict[str, Any]]:
    """Recurring runs of an experiment, or of a namespace (a multi-user server needs one)."""
    with api_errors("list recurring runs"):
        jobs = client.list_recurring_runs(page_size=100, experiment_id=experiment_id,
                                          namespace=None if experiment_id else namespace).recurring_runs
    return [{"id": j.recurring_run_id, "name": j.display_name, "status": str(j.status),
             "trigger": (j.trigger.cron_schedule.cron if j.trigger.cron_schedule
                         else f"every {j.trigger.periodic_schedule.interval_second} s"),
             "max_concurrency": int(j.max_concurrency or 1), "no_catchup": bool(j.no_catchup)}
            for j in jobs or []]


# ------------------------------------------------------------------------------------------ runs

def list_runs(client, experiments: list[str], namespace: str | None = None) -> list[dict[str, Any]]:
    """Every run of the named experiments, newest first, as plain dicts."""
    rows = []
    for name in experiments:
        experiment_id, token = find_experiment(client, name, namespace), ""
        while True:
            with api_errors(f"list runs of {name!r}"):
                page = client.list_runs(page_token=token, page_size=100, sort_by="created_at desc",
                                        experiment_id=experiment_id)
            rows += [run_summary(r, name) for r in page.runs or []]
            token = page.next_page_token
            if not token:
                break
    return rows


def run_summary(run, experiment: str) -> dict[str, Any]:
    return {"experiment": experiment, "run_id": run.run_id, "run_name": run.display_name,
            "state": str(run.state), "created_at": _iso(run.created_at),
            "finished_at": _iso(run.finished_at),
            "parameters": dict((run.runtime_config.parameters or {}) if run.runtime_config else {})}


def _iso(value) -> str:
    return value.isoformat(timespec="seconds") if hasattr(value, "isoformat") else str(value or "")
