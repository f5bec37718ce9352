"""Load SQuAD-style data from wherever users keep it into one flat `datasets` schema.

Sources, all resolved per split name:

- a Hugging Face Hub dataset id (``rajpurkar/squad``), with config and revision;
- a path or fsspec URI (``s3://``, ``gs://``, ``https://``) holding ``{split}``,
  e.g. ``data/squad-sample/{split}.json``;
- a folder (or URI prefix) containing ``{split}.json``, ``{split}.jsonl``,
  ``{split}.parquet`` or a ``{split}/`` folder of SQuAD JSON files.

SQuAD JSON is the nested official layout (data > paragraphs > qas); JSON Lines
and Parquet hold the flat columns id, title, context, question, answers.
Every record, in every format, is checked by the same rules (`squad_records.check_row`:
a value of the wrong type is rejected, never converted), before any GPU time is spent,
and a bad one is named by file, record (id, line or row) and field. Files and URIs
are read here through fsspec; only Hub ids go through `datasets.load_dataset`, so
Hub offline mode concerns Hub ids alone.
"""

from __future__ import annotations

import json
import os
import posixpath
from typing import Any, Callable, Iterator, TypeVar

import datasets
import fsspec

from components.qa.errors import InvalidInputError
from components.qa.retry import with_retries
from components.qa.squad_records import (
    MAX_CONTEXT_CHARS,
    SQUAD_FEATURES,
    check_row,
    flat_answer_field,
    parse_squad_json,
    require_type,
    validate_examples,
)

T = TypeVar("T")

FLAT_SUFFIXES = (".jsonl", ".parquet")
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
            require_type(row, dict, path, f"line {n}", "(line)")
            yield check_row(row, path, f"line {n}", answer_field=flat_answer_field,
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
                yield check_row(row, path, f"row {n}", answer_field=flat_answer_field,
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
        yield check_row(row, source, f"row {n}", answer_field=flat_answer_field,
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
