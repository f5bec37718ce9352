"""Load SQuAD-style data from wherever users keep it into one flat `datasets` schema.

Sources, all resolved per split name:

- a Hugging Face Hub dataset id (``rajpurkar/squad``), with config and revision;
- a path or fsspec URI (``s3://``, ``gs://``, ``https://``) holding ``{split}``,
  e.g. ``data/squad-sample/{split}.json``;
- a folder (or URI prefix) containing ``{split}.json``, ``{split}.jsonl``,
  ``{split}.parquet`` or a ``{split}/`` folder of SQuAD JSON files.

SQuAD JSON is the nested official layout (data > paragraphs > qas); JSON Lines
and Parquet hold the flat columns id, title, context, question, answers.
Every record is checked here, before any GPU time is spent, and a bad one is
named by file, record and field.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
from typing import Any, Iterable

import datasets
import fsspec

from components.qa.errors import InvalidInputError
from components.retry import with_retries

SQUAD_FEATURES = datasets.Features({
    "id": datasets.Value("string"),
    "title": datasets.Value("string"),
    "context": datasets.Value("string"),
    "question": datasets.Value("string"),
    "answers": {"text": datasets.Sequence(datasets.Value("string")),
                "answer_start": datasets.Sequence(datasets.Value("int32"))},
})
FLAT_SUFFIXES = (".jsonl", ".parquet")


def _is_local_or_uri(source: str) -> bool:
    """A path or URI rather than a Hub id (Hub ids are 'name' or 'owner/name')."""
    return ("://" in source or "{split}" in source or os.path.exists(os.path.expanduser(source))
            or source.startswith((".", "/", "~")) or source.endswith((".json",) + FLAT_SUFFIXES))


def _read_text(fs, path: str, source: str) -> str:
    with fs.open(path, "rb") as f:
        raw = f.read()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InvalidInputError(
            f"the file is not UTF-8 (byte {e.start}: {raw[e.start:e.start + 4]!r})",
            fix="Re-encode the file as UTF-8.", source=source) from None


def _require(value: Any, kind: type | tuple, source: str, record: str | None, field: str) -> Any:
    if not isinstance(value, kind) or isinstance(value, bool):
        kind_name = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise InvalidInputError(
            f"expected {kind_name}, got {type(value).__name__} ({str(value)[:60]!r})",
            fix="Follow the SQuAD layout: data > paragraphs > {context, qas > {id, question, "
                "answers > {text, answer_start}}}.", source=source, record=record, field=field)
    return value


def parse_squad_json(text: str, source: str) -> list[dict]:
    """Official nested SQuAD JSON (v1.1 or v2.0) -> flat rows."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise InvalidInputError(f"malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}",
                                fix="Fix the JSON syntax (e.g. `python -m json.tool FILE`).",
                                source=source) from None
    articles = _require(_require(doc, dict, source, None, "(top level)").get("data"), list,
                        source, None, "data")
    rows = []
    for a, article in enumerate(articles):
        _require(article, dict, source, f"data[{a}]", "article")
        title = article.get("title") or ""
        for p, paragraph in enumerate(_require(article.get("paragraphs"), list, source,
                                               f"data[{a}]", "paragraphs")):
            where = f"data[{a}].paragraphs[{p}]"
            context = _require(_require(paragraph, dict, source, where, "paragraph").get("context"),
                               str, source, where, "context")
            for q, qa in enumerate(_require(paragraph.get("qas"), list, source, where, "qas")):
                _require(qa, dict, source, f"{where}.qas[{q}]", "qa")
                qid = _require(qa.get("id"), str, source, f"{where}.qas[{q}]", "id")
                question = _require(qa.get("question"), str, source, qid, "question")
                answers = _require(qa.get("answers", []), list, source, qid, "answers")
                texts, starts = [], []
                for j, answer in enumerate(answers):
                    _require(answer, dict, source, qid, f"answers[{j}]")
                    texts.append(_require(answer.get("text"), str, source, qid, f"answers[{j}].text"))
                    starts.append(_require(answer.get("answer_start"), int, source, qid,
                                           f"answers[{j}].answer_start"))
                if not texts and str(doc.get("version", "")).lstrip("v").startswith("1"):
                    raise InvalidInputError(
                        "a SQuAD v1.1 file has a question without answers",
                        fix="Give it its answers, or mark the file as v2.0 (\"version\": \"v2.0\") "
                            "if unanswerable questions are intended.",
                        source=source, record=qid, field="answers")
                for j, start in enumerate(starts):
                    if start < 0:
                        raise InvalidInputError(f"answers[{j}].answer_start={start} is negative",
                                                fix="Use the character offset of the answer in the "
                                                    "context.", source=source, record=qid,
                                                field=f"answers[{j}].answer_start")
                if qa.get("is_impossible") and texts:
                    raise InvalidInputError(
                        "is_impossible is true but answers is not empty",
                        fix="Empty the answers of an unanswerable question (SQuAD v2.0 layout).",
                        source=source, record=qid, field="answers")
                rows.append({"id": qid, "title": title, "context": context, "question": question,
                             "answers": {"text": texts, "answer_start": starts}})
    return rows


