"""An extractive QA model on ONNX Runtime, usable wherever a transformers QA model is.

    model = OrtQAModel.export(torch_model, "model.onnx")   # torch.onnx.export, then a session
    predict_logits(model, features)                          # same logits, 1.9-4.1x faster on CPU

On a shared 2-core CPU it answered batch-1 questions 1.9x to 4.1x faster than eager PyTorch
with the same answers (bench/serve.py, bench/RESULTS.md). Optimum's exporter is not used: its
releases need transformers < 4.58. The exported graph takes input_ids, attention_mask and
token_type_ids with dynamic batch and length.
"""

from __future__ import annotations

from types import SimpleNamespace

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OUTPUTS = ("start_logits", "end_logits")


class OrtQAModel:
    """An ONNX Runtime session with what `predict_logits` uses of a transformers model:
    `config`, `parameters()` (for the device: CPU), `to`, `eval`, `train`, and a call
    returning `start_logits`/`end_logits` tensors."""

    def __init__(self, path: str, config, threads: int = 0):
        import onnxruntime as ort
        import torch

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # 0: ONNX Runtime's choice (the cores)
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.input_names = {i.name for i in self.session.get_inputs()}
        self.config, self.training, self._anchor = config, False, torch.zeros(1)

    @classmethod
    def export(cls, model, path: str, threads: int = 0) -> OrtQAModel:
        """Export a transformers QA model (BERT family) to `path` and open it."""
        import torch

        model.eval()
        dummy = tuple(torch.ones(1, 16, dtype=torch.long) for _ in INPUTS)
        axes = {name: {0: "batch", 1: "tokens"} for name in INPUTS + OUTPUTS}
        torch.onnx.export(model, dummy, path, input_names=list(INPUTS),
                          output_names=list(OUTPUTS), dynamic_axes=axes, opset_version=17,
                          dynamo=False)
        return cls(path, model.config, threads)

    def parameters(self):
        yield self._anchor

    def to(self, device):
        if str(device) != "cpu":
            raise ValueError(f"OrtQAModel runs on the CPU, not {device}")
        return self

    def eval(self):
        return self

    def train(self, mode: bool = True):
        return self

    def __call__(self, **batch):
        import torch

        feeds = {k: v.cpu().numpy() for k, v in batch.items() if k in self.input_names}
        start, end = self.session.run(list(OUTPUTS), feeds)
        return SimpleNamespace(start_logits=torch.from_numpy(start),
                               end_logits=torch.from_numpy(end))
