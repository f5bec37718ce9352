"""Check that every gold answer really sits in its context at `answer_start`.

A wrong `answer_start` silently teaches the model a wrong span, so it is
caught before any feature is built. Three policies:

- ``error`` (default): stop at the first bad answer, naming the record.
- ``repair``: move the start to the occurrence of the text nearest to the given
  start; an example whose text does not occur in its context at all is dropped.
- ``drop``: skip every example with a bad answer.

`AnswerReport` counts what each policy touched, so the download step can
publish it with the dataset.

SQuAD v1.1 or v2.0 is decided once per dataset (`squad_version`), from both
splits and the file's declared version, and travels with the data: evaluation
scores by it instead of guessing from the rows it happens to get. A training
split without one answered question (`check_trainable`) is an error: a model
trained on it can only learn to answer nothing, and would score 100 on data
like it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from components.qa.errors import InvalidInputError

ANSWER_POLICIES = ("error", "repair", "drop")
SQUAD_V1, SQUAD_V2 = "v1.1", "v2.0"


@dataclasses.dataclass
class AnswerReport:
    examples: int = 0
    answers: int = 0
    unanswerable: int = 0
    repaired: int = 0
    dropped: int = 0
    dropped_ids: list[str] = dataclasses.field(default_factory=list)

    def as_dict(self, max_ids: int = 20) -> dict[str, Any]:
        """Counts plus the first few dropped ids (a report, not a dump)."""
        out = dataclasses.asdict(self)
        out["dropped_ids"] = self.dropped_ids[:max_ids]
        return out


def _nearest_occurrence(context: str, text: str, start: int) -> int:
    """Start of the occurrence of `text` in `context` closest to `start`, or -1."""
    best, pos = -1, context.find(text)
    while pos != -1:
        if best == -1 or abs(pos - start) < abs(best - start):
            best = pos
        pos = context.find(text, pos + 1)
    return best


def check_answers(examples: dict[str, list], policy: str = "error",
                  source: str | None = None) -> tuple[dict[str, list], AnswerReport]:
    """Validate (and per `policy`, repair or drop) the answers of a batch of examples.

    `examples` is a dict of columns (as `datasets.map(batched=True)` passes it).
    Returns the batch to keep (the same object when nothing changed) and a report.
    """
    if policy not in ANSWER_POLICIES:
        raise InvalidInputError(
            f"unknown answer policy {policy!r}",
            fix=f"Use one of {', '.join(ANSWER_POLICIES)}.", field="answer_policy")
    report = AnswerReport(
        examples=len(examples["id"]),
        answers=sum(len(a["text"]) for a in examples["answers"]),
        unanswerable=sum(not a["text"] for a in examples["answers"]))
    bad = [i for i, (context, answers) in enumerate(zip(examples["context"], examples["answers"]))
           if not all(text and context.startswith(text, start)
                      for text, start in zip(answers["text"], answers["answer_start"]))]
    if not bad:
        return examples, report
    keep = set(range(report.examples))
    new_answers = list(examples["answers"])
    for i in bad:
        example_id, context, answers = examples["id"][i], examples["context"][i], examples["answers"][i]
        fixed = _fix_answer_starts(context, answers, policy, source, example_id)
        if fixed is None:
            keep.discard(i)
            report.dropped += 1
            report.dropped_ids.append(example_id)
        else:
            new_answers[i] = {"text": list(answers["text"]), "answer_start": fixed}
            report.repaired += 1
    kept = {name: [v for i, v in enumerate(column) if i in keep]
            for name, column in examples.items() if name != "answers"}
    kept["answers"] = [a for i, a in enumerate(new_answers) if i in keep]
    return kept, report


def _fix_answer_starts(context: str, answers: dict, policy: str, source: str | None,
                       example_id: str) -> list[int] | None:
    """Repaired starts of one example, or None to drop it; raises under 'error'."""
    fixed = list(answers["answer_start"])
    for j, (text, start) in enumerate(zip(answers["text"], answers["answer_start"])):
        if text and context.startswith(text, start):
            continue
        if policy == "error":
            problem = ("is empty" if not text else
                       f"does not match the context at answers.answer_start[{j}]={start} "
                       f"(the context there reads {context[start:start + len(text)]!r})")
            raise InvalidInputError(
                f"answers.text[{j}] {text!r} {problem}",
                fix="Fix answer_start, or rerun with answer_policy='repair' (move the start "
                    "to the nearest occurrence of the text) or 'drop' (skip such examples).",
                source=source, record=example_id, field="answers")
        nearest = _nearest_occurrence(context, text, start) if policy == "repair" and text else -1
        if nearest == -1:
            return None
        fixed[j] = nearest
    return fixed


def count_unanswerable(answers) -> int:
    """Questions without a gold answer, from an `answers` column."""
    return sum(not a["text"] for a in answers)


def squad_version(unanswerable: int, declared: str | None = None) -> str:
    """SQUAD_V2 when any question of the dataset has no answer, or its file declares a
    2.x version; SQUAD_V1 otherwise."""
    if unanswerable or str(declared or "").lstrip("vV").startswith("2"):
        return SQUAD_V2
    return SQUAD_V1


def check_trainable(examples: int, unanswerable: int, source: str) -> None:
    """Refuse a training split in which no question has an answer."""
    if examples and unanswerable >= examples:
        raise InvalidInputError(
            f"none of the {examples} training questions has an answer (every `answers` list "
            "is empty): the model would only learn to answer nothing",
            fix="Train on answered questions: check that this is the training file meant, that "
                "answers sit under qas[].answers as {text, answer_start} (not under another "
                "key), and that max_train_samples does not cut the answered ones off.",
            source=source, field="answers")
