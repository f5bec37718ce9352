"""KServe's model server with our predictor, over real HTTP on loopback (V1 and V2), against
the in-process pipeline code: same answers, 400s for bad requests, concurrency, SIGTERM."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tests.serving.conftest import ARGS, post, v2_answers, v2_body

pytestmark = pytest.mark.slow  # starts a model server (~20 s)


def pick(rows: list[dict], n: int, long_first: bool = True) -> list[dict]:
    """n SQuAD rows, the longest contexts first (several 128-token windows each)."""
    return sorted(rows, key=lambda r: -len(r["context"]))[:n] if long_first else rows[:n]


def same(served: list[dict], expected: list[dict]) -> None:
    for got, want in zip(served, expected, strict=True):
        assert (got["answer"], got["start"], got["end"]) == (want["answer"], want["start"], want["end"])
        assert got["score"] == pytest.approx(want["score"], rel=1e-4, abs=1e-4)


def test_v1_and_v2_give_the_pipeline_answers(server, answerer, squad_rows):
    rows = pick(squad_rows, 4) + squad_rows[:4]
    questions, contexts = [r["question"] for r in rows], [r["context"] for r in rows]
    expected = answerer.answer(questions, contexts)
    assert len({len(r["context"]) for r in rows}) > 1 and max(len(c) for c in contexts) > 2000

    status, v1 = post(f"{server.url}/v1/models/qa:predict", {"instances": [
        {"question": q, "context": c} for q, c in zip(questions, contexts)]})
    assert status == 200, v1
    same(v1["predictions"], expected)
    for p, context in zip(v1["predictions"], contexts):
        assert context[p["start"]:p["end"]] == p["answer"] != ""

    status, v2 = post(f"{server.url}/v2/models/qa/infer", v2_body(questions, contexts))
    assert status == 200, v2
    assert v2["model_name"] == "qa" and v2["id"] == "t"
    types = {o["name"]: (o["datatype"], o["shape"]) for o in v2["outputs"]}
    assert types == {"answer": ("BYTES", [8]), "score": ("FP32", [8]), "start": ("INT64", [8]),
                     "end": ("INT64", [8])}
    same(v2_answers(v2), expected)


def test_health_readiness_and_metadata_as_kserve_serves_them(server):
    def get(path: str):
        with urllib.request.urlopen(server.url + path, timeout=30) as r:
            return r.status, json.loads(r.read())

    assert get("/v2/health/live") == (200, {"live": True})
    assert get("/v2/health/ready") == (200, {"ready": True})
    assert get("/v1/models/qa") == (200, {"name": "qa", "ready": True})
    status, meta = get("/v2/models/qa")
    assert status == 200 and [i["name"] for i in meta["inputs"]] == ["question", "context"]
    assert {o["name"]: o["datatype"] for o in meta["outputs"]}["score"] == "FP32"


def v2_binary(question: bytes, context: bytes) -> tuple[bytes, dict]:
    """An Open Inference Protocol request with binary tensor data (KServe's own encoder)."""
    from kserve import InferInput, InferRequest

    inputs = []
    for name, value in (("question", question), ("context", context)):
        tensor = InferInput(name, [1], "BYTES")
        tensor.set_data_from_numpy(np.array([value], dtype=np.object_), binary_data=True)
        inputs.append(tensor)
    body, json_length = InferRequest(model_name="qa", infer_inputs=inputs, request_id="b").to_rest()
    return body, {"Content-Type": "application/octet-stream",
                  "Inference-Header-Content-Length": str(json_length)}


CONTEXT = "The Amazon rainforest covers most of the Amazon basin of South America."
OK = {"question": "What does the rainforest cover?", "context": CONTEXT}
BAD_V1 = {
    "missing context": ({"instances": [OK, {"question": "Where?"}]},
                        "record 'instances[1]', field 'context'"),
    "empty context": ({"instances": [OK, {"question": "Where?", "context": "  "}]},
                      "record 'instances[1]', field 'context': the context is empty"),
    "question too long": ({"instances": [OK, {"question": "why " * 120, "context": CONTEXT}]},
                          "record 'instances[1]', field 'question': the question has"),
    "question not text": ({"instances": [{"question": 7, "context": CONTEXT}]},
                          "record 'instances[0]', field 'question': expected a string, got int"),
    "batch above the limit": ({"instances": [OK] * 9},
                              "field 'instances': 9 questions in one request, above the limit of 8"),
    "no instances": ({"inputs": [OK]}, "field 'instances'"),
}


@pytest.mark.parametrize("case", sorted(BAD_V1))
def test_bad_v1_requests_get_a_400_naming_instance_and_field(server, case):
    body, message = BAD_V1[case]
    status, answer = post(f"{server.url}/v1/models/qa:predict", body)
    assert status == 400 and message in answer["error"], answer
    assert "Traceback" not in answer["error"]


def test_bad_v2_requests_get_a_400(server):
    body, headers = v2_binary(b"Where is \xff\xfe it?", CONTEXT.encode())
    status, answer = post(f"{server.url}/v2/models/qa/infer", body, headers)
    # KServe decodes binary tensors before the predictor: the row cannot be named
    assert status == 400 and "a BYTES input holds text that is not UTF-8" in answer["error"], answer

    missing = v2_body(["Where?"], [CONTEXT])
    missing["inputs"][1]["name"] = "passage"
    status, answer = post(f"{server.url}/v2/models/qa/infer", missing)
    assert status == 400 and "field 'context': the request has no input \"context\"" in answer["error"]

    body, headers = v2_binary(OK["question"].encode(), CONTEXT.encode())  # the same path, valid
    status, answer = post(f"{server.url}/v2/models/qa/infer", body, headers)
    assert status == 200 and v2_answers(answer)[0]["answer"], answer


def test_non_utf8_json_gets_kserves_400(server):
    status, answer = post(f"{server.url}/v1/models/qa:predict",
                          b'{"instances": [{"question": "Wh\xffo?", "context": "x"}]}')
    assert status == 400 and "not valid UTF-8" in answer["error"]


def test_the_server_keeps_serving_after_bad_requests(server, answerer):
    for body, _ in BAD_V1.values():
        post(f"{server.url}/v1/models/qa:predict", body)
    status, answer = post(f"{server.url}/v1/models/qa:predict", {"instances": [OK]})
    assert status == 200
    same(answer["predictions"], answerer.answer([OK["question"]], [CONTEXT]))


def test_eight_clients_200_requests_and_a_malformed_one(server, answerer, squad_rows):
    rows = squad_rows[:200]
    want = [a for i in range(0, 200, 8) for a in answerer.answer(  # in batches of its limit
        [r["question"] for r in rows[i:i + 8]], [r["context"] for r in rows[i:i + 8]])]
    bodies = [{"instances": [{"question": r["question"], "context": r["context"]}]} for r in rows]
    bodies.insert(101, {"instances": [{"question": "Where?"}]})  # malformed, mid-stream

    def send(body):
        return post(f"{server.url}/v1/models/qa:predict", body)

    with ThreadPoolExecutor(max_workers=8) as clients:
        results = list(clients.map(send, bodies))
    bad = results.pop(101)
    assert bad[0] == 400 and "record 'instances[0]', field 'context'" in bad[1]["error"]
    assert [status for status, _ in results] == [200] * 200
    same([body["predictions"][0] for _, body in results], want)


def test_sigterm_lets_requests_in_flight_finish(qa_model_dir, squad_rows):
    import psutil

    from components.serving.server import LocalServer

    rows = sorted(squad_rows, key=lambda r: -len(r["context"]))[:2]  # ~20 windows a request
    body = {"instances": [{"question": r["question"], "context": r["context"]} for r in rows]}
    server = LocalServer(qa_model_dir, "qa", [*ARGS, "--grace-period", "300"]).__enter__()
    results: list = []

    def client():
        status, answer = post(f"{server.url}/v1/models/qa:predict", body)
        results.append((status, answer, time.monotonic()))

    clients = [threading.Thread(target=client) for _ in range(4)]
    for c in clients:
        c.start()
    process = psutil.Process(server.process.pid)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and sum(
            c.status == psutil.CONN_ESTABLISHED and c.laddr.port == server.port
            for c in process.connections(kind="tcp")) < 4:
        time.sleep(0.02)
    signalled = time.monotonic()
    code = server.stop()
    for c in clients:
        c.join()
    assert code == 0, server.log()[-2000:]
    assert [status for status, _, _ in results] == [200] * 4
    assert all(len(answer["predictions"]) == 2 for _, answer, _ in results)
    assert max(done for _, _, done in results) > signalled  # they were in flight
    assert "model server stopped" in server.log()
