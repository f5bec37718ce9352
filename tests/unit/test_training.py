"""TrainConfig checks, the Trainer's batches, and a few real training steps of a tiny BERT
(2 layers, hidden 32, the MiniLM vocabulary) on 64 real dev-v1.1 features.

    python -m pytest tests/unit/test_training.py -q
"""

import json
import re

import datasets
import pytest
import torch

from components.qa import train_config, training
from components.qa.errors import InvalidInputError
from components.qa.features import prepare_train_features
from components.qa.sampling import ShuffledLengthSampler
from components.qa.train_config import TrainConfig
from components.qa.training import build_trainer, train_qa_model
from tests.conftest import columns

QUICK = dict(per_device_train_batch_size=8, logging_steps=4, save_steps=0, report_to="none")


@pytest.mark.parametrize("kwargs, field, message", [
    (dict(learning_rate=0.0), "learning_rate", "must be in (0, 1)"),
    (dict(learning_rate=2.0), "learning_rate", "must be in (0, 1)"),
    (dict(per_device_train_batch_size=0), "per_device_train_batch_size", "positive integer"),
    (dict(num_train_epochs=0, max_steps=-1), "num_train_epochs", "trains nothing"),
    (dict(precision="fp8"), "precision", "unknown precision 'fp8'"),
    (dict(warmup_fraction=1.0), "warmup_fraction", "in [0, 1)"),
    (dict(lr_scheduler_type="triangle"), "lr_scheduler_type", "unknown lr_scheduler_type"),
    (dict(dataloader_num_workers=-1), "dataloader_num_workers", "'auto' or an integer"),
    (dict(save_steps=-5), "save_steps", "must be >= 0"),
    (dict(report_to="wandb"), "report_to", "tensorboard"),
])
def test_config_errors_name_the_field_and_the_fix(kwargs, field, message):
    with pytest.raises(InvalidInputError, match=re.escape(message)) as err:
        TrainConfig(**kwargs)
    assert err.value.field == field and err.value.fix


def test_max_steps_alone_is_enough_and_baseline_is_the_same_config():
    assert TrainConfig(num_train_epochs=0, max_steps=10).max_steps == 10
    base = TrainConfig.baseline(learning_rate=1e-4)
    assert (base.pad_to_max_length, base.sampler, base.precision) == (True, "random", "fp32")
    assert base.learning_rate == 1e-4


@pytest.mark.parametrize("capability, auto, bf16_ok", [((9, 0), "bf16", True),
                                                       ((7, 5), "fp16", False)])
def test_precision_on_gpus(monkeypatch, capability, auto, bf16_ok):
    monkeypatch.setattr(train_config, "_cuda", lambda: True)
    monkeypatch.setattr(train_config, "_cuda_capability", lambda: capability)
    assert TrainConfig().resolved_precision() == auto
    assert TrainConfig(precision="fp16").resolved_precision() == "fp16"
    bf16 = TrainConfig(precision="bf16")  # a value check only: any machine builds it
    if bf16_ok:
        bf16.check_machine()
        assert bf16.resolved_precision() == "bf16"
    else:
        with pytest.raises(InvalidInputError, match="Ampere") as err:
            bf16.check_machine()
        assert "fp16" in err.value.fix and err.value.field == "precision"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU defaults")
def test_cpu_defaults():
    config = TrainConfig()
    assert config.resolved_precision() == "fp32"
    fp16 = TrainConfig(precision="fp16")  # built on a laptop that submits a GPU run
    for where_training_starts in (fp16.check_machine, lambda: fp16.training_arguments("unused"),
                                  lambda: train_qa_model("no-such/model", {}, "unused", fp16)):
        with pytest.raises(InvalidInputError, match="fp16 mixed precision needs a CUDA GPU"):
            where_training_starts()
    args = config.training_arguments("unused")
    assert (args.bf16, args.fp16, args.dataloader_num_workers) == (False, False, 0)
    assert config.sampler == "shuffled_length"  # build_trainer's sampler (test_sampling.py)
    assert args.warmup_steps == 0.1  # a fraction: the Trainer multiplies by its total steps
    assert args.get_warmup_steps(1000) == 100
    assert args.optim == "adamw_torch_fused"  # on a CPU too: test_the_cpu_optimizer_is_fused_adamw


