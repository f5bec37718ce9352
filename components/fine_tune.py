"""fine-tune: Hugging Face Trainer on the train features; save_pretrained model, metrics, TensorBoard."""

from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output


def fine_tune(
    train_features: Input[Dataset],
    base_model: Input[Model],
    learning_rate: float,
    num_train_epochs: float,
    max_steps: int,
    batch_size: int,
    weight_decay: float,
    warmup_fraction: float,
    seed: int,
    precision: str,
    checkpoint_dir: str,
    model: Output[Model],
    metrics: Output[Metrics],
    tensorboard: Output[Artifact],
):
    import dataclasses

    import torch

    from components.artifacts import published, write_metrics
    from components.qa.training import TrainConfig
    from components.train_entry import launch

    config = TrainConfig(learning_rate=learning_rate, num_train_epochs=num_train_epochs,
                         max_steps=max_steps, per_device_train_batch_size=batch_size,
                         weight_decay=weight_decay, warmup_fraction=warmup_fraction, seed=seed,
                         precision=precision)
    gpus = torch.cuda.device_count()  # > 1: data-parallel ranks under torchrun, same metrics
    with published(model.path) as model_dir, published(tensorboard.path) as logs:
        result = launch(max(gpus, 1), train_features.path, base_model.path, model_dir, config,
                        logging_dir=logs, checkpoint_dir=checkpoint_dir or None)
    write_metrics(metrics, result)
    model.metadata.update({"framework": "transformers", "base_model": base_model.metadata.get("model"),
                           "base_revision": base_model.metadata.get("revision"),
                           "train_fingerprint": train_features.metadata.get("fingerprint"),
                           "hyperparameters": {**dataclasses.asdict(config),
                                               "max_length": train_features.metadata.get("max_length"),
                                               "doc_stride": train_features.metadata.get("doc_stride")}})
    tensorboard.metadata["display_name"] = "TensorBoard logs"
