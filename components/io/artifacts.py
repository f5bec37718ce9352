"""Publish an artifact directory only once it is complete.

A step that dies half-way must not leave a directory that a later cached run
could take for a finished artifact: everything is written next to the target
and renamed into place at the end. The scratch folder's name carries the pid and
host of the process writing it, so a folder whose writer is gone (killed with
SIGKILL) is known to be garbage: the next `published` beside it removes it, and so
does `remove_stale_partials` when a local run starts.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import tempfile
import threading
from pathlib import Path
from typing import Iterator

PARTIAL = re.compile(r"^\..+\.partial-(\d+)@(.+)-[a-z0-9_]+$")  # .<name>.partial-<pid>@<host>-<random>
HOST = re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale_partials(folder: str | Path, depth: int = 3) -> list[str]:
    """Remove scratch folders under `folder` (`depth` levels) whose writing process is gone.

    A scratch folder of a live process is kept (it may be another run's step), and so is
    one written on another host (a Docker container: its pids are not ours to check);
    one named without a pid (older layout) has no owner to ask and is removed.
    """
    removed = []
    folder = Path(folder)
    for level in range(1, depth + 1):
        for path in folder.glob("/".join(["*"] * (level - 1) + [".*.partial-*"])):
            match = PARTIAL.match(path.name)
            if not path.is_dir() or (match and (match[2] != HOST or int(match[1]) == os.getpid()
                                                or _alive(int(match[1])))):
                continue
            shutil.rmtree(path, ignore_errors=True)
            removed.append(str(path))
    return removed


@contextlib.contextmanager
def _sigterm_as_exit() -> Iterator[None]:
    """SIGTERM (a kill, not a preemption handler's) ends the process through `finally` blocks."""
    def leave(signum, frame):
        raise SystemExit(128 + signum)

    previous = None
    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        previous = signal.signal(signal.SIGTERM, leave)
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def published(path: str) -> Iterator[str]:
    """Yield a scratch directory that becomes `path` only if the block succeeds.

    On an error, Ctrl-C or SIGTERM the scratch directory is removed; after a SIGKILL
    the next `published` beside it removes it.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(target.parent, depth=1)
    scratch = tempfile.mkdtemp(prefix=f".{target.name}.partial-{os.getpid()}@{HOST}-", dir=target.parent)
    try:
        with _sigterm_as_exit():
            yield scratch
        if target.exists():
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        os.replace(scratch, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def write_metrics(artifact, values: dict) -> None:
    """Log scalar metrics for the KFP UI and keep them in the artifact's file too.

    The file makes the artifact real on disk: local caching treats an output
    without one as missing, and users can read the figures without the UI.
    """
    import json
    import math

    for name, value in values.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            artifact.log_metric(name, float(value))
    Path(artifact.path).parent.mkdir(parents=True, exist_ok=True)
    Path(artifact.path).write_text(json.dumps(values, indent=2, sort_keys=True, default=str))