# ---------------------------------------------------------------------------------------
# real features, tiny model


@pytest.fixture(scope="module")
def train_features(dev_v1_rows, tokenizer):
    """64 features of the first article, short and long questions mixed."""
    examples = datasets.Dataset.from_dict(columns(dev_v1_rows[:80]))
    features = examples.map(prepare_train_features, batched=True,
                            remove_columns=examples.column_names,
                            fn_kwargs={"tokenizer": tokenizer})
    return features.select(range(64))


@pytest.fixture
def tiny_model_dir(tmp_path, tokenizer):
    """A random 2-layer BERT saved with the MiniLM tokenizer, as a model directory is."""
    from transformers import BertConfig, BertForQuestionAnswering

    torch.manual_seed(0)
    model = BertForQuestionAnswering(BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=64, pad_token_id=tokenizer.pad_token_id))
    path = tmp_path / "tiny"
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def mean_loss(model_dir, features, tokenizer):
    from transformers import AutoModelForQuestionAnswering

    model = AutoModelForQuestionAnswering.from_pretrained(model_dir).eval()
    collate = training.QACollator(tokenizer)
    with torch.inference_mode():
        return float(model(**collate([features[i] for i in range(len(features))])).loss)


def test_trainer_groups_by_length_from_the_length_column(tiny_model_dir, train_features,
                                                         tokenizer, tmp_path, monkeypatch):
    from transformers.trainer_pt_utils import LengthGroupedSampler

    model = training.load_qa_model(tiny_model_dir)
    trainer = build_trainer(model, tokenizer, train_features, str(tmp_path / "out"),
                            TrainConfig(**QUICK))
    lengths = [sum(mask) for mask in train_features["attention_mask"]]
    sampler = trainer._get_train_sampler(trainer.train_dataset)
    assert isinstance(sampler, ShuffledLengthSampler)  # tests/unit/test_sampling.py
    assert sampler.lengths == lengths  # read from our column, not by re-reading every row
    assert sampler.batch_size == QUICK["per_device_train_batch_size"]
    assert sampler.seed == trainer.args.seed  # the run's seed, not the global RNG's state
    # on 2 ranks a group is the step of both, so each step takes the features one rank with
    # twice the batch would (Accelerate deals the group's halves to the two ranks)
    monkeypatch.setattr(type(trainer.args), "world_size", property(lambda self: 2))
    assert trainer._get_train_sampler().batch_size == 2 * QUICK["per_device_train_batch_size"]
    monkeypatch.undo()
    hf = build_trainer(model, tokenizer, train_features, str(tmp_path / "hf"),
                       TrainConfig(**QUICK, sampler="group_by_length"))
    assert isinstance(hf._get_train_sampler(hf.train_dataset), LengthGroupedSampler)
    loader = trainer.get_train_dataloader()
    loader.set_epoch(3)  # what the Trainer calls at each epoch: it reaches our sampler
    assert loader.batch_sampler.sampler.epoch == 3
    loader.set_epoch(0)
    batches = list(loader)
    assert "length" not in batches[0]
    padded = sum(b["input_ids"].numel() for b in batches)
    real = sum(int(b["attention_mask"].sum()) for b in batches)
    assert real == sum(lengths) and all(b["input_ids"].shape[1] % 8 == 0 for b in batches)
    assert real / padded > 0.85  # grouped: little padding left (0.38 padded to 384)
    assert batches[0]["input_ids"].shape[1] == max(b["input_ids"].shape[1] for b in batches)

    baseline = build_trainer(model, tokenizer, train_features, str(tmp_path / "base"),
                             TrainConfig.baseline(**QUICK))
    assert not isinstance(baseline._get_train_sampler(baseline.train_dataset),
                          (LengthGroupedSampler, ShuffledLengthSampler))
    assert {b["input_ids"].shape[1] for b in baseline.get_train_dataloader()} == {384}


