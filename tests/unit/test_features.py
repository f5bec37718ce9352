"""Feature building on the real SQuAD dev sets and on hand-written edge cases."""

import pytest

from components.qa.answers import check_answers
from components.qa.errors import InvalidInputError
from components.qa.features import prepare_train_features, prepare_validation_features
from components.qa.metrics import normalize_answer
from components.qa.squad_records import parse_squad_json
from tests.conftest import columns, example


def decode(context, offsets, start, end):
    return context[offsets[start][0]:offsets[end][1]]


def labelled_spans(batch, tokenizer, **kwargs):
    """(example row, decoded label text or None for CLS) per feature."""
    train = prepare_train_features(batch, tokenizer, **kwargs)
    valid = prepare_validation_features(batch, tokenizer, **kwargs)
    assert train["input_ids"] == valid["input_ids"]
    index = {qid: i for i, qid in enumerate(batch["id"])}
    out = []
    for i, (s, e) in enumerate(zip(train["start_positions"], train["end_positions"])):
        row = index[valid["example_id"][i]]
        cls = valid["cls_index"][i]
        if s == e == cls:
            out.append((row, None))
        else:
            out.append((row, decode(batch["context"][row], valid["offset_mapping"][i], s, e)))
    return out, train, valid


def test_dev_v1_every_labelled_window_decodes_to_the_gold_answer(dev_v1_rows, tokenizer):
    batch = columns(dev_v1_rows)
    spans, train, valid = labelled_spans(batch, tokenizer, max_length=384, doc_stride=128)
    assert len(train["input_ids"]) == len(valid["input_ids"]) == 5103
    exact = inside = 0
    for row, text in spans:
        if text is None:
            continue
        gold = batch["answers"][row]["text"][0]
        if normalize_answer(text) == normalize_answer(gold):
            exact += 1
        else:
            assert gold in text, (batch["id"][row], gold, text)  # an answer edge inside a token
            inside += 1
    assert inside == 26  # e.g. "gold" in "golden", "Japan" in "Japanese"
    assert exact == 5103 - 26 - sum(text is None for _, text in spans)
    # every example has at least one labelled window (every answer here fits in one)
    labelled = {row for row, text in spans if text is not None}
    assert len(labelled) == len(dev_v1_rows) == 4961


def test_dev_v1_features_are_unpadded_and_offsets_cover_only_the_context(dev_v1_rows, tokenizer):
    batch = columns(dev_v1_rows[:200])
    valid = prepare_validation_features(batch, tokenizer)
    for ids, mask, offsets, types in zip(valid["input_ids"], valid["attention_mask"],
                                         valid["offset_mapping"], valid["token_type_ids"]):
        assert len(ids) <= 384 and all(mask) and ids[-1] == tokenizer.sep_token_id
        assert offsets[0] is None and offsets[-1] is None  # CLS, final SEP
        for offset, token_type in zip(offsets, types):
            assert (offset is not None) == (token_type == 1 and offset is not offsets[-1])


def test_dev_v2_unanswerable_examples_get_cls_labels(dev_v2_path, tokenizer):
    rows = parse_squad_json(dev_v2_path.read_text(encoding="utf-8"), str(dev_v2_path))
    assert len(rows) == 534 and sum(not r["answers"]["text"] for r in rows) == 246
    batch = columns(rows)
    spans, train, _ = labelled_spans(batch, tokenizer)
    for row, text in spans:
        if not batch["answers"][row]["text"]:
            assert text is None
        else:
            assert text is None or batch["answers"][row]["text"][0] in text


def test_answer_at_first_and_last_context_token(tokenizer):
    context = "Warsaw is the capital of Poland"
    for answer in ("Warsaw", "Poland"):
        spans, _, _ = labelled_spans(columns([example(context, "Which city?", answer)]), tokenizer)
        assert [text for _, text in spans] == [answer]


