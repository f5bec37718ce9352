"""Load SQuAD-style data from wherever users keep it into one flat `datasets` schema.

Sources, all resolved per split name:

- a Hugging Face Hub dataset id (``rajpurkar/squad``), with config and revision;
- a path or fsspec URI (``s3://``, ``gs://``, ``https://``) holding ``{split}``,
  e.g. ``data/squad-sample/{split}.json``;
- a folder (or URI prefix) containing ``{split}.json``, ``{split}.jsonl``,
  ``{split}.parquet`` or a ``{split}/`` folder of SQuAD JSON files.

SQuAD JSON is the nested official layout (data > paragraphs > qas); JSON Lines
and Parquet hold the flat columns id, title, context, question, answers.
Every record, in every format, is checked here by the same rules (`check_row`: a
value of the wrong type is rejected, never converted), before any GPU time is spent,
and a bad one is named by file, record (id, line or row) and field. Files and URIs
are read here through fsspec; only Hub ids go through `datasets.load_dataset`, so
Hub offline mode concerns Hub ids alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
from typing import Any, Callable, Iterator, TypeVar

import datasets
import fsspec

from components.qa.errors import InvalidInputError
from components.qa.retry import with_retries

T = TypeVar("T")

SQUAD_FEATURES = datasets.Features({
    "id": datasets.Value("string"),
    "title": datasets.Value("string"),
    "context": datasets.Value("string"),
    "question": datasets.Value("string"),
    "answers": {"text": datasets.Sequence(datasets.Value("string")),
                "answer_start": datasets.Sequence(datasets.Value("int32"))},
})
FLAT_SUFFIXES = (".jsonl", ".parquet")
# the longest context or question accepted (characters); a pipeline parameter. Preprocessing
# memory grows with the longest record (150-350 bytes per context character: 180 MB for 1M,
# bench/preprocess_memory.py), so an absurd record is refused when it is read, not in a pod.
MAX_CONTEXT_CHARS = 1_000_000
LAYOUT_FIX = ("Follow the SQuAD layout: data > paragraphs > {context, qas > {id, question, answers > "
              "{text, answer_start}}}; JSON Lines and Parquet rows hold id, title, context, question, "
              "answers {text: [str], answer_start: [int]}. Values are never converted: write "
              "numbers as numbers and text as text.")
S3_FIX = ("Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_ENDPOINT_URL for MinIO or another "
          "S3-compatible store) in the environment; on the cluster the download step reads them from "
          "the Kubernetes Secret named by CompileSettings.s3_secret (default `s3-credentials`).")


def _is_local_or_uri(source: str) -> bool:
    """A path or URI rather than a Hub id (Hub ids are 'name' or 'owner/name')."""
    return ("://" in source or "{split}" in source or os.path.exists(os.path.expanduser(source))
            or source.startswith((".", "/", "~")) or source.endswith((".json",) + FLAT_SUFFIXES))


def _read(read: Callable[[], T], what: str, source: str) -> T:
    """`read` with retries; what is left of a storage or network error becomes one
    InvalidInputError that says which variables or Secret to set."""
    try:
        return with_retries(read, what)
    except InvalidInputError:
        raise
    except FileNotFoundError:
        raise InvalidInputError("the file does not exist", source=source,
                                fix="Check the path or URL and the split name ('{split}' in the "
                                    "path is replaced by the split).") from None
    except Exception as e:  # botocore, aiohttp and fsspec raise many types; name and hint
        name = type(e).__name__
        if "Credential" in name or isinstance(e, PermissionError):
            raise InvalidInputError(f"access denied or no credentials ({name}: {e})", fix=S3_FIX
                                    if source.startswith("s3") else "Check the access rights to "
                                    "the file.", source=source) from None
        if isinstance(e, (OSError, ConnectionError, TimeoutError)) or any(
                word in name for word in ("Client", "Connect", "Endpoint", "Timeout")):
            raise InvalidInputError(
                f"could not reach the storage ({name}: {e})", source=source,
                fix="Check the URL and that its host answers from this pod (proxy, NetworkPolicy)"
                    + ("; for s3:// check the endpoint in AWS_ENDPOINT_URL. " + S3_FIX
                       if source.startswith("s3") else ".")) from None
        raise


def _decode(raw: bytes, source: str, record: str | None = None) -> str:
    try:
        return raw.decode("utf-8-sig")  # a byte-order mark is allowed
    except UnicodeDecodeError as e:
        raise InvalidInputError(
            f"the file is not UTF-8 (byte {e.start}: {raw[e.start:e.start + 4]!r})",
            fix="Re-encode the file as UTF-8.", source=source, record=record) from None


def _read_text(fs, path: str, source: str) -> str:
    with fs.open(path, "rb") as f:
        return _decode(f.read(), source)


def _require(value: Any, kind: type | tuple, source: str, record: str | None, field: str) -> Any:
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
    qid = _require(row.get("id"), str, source, record, "id")
    record = record if record == qid else f"{record}, id {qid}"
    title = row.get("title")
    title = "" if title is None else _require(title, str, source, record, "title")
    context = _require(row.get("context"), str, source, record, "context")
    question = _require(row.get("question"), str, source, record, "question")
    for field, text in (("context", context), ("question", question)):
        if len(text) > max_context_chars:
            raise InvalidInputError(
                f"the {field} has {len(text):,} characters, above max_context_chars="
                f"{max_context_chars:,}", source=source, record=record, field=field,
                fix="Split the passage into smaller contexts, or raise the max_context_chars "
                    "parameter (preprocessing needs about 200 MB of memory per million "
                    "characters of the longest context).")
    answers = _require(row.get("answers"), dict, source, record, "answers")
    texts = _require(answers.get("text"), list, source, record, answer_field(-1, "text"))
    starts = _require(answers.get("answer_start"), list, source, record,
                      answer_field(-1, "answer_start"))
    if len(texts) != len(starts):
        raise InvalidInputError(f"{len(texts)} answer texts but {len(starts)} answer_start values",
                                fix="Give every answer its text and its answer_start.",
                                source=source, record=record, field="answers")
    for j, (text, start) in enumerate(zip(texts, starts)):
        _require(text, str, source, record, answer_field(j, "text"))
        if _require(start, int, source, record, answer_field(j, "answer_start")) < 0:
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


def _flat_answer_field(j: int, key: str) -> str:
    return f"answers.{key}" + ("" if j < 0 else f"[{j}]")


def parse_squad_json(text: str, source: str, max_context_chars: int = MAX_CONTEXT_CHARS) -> list[dict]:
    """Official nested SQuAD JSON (v1.1 or v2.0) -> flat rows."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise InvalidInputError(f"malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}",
                                fix="Fix the JSON syntax (e.g. `python -m json.tool FILE`).",
                                source=source) from None
    articles = _require(_require(doc, dict, source, None, "(top level)").get("data"), list,
                        source, None, "data")
    version_1 = str(doc.get("version", "")).lstrip("v").startswith("1")
    rows = []
    for a, article in enumerate(articles):
        title = _require(article, dict, source, f"data[{a}]", "article").get("title")
        for p, paragraph in enumerate(_require(article.get("paragraphs"), list, source,
                                               f"data[{a}]", "paragraphs")):
            where = f"data[{a}].paragraphs[{p}]"
            context = _require(_require(paragraph, dict, source, where, "paragraph").get("context"),
                               str, source, where, "context")
            for q, qa in enumerate(_require(paragraph.get("qas"), list, source, where, "qas")):
                _require(qa, dict, source, f"{where}.qas[{q}]", "qa")
                qid = _require(qa.get("id"), str, source, f"{where}.qas[{q}]", "id")
                answers = _require(qa.get("answers", []), list, source, qid, "answers")
                for j, answer in enumerate(answers):
                    _require(answer, dict, source, qid, f"answers[{j}]")
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


