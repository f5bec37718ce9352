"""The rules every SQuAD record follows, whatever file or Hub dataset it came from.

One question is checked by `check_row` (a value of the wrong type is rejected, never
converted) and named by file, record (id, line or row) and field when it breaks a rule;
`parse_squad_json` applies the same rules to the nested official layout; a whole split is
checked by `validate_examples` (ids unique, no empty text) and identified by `fingerprint`.
Reading the sources is `components.qa.squad_io`'s job.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Callable

import datasets

from components.qa.errors import InvalidInputError

SQUAD_FEATURES = datasets.Features({
    "id": datasets.Value("string"),
    "title": datasets.Value("string"),
    "context": datasets.Value("string"),
    "question": datasets.Value("string"),
    "answers": {"text": datasets.Sequence(datasets.Value("string")),
                "answer_start": datasets.Sequence(datasets.Value("int32"))},
})
# the longest context or question accepted (characters); a pipeline parameter. Preprocessing
# memory grows with the longest record (150-350 bytes per context character: 180 MB for 1M,
# bench/preprocess_memory.py), so an absurd record is refused when it is read, not in a pod.
MAX_CONTEXT_CHARS = 1_000_000
LAYOUT_FIX = ("Follow the SQuAD layout: data > paragraphs > {context, qas > {id, question, answers > "
              "{text, answer_start}}}; JSON Lines and Parquet rows hold id, title, context, question, "
              "answers {text: [str], answer_start: [int]}. Values are never converted: write "
              "numbers as numbers and text as text.")


def require_type(value: Any, kind: type | tuple, source: str, record: str | None, field: str) -> Any:
    """`value` if it has the type `kind` (never converted: "82" is not an int)."""
    if not isinstance(value, kind) or isinstance(value, bool):
        kind_name = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        got = "nothing (missing or null)" if value is None else \
            f"{type(value).__name__} ({str(value)[:60]!r})"
        raise InvalidInputError(f"expected {kind_name}, got {got}", fix=LAYOUT_FIX, source=source,
                                record=record, field=field)
    return value


def check_row(row: dict, source: str, record: str, *, answer_field: Callable[[int, str], str],
              max_context_chars: int = MAX_CONTEXT_CHARS) -> dict:
    """One question, in any format, checked by the same rules -> a SQUAD_FEATURES row.

    `record` locates it in the file (an id, a line or a row); `answer_field(j, key)`
    names an answer's field as the file spells it.
    """
    qid = require_type(row.get("id"), str, source, record, "id")
    record = record if record == qid else f"{record}, id {qid}"
    title = row.get("title")
    title = "" if title is None else require_type(title, str, source, record, "title")
    context = require_type(row.get("context"), str, source, record, "context")
    question = require_type(row.get("question"), str, source, record, "question")
    for field, text in (("context", context), ("question", question)):
        if len(text) > max_context_chars:
            raise InvalidInputError(
                f"the {field} has {len(text):,} characters, above max_context_chars="
                f"{max_context_chars:,}", source=source, record=record, field=field,
                fix="Split the passage into smaller contexts, or raise the max_context_chars "
                    "parameter (preprocessing needs about 200 MB of memory per million "
                    "characters of the longest context).")
    answers = require_type(row.get("answers"), dict, source, record, "answers")
    texts = require_type(answers.get("text"), list, source, record, answer_field(-1, "text"))
    starts = require_type(answers.get("answer_start"), list, source, record,
                          answer_field(-1, "answer_start"))
    if len(texts) != len(starts):
        raise InvalidInputError(f"{len(texts)} answer texts but {len(starts)} answer_start values",
                                fix="Give every answer its text and its answer_start.",
                                source=source, record=record, field="answers")
    for j, (text, start) in enumerate(zip(texts, starts)):
        require_type(text, str, source, record, answer_field(j, "text"))
        if require_type(start, int, source, record, answer_field(j, "answer_start")) < 0:
            raise InvalidInputError(f"{answer_field(j, 'answer_start')}={start} is negative",
                                    fix="Use the character offset of the answer in the context.",
                                    source=source, record=record, field=answer_field(j, "answer_start"))
    if row.get("is_impossible") and texts:
        raise InvalidInputError("is_impossible is true but answers is not empty",
                                fix="Empty the answers of an unanswerable question (SQuAD v2.0 "
                                    "layout).", source=source, record=record, field="answers")
    return {"id": qid, "title": title, "context": context, "question": question,
            "answers": {"text": texts, "answer_start": starts}}


def _nested_answer_field(j: int, key: str) -> str:
    return "answers" if j < 0 else f"answers[{j}].{key}"


def flat_answer_field(j: int, key: str) -> str:
    return f"answers.{key}" + ("" if j < 0 else f"[{j}]")


def parse_squad_json(text: str, source: str, max_context_chars: int = MAX_CONTEXT_CHARS) -> list[dict]:
    """Official nested SQuAD JSON (v1.1 or v2.0) -> flat rows."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise InvalidInputError(f"malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}",
                                fix="Fix the JSON syntax (e.g. `python -m json.tool FILE`).",
                                source=source) from None
    articles = require_type(require_type(doc, dict, source, None, "(top level)").get("data"), list,
                            source, None, "data")
    version_1 = str(doc.get("version", "")).lstrip("v").startswith("1")
    rows = []
    for a, article in enumerate(articles):
        title = require_type(article, dict, source, f"data[{a}]", "article").get("title")
        for p, paragraph in enumerate(require_type(article.get("paragraphs"), list, source,
                                                   f"data[{a}]", "paragraphs")):
            where = f"data[{a}].paragraphs[{p}]"
            context = require_type(
                require_type(paragraph, dict, source, where, "paragraph").get("context"),
                str, source, where, "context")
            for q, qa in enumerate(require_type(paragraph.get("qas"), list, source, where, "qas")):
                require_type(qa, dict, source, f"{where}.qas[{q}]", "qa")
                qid = require_type(qa.get("id"), str, source, f"{where}.qas[{q}]", "id")
                answers = require_type(qa.get("answers", []), list, source, qid, "answers")
                for j, answer in enumerate(answers):
                    require_type(answer, dict, source, qid, f"answers[{j}]")
                flat = {**qa, "title": title, "context": context,
                        "answers": {"text": [a_.get("text") for a_ in answers],
                                    "answer_start": [a_.get("answer_start") for a_ in answers]}}
                row = check_row(flat, source, qid, answer_field=_nested_answer_field,
                                max_context_chars=max_context_chars)
                if version_1 and not row["answers"]["text"]:
                    raise InvalidInputError(
                        "a SQuAD v1.1 file has a question without answers",
                        fix="Give it its answers, or mark the file as v2.0 (\"version\": \"v2.0\") "
                            "if unanswerable questions are intended.",
                        source=source, record=qid, field="answers")
                rows.append(row)
    return rows