def test_answer_cut_by_a_window_boundary_is_labelled_only_where_whole(tokenizer):
    answer = "golden retriever dog"
    partial_windows = 0
    for filler in range(20, 40):  # slide the answer across window boundaries
        context = " ".join(["word"] * filler + answer.split() + ["word"] * 40)
        a0 = context.index(answer)
        batch = columns([example(context, "What breed?", answer)])
        spans, train, valid = labelled_spans(batch, tokenizer, max_length=48, doc_stride=16)
        texts = [text for _, text in spans]
        assert answer in texts and all(t in (None, answer) for t in texts)  # never clipped
        for i, offsets in enumerate(valid["offset_mapping"]):
            ctx = [o for o in offsets if o]
            holds_part = any(a0 <= o[0] < a0 + len(answer) for o in ctx)
            holds_all = ctx[0][0] <= a0 and ctx[-1][1] >= a0 + len(answer)
            if holds_part and not holds_all:
                partial_windows += 1
                assert train["start_positions"][i] == train["end_positions"][i] == 0
    assert partial_windows > 0


def test_accents_and_non_latin_scripts(tokenizer):
    cases = [("Le café est à Montréal, près du fleuve.", "Où est le café?", "Montréal"),
             ("東京は日本の首都です。人口は多い。", "首都は?", "東京"),
             ("Москва — столица России.", "Столица?", "Москва")]
    for context, question, answer in cases:
        spans, _, _ = labelled_spans(columns([example(context, question, answer)]), tokenizer)
        assert spans[0][1] == answer


def test_answer_text_occurring_twice_uses_the_given_start(tokenizer):
    context = "Paris is big. Many people love Paris in spring."
    second = context.rindex("Paris")
    batch = columns([example(context, "Which city is loved?", "Paris", start=second)])
    train = prepare_train_features(batch, tokenizer)
    valid = prepare_validation_features(batch, tokenizer)
    start = train["start_positions"][0]
    assert valid["offset_mapping"][0][start][0] == second


def test_context_shorter_than_question(tokenizer):
    batch = columns([example("Yes.", "Is this a very long question about whether the answer is yes?", "Yes")])
    spans, _, _ = labelled_spans(batch, tokenizer)
    assert spans == [(0, "Yes")]


def test_left_padding_tokenizer_swaps_question_and_context(minilm_path):
    from transformers import AutoTokenizer

    left = AutoTokenizer.from_pretrained(minilm_path, padding_side="left")
    context = "The Amazon rainforest covers much of the Amazon basin of South America."
    batch = columns([example(context, "What does it cover?", "much of the Amazon basin")])
    spans, train, valid = labelled_spans(batch, left)
    assert spans[0][1] == "much of the Amazon basin"
    # context first: its tokens come right after CLS
    assert valid["offset_mapping"][0][1] is not None
    padded = prepare_train_features(batch, left, max_length=64, doc_stride=16, pad_to_max_length=True)
    assert len(padded["input_ids"][0]) == 64 and padded["input_ids"][0][0] == left.pad_token_id


def test_pad_to_max_length_keeps_labels(tokenizer):
    batch = columns([example("Warsaw is the capital of Poland", "Which country?", "Poland")])
    plain = prepare_train_features(batch, tokenizer)
    padded = prepare_train_features(batch, tokenizer, max_length=64, doc_stride=16, pad_to_max_length=True)
    assert len(plain["input_ids"][0]) < 64 == len(padded["input_ids"][0])
    assert plain["start_positions"] == padded["start_positions"]
    valid = prepare_validation_features(batch, tokenizer, max_length=64, doc_stride=16, pad_to_max_length=True)
    assert valid["offset_mapping"][0][-1] is None


def test_leading_whitespace_of_questions_is_stripped(tokenizer):
    a = prepare_train_features(columns([example("A cat sat.", "   Who sat?", "A cat")]), tokenizer)
    b = prepare_train_features(columns([example("A cat sat.", "Who sat?", "A cat")]), tokenizer)
    assert a == b


def test_question_too_long_for_the_stride_is_a_clear_error(tokenizer):
    batch = columns([example("short context", "why " * 300, "short", qid="long-q")])
    with pytest.raises(InvalidInputError, match=r"record 'long-q', field 'question'.*doc_stride"):
        prepare_train_features(batch, tokenizer, max_length=384, doc_stride=128)
    with pytest.raises(InvalidInputError, match="long-q"):
        prepare_validation_features(batch, tokenizer, max_length=384, doc_stride=128)


