"""fine-tune checkpoints only where a retry can resume from them (`checkpoint_dir`, on the PVC).

Without a durable folder the checkpoints landed in the step's own model folder and were
published inside the Model artifact (optimizer state and all), useless for resuming: the
retried step gets a fresh output folder.
"""

from pathlib import Path

from kfp import dsl

from components.fine_tune import fine_tune
from tests.multinode.test_trainjob import TINY, tiny  # noqa: F401  (the fixture)


def run(root: Path, data: dict, checkpoint_dir: str) -> Path:
    out = {name: kind(uri=str(root / name)) for name, kind in (
        ("model", dsl.Model), ("metrics", dsl.Metrics), ("tensorboard", dsl.Artifact))}
    fine_tune(train_features=data["train_features"], base_model=data["base_model"],
              learning_rate=TINY["learning_rate"], num_train_epochs=1.0, max_steps=2, batch_size=8,
              weight_decay=0.0, warmup_fraction=0.0, seed=TINY["seed"], precision="fp32",
              sampler=TINY["sampler"],
              checkpoint_dir=checkpoint_dir, save_steps=1, save_minutes=1e-6, **out)
    return Path(out["model"].path)


def test_checkpoints_go_to_checkpoint_dir_and_never_into_the_model(tmp_path, tiny):  # noqa: F811
    model = run(tmp_path / "without", tiny, checkpoint_dir="")
    assert (model / "model.safetensors").exists()
    assert not list(model.glob("checkpoint-*")), "checkpoints published inside the model"

    durable = tmp_path / "pvc" / "checkpoints"
    model = run(tmp_path / "with", tiny, checkpoint_dir=str(durable))
    assert not list(model.glob("checkpoint-*"))
    (keyed,) = durable.iterdir()  # one folder per training identity
    assert sorted(p.name for p in keyed.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
