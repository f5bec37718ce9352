"""The KServe predictor: `kserve.Model` over `components.qa.serving.QAAnswerer`.

Protocols (both KServe's own; the routes are KServe's, see kserve
python/kserve/kserve/protocol/rest/v1_endpoints.py and v2_endpoints.py, tag v0.21.0):

- V1 `POST /v1/models/<name>:predict`
  `{"instances": [{"question": "...", "context": "..."}]}` ->
  `{"predictions": [{"answer": "...", "score": 13.2, "start": 0, "end": 6}]}`
- Open Inference Protocol (V2) `POST /v2/models/<name>/infer`: BYTES inputs `question` and
  `context` (shape [N] or [N, 1]) -> BYTES `answer`, FP32 `score`, INT64 `start`/`end`
  (-1 where the answer is "").

A bad request raises `kserve.errors.InvalidInput`, which KServe's REST server answers with
400 `{"error": "<message>"}` (kserve/errors.py invalid_input_handler); the message is our
`InvalidInputError`'s, naming the row and field. Forward passes run on one worker thread, so
the event loop keeps answering health checks while a batch is computed.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from kserve import InferOutput, InferRequest, InferResponse, Model
from kserve.errors import InvalidInput

from components.qa.errors import InvalidInputError
from components.qa.serving import QAAnswerer, ServingConfig

V2_INPUTS = ("question", "context")


class QAModel(Model):
    """Extractive question answering from a `save_pretrained` directory."""

    def __init__(self, name: str, model_dir: str, config: ServingConfig):
        super().__init__(name)
        self.model_dir, self.config = model_dir, config
        self.answerer: QAAnswerer | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qa-forward")

    def load(self) -> bool:
        self.answerer = QAAnswerer.from_pretrained(self.model_dir, self.config)
        self.ready = True
        return self.ready

    def stop(self):
        self._executor.shutdown(wait=True)  # in-flight batches finish

    def get_input_types(self) -> list[dict]:
        return [{"name": n, "datatype": "BYTES", "shape": [-1]} for n in V2_INPUTS]

    def get_output_types(self) -> list[dict]:
        return [{"name": "answer", "datatype": "BYTES", "shape": [-1]},
                {"name": "score", "datatype": "FP32", "shape": [-1]},
                {"name": "start", "datatype": "INT64", "shape": [-1]},
                {"name": "end", "datatype": "INT64", "shape": [-1]}]

    async def predict(self, payload: dict | InferRequest, headers: dict | None = None,
                      response_headers: dict | None = None) -> dict | InferResponse:
        if isinstance(payload, InferRequest):
            questions, contexts = v2_pairs(payload)
            answers = await self._answer(questions, contexts, "inputs")
            return v2_response(self.name, payload, answers)
        if isinstance(payload, (bytes, str)):  # KServe decodes JSON bodies only
            content_type = (headers or {}).get("content-type", "none")
            raise _bad(f"the body is not JSON (content-type: {content_type})",
                       fix="Send JSON with the header Content-Type: application/json.")
        questions, contexts = v1_pairs(payload)
        return {"predictions": await self._answer(questions, contexts, "instances")}

    async def _answer(self, questions: list, contexts: list, where: str) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, self.answerer.answer,
                                              questions, contexts, where)
        except InvalidInputError as e:
            raise InvalidInput(str(e)) from None


def _bad(problem: str, fix: str, record: str | None = None, field: str | None = None):
    return InvalidInput(str(InvalidInputError(problem, fix=fix, record=record, field=field)))


def v1_pairs(payload: Any) -> tuple[list, list]:
    """(questions, contexts) of a V1 body; every instance an object with both fields."""
    instances = payload.get("instances") if isinstance(payload, dict) else None
    if not isinstance(instances, list):
        raise _bad('the body has no "instances" list', field="instances",
                   fix='Send {"instances": [{"question": "...", "context": "..."}]}.')
    questions, contexts = [], []
    for i, instance in enumerate(instances):
        if not isinstance(instance, dict):
            raise _bad(f"expected an object, got {type(instance).__name__}",
                       record=f"instances[{i}]", field="instances",
                       fix='Send {"question": "...", "context": "..."} per instance.')
        for name in V2_INPUTS:
            if name not in instance:
                raise _bad(f'the instance has no "{name}"', record=f"instances[{i}]",
                           field=name, fix='Send {"question": "...", "context": "..."}.')
        questions.append(instance["question"])
        contexts.append(instance["context"])
    return questions, contexts


def v2_pairs(request: InferRequest) -> tuple[list, list]:
    """(questions, contexts) of an Open Inference Protocol request: two BYTES tensors."""
    columns = {}
    for name in V2_INPUTS:
        tensor = request.get_input_by_name(name)
        if tensor is None:
            raise _bad(f'the request has no input "{name}" (it has '
                       f'{[t.name for t in request.inputs]})', field=name,
                       fix='Send BYTES inputs "question" and "context", one string per row.')
        if tensor.datatype != "BYTES":
            raise _bad(f'input "{name}" is {tensor.datatype}', field=name,
                       fix='Send it as datatype "BYTES".')
        try:
            values = tensor.as_numpy().reshape(-1).tolist()
        except ValueError as e:  # data that does not fit its shape
            raise _bad(f'input "{name}" does not match its shape {tensor.shape}: {e}',
                       field=name, fix="Give shape [N] with N strings.") from None
        for i, value in enumerate(values):
            if isinstance(value, bytes):
                try:
                    values[i] = value.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise _bad(f"the text is not UTF-8 ({e.reason} at byte {e.start})",
                               record=f"inputs[{i}]", field=name,
                               fix="Encode the text as UTF-8.") from None
        columns[name] = values
    if len(columns["question"]) != len(columns["context"]):
        raise _bad(f'{len(columns["question"])} questions but {len(columns["context"])} '
                   f'contexts', field="context", fix="Send one context per question.")
    return columns["question"], columns["context"]


def v2_response(model_name: str, request: InferRequest,
                answers: list[dict[str, Any]]) -> InferResponse:
    n = len(answers)
    scores = [a["score"] if a["score"] is not None else -math.inf for a in answers]
    outputs = [
        InferOutput("answer", [n], "BYTES", [a["answer"] for a in answers]),
        InferOutput("score", [n], "FP32", np.asarray(scores, np.float32).tolist()),
        InferOutput("start", [n], "INT64", [-1 if a["start"] is None else a["start"] for a in answers]),
        InferOutput("end", [n], "INT64", [-1 if a["end"] is None else a["end"] for a in answers]),
    ]
    response_id = request.id or str(uuid.uuid4())  # the V2 response requires one
    return InferResponse(response_id=response_id, model_name=model_name, infer_outputs=outputs,
                         use_binary_outputs=request.use_binary_outputs)