def _jsonl_rows(fs, path: str, max_context_chars: int) -> Iterator[dict]:
    """JSON Lines, one question per line, streamed (the file is never held whole)."""
    with fs.open(path, "rb") as f:
        for n, raw in enumerate(f, start=1):
            line = _decode(raw, path, f"line {n}")
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise InvalidInputError(f"malformed JSON at column {e.colno}: {e.msg}",
                                        fix="Write one JSON object per line (JSON Lines).",
                                        source=path, record=f"line {n}") from None
            _require(row, dict, path, f"line {n}", "(line)")
            yield check_row(row, path, f"line {n}", answer_field=_flat_answer_field,
                            max_context_chars=max_context_chars)


def _parquet_rows(fs, path: str, max_context_chars: int) -> Iterator[dict]:
    """Parquet rows in batches of 1000, with the values exactly as stored."""
    import pyarrow.parquet as pq

    with fs.open(path, "rb") as f:
        try:
            parquet = pq.ParquetFile(f)
        except Exception as e:  # pyarrow says ArrowInvalid for anything it cannot parse
            raise InvalidInputError(f"not a Parquet file ({type(e).__name__}: {e})",
                                    fix="Write the file with pyarrow/pandas `to_parquet`.",
                                    source=path) from None
        n = 0
        for batch in parquet.iter_batches(batch_size=1000):
            for row in batch.to_pylist():
                n += 1
                yield check_row(row, path, f"row {n}", answer_field=_flat_answer_field,
                                max_context_chars=max_context_chars)


def _resolve_split_files(source: str, split: str) -> tuple[Any, list[str], str]:
    """Files that hold `split` of a path/URI source (as URLs, for messages), and how to read them."""
    fs, files, kind = _find_split_files(source, split)
    local = "file" in ([fs.protocol] if isinstance(fs.protocol, str) else fs.protocol)
    return fs, [f if local else fs.unstrip_protocol(f) for f in files], kind


