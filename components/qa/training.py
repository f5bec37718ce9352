"""Fine-tune a BERT-family encoder for extractive QA with the Hugging Face Trainer.

    from components.qa.train_config import TrainConfig
    from components.qa.training import train_qa_model

    metrics = train_qa_model("bert-base-uncased", train_features, "out/model",
                             TrainConfig(num_train_epochs=2), logging_dir="out/tensorboard")

`train_features` is the output of `prepare_train_features` (a `datasets.Dataset`).
`output_dir` ends up in the Hugging Face layout (config.json, model.safetensors,
tokenizer files, training_args.json), loadable with `from_pretrained`. Several GPUs:
launch the same code with `torchrun --nproc-per-node N script.py`; the Trainer runs
DDP and only rank 0 writes.

Where the speed comes from (each one a `TrainConfig` field):
- dynamic padding: the collator pads each batch to its own longest feature (rounded
  up to a multiple of 8 for tensor cores), not to max_length;
- length grouping: the sampler draws batches of similar lengths, in random order
  (components/qa/sampling.py), reading the lengths from a `length` column this module
  adds, so the padding left in a batch is small;
- bf16 autocast on GPUs that have it (fp16 with loss scaling on older ones), TF32
  matmuls, fused AdamW, SDPA attention, two data loader workers.

`TrainConfig.baseline()` switches the first three off (every batch padded to
max_length, random batches, fp32): the same code path, for benchmarks.

Checkpoints (every `save_steps` steps and/or `save_minutes` minutes) go to `checkpoint_dir`
(default `output_dir`); a run that finds one there resumes from the latest.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import os
from dataclasses import dataclass
from typing import Any

from transformers import TrainerCallback

from components.qa.errors import InvalidInputError
from components.qa.progress_callback import ProgressCallback
from components.qa.train_config import LENGTH_COLUMN, TrainConfig

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("input_ids", "attention_mask", "start_positions", "end_positions")


@dataclass
class QACollator:
    """Pads a list of features into a batch; drops the `length` column the sampler reads.

    `max_length=None`: pad to the longest feature of the batch, rounded up to
    `pad_to_multiple_of`. An int: pad every batch to it (the baseline).

    Always on the right, whatever the tokenizer's `padding_side`: the start/end labels
    count tokens from the first stored one, so padding inserted before it would move
    every token off its label (a left-padding RoBERTa trained on "The American" for
    "Denver Broncos"). Inference (`predict_logits`) right-pads too, so the model sees
    the same positions in training and in evaluation.
    """

    tokenizer: Any
    pad_to_multiple_of: int | None = 8
    max_length: int | None = None

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        from transformers.data.data_collator import pad_without_fast_tokenizer_warning

        return pad_without_fast_tokenizer_warning(
            self.tokenizer, [{k: v for k, v in row.items() if k != LENGTH_COLUMN} for row in rows],
            padding="max_length" if self.max_length else "longest", max_length=self.max_length,
            pad_to_multiple_of=None if self.max_length else self.pad_to_multiple_of,
            padding_side="right", return_tensors="pt")


def attention_for(config, requested: str = "sdpa") -> str:
    """`requested`, but eager where it is sdpa and the model's QA class has no sdpa kernel
    (DeBERTa): transformers would refuse the model otherwise."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_QUESTION_ANSWERING_MAPPING

    if requested != "sdpa" or type(config) not in MODEL_FOR_QUESTION_ANSWERING_MAPPING:
        return requested
    return "sdpa" if MODEL_FOR_QUESTION_ANSWERING_MAPPING[type(config)]._supports_sdpa else "eager"


def load_qa_model(model_name_or_path: str, attn_implementation: str = "sdpa"):
    """`AutoModelForQuestionAnswering` with a clear error for an id that is not one."""
    from transformers import AutoConfig, AutoModelForQuestionAnswering

    try:
        attn_implementation = attention_for(AutoConfig.from_pretrained(model_name_or_path),
                                            attn_implementation)
        model, info = AutoModelForQuestionAnswering.from_pretrained(
            model_name_or_path, attn_implementation=attn_implementation,
            output_loading_info=True)
    except (OSError, ValueError, KeyError) as err:
        raise InvalidInputError(
            f"cannot load {model_name_or_path!r} as a question-answering model: {err}",
            fix="Pass a local directory or Hub id of an encoder with a question-answering "
                "class (BERT, RoBERTa, DistilBERT, ...); with HF_HUB_OFFLINE=1 it must be "
                "on disk or in the cache.",
            field="model_name_or_path") from err
    if info.get("missing_keys"):
        logger.info("newly initialised (expected for a base encoder): %s",
                    sorted(info["missing_keys"]))
    return model


