"""What `python -m pipeline run --local` shows on the terminal, and the run's log file.

kfp.local prints everything (its executor JSON, every step's output, tracebacks) to
stdout. `RunConsole` is the stream that output goes to instead: all of it lands in the
log file, and the terminal gets one line per step (name, seconds, ok / cached /
failed), a progress bar with an ETA while a step reports progress (fine-tune,
evaluate: `components/qa/progress.py`), a line every `heartbeat` seconds while a step
works quietly, and at the end the failed step's own error. With `verbose` the terminal
also gets everything kfp.local prints (on stdout), as without the console.

A step that rejects its input leaves a structured line (`components/qa/errors.py`);
the console stops the run there (`StepInputError`), so a wrong input fails once, even
in a step that has a retry policy.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import threading
import time
from typing import Callable, Iterator, TextIO

from components.qa.errors import InvalidInputError, parse_failure_line
from components.qa.progress import parse_progress_line

ANSI = re.compile(r"\x1b\[[0-9;]*m")
# kfp.local's own lines (kfp/local/task_dispatcher.py, orchestrator/task_executor.py)
STARTED = re.compile(r"Executing task '([^']+)'")
FINISHED = re.compile(r"Task '([^']+)' finished with status (SUCCESS|FAILURE)")
CACHED = re.compile(r"Task '?([^' ]+?)'? cache hit")
RETRYING = re.compile(r"Task '?([^' ]+?)'? failed \(attempt (\d+)/(\d+)\)\. Retrying in ([\d.]+)s")
# the last line of a Python traceback: `package.module.SomeError: message`
EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit|Preempted)\b(:.*)?$")
NAME_WIDTH = 22


class StepInputError(InvalidInputError):
    """A step rejected its input: the step's own `InvalidInputError`, rebuilt from its record."""

    def __init__(self, step: str, record: dict):
        self.step = step
        if record.get("problem") and record.get("fix"):
            super().__init__(record["problem"], fix=record["fix"], source=record.get("source"),
                             record=record.get("record"), field=record.get("field"))
        else:
            super().__init__(record["message"].rstrip("."), fix="")


class StepFailed(RuntimeError):
    """A step failed for another reason than its input (a crash, a kill, a bug)."""

    def __init__(self, step: str, last_error: str | None):
        self.step, self.last_error = step, last_error
        super().__init__(f"step {step!r} failed" + (f": {last_error}" if last_error else ""))


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds} s"


def progress_bar(record: dict, width: int = 24) -> str:
    """`[#######.........]  120/250  ETA 1:05` from a progress record."""
    done, total, elapsed = record["done"], record["total"], record.get("elapsed", 0.0)
    if not total:
        return f"{done} done"
    filled = int(width * min(done / total, 1.0))
    eta = f"ETA {duration(elapsed / done * (total - done))}" if done else "ETA ?"
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total}  {eta}"


