"""Survive preemption: checkpoint on SIGTERM, resume from the latest complete checkpoint.

Kubernetes sends SIGTERM before it kills a preempted pod. `SigtermCheckpoint`
turns it into "save a checkpoint at the end of this step, then stop", and
`train_qa_model` raises `Preempted` so the step exits non-zero and KFP retries
it. The retried step finds the checkpoint in its durable folder (a PVC) and
resumes with the model, optimizer, scheduler, RNG states and sampler position.

The folder is keyed by what determines the training (`checkpoint_key`), so a
changed dataset or hyperparameter never resumes someone else's checkpoint.

SIGTERM is not always delivered in time (under Argo's emissary the whole process group
gets it, and the KFP launcher above us exits at once), so periodic checkpoints are the
recovery path: every `save_steps` steps, and with `TimedCheckpoint` every `save_minutes`.
"""

from __future__ import annotations

import hashlib
import json
import re
import signal
import time
from pathlib import Path

from transformers import TrainerCallback

# written by the Trainer for every checkpoint; trainer_state.json comes last
CHECKPOINT_FILES = ("trainer_state.json", "optimizer.pt", "scheduler.pt")


class Preempted(RuntimeError):
    """Training stopped on SIGTERM after saving a checkpoint; rerun the step to resume."""


class SigtermCheckpoint(TrainerCallback):
    """On SIGTERM: save at the end of the current step and stop training."""

    def __init__(self):
        self.received = False
        self._previous = None

    def _handle(self, signum, frame):
        self.received = True

    def on_train_begin(self, args, state, control, **kwargs):
        try:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread (e.g. a notebook worker): nothing to install
            self._previous = None

    def on_step_end(self, args, state, control, **kwargs):
        if self.received:
            control.should_save = True
            control.should_training_stop = True
        return control

    def on_train_end(self, args, state, control, **kwargs):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


class TimedCheckpoint(TrainerCallback):
    """Save a checkpoint when `minutes` have passed since the start or the last save.

    Every rank must agree on a save (a checkpoint is a collective in DDP), so rank 0's clock
    decides and the decision is broadcast each step when training is distributed.
    """

    def __init__(self, minutes: float):
        self.interval_s = minutes * 60
        self.last = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.last = _clock()

    def on_step_end(self, args, state, control, **kwargs):
        due = _clock() - self.last >= self.interval_s
        if args.world_size > 1:
            import torch
            import torch.distributed as dist

            if dist.is_available() and dist.is_initialized():
                flag = torch.tensor([int(due)], device=args.device)
                dist.broadcast(flag, src=0)
                due = bool(flag.item())
        if due:
            control.should_save = True
        return control

    def on_save(self, args, state, control, **kwargs):
        self.last = _clock()


_clock = time.monotonic  # TimedCheckpoint's clock (a test replaces it)


def latest_complete_checkpoint(folder: str | Path) -> str | None:
    """Newest `checkpoint-N` holding every file a resume needs (a kill mid-save leaves one without)."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    steps = sorted(((int(m.group(1)), p) for p in folder.iterdir()
                    if (m := re.fullmatch(r"checkpoint-(\d+)", p.name)) and p.is_dir()), reverse=True)
    for _, path in steps:
        if all((path / name).exists() for name in CHECKPOINT_FILES):
            return str(path)
    return None


def checkpoint_key(*parts) -> str:
    """Stable key of a training run's identity (features fingerprint, base model, config)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
