"""Command line for the QA pipeline.

    python -m pipeline compile                      # writes pipeline/qa_finetune.yaml
    python -m pipeline compile --images build/images.env --accelerator-count 2
    python -m pipeline compile --num-nodes 4 --accelerator-count 8 --pvc qa-hf-cache --output multi.yaml
    python -m pipeline run --local                  # the whole DAG on this machine (profile: local)
    python -m pipeline run --local --profile tiny --set max_steps=2
    python -m pipeline run --local --runner docker --image qa-cpu:TAG
    python -m pipeline serve --model DIR            # KServe model server (docs/serving.md)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from components.qa.errors import InvalidInputError

DEFAULT_YAML = Path(__file__).resolve().parent / "qa_finetune.yaml"


def _key_values(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        if "=" not in item:
            raise InvalidInputError(f"{item!r} is not NAME=VALUE", fix="Use --set name=value.",
                                    field="--set")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def compile_pipeline(args) -> None:
    from kfp import compiler

    from pipeline.qa_pipeline import build_pipeline
    from pipeline.settings import CompileSettings

    overrides = {"accelerator_type": args.accelerator_type, "accelerator_count": args.accelerator_count,
                 "node_selector": tuple(_key_values(args.node_selector).items()),
                 "tolerations": tuple(tuple(t.split(":")) for t in args.toleration),
                 "pvc_name": args.pvc, "num_nodes": args.num_nodes, "trainer_runtime": args.trainer_runtime}
    settings = (CompileSettings.from_images_env(args.images, **overrides) if args.images
                else CompileSettings(**overrides))
    compiler.Compiler().compile(build_pipeline(settings, with_deploy=args.deploy), str(args.output))
    print(f"wrote {args.output}")


def run_pipeline(args) -> None:
    from pipeline.local_run import format_summary, run_local
    from pipeline.parameters import profile_parameters

    params = profile_parameters(args.profile, _key_values(args.set))
    if not args.local:
        raise InvalidInputError("only --local runs are started by `run`",
                                fix="Add --local, or submit to a cluster with `python -m pipeline submit`.",
                                field="--local")
    result = run_local(params, pipeline_root=args.pipeline_root, runner=args.runner, image=args.image,
                       cache=not args.no_cache)
    print(format_summary(result))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    c = sub.add_parser("compile", help="compile the DAG to YAML")
    c.add_argument("--output", type=Path, default=DEFAULT_YAML)
    c.add_argument("--images", help="KEY=VALUE file from images/build.sh (QA_CPU_IMAGE, QA_GPU_IMAGE)")
    c.add_argument("--accelerator-type", default="nvidia.com/gpu")
    c.add_argument("--accelerator-count", type=int, default=1)
    c.add_argument("--node-selector", action="append", default=[], metavar="KEY=VALUE")
    c.add_argument("--toleration", action="append", default=[], metavar="KEY:OPERATOR:EFFECT")
    c.add_argument("--pvc", default="", help="PVC for the HF cache and checkpoints")
    c.add_argument("--num-nodes", type=int, default=1,
                   help="> 1: fine-tune launches a Kubeflow Trainer TrainJob (needs an RWX --pvc)")
    c.add_argument("--trainer-runtime", default="torch-distributed", help="TrainJob runtime")
    c.add_argument("--deploy", action="store_true",
                   help="compile in the deploy step (KServe; acts when the run sets deploy=true)")
    c.set_defaults(func=compile_pipeline)

    r = sub.add_parser("run", help="run the whole DAG locally through kfp.local")
    r.add_argument("--local", action="store_true", help="run on this machine (kfp.local)")
    r.add_argument("--profile", default="local", choices=["local", "tiny", "cluster"])
    r.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="override a pipeline parameter")
    r.add_argument("--runner", choices=["subprocess", "docker"], default="subprocess")
    r.add_argument("--image", help="CPU image for --runner docker")
    r.add_argument("--pipeline-root", default="local_outputs")
    r.add_argument("--no-cache", action="store_true")
    r.set_defaults(func=run_pipeline)

    from pipeline.cluster_cli import add_cluster_commands

    add_cluster_commands(sub)  # submit | schedule | runs | compare (kfp.Client)
    from pipeline.serving import add_serve_command

    add_serve_command(sub)

    args = parser.parse_args(argv)
    try:
        args.func(args)
    except InvalidInputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
