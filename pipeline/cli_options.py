"""What `compile`, `submit` and `schedule` share: the compile flags, the settings they build,
the compile itself, and the NAME=VALUE parser of --set and --node-selector.

pipeline/__main__.py and pipeline/cluster_cli.py both import from here (neither from the
other), so every command that compiles takes the same flags and compiles the same way.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from components.qa.errors import InvalidInputError
from pipeline.settings import CompileSettings


def key_values(items: list[str]) -> dict[str, str]:
    """`["a=1", "b = x=y"]` -> `{"a": "1", "b": "x=y"}`; an item without `=` is refused."""
    out = {}
    for item in items:
        if "=" not in item:
            raise InvalidInputError(f"{item!r} is not NAME=VALUE", fix="Use --set name=value.",
                                    field="--set")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def add_compile_arguments(p: argparse.ArgumentParser) -> None:
    """The flags that shape the compiled YAML (CompileSettings, and --deploy)."""
    p.add_argument("--images", help="KEY=VALUE file from images/build.sh (QA_CPU_IMAGE, QA_GPU_IMAGE)")
    p.add_argument("--accelerator-type", default="nvidia.com/gpu")
    p.add_argument("--accelerator-count", type=int, default=1)
    p.add_argument("--node-selector", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--toleration", action="append", default=[], metavar="KEY:OPERATOR:EFFECT")
    p.add_argument("--pvc", default="", help="PVC for the HF cache and checkpoints")
    p.add_argument("--num-nodes", type=int, default=1,
                   help="> 1: fine-tune launches a Kubeflow Trainer TrainJob (needs an RWX --pvc)")
    p.add_argument("--trainer-runtime", default="torch-distributed", help="TrainJob runtime")
    p.add_argument("--image-pull-secret", action="append", default=[], metavar="NAME",
                   help="Secret to pull the images from a private registry (every task, TrainJob nodes)")
    p.add_argument("--train-timeout-hours", type=float, default=24.0,
                   help="a TrainJob's activeDeadlineSeconds, in hours (docs/multinode.md)")
    p.add_argument("--deploy", action="store_true",
                   help="compile in the deploy step (KServe; acts when the run sets deploy=true)")


def settings_from_args(args: argparse.Namespace) -> CompileSettings:
    """The CompileSettings the flags of add_compile_arguments give (images from --images)."""
    overrides = {"accelerator_type": args.accelerator_type, "accelerator_count": args.accelerator_count,
                 "node_selector": tuple(key_values(args.node_selector).items()),
                 "tolerations": tuple(tuple(t.split(":")) for t in args.toleration),
                 "pvc_name": args.pvc, "num_nodes": args.num_nodes, "trainer_runtime": args.trainer_runtime,
                 "image_pull_secrets": tuple(args.image_pull_secret),
                 "train_timeout_hours": args.train_timeout_hours}
    return (CompileSettings.from_images_env(args.images, **overrides) if args.images
            else CompileSettings(**overrides))


def compile_pipeline(args: argparse.Namespace, output: str | Path) -> None:
    """Compile the DAG with the settings the flags give (and the deploy step with --deploy)."""
    from kfp import compiler

    from pipeline.qa_pipeline import build_pipeline

    compiler.Compiler().compile(build_pipeline(settings_from_args(args), with_deploy=args.deploy), str(output))
    print(f"wrote {output}")
