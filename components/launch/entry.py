"""One training entry point for every topology: alone, torchrun in one pod, every node of a TrainJob.

    python -m components.launch.entry --features DIR --base-model DIR --output DIR --config JSON
    torchrun --nproc-per-node 4 -m components.launch.entry ...     # several GPUs in one pod

The Trainer reads RANK / WORLD_SIZE / LOCAL_RANK from the environment that
torchrun (or a Kubeflow TrainJob node) sets; only rank 0 writes the model, the
metrics file and the TensorBoard events.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from components.launch.accelerator import require_accelerator
from components.qa.preemption import checkpoint_key
from components.qa.train_config import TrainConfig
from components.qa.training import train_qa_model

METRICS_FILE = "train_metrics.json"


def is_rank_zero() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def training_key(data, base_model: str, config: TrainConfig) -> str:
    """What determines the training: a checkpoint resumes only the same features, model and config."""
    config_file = Path(base_model) / "config.json"
    weights = sorted((p.name, p.stat().st_size) for p in Path(base_model).glob("*.safetensors"))
    model_id = (config_file.read_text() if config_file.exists() else base_model, weights)
    return checkpoint_key(data._fingerprint, model_id, dataclasses.asdict(config))


def train(features: str, base_model: str, output: str, config: TrainConfig,
          logging_dir: str | None = None, checkpoint_dir: str | None = None) -> dict:
    """Train in this process (one rank); rank 0 also writes metrics next to the model."""
    import datasets

    require_accelerator()  # before any work: a GPU step must not train on the CPU
    data = datasets.load_from_disk(features)
    if checkpoint_dir:  # durable folder (a PVC): one subfolder per training identity
        checkpoint_dir = str(Path(checkpoint_dir) / training_key(data, base_model, config))
    result = train_qa_model(base_model, data, output, config,
                            logging_dir=logging_dir, checkpoint_dir=checkpoint_dir)
    if is_rank_zero():
        (Path(output) / METRICS_FILE).write_text(json.dumps(result, indent=2, sort_keys=True))
    return result


MODULE = "components.launch.entry"


def entry_args(features: str, base_model: str, output: str, config: TrainConfig,
               logging_dir: str | None, checkpoint_dir: str | None) -> list[str]:
    """This module's arguments, shared by the torchrun and TrainJob launchers."""
    args = ["--features", features, "--base-model", base_model,
            "--output", output, "--config", json.dumps(dataclasses.asdict(config))]
    if logging_dir:
        args += ["--logging-dir", logging_dir]
    if checkpoint_dir:
        args += ["--checkpoint-dir", checkpoint_dir]
    return args


def launch(processes: int, features: str, base_model: str, output: str, config: TrainConfig,
           logging_dir: str | None = None, checkpoint_dir: str | None = None) -> dict:
    """Train with `processes` data-parallel ranks on this node (1: in this process)."""
    config.check_machine()  # here, not in every torchrun rank: one clear error, before any spawn
    if processes <= 1:
        return train(features, base_model, output, config, logging_dir, checkpoint_dir)
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc-per-node={processes}", "--module", MODULE,
            *entry_args(features, base_model, output, config, logging_dir, checkpoint_dir)]
    done = subprocess.run(argv, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"torchrun with {processes} processes exited with {done.returncode}; "
                           "the rank that failed printed its error above.")
    return json.loads((Path(output) / METRICS_FILE).read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m components.launch.entry", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", required=True, help="train features (datasets save_to_disk)")
    parser.add_argument("--base-model", required=True, help="save_pretrained directory or Hub id")
    parser.add_argument("--output", required=True, help="where rank 0 saves the model")
    parser.add_argument("--config", required=True, help="TrainConfig as JSON")
    parser.add_argument("--logging-dir")
    parser.add_argument("--checkpoint-dir")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = TrainConfig(**json.loads(args.config))
    train(args.features, args.base_model, args.output, config, args.logging_dir, args.checkpoint_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