@pytest.mark.parametrize("mutate, field", [
    (lambda b: b.pop("context"), "context"),
    (lambda b: b.__setitem__("question", [None]), "question"),
    (lambda b: b.__setitem__("context", ["   "]), "context"),
    (lambda b: b.__setitem__("answers", [{"text": ["x"]}]), "answers"),
    (lambda b: b.__setitem__("answers", [{"text": ["x"], "answer_start": ["3"]}]), "answers"),
])
def test_missing_or_mistyped_columns(tokenizer, mutate, field):
    batch = columns([example("A cat sat.", "Who sat?", "A cat")])
    mutate(batch)
    with pytest.raises(InvalidInputError, match=f"field '{field}'"):
        prepare_train_features(batch, tokenizer)


def test_answer_start_policies(tokenizer):
    rows = [example("The cat sat on the mat.", "Who?", "cat", qid="ok"),
            example("The dog sat. The dog ran.", "Who ran?", "dog", start=3, qid="off-by-one"),
            example("The bird flew.", "Who?", "fish", start=4, qid="absent")]
    batch = columns(rows)
    with pytest.raises(InvalidInputError, match=r"record 'off-by-one', field 'answers'.*repair"):
        prepare_train_features(batch, tokenizer)
    repaired, report = check_answers(batch, policy="repair")
    assert repaired["id"] == ["ok", "off-by-one"]
    assert repaired["answers"][1]["answer_start"] == [4]
    assert (report.repaired, report.dropped, report.dropped_ids) == (1, 1, ["absent"])
    dropped, report = check_answers(batch, policy="drop")
    assert dropped["id"] == ["ok"] and report.dropped == 2
    features = prepare_train_features(batch, tokenizer, answer_policy="repair")
    assert len(features["input_ids"]) == 2


@pytest.mark.parametrize("split", ["train", "validation"])
def test_map_features_writes_what_datasets_would_infer(dev_v1_rows, tokenizer, split):
    """map_features hands datasets a typed Arrow table: same schema and values as letting
    datasets infer the plain builder's lists (None offsets included)."""
    import datasets

    from components.io.featurize import map_features

    builder = {"train": prepare_train_features, "validation": prepare_validation_features}[split]
    examples = datasets.Dataset.from_list(dev_v1_rows[:300])
    kwargs = {"tokenizer": tokenizer, "max_length": 128, "doc_stride": 48}
    inferred = examples.map(builder, batched=True, batch_size=100, fn_kwargs=kwargs,
                            remove_columns=examples.column_names)
    typed = map_features(examples, tokenizer, split, 128, 48, batch_size=100)
    assert typed.features == inferred.features
    assert typed.data.schema == inferred.data.schema
    assert typed.to_dict() == inferred.to_dict()
    assert len(typed) > 300  # windows, not examples


@pytest.mark.parametrize("padding_side, pad", [("right", False), ("right", True), ("left", True)])
def test_validation_table_equals_the_list_builder(dev_v1_rows, minilm_path, padding_side, pad):
    """The Arrow table built from flat buffers holds what the list builder returns, for
    every layout: long contexts (several windows), a left-padding tokenizer, fixed-length
    padding (context offsets null around the padding) and an empty batch."""
    from transformers import AutoTokenizer

    from components.qa.features import as_arrow, validation_features_table

    tokenizer = AutoTokenizer.from_pretrained(minilm_path, padding_side=padding_side)
    batch = columns(dev_v1_rows[:40])
    kwargs = {"max_length": 96, "doc_stride": 32, "pad_to_max_length": pad}
    table = validation_features_table(batch, tokenizer, **kwargs)
    lists = prepare_validation_features(batch, tokenizer, **kwargs)
    assert len(table) > 40  # several windows per example
    assert table.schema == as_arrow(lists).schema
    offsets = [[None if o is None else list(o) for o in row] for row in lists["offset_mapping"]]
    assert table.to_pydict() == dict(lists, offset_mapping=offsets)
    empty = validation_features_table({"id": [], "question": [], "context": []}, tokenizer,
                                      **kwargs)
    assert len(empty) == 0 and empty.schema == table.schema


def test_an_empty_batch_gives_empty_columns(tokenizer):
    empty = {"id": [], "question": [], "context": [], "answers": []}
    train = prepare_train_features(empty, tokenizer)
    assert train == {"input_ids": [], "token_type_ids": [], "attention_mask": [],
                     "start_positions": [], "end_positions": []}
    assert prepare_validation_features(empty, tokenizer)["offset_mapping"] == []
