"""Silent wrong results (issue #13): labels that point off their answer, a run trained on no
answer, answers with a leading space, the SQuAD v2.0 threshold. Real SQuAD text through
real (small, offline) tokenizers of several families: tests/tokenizer_families.py, through
the `tokenizer_family_dirs` fixture."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest

from components.qa.features import prepare_train_features
from components.qa.metrics import normalize_answer
from components.qa.training import QACollator
from tests.conftest import SQUAD_SAMPLE, columns

SAMPLE_TRAIN = SQUAD_SAMPLE / "train.json"


def sample_rows(count: int, skip: int = 0) -> list[dict]:
    """`count` answerable questions of the shipped SQuAD sample, one per paragraph."""
    rows = []
    for article in json.loads(SAMPLE_TRAIN.read_text(encoding="utf-8"))["data"]:
        for paragraph in article["paragraphs"]:
            qa = paragraph["qas"][0]
            rows.append({"id": qa["id"], "title": article["title"],
                         "context": paragraph["context"], "question": qa["question"],
                         "answers": {"text": [a["text"] for a in qa["answers"]],
                                     "answer_start": [a["answer_start"] for a in qa["answers"]]}})
    return rows[skip:skip + count]


def labelled_features(tokenizer, rows: list[dict], max_length: int = 256, doc_stride: int = 64
                      ) -> list[tuple[dict, str]]:
    """(feature, gold answer) for every window that holds its example's answer, built one
    example at a time so each feature knows its answer; unpadded, as the pipeline stores them."""
    out = []
    for row in rows:
        features = prepare_train_features(columns([row]), tokenizer, max_length=max_length,
                                          doc_stride=doc_stride)
        for i, start in enumerate(features["start_positions"]):
            cls = features["input_ids"][i].index(tokenizer.cls_token_id)
            if start != cls:
                out.append(({k: v[i] for k, v in features.items()}, row["answers"]["text"][0]))
    return out


def label_text(tokenizer, input_ids, start: int, end: int) -> str:
    return normalize_answer(tokenizer.decode(list(input_ids[start:end + 1]),
                                             skip_special_tokens=False))


def readable_features(tokenizer, rows: list[dict]) -> list[tuple[dict, str]]:
    """`labelled_features` whose stored tokens at the labels read the answer: token
    boundaries can widen one ("1990" inside "1990s"), and those prove nothing about padding."""
    return [(f, answer) for f, answer in labelled_features(tokenizer, rows)
            if label_text(tokenizer, f["input_ids"], f["start_positions"], f["end_positions"])
            == normalize_answer(answer)]


# --------------------------------------------------------------------------------------
# left-padding tokenizers: labels must stay on their tokens in every padded batch


@pytest.mark.parametrize("family", ["roberta-left", "roberta", "bert-cased"])
@pytest.mark.parametrize("pad", ["longest", "multiple_of_8", "max_length"])
def test_collated_batches_keep_labels_on_the_answer(tokenizer_family_dirs, family, pad):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_family_dirs[family])
    assert tokenizer.padding_side == ("left" if family.endswith("-left") else "right")
    pairs = readable_features(tokenizer, sample_rows(24))
    assert len(pairs) >= 12
    lengths = [len(f["input_ids"]) for f, _ in pairs]
    assert len(set(lengths)) > 4  # a batch of mixed lengths: most rows get padding
    collate = QACollator(tokenizer, pad_to_multiple_of=8 if pad == "multiple_of_8" else None,
                         max_length=256 if pad == "max_length" else None)
    for lo in range(0, len(pairs), 8):
        chunk = pairs[lo:lo + 8]
        batch = collate([dict(f, length=len(f["input_ids"])) for f, _ in chunk])
        assert "length" not in batch
        width = batch["input_ids"].shape[1]
        assert width == (256 if pad == "max_length" else
                         -(-max(len(f["input_ids"]) for f, _ in chunk) // 8) * 8
                         if pad == "multiple_of_8" else max(len(f["input_ids"]) for f, _ in chunk))
        got = [label_text(tokenizer, batch["input_ids"][j].tolist(),
                          int(batch["start_positions"][j]), int(batch["end_positions"][j]))
               for j in range(len(chunk))]
        assert got == [normalize_answer(answer) for _, answer in chunk]
        # the real tokens stay where the features (and inference) have them: from position 0
        for j, (f, _) in enumerate(chunk):
            n = len(f["input_ids"])
            assert batch["input_ids"][j, :n].tolist() == f["input_ids"]
            assert batch["attention_mask"][j].tolist() == [1] * n + [0] * (width - n)



def test_the_trainers_batches_keep_labels_on_the_answer(tokenizer_family_dirs, tmp_path):
    """The batches the Trainer really draws (length-grouped sampler, column selection,
    collator) for a left-padding tokenizer."""
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from components.qa.train_config import TrainConfig
    from components.qa.training import build_trainer

    path = tokenizer_family_dirs["roberta-left"]
    tokenizer = AutoTokenizer.from_pretrained(path)
    pairs = readable_features(tokenizer, sample_rows(24))
    features = datasets.Dataset.from_list([f for f, _ in pairs])
    trainer = build_trainer(AutoModelForQuestionAnswering.from_pretrained(path), tokenizer,
                            features, str(tmp_path), TrainConfig(per_device_train_batch_size=8,
                                                                 report_to="none", max_steps=1))
    wanted = sorted(normalize_answer(answer) for _, answer in pairs)
    got = []
    padded = 0
    for batch in trainer.get_train_dataloader():
        padded += int((batch["attention_mask"] == 0).sum())
        got += [label_text(tokenizer, batch["input_ids"][j].tolist(),
                           int(batch["start_positions"][j]), int(batch["end_positions"][j]))
                for j in range(len(batch["input_ids"]))]
    assert padded > 0
    assert sorted(got) == wanted

# --------------------------------------------------------------------------------------
# SentencePiece/Metaspace offsets include the space before a word: answers are stripped


def validation_examples(count: int = 24) -> datasets.Dataset:
    return datasets.Dataset.from_list(sample_rows(count, skip=40))


@pytest.mark.parametrize("family", ["xlmr", "roberta", "bert-cased"])
def test_gold_spans_come_back_without_edge_spaces(tokenizer_family_dirs, family):
    """Logits that point at the tokens covering each gold answer give the gold answer back,
    with no space at its edges, and start/end that cut exactly it out of the context."""
    import numpy as np
    from transformers import AutoTokenizer

    from components.qa.features import prepare_validation_features
    from components.qa.postprocess import postprocess_predictions

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_family_dirs[family])
    examples = validation_examples()
    features = prepare_validation_features(examples.to_dict(), tokenizer, max_length=256,
                                           doc_stride=64)
    width = max(map(len, features["input_ids"]))
    start = np.zeros((len(features["input_ids"]), width), dtype=np.float32)
    end = np.zeros_like(start)
    answers = {row["id"]: row["answers"] for row in examples}
    for f, (example_id, offsets) in enumerate(zip(features["example_id"],
                                                  features["offset_mapping"])):
        first = answers[example_id]["answer_start"][0]
        last = first + len(answers[example_id]["text"][0])
        tokens = [i for i, o in enumerate(offsets) if o is not None and o[0] < last and o[1] > first]
        if tokens:
            start[f, tokens[0]] = end[f, tokens[-1]] = 10.0
    predictions = postprocess_predictions(examples, datasets.Dataset.from_dict(features),
                                          start, end)
    contexts = {row["id"]: row["context"] for row in examples}
    texts = [p["text"] for p in predictions.values()]
    assert [t for t in texts if t != t.strip()] == []
    assert all(contexts[i][p["start"]:p["end"]] == p["text"] for i, p in predictions.items())
    exact = sum(p["text"] == answers[i]["text"][0] for i, p in predictions.items())
    assert exact >= len(texts) - 4  # token boundaries widen a few ("1990" in "1990s")


def test_a_sentencepiece_model_predicts_no_edge_spaces(tokenizer_family_dirs):
    """The whole evaluation path (features, forward pass, post-processing, scoring) with an
    XLM-R-style model: its answers start on "▁word" tokens, whose offsets hold the space."""
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from components.io.featurize import map_features
    from components.qa.inference import evaluate_qa_model

    path = tokenizer_family_dirs["xlmr"]
    tokenizer = AutoTokenizer.from_pretrained(path)
    examples = validation_examples()
    features = map_features(examples, tokenizer, "validation", 256, 64)
    raw = [(o[0], o[1]) for offsets in features["offset_mapping"] for o in offsets if o]
    context = examples[0]["context"]
    assert sum(context[a:a + 1] == " " for a, _ in raw if a < len(context)) > 0  # the trap is there
    model = AutoModelForQuestionAnswering.from_pretrained(path)
    metrics, predictions = evaluate_qa_model(model, examples, features, batch_size=16)
    texts = [p["text"] for p in predictions.values()]
    assert len(texts) == 24 and all(texts)
    assert [t for t in texts if t != t.strip()] == []
    assert all(c["text"] == c["text"].strip() for p in predictions.values() for c in p["n_best"])
    assert metrics["num_examples"] == 24


# --------------------------------------------------------------------------------------
# SQuAD v1.1 or v2.0: decided once at download, recorded, and a split of no answers refused

FORMATS = ("json", "jsonl", "parquet")


def write_split(folder: Path, split: str, rows: list[dict], fmt: str,
                version: str | None = None) -> None:
    """`rows` as {split}.json (nested SQuAD; `version` only if given), .jsonl or .parquet."""
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "json":
        doc = {"data": [{"title": row["title"], "paragraphs": [{"context": row["context"], "qas": [
            {"id": row["id"], "question": row["question"],
             "answers": [{"text": t, "answer_start": a} for t, a in
                         zip(row["answers"]["text"], row["answers"]["answer_start"])]}]}]}
            for row in rows]}
        if version is not None:
            doc["version"] = version
        (folder / f"{split}.json").write_text(json.dumps(doc), encoding="utf-8")
    elif fmt == "jsonl":
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows),
                                               encoding="utf-8")
    else:
        datasets.Dataset.from_list(rows).to_parquet(str(folder / f"{split}.parquet"))


def unanswered(rows: list[dict]) -> list[dict]:
    return [dict(r, answers={"text": [], "answer_start": []}) for r in rows]


def run_download(tmp_path: Path, source: Path, model_dir: str):
    from kfp import dsl

    from components.download import download

    out = {name: kind(uri=str(tmp_path / "out" / name)) for name, kind in
           (("train_data", dsl.Dataset), ("validation_data", dsl.Dataset),
            ("base_model", dsl.Model))}
    download(dataset=str(source), dataset_config="", dataset_revision="", train_split="train",
             validation_split="validation", max_train_samples=0, max_eval_samples=0,
             answer_policy="error", max_context_chars=1_000_000, model=model_dir, model_revision="",
             **out)
    return out


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_training_split_without_answers_is_refused(tmp_path, tokenizer_family_dirs, fmt):
    from components.qa.errors import InvalidInputError

    rows = sample_rows(12)
    write_split(tmp_path / "src", "train", unanswered(rows), fmt)  # no "version": not v1.1
    write_split(tmp_path / "src", "validation", rows[:4], fmt)
    with pytest.raises(InvalidInputError) as err:
        run_download(tmp_path, tmp_path / "src", tokenizer_family_dirs["bert-cased"])
    message = str(err.value)
    assert f"train.{fmt}" in message and "split 'train'" in message
    assert "none of the 12 training questions has an answer" in message
    assert "qas[].answers" in message  # the fix
    assert not (tmp_path / "out" / "train_data").exists()  # nothing published


@pytest.mark.parametrize("fmt", FORMATS)
def test_data_taken_as_v2_says_so_in_log_and_metadata(tmp_path, tokenizer_family_dirs, fmt,
                                                      capsys):
    rows = sample_rows(12)
    train = rows[:7] + unanswered(rows[7:10])
    validation = rows[10:12]  # all answered: the version still comes from the dataset
    write_split(tmp_path / "src", "train", train, fmt)
    write_split(tmp_path / "src", "validation", validation, fmt)
    out = run_download(tmp_path, tmp_path / "src", tokenizer_family_dirs["bert-cased"])
    log = capsys.readouterr().out
    assert "train: taken as SQuAD v2.0: 3 of 10 questions unanswerable" in log
    assert "validation: taken as SQuAD v2.0: 0 of 2 questions unanswerable" in log
    for name, unanswerable in (("train_data", 3), ("validation_data", 0)):
        assert out[name].metadata["squad_version"] == "v2.0"
        assert out[name].metadata["unanswerable"] == unanswerable


@pytest.mark.parametrize("declared,expected", [("v2.0", "v2.0"), ("1.1", "v1.1"), (None, "v1.1")])
def test_a_declared_version_counts_without_unanswerable_rows(tmp_path, tokenizer_family_dirs,
                                                             declared, expected, capsys):
    rows = sample_rows(8)
    write_split(tmp_path / "src", "train", rows[:6], "json", version=declared)
    write_split(tmp_path / "src", "validation", rows[6:], "json", version=declared)
    out = run_download(tmp_path, tmp_path / "src", tokenizer_family_dirs["bert-cased"])
    assert out["validation_data"].metadata["squad_version"] == expected
    assert ("taken as SQuAD v2.0 (the file declares version 'v2.0'): 0 of 2 questions "
            "unanswerable" in capsys.readouterr().out) == (expected == "v2.0")


# --------------------------------------------------------------------------------------
# the v2.0 null threshold: a parameter, recorded with the metrics the register step reads


def run_evaluate(tmp_path: Path, data, model_dir: str, threshold: float):
    from kfp import dsl

    from components.evaluate import evaluate
    from components.io.featurize import featurize

    features = tmp_path / f"features-{threshold}"
    featurize(data.path, model_dir, str(features), "validation", 256, 64)
    model = dsl.Model(uri=model_dir)
    out = {name: kind(uri=str(tmp_path / f"{name}-{threshold}")) for name, kind in
           (("metrics", dsl.Metrics), ("predictions", dsl.Dataset), ("report", dsl.Markdown))}
    evaluate(model=model, validation_data=data,
             validation_features=dsl.Dataset(uri=str(features)), n_best=20,
             max_answer_length=30, batch_size=16, null_score_diff_threshold=threshold, **out)
    return out


def test_v2_data_is_scored_as_v2_at_the_given_threshold(tmp_path, tokenizer_family_dirs):
    from kfp import dsl

    from components.qa.metrics import compute_squad_metrics
    from components.qa.postprocess import format_predictions

    rows = sample_rows(16, skip=60)
    data = dsl.Dataset(uri=str(tmp_path / "validation"))
    datasets.Dataset.from_list(rows).save_to_disk(data.path)  # every question answered
    data.metadata.update(squad_version="v2.0")  # ... of a v2.0 dataset (download says so)
    model_dir = tokenizer_family_dirs["bert-cased"]
    at_zero = run_evaluate(tmp_path, data, model_dir, 0.0)
    scores = at_zero["metrics"].metadata
    assert at_zero["metrics"].metadata["squad_version"] == "v2.0"
    assert {"exact", "f1", "HasAns_f1", "best_f1", "best_exact", "best_f1_thresh"} <= set(scores)
    assert "exact_match" not in scores
    assert scores["null_score_diff_threshold"] == 0.0
    # the figures are the official ones for these predictions at that threshold
    predictions = [json.loads(line) for line in Path(at_zero["predictions"].path).read_text()
                   .splitlines()]
    references = [{"id": r["id"], "answers": r["answers"]} for r in rows]
    official = compute_squad_metrics(
        format_predictions({p["id"]: p for p in predictions}, True), references, True,
        no_answer_threshold=0.0)
    assert scores["f1"] == pytest.approx(official["f1"])
    assert scores["best_f1"] == pytest.approx(official["best_f1"])
    assert scores["best_f1_thresh"] == pytest.approx(official["best_f1_thresh"])
    # a threshold above every null_score_diff answers every question: f1 is the span f1
    diffs = [p["null_score_diff"] for p in predictions]
    high = max(diffs) + 1.0
    answered = run_evaluate(tmp_path, data, model_dir, high)["metrics"].metadata
    assert answered["null_score_diff_threshold"] == high
    assert answered["f1"] == pytest.approx(answered["HasAns_f1"])
    if min(diffs) < 0 < max(diffs):  # some questions flip to "" at 0.0
        assert answered["f1"] != pytest.approx(scores["f1"])
    report = Path(at_zero["report"].path).read_text()
    assert ("`exact` and `f1` (the figures the register step gates on) answer \"no answer\" "
            "where null_score_diff > 0") in report
    assert f"pass `null_score_diff_threshold={scores['best_f1_thresh']:.4g}`" in report


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_the_threshold_must_be_a_finite_number(value):
    from components.qa.errors import InvalidInputError
    from pipeline.parameters import profile_parameters

    assert profile_parameters("tiny", {"null_score_diff_threshold": "-1.5"})[
        "null_score_diff_threshold"] == -1.5
    with pytest.raises(InvalidInputError, match="null_score_diff_threshold"):
        profile_parameters("tiny", {"null_score_diff_threshold": value})


@pytest.mark.slow
def test_a_v2_run_end_to_end_records_its_version_and_threshold(tmp_path):
    """kfp.local, tiny profile, on the sample with a third of its questions made unanswerable:
    the version travels from download to evaluate as metadata, and the registered metrics
    carry the threshold their f1 used."""
    from pipeline.local_run import run_local
    from pipeline.parameters import profile_parameters

    rows = sample_rows(72)
    source = tmp_path / "src"
    write_split(source, "train", [r if i % 3 else unanswered([r])[0] for i, r in
                                  enumerate(rows[:48])], "jsonl")
    write_split(source, "validation", rows[48:], "jsonl")  # answered only: v2.0 by the train split
    params = profile_parameters("tiny", {"dataset": str(source / "{split}.jsonl"),
                                         "null_score_diff_threshold": "0.5"})
    result = run_local(params, pipeline_root=str(tmp_path / "root"), cache=False)
    metrics = result["metrics"]
    assert metrics["squad_version"] == "v2.0"
    assert metrics["null_score_diff_threshold"] == 0.5
    assert {"exact", "f1", "best_f1", "best_f1_thresh"} <= set(metrics)
    record = json.loads(next((tmp_path / "root" / "model-registry" / "squad-qa")
                             .glob("*.json")).read_text())
    assert record["metadata"]["metrics"]["null_score_diff_threshold"] == 0.5
    assert record["metadata"]["metrics"]["f1"] == pytest.approx(metrics["f1"])


@pytest.mark.parametrize("family", ["bert-cased", "roberta-left"])
def test_features_without_an_answer_span_stop_before_training(tokenizer_family_dirs, tmp_path,
                                                              family):
    """Whatever let them through (a featurizer that finds no answer token, a caller of the
    library): features all labelled at CLS never reach the optimizer."""
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from components.qa.errors import InvalidInputError
    from components.qa.train_config import TrainConfig
    from components.qa.training import build_trainer, check_answer_labels

    path = tokenizer_family_dirs[family]
    tokenizer = AutoTokenizer.from_pretrained(path)
    rows = sample_rows(8)
    build = dict(tokenizer=tokenizer, max_length=256, doc_stride=64)
    none = datasets.Dataset.from_dict(prepare_train_features(columns(unanswered(rows)), **build))
    model = AutoModelForQuestionAnswering.from_pretrained(path)
    config = TrainConfig(per_device_train_batch_size=4, report_to="none", max_steps=1)
    with pytest.raises(InvalidInputError, match=f"none of the {len(none)} train features is "
                                                "labelled with an answer span"):
        build_trainer(model, tokenizer, none, str(tmp_path), config)
    some = datasets.Dataset.from_dict(prepare_train_features(columns(rows), **build))
    assert 0 < check_answer_labels(some, tokenizer.cls_token_id) <= len(some)
    # padded to max_length on the tokenizer's side: CLS is not at 0 for left padding
    padded = datasets.Dataset.from_dict(prepare_train_features(
        columns(unanswered(rows)), pad_to_max_length=True, **build))
    with pytest.raises(InvalidInputError, match="labelled with an answer span"):
        check_answer_labels(padded, tokenizer.cls_token_id)
