"""Progress lines for long loops (training steps, evaluation batches).

A step prints `qa-progress: {"phase": ..., "done": ..., "total": ..., "elapsed": ...}`
every few seconds (fine-tune through `progress_callback.ProgressCallback`, evaluate per
batch); `python -m pipeline run` turns these lines into a progress bar with an ETA, and
on a cluster they show in the pod log that the step is alive.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, TextIO

from components.qa.log_lines import parse_tagged_line, tagged_line

PROGRESS_TAG = "qa-progress"


class Progress:
    """Counts work done out of `total` and prints a progress line at most every `every` s."""

    def __init__(self, phase: str, total: int, every: float = 2.0, out: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.phase, self.total, self.every = phase, max(int(total), 0), every
        self.out, self.clock = out, clock
        self.started = clock()
        self.done, self._printed = 0, None

    def update(self, done: int) -> None:
        """Set the work done so far; the last update (done == total) is always printed."""
        self.done = min(int(done), self.total) if self.total else int(done)
        now = self.clock()
        if self._printed is None or now - self._printed >= self.every or self.done >= self.total:
            self._printed = now
            record = {"phase": self.phase, "done": self.done, "total": self.total,
                      "elapsed": round(now - self.started, 1)}
            print(tagged_line(PROGRESS_TAG, record), file=self.out or sys.stdout, flush=True)

    def advance(self, amount: int) -> None:
        self.update(self.done + amount)


def parse_progress_line(line: str) -> dict | None:
    """The record of a progress line, else None."""
    return parse_tagged_line(PROGRESS_TAG, line, {"done", "total"})