def validate_examples(dataset: datasets.Dataset, source: str) -> None:
    """Dataset-level checks that no single record can show: run before any feature is built.

    Post-processing and scoring key on `id`, so a repeated id would merge two
    questions; an empty question or context cannot be answered.
    """
    seen: dict[str, str] = {}
    for row in dataset.select_columns(["id", "question", "context"]):
        qid, question, context = row["id"], row["question"], row["context"]
        if qid in seen:
            same = "the same question" if seen[qid] == question else "a different question"
            raise InvalidInputError(f"id is used twice ({same})",
                                    fix="Give every question its own id (deduplicate exact copies).",
                                    source=source, record=qid, field="id")
        seen[qid] = question
        for field, text in (("question", question), ("context", context)):
            if not text or text.isspace():
                raise InvalidInputError(f"the {field} is empty",
                                        fix="Remove the record or fill in its text.",
                                        source=source, record=qid, field=field)
    if not seen:
        raise InvalidInputError("the split is empty", fix="Check the source, split name and filters.",
                                source=source)


def fingerprint(dataset: datasets.Dataset) -> str:
    """Content hash of the rows in order: same data, same fingerprint, on any machine."""
    digest = hashlib.sha256()
    for batch in dataset.iter(batch_size=1000):
        digest.update(json.dumps(batch, sort_keys=True, ensure_ascii=False).encode("utf-8"))
    return digest.hexdigest()[:16]
