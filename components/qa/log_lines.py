"""Structured lines in a step's log: `<tag>: <one JSON object>`.

A step's log is the one channel every runner carries (kfp.local's subprocess and
Docker runners, a cluster pod), so a step tells `python -m pipeline run` what it is
doing (progress) or why it stopped (a rejected input) with such a line.
"""

from __future__ import annotations

import json


def tagged_line(tag: str, record: dict) -> str:
    return f"{tag}: " + json.dumps(record, ensure_ascii=False, default=str)


def parse_tagged_line(tag: str, line: str, required: set[str]) -> dict | None:
    """The record of a `tagged_line` with `tag` and the `required` keys (leading spaces
    allowed: kfp.local indents step output), else None."""
    text = line.strip()
    if not text.startswith(f"{tag}: "):
        return None
    try:
        record = json.loads(text[len(tag) + 2:])
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) and required <= record.keys() else None