def with_length_column(features, warn_if_padded: bool = True):
    """`features` (a Dataset or a dict of columns) as a Dataset with a `length` column:
    the real tokens of each feature (the sum of its attention mask)."""
    import datasets
    import numpy as np

    from components.qa.ragged import flatten, row_sums

    if not isinstance(features, datasets.Dataset):
        features = datasets.Dataset.from_dict(dict(features))
    missing = [c for c in REQUIRED_COLUMNS if c not in features.column_names]
    if missing:
        raise InvalidInputError(
            f"train features have no {missing} column(s) (they have {features.column_names})",
            fix="Build them with components.qa.features.prepare_train_features.",
            field=missing[0])
    if LENGTH_COLUMN in features.column_names:
        return features
    mask, offsets = flatten(features.with_format("arrow")["attention_mask"])
    stored = np.diff(offsets)  # (F,)
    lengths = row_sums(mask, offsets)  # (F,)
    if warn_if_padded and (lengths < stored).any():
        logger.warning(
            "%d of %d train features hold padding; padding them to their batch's longest "
            "cannot shorten them: build them with pad_to_max_length=False",
            int((lengths < stored).sum()), len(stored))
    return features.add_column(LENGTH_COLUMN, lengths.tolist())


def check_answer_labels(features, cls_token_id: int | None) -> int:
    """The number of features labelled with an answer span; an error when there is none.

    A feature without its answer is labelled at its CLS token. If every one is, the model
    can only learn to answer nothing (and scores well on data like it): an unanswerable
    training split, or answers no token covers, must stop the run here, before any GPU time.
    """
    import numpy as np

    from components.qa.ragged import flatten

    table = features.with_format("arrow")
    flat, offsets = flatten(table["input_ids"])
    first, lengths = offsets[:-1], np.diff(offsets)  # (F,) each
    starts = np.asarray(table["start_positions"], dtype=np.int64)
    ends = np.asarray(table["end_positions"], dtype=np.int64)
    inside = (starts >= 0) & (starts < lengths)
    at_start = np.full(len(starts), -1, dtype=np.int64)
    at_start[inside] = flat[first[inside] + starts[inside]]
    answered = int(((at_start != cls_token_id) | (ends != starts)).sum())
    if len(starts) and not answered:
        raise InvalidInputError(
            f"none of the {len(starts)} train features is labelled with an answer span (all "
            "point at the CLS token): the model would only learn to answer nothing",
            fix="Train on answered questions whose answer text a window holds whole; check "
                "the training split's answers (download logs how many are unanswerable).",
            field="start_positions")
    return answered


def build_trainer(model, tokenizer, train_features, output_dir: str, config: TrainConfig,
                  logging_dir: str | None = None, callbacks: list | None = None):
    """The `Trainer` of `train_qa_model`, before `train()`: for tests and custom loops."""
    from transformers import Trainer
    from transformers.integrations import TensorBoardCallback

    features = with_length_column(train_features, warn_if_padded=not config.pad_to_max_length)
    check_answer_labels(features, tokenizer.cls_token_id)
    longest = max(features[LENGTH_COLUMN], default=0)
    if config.pad_to_max_length and longest > config.max_length:
        raise InvalidInputError(
            f"a feature has {longest} tokens, more than max_length={config.max_length}",
            fix="Set TrainConfig.max_length to the max_length the features were built with.",
            source="TrainConfig", field="max_length")
    forward = inspect.signature(model.forward).parameters
    keep = [c for c in features.column_names if c in forward or c == LENGTH_COLUMN]
    features = features.select_columns(keep)  # e.g. no token_type_ids for DistilBERT
    args = config.training_arguments(output_dir)
    callbacks = [_TokenCounter(), ProgressCallback(), *(callbacks or [])]
    if config.report_to == "tensorboard":
        tensorboard = TensorBoardCallback()
        if logging_dir:
            tensorboard.logging_dir = logging_dir  # else output_dir/runs/<date>_<host>
        callbacks.append(tensorboard)
    callbacks.append(_LogLastStep())  # after any callback that stops training
    if config.gradient_checkpointing:
        model.config.use_cache = False
    trainer = (_shuffled_length_trainer(config.sampler_chunk_batches)
               if config.sampler == "shuffled_length" else Trainer)
    return trainer(
        model=model, args=args, train_dataset=features, processing_class=tokenizer,
        data_collator=QACollator(tokenizer, config.pad_to_multiple_of,
                                 config.max_length if config.pad_to_max_length else None),
        callbacks=callbacks)


def _shuffled_length_trainer(chunk_batches: int):
    """A Trainer class that draws its batches from `ShuffledLengthSampler`."""
    from transformers import Trainer

    from components.qa.sampling import ShuffledLengthSampler

    class ShuffledLengthTrainer(Trainer):
        def _get_train_sampler(self, train_dataset=None):
            # where the Trainer builds its own group_by_length sampler
            # (transformers/trainer.py, Trainer._get_train_sampler). A group is one optimizer
            # step of all ranks: Accelerate hands consecutive device batches to ranks 0..W-1
            # (BatchSamplerShard), so N nodes train on the same features per step as one node
            # with the same global batch does.
            dataset = train_dataset if train_dataset is not None else self.train_dataset
            step = (self.args.train_batch_size * self.args.gradient_accumulation_steps
                    * self.args.world_size)
            # the seed the Trainer gives its own samplers (Trainer._get_train_sampler)
            seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
            return ShuffledLengthSampler(dataset[LENGTH_COLUMN], step, chunk_batches, seed)

    return ShuffledLengthTrainer


