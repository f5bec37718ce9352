"""Fixtures for the serving tests: a real MiniLM QA model on disk, real SQuAD questions, and a
running `python -m pipeline serve` (KServe's model server) on a free loopback port."""

from __future__ import annotations

import json

import pytest

from tests.conftest import REPO

pytest.importorskip("kserve")

# windows as the tiny profile makes them: several per long SQuAD context
ARGS = ["--max-length", "128", "--doc-stride", "64", "--n-best", "20", "--max-answer-length", "50",
        "--max-batch-size", "8"]


@pytest.fixture(scope="session")
def qa_model_dir(tmp_path_factory, minilm_path) -> str:
    """all-MiniLM-L6-v2 with a seeded, untrained QA head, saved as fine-tune saves a model.

    Its answers are poor but deterministic; the tests compare the server with the in-process
    pipeline code, so any fixed model will do (the trained one is in test_trained_model.py).
    """
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForQuestionAnswering.from_pretrained(minilm_path)
    path = tmp_path_factory.mktemp("qa-model")
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(minilm_path).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def squad_rows() -> list[dict]:
    """The SQuAD v1.1 sample shipped in data/ (CC BY-SA 4.0): 721 real questions."""
    from components.qa.squad_records import parse_squad_json

    path = REPO / "data" / "squad-sample" / "validation.json"
    return parse_squad_json(path.read_text(encoding="utf-8"), str(path))


@pytest.fixture(scope="session")
def answerer(qa_model_dir):
    """The in-process reference: the same config as the server's ARGS."""
    from components.qa.serving import QAAnswerer, ServingConfig

    return QAAnswerer.from_pretrained(qa_model_dir, ServingConfig(
        max_length=128, doc_stride=64, n_best=20, max_answer_length=50, max_batch_size=8))


@pytest.fixture(scope="module")
def server(qa_model_dir):
    from components.serving.server import LocalServer

    with LocalServer(qa_model_dir, "qa", ARGS) as running:
        yield running


def post(url: str, body, headers: dict | None = None, timeout: float = 120):
    """(status, decoded JSON body) of a POST; JSON-encodes dict bodies."""
    import urllib.error
    import urllib.request

    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={
        "Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def v2_body(questions: list[str], contexts: list[str]) -> dict:
    return {"id": "t", "inputs": [
        {"name": "question", "shape": [len(questions)], "datatype": "BYTES", "data": questions},
        {"name": "context", "shape": [len(contexts)], "datatype": "BYTES", "data": contexts}]}


def v2_answers(body: dict) -> list[dict]:
    """The V2 response as V1-style dicts ({answer, score, start, end}), -1 offsets as None."""
    out = {o["name"]: o["data"] for o in body["outputs"]}
    return [{"answer": a, "score": s, "start": None if b < 0 else b, "end": None if e < 0 else e}
            for a, s, b, e in zip(out["answer"], out["score"], out["start"], out["end"])]
