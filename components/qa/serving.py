"""Answer a batch of (question, context) pairs the way the evaluate step answers SQuAD.

    answerer = QAAnswerer.from_pretrained("model/", ServingConfig(max_length=384, doc_stride=128))
    answerer.answer(["Who won?"], ["Denver beat Carolina."])
    # [{'answer': 'Denver', 'score': 13.2, 'start': 0, 'end': 6}]

The features, the forward pass and the post-processing are the evaluate step's own
(`prepare_validation_features`, `predict_logits`, `postprocess_predictions`), so a model
server built on this returns, for the same settings, the evaluate step's prediction.
Nothing here knows about HTTP or KServe: the adapter in `components/serving/` turns its
`InvalidInputError`s into 400 responses.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Sequence
from typing import Any

from components.qa.errors import InvalidInputError
from components.qa.features import prepare_validation_features
from components.qa.inference import predict_logits
from components.qa.postprocess import postprocess_predictions

BACKENDS = ("torch", "onnxruntime")


@dataclasses.dataclass(frozen=True)
class ServingConfig:
    """How questions are windowed and answered; the evaluate step's settings for the model.

    max_length/doc_stride: the windows the model was trained and evaluated with.
    n_best/max_answer_length: the post-processing's search (see `postprocess_predictions`).
    version_2_with_negative: SQuAD v2.0 rules (the answer may be ""), for models trained
    on v2.0 data, with `null_score_diff_threshold`.
    max_batch_size: most (question, context) pairs in one request.
    forward_batch_size: features per forward pass.
    backend: "torch" (eager, CPU or GPU) or "onnxruntime" (CPU; exported at load time,
    several times faster on CPUs with the same answers: bench/RESULTS.md).
    """

    max_length: int
    doc_stride: int
    n_best: int
    max_answer_length: int
    version_2_with_negative: bool = False
    null_score_diff_threshold: float = 0.0
    max_batch_size: int = 32
    forward_batch_size: int = 32
    backend: str = "torch"

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise InvalidInputError(f"unknown backend {self.backend!r}",
                                    fix=f"Use one of {', '.join(BACKENDS)}.", field="backend")
        for name in ("max_length", "doc_stride", "n_best", "max_answer_length",
                     "max_batch_size", "forward_batch_size"):
            if getattr(self, name) < 1:
                raise InvalidInputError(f"{name}={getattr(self, name)} must be at least 1",
                                        fix="Pass a positive value.", field=name)
        if self.doc_stride >= self.max_length:
            raise InvalidInputError(
                f"doc_stride={self.doc_stride} must be below max_length={self.max_length}",
                fix="Use the max_length and doc_stride the model was evaluated with.",
                field="doc_stride")


class QAAnswerer:
    """A question-answering model, its tokenizer and its serving settings.

    `answer` is safe to call from several threads: forward passes run one at a time (the
    model is shared, and on a CPU parallel passes only contend for the same cores).
    """

    def __init__(self, model, tokenizer, config: ServingConfig):
        limit = getattr(model.config, "max_position_embeddings", None)
        if limit and config.max_length > limit:
            raise InvalidInputError(
                f"max_length={config.max_length} exceeds the model's {limit} positions",
                fix=f"Use max_length <= {limit}.", field="max_length")
        self.model, self.tokenizer, self.config = model, tokenizer, config
        self._lock = threading.Lock()

    @classmethod
    def from_pretrained(cls, model_dir: str, config: ServingConfig) -> QAAnswerer:
        """Load a `save_pretrained` directory (model and tokenizer, as fine-tune writes it)
        onto the GPU when there is one; with backend="onnxruntime", export it to a temporary
        ONNX file and serve that on the CPU."""
        import os
        import tempfile

        import torch
        from transformers import AutoTokenizer

        from components.qa.training import load_qa_model

        model = load_qa_model(model_dir)
        model.eval()
        if config.backend == "onnxruntime":
            from components.qa.onnx_model import OrtQAModel

            model = OrtQAModel.export(model, os.path.join(tempfile.mkdtemp(), "model.onnx"))
        elif torch.cuda.is_available():
            model.to("cuda")
        return cls(model, AutoTokenizer.from_pretrained(model_dir), config)

    def answer(self, questions: Sequence[Any], contexts: Sequence[Any],
               where: str = "instances") -> list[dict[str, Any]]:
        """One {answer, score, start, end} per pair; `context[start:end] == answer`.

        An unanswerable question (v2.0) gets answer "" and start/end None. `where` names
        the rows in error messages (record 'instances[3]').

        Raises:
            InvalidInputError: a batch above max_batch_size, a question or context that is
            not a string, an empty context, or a question too long for the windows; the
            message names the row and the field.
        """
        if len(questions) != len(contexts):
            raise InvalidInputError(
                f"{len(questions)} questions but {len(contexts)} contexts",
                fix="Send one context per question.", field="context")
        if len(questions) > self.config.max_batch_size:
            raise InvalidInputError(
                f"{len(questions)} questions in one request, above the limit of "
                f"{self.config.max_batch_size}", field=where,
                fix="Split the request, or start the server with a larger --max-batch-size.")
        if not questions:
            return []
        ids = [f"{where}[{i}]" for i in range(len(questions))]
        for record, question in zip(ids, questions):
            if type(question) is not str or not question.strip():
                raise InvalidInputError(
                    "the question is empty" if type(question) is str
                    else f"expected a string, got {type(question).__name__}",
                    fix="Every instance needs a text question.", record=record,
                    field="question")
        examples = {"id": ids, "question": list(questions), "context": list(contexts)}
        cfg = self.config
        features = prepare_validation_features(examples, self.tokenizer, cfg.max_length,
                                               cfg.doc_stride)
        with self._lock:
            start_logits, end_logits = predict_logits(self.model, features,
                                                      cfg.forward_batch_size)
        predictions = postprocess_predictions(
            examples, features, start_logits, end_logits, n_best=cfg.n_best,
            max_answer_length=cfg.max_answer_length,
            version_2_with_negative=cfg.version_2_with_negative,
            null_score_diff_threshold=cfg.null_score_diff_threshold)
        return [_answer(predictions[i]) for i in ids]


def _answer(prediction: dict[str, Any]) -> dict[str, Any]:
    score = prediction["score"]
    return {"answer": prediction["text"],
            "score": score if math.isfinite(score) else None,  # no candidate: -inf
            "start": prediction["start"], "end": prediction["end"]}
