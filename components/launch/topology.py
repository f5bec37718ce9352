"""Where a fine-tune trains, decided in one place: a Kubeflow Trainer TrainJob over several nodes
(or over one, when the step is compiled as a launcher without a GPU), else this pod: in this
process, or torchrun over its GPUs when it has several.

    from components.launch.topology import train
    metrics = train(num_nodes, trainjob, features, base_model, output, config)   # trainjob: dict | None
"""

from __future__ import annotations

from typing import Any

import torch

from components.launch.entry import launch
from components.launch.trainjob import run_trainjob
from components.launch.trainjob_spec import TrainJobSpec
from components.qa.errors import InvalidInputError
from components.qa.train_config import TrainConfig


def train(num_nodes: int, trainjob: dict[str, Any] | None, features: str, base_model: str,
          output: str, config: TrainConfig, logging_dir: str | None = None,
          checkpoint_dir: str | None = None, run_id: str = "") -> dict:
    """Train where `num_nodes` and the TrainJob settings (`TrainJobSpec.to_dict()`, or None) say;
    rank 0's model ends up in `output` and its training metrics are returned."""
    job = TrainJobSpec.from_dict({**trainjob, "run_id": run_id}) if trainjob else None
    if job and (num_nodes > 1 or job.always):
        return run_trainjob(job, num_nodes, features, base_model, output, config,
                            logging_dir=logging_dir, checkpoint_dir=checkpoint_dir)
    if num_nodes > 1:
        raise InvalidInputError(f"num_nodes={num_nodes} and no TrainJob settings", field="trainjob",
                                fix="Pass trainjob (the pipeline compiler does).")
    gpus = torch.cuda.device_count()  # > 1: data-parallel ranks under torchrun, same metrics
    return launch(max(gpus, 1), features, base_model, output, config,
                  logging_dir=logging_dir, checkpoint_dir=checkpoint_dir)
