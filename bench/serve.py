"""Serving speed: KServe's model server over HTTP, and faster CPU variants of the model.

    python bench/serve.py --model local_outputs/qa-finetune-.../fine-tune/model
    python bench/serve.py --model DIR --requests 64 --clients 4 --examples 64

1. HTTP (the real server, `python -m pipeline serve` on loopback, V1): latency p50/p99 and
   throughput for one client sending one question per request (batch 1), then for
   `--clients` concurrent clients.
2. In process, the same questions through `QAAnswerer` (the server's code) with three
   models, interleaved in one run so that the machine's load hits them alike:
   eager fp32 (PyTorch), dynamic int8 (`torch.ao.quantization.quantize_dynamic` on the
   Linear layers) and ONNX Runtime (components/qa/onnx_model.py: `torch.onnx.export`;
   Optimum's exporter needs transformers < 4.58 and does not import beside transformers 5).
   Batch-1 latency p50/p99, and SQuAD EM/F1 on the held-out questions plus the share of
   answers identical to eager's. A variant is worth offering when it is >= 1.5x faster
   with F1 within 0.5 of eager.

Held-out questions: data/squad-sample/validation.json (SQuAD v1.1, CC BY-SA 4.0), the first
`--examples`. onnxruntime and onnx come with the `serve` extra (or from `--extra-path`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def held_out(n: int) -> list[dict]:
    from components.qa.squad_records import parse_squad_json

    path = REPO / "data" / "squad-sample" / "validation.json"
    return parse_squad_json(path.read_text(encoding="utf-8"), str(path))[:n]


def http_bench(model_dir: str, args: list[str], rows: list[dict], requests: int,
               clients: int) -> dict:
    from components.serving.server import LocalServer

    def call(url: str, row: dict) -> float:
        import urllib.request

        body = json.dumps({"instances": [{"question": row["question"],
                                          "context": row["context"]}]}).encode()
        request = urllib.request.Request(url, data=body,
                                         headers={"Content-Type": "application/json"})
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=300) as response:
            response.read()
        return time.perf_counter() - started

    out = {}
    with LocalServer(model_dir, "qa", args) as server:
        url = f"{server.url}/v1/models/qa:predict"
        work = [rows[i % len(rows)] for i in range(requests)]
        call(url, work[0])  # warm-up
        for label, workers in (("batch 1, 1 client", 1), (f"batch 1, {clients} clients", clients)):
            started = time.perf_counter()
            with ThreadPoolExecutor(workers) as pool:
                latencies = list(pool.map(lambda r: call(url, r), work))
            wall = time.perf_counter() - started
            out[label] = {"p50_ms": 1000 * percentile(latencies, 50),
                          "p99_ms": 1000 * percentile(latencies, 99),
                          "requests_per_s": len(work) / wall, "requests": len(work)}
    return out


def variants_bench(model_dir: str, config, rows: list[dict], repeats: int) -> dict:
    import torch

    from components.qa.metrics import compute_squad_metrics
    from components.qa.serving import QAAnswerer

    eager = QAAnswerer.from_pretrained(model_dir, config)
    models = {"eager fp32": eager.model}
    models["dynamic int8"] = torch.ao.quantization.quantize_dynamic(
        eager.model, {torch.nn.Linear}, dtype=torch.qint8)
    notes = {}
    try:
        from components.qa.onnx_model import OrtQAModel

        models["onnx runtime"] = OrtQAModel.export(
            eager.model, os.path.join(tempfile.mkdtemp(), "model.onnx"))
    except Exception as e:  # noqa: BLE001 - reported in the table
        notes["onnx runtime"] = f"not run: {type(e).__name__}: {e}"[:300]
    answerers = {name: QAAnswerer(m, eager.tokenizer, config) for name, m in models.items()}
    latencies = {name: [] for name in answerers}
    answers = {name: [] for name in answerers}
    for name, answerer in answerers.items():  # warm-up
        answerer.answer([rows[0]["question"]], [rows[0]["context"]])
    for repeat in range(repeats):
        for row in rows:
            for name, answerer in answerers.items():  # interleaved: same load for all
                started = time.perf_counter()
                got = answerer.answer([row["question"]], [row["context"]])[0]
                latencies[name].append(time.perf_counter() - started)
                if repeat == 0:
                    answers[name].append(got["answer"])
    references = [{"id": r["id"], "answers": r["answers"]} for r in rows]
    out = {}
    for name in answerers:
        scores = compute_squad_metrics(
            [{"id": r["id"], "prediction_text": a} for r, a in zip(rows, answers[name])],
            references)
        out[name] = {"p50_ms": 1000 * percentile(latencies[name], 50),
                     "p99_ms": 1000 * percentile(latencies[name], 99),
                     "exact_match": scores["exact_match"], "f1": scores["f1"],
                     "same_as_eager": sum(a == b for a, b in zip(answers[name], answers["eager fp32"]))
                     / len(rows)}
    base = out["eager fp32"]["p50_ms"]
    for name, figures in out.items():
        figures["speedup"] = base / figures["p50_ms"]
        figures["worth_offering"] = (figures["speedup"] >= 1.5 and
                                     abs(figures["f1"] - out["eager fp32"]["f1"]) <= 0.5)
    out.update({name: {"note": note} for name, note in notes.items()})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="save_pretrained directory")
    parser.add_argument("--max-length", type=int, default=256)  # the local profile's
    parser.add_argument("--doc-stride", type=int, default=96)
    parser.add_argument("--examples", type=int, default=48, help="held-out questions")
    parser.add_argument("--requests", type=int, default=48)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--extra-path", action="append", default=[],
                        help="folder to import onnxruntime/onnx from")
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--output", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()
    sys.path[1:1] = args.extra_path

    from components.qa.serving import ServingConfig
    from components.serving.isvc import serving_args

    config = ServingConfig(max_length=args.max_length, doc_stride=args.doc_stride, n_best=20,
                           max_answer_length=50)
    rows = held_out(args.examples)
    load = os.getloadavg()
    figures = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
               "load_before": [round(x, 2) for x in load], "examples": len(rows),
               "max_length": args.max_length, "doc_stride": args.doc_stride}
    if not args.skip_http:
        figures["http"] = http_bench(args.model, serving_args(args.max_length, args.doc_stride,
                                                              20, 50), rows, args.requests,
                                     args.clients)
    figures["variants"] = variants_bench(args.model, config, rows, args.repeats)
    figures["load_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(figures, indent=2))
    if args.output:
        args.output.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