class RunConsole(io.TextIOBase):
    """A text stream: everything to the log, a summary of it to the terminal."""

    def __init__(self, log: TextIO, terminal: TextIO, verbose: bool = False,
                 echo: TextIO | None = None, tty: bool | None = None, heartbeat: float = 30.0,
                 clock: Callable[[], float] = time.monotonic):
        """`terminal` gets the summary lines; `echo` (default: `terminal`) everything, if `verbose`."""
        self.log, self.terminal, self.verbose = log, terminal, verbose
        self.echo = echo or terminal
        self.tty = terminal.isatty() if tty is None else tty
        self.heartbeat, self.clock = heartbeat, clock
        self.step: str | None = None  # the step running now
        self.started = self.last_shown = clock()
        self.progress: dict | None = None
        self.failed_step: str | None = None
        self.last_error: dict[str, str] = {}  # step -> the last exception line in its output
        self.failure: StepInputError | None = None
        self._pending = ""
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    # -- the stream ---------------------------------------------------------------------
    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            self.log.write(text)
            if self.verbose:
                self.echo.write(text)
            lines = (self._pending + text).split("\n")
            self._pending = lines.pop()
            for line in lines:
                self.on_line(line)
        return len(text)

    def flush(self) -> None:
        with self._lock:
            self.log.flush()
            self.echo.flush()
            self.terminal.flush()

    # -- what a line means --------------------------------------------------------------
    def on_line(self, line: str) -> None:
        """Update the terminal for one line of kfp.local's output; raise on a rejected input."""
        plain = ANSI.sub("", line).strip()
        if not plain:
            return
        record = parse_failure_line(plain)
        if record is not None:
            self.failure = StepInputError(self.step or "?", record)
            self.failed_step = self.step
            self._end_step("failed")
            raise self.failure  # stops kfp.local: no retry of a wrong input
        progress = parse_progress_line(plain)
        if progress is not None:
            self.progress = progress
            self._show_status(force=not self.tty and progress["done"] >= progress["total"])
        elif match := STARTED.search(plain):
            self.step, self.started, self.progress = match[1], self.clock(), None
            self._show_status()
        elif match := FINISHED.search(plain):
            if match[2] == "FAILURE":
                self.failed_step = match[1]
            self._end_step("ok" if match[2] == "SUCCESS" else "failed")
        elif match := CACHED.search(plain):
            self._say(f"{match[1]:<{NAME_WIDTH}} {'':>6}  cached")
        elif match := RETRYING.search(plain):
            self._say(f"{match[1]:<{NAME_WIDTH}} failed (attempt {match[2]}/{match[3]}); "
                      f"retrying in {duration(float(match[4]))}")
        elif self.step and EXCEPTION_LINE.match(plain):
            self.last_error[self.step] = plain

    def _end_step(self, outcome: str) -> None:
        if self.step is None:
            return
        self._say(f"{self.step:<{NAME_WIDTH}} {duration(self.clock() - self.started):>6}  {outcome}")
        self.step, self.progress = None, None

    # -- the terminal -------------------------------------------------------------------
    def _status_text(self) -> str:
        text = f"{self.step:<{NAME_WIDTH}} {duration(self.clock() - self.started):>6}  running"
        return text + (f"  {progress_bar(self.progress)}" if self.progress else "")

    def _show_status(self, force: bool = False) -> None:
        """The running step: redrawn in place on a terminal; a line per heartbeat otherwise."""
        with self._lock:
            if self.verbose or self.step is None:
                return
            if self.tty:
                self.terminal.write("\r\x1b[K" + self._status_text())
                self.terminal.flush()
            elif force or self.clock() - self.last_shown >= self.heartbeat:
                self._say(self._status_text())

    def _say(self, text: str) -> None:
        """A permanent line (not in verbose mode: kfp.local's own lines say it there)."""
        if self.verbose:
            return
        with self._lock:
            self.terminal.write(("\r\x1b[K" if self.tty else "") + text + "\n")
            self.terminal.flush()
            self.last_shown = self.clock()

    def tell(self, text: str) -> None:
        """A line for the terminal and the log alike (the log path, the final error)."""
        with self._lock:
            self.log.write(text + "\n")
            self.log.flush()
            self.terminal.write(("\r\x1b[K" if self.tty and not self.verbose else "") + text + "\n")
            self.terminal.flush()

    @contextlib.contextmanager
    def capturing(self) -> Iterator[RunConsole]:
        """Send stdout, stderr and INFO logging here for the block.

        kfp.local logs a cache hit outside its own logger context, at INFO on the root
        logger (kfp/local/orchestrator/task_executor.py), which shows nothing by default.
        """
        root = logging.getLogger()
        handler, level = logging.StreamHandler(self), root.level
        handler.setFormatter(logging.Formatter("%(asctime)s - %(levelname)s - %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        try:
            with contextlib.redirect_stdout(self), contextlib.redirect_stderr(self):
                yield self
        finally:
            root.removeHandler(handler)
            root.setLevel(level)

    # -- alive while quiet --------------------------------------------------------------
    def __enter__(self) -> RunConsole:
        if not self.verbose:
            self._ticker = threading.Thread(target=self._tick, daemon=True, name="run-console")
            self._ticker.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        if self._pending:
            self.log.write(self._pending)
            self._pending = ""
        self.flush()

    def _tick(self) -> None:
        while not self._stop.wait(1.0 if self.tty else min(self.heartbeat, 5.0)):
            self._show_status()
