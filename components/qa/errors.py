"""One error type for bad SQuAD-style input, so every message has the same shape.

A person reading the message must learn where (file, record, field), what is
wrong, and what to do, without a traceback from inside a library.
"""

from __future__ import annotations


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
