"""Serving in the pipeline layer: `python -m pipeline serve` (the KServe model server for a
trained model) and the deploy step's predictor settings from the compile settings.

    python -m pipeline serve --model local_outputs/qa-finetune-.../fine-tune/model
    python -m pipeline serve --model DIR --max-length 128 --doc-stride 64 --port 8081

Windowing and post-processing default to the pipeline's defaults; pass the values the
model was evaluated with (the deploy step passes them from the run's parameters).
The cluster image runs the same command (manifests/overlays/kserve).
"""

from __future__ import annotations

from pipeline.parameters import DEFAULTS as D
from pipeline.steps import EVALUATE


def add_serve_command(sub) -> None:
    s = sub.add_parser("serve", help="serve a trained model with KServe's model server (V1 and V2)")
    s.add_argument("--model", required=True, help="save_pretrained directory (fine-tune's model)")
    s.add_argument("--name", default="qa", help="model name in the URLs")
    s.add_argument("--host", default="127.0.0.1", help="0.0.0.0 in a pod")
    s.add_argument("--port", type=int, default=8080)
    s.add_argument("--max-length", type=int, default=D["max_length"])
    s.add_argument("--doc-stride", type=int, default=D["doc_stride"])
    s.add_argument("--n-best", type=int, default=D["n_best"])
    s.add_argument("--max-answer-length", type=int, default=D["max_answer_length"])
    s.add_argument("--version-2-with-negative", action="store_true",
                   help="SQuAD v2.0 model: answer '' when the null score wins")
    s.add_argument("--null-score-diff-threshold", type=float,
                   default=D["null_score_diff_threshold"])
    s.add_argument("--max-batch-size", type=int, default=32, help="most pairs in one request")
    s.add_argument("--backend", choices=["torch", "onnxruntime"], default="torch",
                   help="onnxruntime: export to ONNX at start-up, faster on CPUs (bench/RESULTS.md)")
    s.add_argument("--grace-period", type=int, default=30,
                   help="seconds in-flight requests get after SIGTERM")
    s.set_defaults(func=serve_command)


def serve_command(args) -> None:
    from components.qa.serving import ServingConfig
    from components.serving.server import serve

    config = ServingConfig(
        max_length=args.max_length, doc_stride=args.doc_stride, n_best=args.n_best,
        max_answer_length=args.max_answer_length,
        version_2_with_negative=args.version_2_with_negative,
        null_score_diff_threshold=args.null_score_diff_threshold,
        max_batch_size=args.max_batch_size, backend=args.backend)
    serve(args.model, config, name=args.name, host=args.host, port=args.port,
          grace_period=args.grace_period)


def predictor_settings(settings) -> dict:
    """The deploy step's PredictorSpec from the compile settings: the evaluate step's
    resources, and its GPU (one) when evaluate runs on one."""
    from components.serving.isvc import PredictorSpec

    res = settings.resources_for(EVALUATE.key)
    gpu = bool(settings.eval_on_gpu and settings.accelerator_count)
    return PredictorSpec(
        image=settings.gpu_image if gpu else settings.cpu_image, cpu=res.cpu, memory=res.memory,
        accelerator_type=settings.accelerator_type if gpu else "", accelerator_count=int(gpu),
        node_selector=dict(settings.node_selector) if gpu else {},
        tolerations=settings.toleration_specs() if gpu else []).to_dict()
