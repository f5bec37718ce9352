"""Trainer steps as progress lines (`components/qa/progress.py`), for the terminal and pod logs."""

from __future__ import annotations

from transformers import TrainerCallback

from components.qa.progress import Progress


class ProgressCallback(TrainerCallback):
    """Trainer steps as progress lines (rank 0 only: one bar per run, not per GPU)."""

    def __init__(self, phase: str = "fine-tune", every: float = 2.0):
        self.phase, self.every, self.progress = phase, every, None

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.progress = Progress(self.phase, state.max_steps, self.every)
            self.progress.update(state.global_step)  # > 0 when resuming from a checkpoint

    def on_step_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            self.progress.update(state.global_step)