def _check_flat(dataset: datasets.Dataset, source: str) -> datasets.Dataset:
    missing = [c for c in ("id", "context", "question", "answers") if c not in dataset.column_names]
    if missing:
        raise InvalidInputError(f"missing column(s) {missing}; found {dataset.column_names}",
                                fix="Provide the SQuAD columns id, title, context, question, "
                                    "answers {text, answer_start}.", source=source, field=missing[0])
    if "title" not in dataset.column_names:
        dataset = dataset.add_column("title", [""] * len(dataset))
    try:
        return dataset.select_columns(list(SQUAD_FEATURES)).cast(SQUAD_FEATURES)
    except (TypeError, ValueError) as e:
        raise InvalidInputError(f"columns do not have the SQuAD types ({e})",
                                fix="answers must be {text: [str], answer_start: [int]}; id, "
                                    "context, question strings.", source=source,
                                field="answers") from None


def _resolve_split_files(source: str, split: str) -> tuple[Any, list[str], str]:
    """Files that hold `split` of a path/URI source, and how to read them."""
    pattern = source.format(split=split) if "{split}" in source else source
    fs, path = fsspec.core.url_to_fs(pattern)
    if with_retries(lambda: fs.isfile(path), f"listing {pattern}"):
        kind = "flat" if path.endswith(FLAT_SUFFIXES) else "squad"
        return fs, [path], kind
    if fs.isdir(path):
        for name, kind in ((f"{split}.json", "squad"), (f"{split}.jsonl", "flat"),
                           (f"{split}.parquet", "flat")):
            candidate = posixpath.join(path, name)
            if fs.isfile(candidate):
                return fs, [candidate], kind
        folder = posixpath.join(path, split) if fs.isdir(posixpath.join(path, split)) else path
        files = sorted(f for f in fs.find(folder) if f.endswith(".json"))
        if files and ("{split}" in source or folder != path):
            return fs, files, "squad"
    raise InvalidInputError(
        f"no data for split {split!r} at {pattern}",
        fix=f"Point the source at a file, or a folder holding {split}.json, {split}.jsonl, "
            f"{split}.parquet or a {split}/ folder of SQuAD JSON files; use '{{split}}' in the "
            f"path to name the split.", source=source, field="split")


def load_split(source: str, split: str, config: str | None = None,
               revision: str | None = None) -> datasets.Dataset:
    """One split of a SQuAD-style dataset as a flat `datasets.Dataset` (SQUAD_FEATURES)."""
    if not _is_local_or_uri(source):
        try:
            dataset = with_retries(lambda: datasets.load_dataset(
                source, config or None, split=split, revision=revision or None), f"loading {source}")
        except Exception as e:  # the Hub client raises many types; the message is what helps
            raise InvalidInputError(f"could not load Hub dataset split {split!r}: {e}",
                                    fix="Check the dataset id, config, split and revision, the "
                                        "network and HF_TOKEN.", source=source) from None
        return _check_flat(dataset, source)
    fs, files, kind = _resolve_split_files(source, split)
    if kind == "flat":
        fmt = "json" if files[0].endswith(".jsonl") else "parquet"
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        urls = [f if protocol in ("file", "local") else f"{protocol}://{f}" for f in files]
        try:
            dataset = with_retries(lambda: datasets.load_dataset(fmt, data_files=urls, split="train"),
                                   f"reading {urls[0]}")
        except Exception as e:
            raise InvalidInputError(f"could not read {fmt} data: {e}",
                                    fix="Check that the file is valid and has the SQuAD columns.",
                                    source=files[0]) from None
        return _check_flat(dataset, files[0])
    rows = [row for f in files
            for row in parse_squad_json(with_retries(lambda: _read_text(fs, f, f), f"reading {f}"), f)]
    if not rows:
        raise InvalidInputError(f"split {split!r} has no questions", fix="Check the file contents.",
                                source=", ".join(files))
    return datasets.Dataset.from_list(rows, features=SQUAD_FEATURES)


def describe_source(source: str, split: str) -> str:
    """The file(s) a split comes from, for messages: errors must name the real file."""
    if not _is_local_or_uri(source):
        return f"{source} [{split}]"
    try:
        _, files, _ = _resolve_split_files(source, split)
    except InvalidInputError:
        return f"{source} [{split}]"
    return ", ".join(files)


def declared_version(source: str, split: str) -> str | None:
    """The `version` a SQuAD JSON split declares (e.g. "v2.0"), or None: Hub datasets,
    JSON Lines and Parquet declare none."""
    if not _is_local_or_uri(source):
        return None
    fs, files, kind = _resolve_split_files(source, split)
    for f in files if kind == "squad" else ():
        doc = json.loads(with_retries(lambda: _read_text(fs, f, f), f"reading {f}"))
        if isinstance(doc, dict) and doc.get("version") is not None:
            return str(doc["version"])
    return None


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


def split_by_article(rows: Iterable[dict], eval_titles: set[str]) -> tuple[list[dict], list[dict]]:
    """Train/held-out split that never puts one article on both sides."""
    train, held_out = [], []
    for row in rows:
        (held_out if row["title"] in eval_titles else train).append(row)
    return train, held_out
