"""QAAnswerer, the server's pure core, in process: the evaluate step's answers for the same
settings (long contexts in several windows), clear errors, and the ONNX Runtime backend."""

from __future__ import annotations

import pytest

from components.qa.errors import InvalidInputError
from components.qa.serving import QAAnswerer, ServingConfig


def test_answers_are_the_evaluate_steps(answerer, squad_rows):
    from components.qa.features import prepare_validation_features
    from components.qa.inference import evaluate_qa_model

    rows = sorted(squad_rows, key=lambda r: -len(r["context"]))[:3] + squad_rows[:3]
    examples = {k: [r[k] for r in rows] for k in ("id", "question", "context", "answers")}
    features = prepare_validation_features(examples, answerer.tokenizer, 128, 64)
    assert len(features["input_ids"]) > 2 * len(rows)  # long contexts: several windows
    _, evaluated = evaluate_qa_model(answerer.model, examples, features, batch_size=32,
                                     n_best=20, max_answer_length=50)
    served = answerer.answer(examples["question"], examples["context"])
    for row, got in zip(rows, served):
        want = evaluated[row["id"]]
        assert (got["answer"], got["start"], got["end"]) == (want["text"], want["start"], want["end"])
        assert row["context"][got["start"]:got["end"]] == got["answer"]


def test_errors_name_the_row_and_field(answerer):
    with pytest.raises(InvalidInputError, match=r"record 'instances\[1\]', field 'context'"):
        answerer.answer(["Who?", "Where?"], ["Paris is a city.", ""])
    with pytest.raises(InvalidInputError, match=r"record 'inputs\[0\]', field 'question'"):
        answerer.answer(["why " * 120], ["Paris is a city."], where="inputs")
    with pytest.raises(InvalidInputError, match="9 questions in one request, above the limit of 8"):
        answerer.answer(["Who?"] * 9, ["Paris."] * 9)
    assert answerer.answer([], []) == []


def test_config_refuses_bad_settings():
    with pytest.raises(InvalidInputError, match="doc_stride=128 must be below max_length=128"):
        ServingConfig(max_length=128, doc_stride=128, n_best=20, max_answer_length=30)
    with pytest.raises(InvalidInputError, match="unknown backend 'tensorrt'"):
        ServingConfig(max_length=128, doc_stride=64, n_best=20, max_answer_length=30,
                      backend="tensorrt")


@pytest.mark.slow  # exports the model to ONNX
def test_onnxruntime_backend_gives_the_same_answers(qa_model_dir, answerer, squad_rows):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    import dataclasses

    ort = QAAnswerer.from_pretrained(qa_model_dir, dataclasses.replace(
        answerer.config, backend="onnxruntime"))
    rows = sorted(squad_rows, key=lambda r: -len(r["context"]))[:2] + squad_rows[:4]
    questions, contexts = [r["question"] for r in rows], [r["context"] for r in rows]
    for got, want in zip(ort.answer(questions, contexts), answerer.answer(questions, contexts)):
        assert (got["answer"], got["start"], got["end"]) == (want["answer"], want["start"], want["end"])
        assert got["score"] == pytest.approx(want["score"], abs=1e-3)
