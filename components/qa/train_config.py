"""The hyperparameters and speed settings of one fine-tuning run, and their checks.

Value checks (`check_values`, run on construction) need nothing but the values, so the
pipeline runs them when a run is submitted, on any laptop; machine checks (`check_machine`:
fp16 and bf16 need a GPU that has them) run where training starts. Each field carries its
default, one line of help and its value check: pipeline/parameters.py declares the run
parameters of the training knobs from these fields.

`TrainConfig.training_arguments(output_dir)` is the Hugging Face `TrainingArguments` of a
config on this machine.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

from components.qa.errors import InvalidInputError

LENGTH_COLUMN = "length"  # number of real (non-padding) tokens per feature; the sampler reads it

PRECISIONS = ("auto", "bf16", "fp16", "fp32")
SAMPLERS = ("shuffled_length", "group_by_length", "random")  # components/qa/sampling.py


Check = Callable[[str, Any], "tuple[str, str] | None"]  # (name, value) -> (problem, fix) or None


def value_rule(ok: Callable[[Any], bool], problem: str, fix: str) -> Check:
    """A value check: None when `ok(value)`, else `problem` and `fix` formatted with the field's
    name and value. The caller names the field: a pipeline parameter reuses the check under its
    own name (batch_size for per_device_train_batch_size)."""
    def check(name: str, value: Any) -> tuple[str, str] | None:
        return None if ok(value) else (problem.format(name=name, value=value),
                                       fix.format(name=name, value=value))
    return check


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


POSITIVE_INT = value_rule(_positive_int, "{name}={value!r} must be a positive integer",
                          "Pass {name} >= 1.")


def _known_scheduler(name: str, value: Any) -> tuple[str, str] | None:
    from transformers import SchedulerType

    schedules = [s.value for s in SchedulerType]
    return None if value in schedules else (f"unknown {name} {value!r}", f"Use one of {schedules}.")


def training_length_problem(num_train_epochs: float, max_steps: int) -> tuple[str, str] | None:
    """The one cross-field check of the training length: epochs, or steps when max_steps > 0."""
    if max_steps <= 0 and not num_train_epochs > 0:
        return (f"num_train_epochs={num_train_epochs} with max_steps={max_steps} trains nothing",
                "Set num_train_epochs > 0, or max_steps > 0 to count steps instead.")
    return None


def _f(default: Any, help: str, check: Check | None = None) -> Any:
    """A field with its help (shown in the pipeline's parameter table) and its value check."""
    return field(default=default, metadata={"help": help, "check": check})


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _cuda_capability() -> tuple[int, int]:
    import torch

    return torch.cuda.get_device_capability() if torch.cuda.is_available() else (0, 0)


@dataclass
class TrainConfig:
    """Hyperparameters and speed settings of one fine-tuning run.

    Each field carries its help and its value check (`_f`); the pipeline's training
    parameters are built from them (pipeline/parameters.py). Construction checks values
    only; what this machine can run (fp16 needs CUDA, bf16 an Ampere GPU) is
    `check_machine`, called where training starts.
    """

    # optimisation (the BERT SQuAD recipe)
    learning_rate: float = _f(3e-5, "Peak learning rate of AdamW.", value_rule(
        lambda v: 0 < v < 1, "{name}={value} must be in (0, 1)",
        "Use e.g. 3e-5 for BERT-base, 1e-4 to 3e-4 for small models."))
    num_train_epochs: float = _f(2.0, "Passes over the training features.")
    max_steps: int = _f(-1, "Optimizer steps to run; overrides num_train_epochs when > 0.")
    per_device_train_batch_size: int = _f(48, "Features per batch on each device.", POSITIVE_INT)
    gradient_accumulation_steps: int = _f(1, "Batches accumulated into one optimizer step.",
                                          POSITIVE_INT)
    weight_decay: float = _f(0.01, "AdamW weight decay (not applied to biases and LayerNorm).",
                             value_rule(lambda v: v >= 0, "{name}={value} must be >= 0",
                                        "Use 0.01 (or 0 to disable)."))
    warmup_fraction: float = _f(0.1, "Fraction of the steps with a linear warmup, in [0, 1).",
                                value_rule(lambda v: 0 <= v < 1, "{name}={value} must be in [0, 1)",
                                           "Give a fraction of the training steps, e.g. 0.1."))
    lr_scheduler_type: str = _f("linear", "Learning-rate schedule after warmup.", _known_scheduler)
    # fused on CPU too (torch >= 2.4; transformers' own default): one AdamW step over MiniLM's
    # 22.6M parameters is 5-6x faster fused than foreach (bench/optimizer_step.py)
    optim: str = _f("auto", "Optimizer; auto = adamw_torch_fused (CUDA and CPU).")
    seed: int = _f(42, "Seed of the QA head initialisation, sampling and dropout.")

    # speed
    precision: str = _f("auto", "auto (bf16 on Ampere+, fp16 on older GPUs, fp32 on CPU), "
                                "bf16, fp16 (CUDA only, with loss scaling) or fp32.",
                        value_rule(lambda v: v in PRECISIONS, "unknown {name} {value!r}",
                                   f"Use one of {PRECISIONS}."))
    sampler: str = _f("shuffled_length", "Order of the training features: shuffled_length "
                      "(batches of similar lengths, in random order), group_by_length (Hugging "
                      "Face's: sorted mega-batches, longest first) or random.",
                      value_rule(lambda v: v in SAMPLERS, "unknown {name} {value!r}",
                                 f"Use one of {SAMPLERS}."))
    # 16: real/padded tokens 0.95 on the demo's features (0.97 at 50, 0.92 at 8, 0.67 random)
    sampler_chunk_batches: int = _f(16, "shuffled_length: sort lengths within "
                                    "random chunks of this many batches (more: less padding, "
                                    "less random batches).", POSITIVE_INT)
    pad_to_multiple_of: int = _f(8, "Round each batch's padded length up to a multiple of this.",
                                 POSITIVE_INT)
    pad_to_max_length: bool = _f(False, "Baseline: pad every batch to max_length instead of "
                                        "its longest feature.")
    max_length: int = _f(384, "The max_length the features were built with "
                              "(used by pad_to_max_length).", POSITIVE_INT)
    dataloader_num_workers: int | str = _f(
        "auto", "Data loader processes; auto = 2 on GPU, 0 on CPU.",
        value_rule(lambda v: v == "auto" or (isinstance(v, int) and not isinstance(v, bool)
                                             and v >= 0),
                   "{name}={value!r} must be 'auto' or an integer >= 0",
                   "Use 'auto', 0 (main process) or e.g. 2."))
    torch_compile: bool = _f(False, "Compile the model with torch.compile (recompiles per "
                                    "padded length at first).")
    gradient_checkpointing: bool = _f(False, "Recompute activations in backward to save memory.")
    tf32: bool = _f(True, "TF32 matmuls on Ampere+ GPUs (ignored elsewhere).")
    attn_implementation: str = _f("sdpa", "Attention kernel: sdpa, eager, flash_attention_2, ...")

    # logging and checkpoints
    logging_steps: int = _f(50, "Log loss and learning rate every this many steps.", POSITIVE_INT)
    save_steps: int = _f(500, "Checkpoint every this many steps (0: not by steps).", value_rule(
        lambda v: v >= 0, "{name}={value} must be >= 0", "Use 0 for no checkpoints, or e.g. 500."))
    save_minutes: float = _f(0.0, "Also checkpoint when this many minutes passed since the last "
                                  "checkpoint (0: not by time).", value_rule(
        lambda v: v >= 0, "{name}={value} must be >= 0",
        "Use 0 for no timed checkpoints, or e.g. 30."))
    save_total_limit: int = _f(2, "Checkpoints kept; older ones are deleted.", value_rule(
        lambda v: v >= 1, "{name}={value} must be >= 1",
        "Keep at least the latest checkpoint, e.g. 2."))
    report_to: str = _f("tensorboard", "Where the Trainer reports: tensorboard or none.",
                        value_rule(lambda v: v in ("tensorboard", "none"),
                                   "unknown {name} {value!r}", "Use 'tensorboard' or 'none'."))

    def __post_init__(self):
        self.check_values()

    def check_values(self) -> None:
        """Each field's check, then the training length: pure, the same on any machine."""
        def bad(field_name: str, problem: tuple[str, str]):
            raise InvalidInputError(problem[0], fix=problem[1], source="TrainConfig",
                                    field=field_name)

        for f in dataclasses.fields(self):
            check = f.metadata.get("check")
            problem = check and check(f.name, getattr(self, f.name))
            if problem:
                bad(f.name, problem)
        problem = training_length_problem(self.num_train_epochs, self.max_steps)
        if problem:
            bad("num_train_epochs", problem)

    def check_machine(self) -> None:
        """What this machine cannot run: fp16 without CUDA, bf16 on a GPU older than Ampere."""
        def bad(problem: str, fix: str):
            raise InvalidInputError(problem, fix=fix, source="TrainConfig", field="precision")

        if self.precision == "fp16" and not _cuda():
            bad("fp16 mixed precision needs a CUDA GPU and none is visible",
                "Use precision='auto' (fp32 on CPU) or 'bf16'.")
        if self.precision == "bf16" and _cuda() and _cuda_capability() < (8, 0):
            bad(f"bf16 needs an Ampere or newer GPU; this one has compute "
                f"capability {'.'.join(map(str, _cuda_capability()))}",
                "Use precision='fp16' (with loss scaling) or 'auto'.")

    @classmethod
    def baseline(cls, **overrides: Any) -> TrainConfig:
        """The slow reference: every batch padded to max_length, random batches, fp32."""
        return cls(**{"pad_to_max_length": True, "sampler": "random", "precision": "fp32",
                      **overrides})

    def resolved_precision(self) -> str:
        """bf16, fp16 or fp32: what `precision` means on this machine."""
        if self.precision != "auto":
            return self.precision
        if not _cuda():
            return "fp32"
        return "bf16" if _cuda_capability() >= (8, 0) else "fp16"

    def training_arguments(self, output_dir: str):
        """The `TrainingArguments` of this config on this machine (checked against it first)."""
        from transformers import TrainingArguments

        self.check_machine()
        cuda = _cuda()
        precision = self.resolved_precision()
        workers = self.dataloader_num_workers
        if workers == "auto":
            workers = 2 if cuda else 0
        return TrainingArguments(
            output_dir=output_dir,
            learning_rate=self.learning_rate,
            num_train_epochs=self.num_train_epochs,
            max_steps=self.max_steps,
            per_device_train_batch_size=self.per_device_train_batch_size,
            gradient_accumulation_steps=self.gradient_accumulation_steps,
            weight_decay=self.weight_decay,
            # a float in [0, 1) is a fraction of the total steps, which the Trainer
            # computes itself (it knows the world size and accumulation)
            warmup_steps=float(self.warmup_fraction),
            lr_scheduler_type=self.lr_scheduler_type,
            optim="adamw_torch_fused" if self.optim == "auto" else self.optim,
            seed=self.seed,
            bf16=precision == "bf16",
            fp16=precision == "fp16",
            use_cpu=not cuda,  # also lets bf16 autocast run on a CPU
            tf32=True if self.tf32 and cuda and _cuda_capability() >= (8, 0) else None,
            # shuffled_length is built by build_trainer; the Trainer knows the other two
            train_sampling_strategy="group_by_length" if self.sampler == "group_by_length"
            else "random",
            length_column_name=LENGTH_COLUMN,
            # we pick the columns ourselves: the Trainer would drop `length` before the
            # sampler reads it, and then re-read every row to measure input_ids
            remove_unused_columns=False,
            dataloader_num_workers=workers,
            dataloader_persistent_workers=workers > 0,
            torch_compile=self.torch_compile,
            activation_checkpointing=self.gradient_checkpointing,
            include_num_input_tokens_seen="non_padding",
            logging_strategy="steps",
            logging_steps=self.logging_steps,
            logging_first_step=True,
            save_strategy="steps" if self.save_steps else "no",
            save_steps=self.save_steps or 500,
            save_total_limit=self.save_total_limit,
            report_to=[],  # tensorboard is added by build_trainer, with its logging_dir
            # a progress bar only on a terminal: in pod logs it is one line per update
            disable_tqdm=not sys.stderr.isatty(),
        )
