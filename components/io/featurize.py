"""Shared body of the two preprocess components: SQuAD examples on disk -> features on disk."""

from __future__ import annotations

import hashlib

import datasets
import pyarrow as pa
from transformers import AutoTokenizer

from components.io.artifacts import published
from components.qa.errors import InvalidInputError
from components.qa.features import REQUIRED_COLUMNS, as_arrow, prepare_train_features, validation_features_table
from components.qa.squad_records import fingerprint

# context characters tokenized at once. The tokenizer's Python output costs about 150-350
# bytes per context character (bench/preprocess_memory.py), so this bounds preprocessing memory
# whatever the batch (a SQuAD batch of 1000 examples has about 750k characters: one call).
BATCH_CONTEXT_CHARS = 1_000_000


def arrow_features(examples: dict[str, list], split: str, **kwargs) -> pa.Table:
    """The feature builder of `split`, returning a typed Arrow table (`as_arrow`), run on
    slices of the batch of at most BATCH_CONTEXT_CHARS context characters (a longer
    context alone): only the compact Arrow result of the whole batch is kept."""
    tables = [validation_features_table(part, **kwargs) if split == "validation"
              else as_arrow(prepare_train_features(part, **kwargs))
              for part in _slices(examples, BATCH_CONTEXT_CHARS)]
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables)


def _slices(examples: dict[str, list], max_chars: int) -> list[dict[str, list]]:
    """`examples` cut into consecutive slices of at most `max_chars` context characters."""
    bounds, total = [0], 0
    for i, context in enumerate(examples.get("context", [])):
        size = len(context) if isinstance(context, str) else 0
        if total and total + size > max_chars:
            bounds.append(i)
            total = 0
        total += size
    if len(bounds) == 1:
        return [examples]
    bounds.append(len(examples["context"]))
    return [{name: column[a:b] for name, column in examples.items()}
            for a, b in zip(bounds, bounds[1:])]


def map_features(examples: datasets.Dataset, tokenizer, split: str, max_length: int,
                 doc_stride: int, **map_kwargs) -> datasets.Dataset:
    """`examples.map` with the feature builder of `split`.

    The builder returns a typed Arrow table, which `datasets` writes as it is: left
    to infer the types itself, it walks every nested offset in Python (a fifth of the
    time of validation features). Columns the builder does not read (a title, and the
    answers of validation examples) are never decoded into Python. The fingerprint is
    given explicitly: otherwise `datasets` pickles and hashes the tokenizer on every
    call, which costs as much as tokenizing a few thousand examples.
    """
    key = "|".join(map(str, (examples._fingerprint, split, tokenizer.name_or_path, len(tokenizer),
                             tokenizer.padding_side, max_length, doc_stride)))
    # only the columns the builder reads reach Python (a missing one: the builder says so)
    examples = examples.select_columns([c for c in REQUIRED_COLUMNS[split]
                                        if c in examples.column_names])
    return examples.map(
        arrow_features, batched=True, remove_columns=examples.column_names,
        fn_kwargs={"split": split, "tokenizer": tokenizer, "max_length": max_length,
                   "doc_stride": doc_stride},
        new_fingerprint=hashlib.sha256(key.encode()).hexdigest()[:16], desc=f"{split} features",
        **map_kwargs)


def featurize(data_path: str, model_path: str, out_path: str, split: str,
              max_length: int, doc_stride: int, source: str | None = None) -> dict:
    """Build unpadded features for `split` and save them as Arrow; return artifact metadata.

    A bad record is reported in `source` (the user's file, from the dataset artifact's
    metadata), else in `data_path`."""
    examples = datasets.load_from_disk(data_path)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    limit = tokenizer.model_max_length
    if max_length > limit:
        raise InvalidInputError(f"max_length={max_length} exceeds the model's limit of {limit} tokens",
                                fix=f"Lower max_length to at most {limit}.", field="max_length")
    try:
        features = map_features(examples, tokenizer, split, max_length, doc_stride,
                                keep_in_memory=True)
    except InvalidInputError as e:
        if e.source:
            raise
        raise InvalidInputError(e.problem, fix=e.fix, source=source or data_path, record=e.record,
                                field=e.field) from None
    with published(out_path) as tmp:
        features.save_to_disk(tmp)
    lengths = [len(ids) for ids in features["input_ids"]]
    return {
        "features": len(features), "examples": len(examples),
        "windows_per_example": round(len(features) / max(len(examples), 1), 4),
        "max_length": max_length, "doc_stride": doc_stride,
        "mean_tokens": round(sum(lengths) / max(len(lengths), 1), 2),
        "tokenizer": type(tokenizer).__name__, "fingerprint": fingerprint(features),
    }
