"""Several GPUs in one pod: the same entry point under torchrun, here 2 CPU ranks over gloo.

`components.launch.entry.launch(N, ...)` is what the fine-tune step runs when its node has
N > 1 GPUs. Two ranks x batch 4 must train like one process x batch 8 (same global batch and
seed); the fixture (shared with the TrainJob tests) removes dropout and padding, the only two
by-design differences, so what is left is all-reduce arithmetic.
"""

import json

import pytest

from components.launch.entry import METRICS_FILE, launch
from components.qa.train_config import TrainConfig
from tests.multinode.test_trainjob import F1_TOLERANCE, LOSS_TOLERANCE, TINY, f1, tiny, train_set_loss  # noqa: F401

pytestmark = pytest.mark.slow


def config(batch_size: int) -> TrainConfig:
    return TrainConfig(learning_rate=TINY["learning_rate"], max_steps=TINY["max_steps"],
                       per_device_train_batch_size=batch_size, warmup_fraction=TINY["warmup_fraction"],
                       weight_decay=TINY["weight_decay"], seed=TINY["seed"], precision="fp32",
                       report_to="none")


def test_two_ranks_under_torchrun_train_like_one_process(tmp_path, tiny):  # noqa: F811
    features, base = tiny["train_features"].path, tiny["base_model"].path
    one = launch(1, features, base, str(tmp_path / "one"), config(8))
    two = launch(2, features, base, str(tmp_path / "two"), config(4))
    assert two["global_step"] == one["global_step"] == TINY["max_steps"]
    assert two["num_train_tokens"] == one["num_train_tokens"]
    # the mean loss over the run averages all ranks, not rank 0's half of each batch
    assert two["train_loss"] == pytest.approx(one["train_loss"], abs=LOSS_TOLERANCE)
    assert json.loads((tmp_path / "two" / METRICS_FILE).read_text())["global_step"] == TINY["max_steps"]
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == \
        sorted(p.name for p in (tmp_path / "one").iterdir())  # one model, the same layout
    loss_one = train_set_loss(str(tmp_path / "one"), features)
    loss_two = train_set_loss(str(tmp_path / "two"), features)
    assert loss_two == pytest.approx(loss_one, abs=LOSS_TOLERANCE)
    assert f1(str(tmp_path / "two"), tiny) == pytest.approx(f1(str(tmp_path / "one"), tiny), abs=F1_TOLERANCE)


def test_timed_checkpoints_under_ddp_follow_rank_0s_clock(tmp_path, tiny):  # noqa: F811
    """Every rank must take part in a checkpoint: rank 0's "minutes passed" decision is broadcast
    (TimedCheckpoint); 60 µs makes every step due, so each of the 4 steps saves."""
    import dataclasses

    timed = dataclasses.replace(config(4), save_steps=0, save_minutes=1e-6, save_total_limit=4)
    result = launch(2, tiny["train_features"].path, tiny["base_model"].path, str(tmp_path / "model"), timed,
                    checkpoint_dir=str(tmp_path / "checkpoints"))
    assert result["global_step"] == TINY["max_steps"]
    (keyed,) = (tmp_path / "checkpoints").iterdir()
    assert sorted(int(p.name.rsplit("-", 1)[1]) for p in keyed.glob("checkpoint-*")) == [1, 2, 3, 4]
