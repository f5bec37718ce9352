"""`ragged.flatten` / `row_offsets` (the one list-column reader of inference,
post-processing and training) and `feature_table.example_rows` (the one example-id index),
against plain Python loops on real validation features of data/squad-sample.

    python -m pytest tests/unit/test_ragged.py -q
"""

from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pytest

from components.qa.errors import InvalidInputError
from components.qa.feature_table import example_rows
from components.qa.features import as_arrow, prepare_validation_features
from components.qa.inference import iter_example_chunks
from components.qa.ragged import flatten, row_offsets
from components.qa.squad_records import parse_squad_json
from tests.conftest import columns

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "squad-sample" / "validation.json"


@pytest.fixture(scope="module")
def examples():
    """40 questions of the sample, every 18th: short and long contexts, some of several windows."""
    rows = parse_squad_json(SAMPLE.read_text(encoding="utf-8"), str(SAMPLE))
    return columns(rows[::18][:40])


@pytest.fixture(scope="module")
def features(examples, tokenizer):
    # a short max_length, so that many contexts make several windows of different lengths
    return prepare_validation_features(examples, tokenizer, max_length=96, doc_stride=32)


def loop_flatten(rows):
    values, offsets = [], [0]
    for row in rows:
        values.extend(row or [])
        offsets.append(len(values))
    return values, offsets


@pytest.mark.parametrize("name", ["input_ids", "attention_mask", "token_type_ids"])
def test_flatten_equals_the_loop_on_real_features(features, name):
    rows = features[name]
    assert len(set(map(len, rows))) > 1  # rows of different lengths
    want_values, want_offsets = loop_flatten(rows)
    table = as_arrow({name: rows})  # the int32/int8 types `datasets` stores
    for column in (table[name], table[name].combine_chunks(), pa.array(rows)):
        values, offsets = flatten(column)
        assert values.dtype == np.int64 and offsets.dtype == np.int64
        assert values.tolist() == want_values
        assert offsets.tolist() == want_offsets
        assert np.array_equal(row_offsets(column), offsets)


def test_flatten_of_a_dataset_column_honours_select_and_chunks(features):
    dataset = datasets.Dataset.from_dict({"input_ids": features["input_ids"]})
    picked = [7, 2, 2, 30, 11]
    chunked = datasets.concatenate_datasets([dataset.select(range(10)),
                                             dataset.select(range(10, len(dataset)))])
    for table in (dataset.select(picked), chunked.select(picked)):
        values, offsets = flatten(table.with_format("arrow")["input_ids"])
        want_values, want_offsets = loop_flatten([features["input_ids"][i] for i in picked])
        assert (values.tolist(), offsets.tolist()) == (want_values, want_offsets)


def test_row_offsets_of_nested_offset_mapping(features):
    """Post-processing reads only the offsets of `offset_mapping` (lists of [start, end])."""
    column = pa.array(features["offset_mapping"])
    assert row_offsets(column).tolist() == loop_flatten(features["offset_mapping"])[1]


def test_null_and_empty_rows_hold_no_values():
    values, offsets = flatten(pa.array([[3, 4], None, [], [5]], pa.list_(pa.int32())))
    assert values.tolist() == [3, 4, 5]
    assert offsets.tolist() == [0, 2, 2, 2, 3]
    for empty in (pa.array([]), pa.array([], pa.list_(pa.int64())),
                  pa.chunked_array([], pa.list_(pa.int8()))):
        values, offsets = flatten(empty)
        assert values.tolist() == [] and offsets.tolist() == [0]
        assert values.dtype == np.int64 and offsets.dtype == np.int64


def test_example_rows_equal_the_loop(examples, features):
    ids = examples["id"]
    assert len(features["example_id"]) > len(ids)  # some examples have several windows
    rows = example_rows(ids, features["example_id"])
    assert rows.dtype == np.int64
    assert rows.tolist() == [ids.index(e) for e in features["example_id"]]


def test_one_error_for_a_feature_of_an_unknown_example(examples, features):
    """post-processing and chunking refuse it with the same message."""
    some = {name: column[:5] for name, column in examples.items()}
    stray = next(e for e in features["example_id"] if e not in some["id"])
    with pytest.raises(InvalidInputError) as direct:
        example_rows(some["id"], features["example_id"])
    with pytest.raises(InvalidInputError) as chunked:
        list(iter_example_chunks(some, features, chunk_examples=2))
    assert str(direct.value) == str(chunked.value) == (
        f"record {stray!r}, field 'example_id': feature example_id {stray!r} is not among the "
        "5 examples. Pass the examples together with exactly the features built from them.")
    assert direct.value.record == stray
