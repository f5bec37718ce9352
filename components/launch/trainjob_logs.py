"""Following a running TrainJob: its nodes' logs streamed into this process's log, the wait for
Complete, and on failure the node(s) that failed with the end of their logs."""

from __future__ import annotations

import threading
from collections.abc import Callable

from components.launch.trainjob_spec import TrainJobFailed, TrainJobSpec

TAIL_LINES = 25  # log lines of a failed node quoted in the error


def _log_steps(spec: TrainJobSpec, num_nodes: int) -> list[str]:
    # the container backend answers step "node-0" with every node's log in turn
    return ["node-0"] if spec.backend == "container" else [f"node-{i}" for i in range(num_nodes)]


def _stream(client, spec: TrainJobSpec, job: str, step: str, done: threading.Event,
            log: Callable[[str], None]) -> None:
    prefix = job if spec.backend == "container" else f"{job} {step}"
    pending = ""
    try:
        for chunk in client.get_job_logs(job, step=step, follow=True):
            if done.is_set():
                return
            # containers: raw output in pieces; kubernetes: one line per item
            pending += chunk if spec.backend == "container" else chunk + "\n"
            *lines, pending = pending.split("\n")
            for line in lines:
                log(f"[{prefix}] {line}")
    except Exception as err:  # the job is being deleted under us; the waiter reports failures
        if not done.is_set():
            log(f"[{prefix}] (log stream ended: {err})")
    if pending and not done.is_set():
        log(f"[{prefix}] {pending}")


def follow(client, spec: TrainJobSpec, job: str, num_nodes: int, log: Callable[[str], None]) -> None:
    """Stream the nodes' logs and wait for Complete; TrainJobFailed if a node fails."""
    from kubeflow.trainer.constants.constants import TRAINJOB_COMPLETE, TRAINJOB_FAILED, TRAINJOB_RUNNING

    try:
        client.wait_for_job_status(job, {TRAINJOB_RUNNING, TRAINJOB_COMPLETE, TRAINJOB_FAILED},
                                   timeout=spec.start_timeout_s, polling_interval=spec.poll_s)
    except TimeoutError:
        events = [f"  {e.involved_object_kind} {e.involved_object_name}: {e.reason}: {e.message}"
                  for e in _events(client, job)[-10:]]
        headline = (f"the nodes of TrainJob {job} were not all running after {spec.start_timeout_s} s "
                    "(image pull? GPU capacity? the PVC?); its last events:")
        raise TrainJobFailed(job, "\n".join([headline, *events])) from None
    done = threading.Event()
    streams = [threading.Thread(target=_stream, args=(client, spec, job, step, done, log), daemon=True)
               for step in _log_steps(spec, num_nodes)]
    for stream in streams:
        stream.start()
    try:
        client.wait_for_job_status(job, {TRAINJOB_COMPLETE}, timeout=spec.timeout_s,
                                   polling_interval=spec.poll_s)
    except RuntimeError as err:
        done.set()
        raise TrainJobFailed(job, failure_report(client, spec, job, err)) from None
    for stream in streams:  # the last lines of every node
        stream.join(timeout=60)
    done.set()


def _events(client, job: str) -> list:
    try:
        return client.get_job_events(job)
    except Exception:  # the container backend has none
        return []


def node_log_tail(client, spec: TrainJobSpec, job: str, step: str, lines: int = TAIL_LINES) -> list[str]:
    """The end of one node's log, without torchrun's own traceback: that one only says that a
    worker failed, and would push the worker's error (just above it) out of the excerpt."""
    chunks = list(client.get_job_logs(job, step=step, follow=False))
    if spec.backend == "container":
        chunks = chunks[:1]  # one item per container; step "node-0" lists every node
    log = "\n".join(c.rstrip("\n") for c in chunks).splitlines()
    agent = next((i for i, line in enumerate(log) if "ChildFailedError" in line), None)
    if agent is not None:
        start = max((i for i in range(agent) if log[i].startswith("Traceback (most recent call")),
                    default=agent)
        log = log[:start]
    return log[-lines:]


def failure_report(client, spec: TrainJobSpec, job: str, err: Exception) -> str:
    """Which node(s) failed and the end of their logs; the SDK's message when none is known."""
    from kubeflow.trainer.constants.constants import TRAINJOB_FAILED

    try:
        failed = [s for s in client.get_job(job).steps if s.status == TRAINJOB_FAILED]
    except Exception:
        failed = []
    if not failed:
        return f"TrainJob {job} failed: {err}"
    lines = [f"TrainJob {job} failed on " + ", ".join(f"{s.name} ({s.pod_name})" for s in failed)]
    for step in failed:
        try:
            tail = node_log_tail(client, spec, job, step.name)
        except Exception as log_err:
            tail = [f"(no log: {log_err})"]
        lines += [f"--- last {len(tail)} log lines of {step.name}:", *tail]
    return "\n".join(lines)
