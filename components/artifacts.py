"""Publish an artifact directory only once it is complete.

A step that dies half-way must not leave a directory that a later cached run
could take for a finished artifact: everything is written next to the target
and renamed into place at the end.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def published(path: str) -> Iterator[str]:
    """Yield a scratch directory that becomes `path` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent)
    try:
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