def _find_split_files(source: str, split: str) -> tuple[Any, list[str], str]:
    pattern = source.format(split=split) if "{split}" in source else source
    # a fresh filesystem each time: fsspec's cached instance keeps the endpoint and credentials
    # of the environment it was made in, and listings that may predate a changed object
    fs, path = fsspec.core.url_to_fs(pattern, skip_instance_cache=True)
    if _read(lambda: fs.isfile(path), f"listing {pattern}", pattern):
        kind = "flat" if path.endswith(FLAT_SUFFIXES) else "squad"
        return fs, [path], kind
    if _read(lambda: fs.isdir(path), f"listing {pattern}", pattern):
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
            f"no data for split {split!r} in the folder {pattern}",
            fix=f"Put {split}.json, {split}.jsonl, {split}.parquet or a {split}/ folder of SQuAD "
                f"JSON files there, or point the source at a file ('{{split}}' in the path names "
                f"the split).", source=source, field="split")
    raise InvalidInputError(
        f"{pattern} does not exist" + (f" (split {split!r})" if "{split}" in source else ""),
        fix="Check the path or URL and the split name; a folder may hold {split}.json, "
            "{split}.jsonl, {split}.parquet or a {split}/ folder of SQuAD JSON files.",
        source=source, field="split" if "{split}" in source else None)


def hub_offline() -> bool:
    """HF_HUB_OFFLINE is set: a Hub read fails at once and retrying cannot help."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def offline_fix(what: str) -> str:
    return (f"HF_HUB_OFFLINE=1 is set and the {what} is not in the local cache: unset it (and "
            f"HF_DATASETS_OFFLINE) where the Hub is reachable, or use a local or s3:// copy.")


def _hub_rows(source: str, split: str, config: str | None, revision: str | None,
              max_context_chars: int) -> Iterator[dict]:
    """A Hub dataset's rows, checked by the same rules as a file's (`row N`, 1-based)."""
    offline = hub_offline()
    try:
        dataset = with_retries(lambda: datasets.load_dataset(
            source, config or None, split=split, revision=revision or None), f"loading {source}",
            attempts=1 if offline else 4)
    except Exception as e:  # the Hub client raises many types; the message is what helps
        raise InvalidInputError(
            f"could not load Hub dataset split {split!r}: {type(e).__name__}: {e}",
            fix=offline_fix("dataset") if offline else (
                "Check the dataset id, config, split and revision, the network, and HF_TOKEN "
                "(Kubernetes Secret CompileSettings.hf_token_secret, default `hf-token`) for a "
                "gated or private dataset."), source=source) from None
    for n, row in enumerate(dataset, start=1):
        yield check_row(row, source, f"row {n}", answer_field=_flat_answer_field,
                        max_context_chars=max_context_chars)


def load_split(source: str, split: str, config: str | None = None, revision: str | None = None,
               max_context_chars: int = MAX_CONTEXT_CHARS) -> datasets.Dataset:
    """One split of a SQuAD-style dataset as a flat `datasets.Dataset` (SQUAD_FEATURES).

    Files are read here through fsspec, never through `datasets.load_dataset` (whose cache
    would serve a changed object stale, and which refuses URLs under HF_HUB_OFFLINE): only
    Hub ids use the Hub client and its offline mode.
    """
    if not _is_local_or_uri(source):
        rows = list(_hub_rows(source, split, config, revision, max_context_chars))
        where = f"{source} [{split}]"
    else:
        fs, files, kind = _resolve_split_files(source, split)
        where = ", ".join(files)
        if kind == "flat":
            read = _jsonl_rows if files[0].endswith(".jsonl") else _parquet_rows
            rows = _read(lambda: list(read(fs, files[0], max_context_chars)),
                         f"reading {files[0]}", files[0])
        else:
            rows = [row for f in files for row in parse_squad_json(
                _read(lambda: _read_text(fs, f, f), f"reading {f}", f), f, max_context_chars)]
    if not rows:
        raise InvalidInputError(f"split {split!r} has no questions", fix="Check the file contents.",
                                source=where)
    return datasets.Dataset.from_list(rows, features=SQUAD_FEATURES)


def load_checked(source: str, split: str, *, config: str | None = None,
                 revision: str | None = None, max_samples: int = 0, answer_policy: str = "error",
                 max_context_chars: int = MAX_CONTEXT_CHARS) -> tuple[datasets.Dataset, Any, str]:
    """What download keeps of a split: read, cut to `max_samples` (0: all), every check run.

    Returns the rows, the answer report (`AnswerReport`) and the file(s) they came from.
    """
    from components.qa.answers import check_answers

    data = load_split(source, split, config=config, revision=revision,
                      max_context_chars=max_context_chars)
    if max_samples > 0:
        data = data.select(range(min(max_samples, len(data))))
    where = describe_source(source, split)
    validate_examples(data, where)
    columns, report = check_answers(data.to_dict(), policy=answer_policy, source=where)
    if report.repaired or report.dropped:
        data = data.from_dict(columns, features=data.features)
    if len(data) == 0:
        raise InvalidInputError(f"no examples left (answer report {report.as_dict()})",
                                fix="Check the source, answer_policy and max_*_samples.",
                                source=where)
    return data, report, where


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