def train_qa_model(model_name_or_path, train_features, output_dir: str, config: TrainConfig,
                   logging_dir: str | None = None, tokenizer=None,
                   checkpoint_dir: str | None = None,
                   callbacks: list | None = None) -> dict[str, float]:
    """Fine-tune, save the model in the Hugging Face layout, return the training figures.

    Args:
        model_name_or_path: a local directory or Hub id (loaded with
            `AutoModelForQuestionAnswering`), or an already built model.
        train_features: the output of `prepare_train_features` (a `datasets.Dataset` or a
            dict of columns), not padded to max_length (unless for the baseline).
        output_dir: where the final model, tokenizer, training_args.json and
            train_config.json are written.
        config: the run's `TrainConfig`.
        logging_dir: TensorBoard event files (default output_dir/runs/...).
        tokenizer: default: loaded from model_name_or_path; needed for a built model.
        checkpoint_dir: checkpoints, and where a run resumes from (default output_dir).
        callbacks: more `TrainerCallback`s (e.g. early stopping, timers).

    Returns:
        train_loss (mean over the run), train_runtime (s), train_samples_per_second,
        train_steps_per_second, tokens_per_second (real tokens: padding not counted),
        global_step, total_flos, num_train_features and num_train_tokens (this run).
    """
    from transformers import AutoTokenizer, PreTrainedModel, set_seed

    from components.qa.preemption import (
        Preempted,
        SigtermCheckpoint,
        TimedCheckpoint,
        latest_complete_checkpoint,
    )

    config.check_machine()  # before loading anything: fp16 on a CPU-only machine stops here
    set_seed(config.seed)  # the QA head is initialised when the model loads
    if isinstance(model_name_or_path, PreTrainedModel):
        model = model_name_or_path
        if tokenizer is None:
            raise InvalidInputError("a built model needs its tokenizer", field="tokenizer",
                                    fix="Pass tokenizer=..., or the model's directory instead.")
    else:
        model = load_qa_model(model_name_or_path, config.attn_implementation)
        if tokenizer is None:
            tokenizer = AutoTokenizer.from_pretrained(model_name_or_path)
    checkpoint_dir = checkpoint_dir or output_dir
    sigterm = SigtermCheckpoint()
    timed = [TimedCheckpoint(config.save_minutes)] if config.save_minutes else []
    trainer = build_trainer(model, tokenizer, train_features, checkpoint_dir, config,
                            logging_dir, [sigterm, *timed, *(callbacks or [])])
    resume = latest_complete_checkpoint(checkpoint_dir)
    logger.info("training %s on %d features: precision=%s, sampler=%s, "
                "pad_to_max_length=%s, batch=%d, workers=%d, optim=%s%s",
                type(model).__name__, len(trainer.train_dataset), config.resolved_precision(),
                config.sampler, config.pad_to_max_length,
                config.per_device_train_batch_size, trainer.args.dataloader_num_workers,
                getattr(trainer.args.optim, "value", trainer.args.optim),
                f", resuming from {resume}" if resume else "")
    result = trainer.train(resume_from_checkpoint=resume)
    if sigterm.received:
        raise Preempted(f"stopped by SIGTERM at step {trainer.state.global_step}; a checkpoint is "
                        f"in {checkpoint_dir}: rerun the step to resume from it")

    trainer.save_model(output_dir)  # model, tokenizer, training_args.bin; rank 0 only
    if trainer.is_world_process_zero():
        with open(os.path.join(output_dir, "training_args.json"), "w") as f:
            f.write(trainer.args.to_json_string())
        with open(os.path.join(output_dir, "train_config.json"), "w") as f:
            json.dump(dataclasses.asdict(config), f, indent=2)

    tokens = next(c for c in trainer.callback_handler.callbacks
                  if isinstance(c, _TokenCounter)).tokens
    runtime = result.metrics["train_runtime"]
    return {
        "train_loss": float(result.training_loss),
        "train_runtime": float(runtime),
        "train_samples_per_second": float(result.metrics["train_samples_per_second"]),
        "train_steps_per_second": float(result.metrics["train_steps_per_second"]),
        "tokens_per_second": tokens / runtime if runtime else 0.0,
        "global_step": int(result.global_step),
        "total_flos": float(trainer.state.total_flos),  # the printer pops it from the metrics
        "num_train_features": len(trainer.train_dataset),
        "num_train_tokens": int(tokens),
    }


class _LogLastStep(TrainerCallback):
    """Log at the step that ends training (the last one, or a preemption's).

    The Trainer averages the loss over all ranks only when it logs; the steps after the
    last log would enter `train_loss` with rank 0's loss alone, so under torchrun it
    would differ from a single process's.
    """

    def on_step_end(self, args, state, control, **kwargs):
        if control.should_training_stop:
            control.should_log = True


class _TokenCounter(TrainerCallback):
    """Real tokens trained on in this run (the Trainer counts them over all ranks)."""

    def __init__(self):
        self.start = self.tokens = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = state.num_input_tokens_seen  # > 0 after resuming from a checkpoint

    def on_train_end(self, args, state, control, **kwargs):
        self.tokens = state.num_input_tokens_seen - self.start