def test_the_cpu_optimizer_is_fused_adamw(tiny_model_dir, train_features, tokenizer, tmp_path):
    """Foreach AdamW steps are 5-6x slower than fused ones on a CPU (bench/optimizer_step.py):
    at the demo's batch of 4 that was a fifth of each step."""
    trainer = build_trainer(training.load_qa_model(tiny_model_dir), tokenizer, train_features,
                            str(tmp_path / "out"), TrainConfig(**QUICK, max_steps=2))
    optimizer = trainer.create_optimizer()
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.defaults["fused"] is True
    trainer.train()  # the fused kernel runs on this CPU
    assert trainer.state.global_step == 2


def test_a_few_steps_learn_save_the_hf_layout_and_resume(tiny_model_dir, train_features,
                                                         tokenizer, tmp_path):
    from transformers import AutoModelForQuestionAnswering

    out, logs = tmp_path / "model", tmp_path / "tensorboard"
    config = TrainConfig(learning_rate=5e-3, num_train_epochs=3, warmup_fraction=0.0,
                         per_device_train_batch_size=8, logging_steps=4, save_steps=8,
                         save_total_limit=1)
    metrics = train_qa_model(tiny_model_dir, train_features, str(out), config,
                             logging_dir=str(logs))

    real_tokens = sum(sum(mask) for mask in train_features["attention_mask"])
    assert metrics["global_step"] == 24  # 64 features / 8 per batch * 3 epochs
    assert metrics["num_train_tokens"] == 3 * real_tokens  # padding not counted
    assert metrics["tokens_per_second"] > 0 and metrics["total_flos"] > 0
    assert set(metrics) >= {"train_loss", "train_runtime", "train_samples_per_second",
                            "train_steps_per_second"}
    assert mean_loss(str(out), train_features, tokenizer) < 0.9 * mean_loss(
        tiny_model_dir, train_features, tokenizer)

    saved = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
            "training_args.json", "train_config.json", "checkpoint-24"} <= saved
    assert json.loads((out / "train_config.json").read_text())["sampler"] == "shuffled_length"
    assert json.loads((out / "train_config.json").read_text())["learning_rate"] == 5e-3
    assert list(logs.glob("events.out.tfevents.*"))
    AutoModelForQuestionAnswering.from_pretrained(out)

    # one more epoch: resumes from checkpoint-24 and trains only the new steps
    more = train_qa_model(tiny_model_dir, train_features, str(out),
                          TrainConfig(**{**config.__dict__, "num_train_epochs": 4}),
                          logging_dir=str(logs))
    assert more["global_step"] == 32 and more["num_train_tokens"] == real_tokens


def test_models_that_cannot_answer_are_refused(tmp_path, train_features):
    from transformers import ViTConfig

    ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2).save_pretrained(
        tmp_path / "vit")
    for path in (tmp_path / "missing", tmp_path / "vit"):
        with pytest.raises(InvalidInputError, match="as a question-answering model") as err:
            train_qa_model(str(path), train_features, str(tmp_path / "out"),
                           TrainConfig(**QUICK))
        assert err.value.field == "model_name_or_path"


def test_features_without_labels_are_refused(tiny_model_dir, train_features, tmp_path):
    unlabelled = train_features.remove_columns(["start_positions", "end_positions"])
    with pytest.raises(InvalidInputError, match="start_positions"):
        train_qa_model(tiny_model_dir, unlabelled, str(tmp_path / "out"), TrainConfig(**QUICK))


def test_baseline_refuses_features_longer_than_max_length(tiny_model_dir, train_features,
                                                          tmp_path):
    with pytest.raises(InvalidInputError, match="max_length=128") as err:
        train_qa_model(tiny_model_dir, train_features, str(tmp_path / "out"),
                       TrainConfig.baseline(max_length=128, **QUICK))
    assert err.value.field == "max_length"
