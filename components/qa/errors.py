"""One error type for bad SQuAD-style input, so every message has the same shape.

A person reading the message must learn where (file, record, field), what is
wrong, and what to do, without a traceback from inside a library.

Inside a pipeline step (the KFP executor sets ``_KFP_RUNTIME=true``) an uncaught
`InvalidInputError` also leaves one structured line in the step's log, after the
traceback: `python -m pipeline run` reads it to show the step's own message as the
last line and to stop the run instead of retrying a wrong input. The log is the one
channel every runner carries (subprocess, Docker, a cluster pod).
"""

from __future__ import annotations

import os
import sys

from components.qa.log_lines import parse_tagged_line, tagged_line

FAILURE_TAG = "qa-step-error"  # the structured line a step leaves in its log


class InvalidInputError(ValueError):
    """Bad input data or parameters, with the location and the fix in the message."""

    def __init__(self, problem: str, *, fix: str, source: str | None = None,
                 record: str | None = None, field: str | None = None):
        self.problem, self.fix = problem, fix
        self.source, self.record, self.field = source, record, field
        where = ", ".join(
            part for part in (
                source and f"in {source}",
                record is not None and f"record {record!r}",
                field and f"field {field!r}",
            ) if part
        )
        super().__init__(f"{where + ': ' if where else ''}{problem}. {fix}")

    def as_record(self) -> dict:
        """The error as plain data: the message and each of its parts."""
        return {"error": type(self).__name__, "message": str(self), "problem": self.problem,
                "fix": self.fix, "source": self.source, "record": self.record, "field": self.field}


def failure_line(error: InvalidInputError) -> str:
    """The one log line that carries `error` out of a step."""
    return tagged_line(FAILURE_TAG, error.as_record())


def parse_failure_line(line: str) -> dict | None:
    """The record of a `failure_line`, else None."""
    return parse_tagged_line(FAILURE_TAG, line, {"message"})


def _report_uncaught(kind, error, traceback, previous=sys.excepthook) -> None:
    previous(kind, error, traceback)  # the traceback stays in the step's log
    if isinstance(error, InvalidInputError):
        sys.stdout.flush()  # everything the step printed comes before the record
        print(failure_line(error), file=sys.stderr, flush=True)


if os.environ.get("_KFP_RUNTIME") == "true" and sys.excepthook is sys.__excepthook__:
    sys.excepthook = _report_uncaught
