"""fine-tune: Hugging Face Trainer on the train features; save_pretrained model, metrics, TensorBoard.

Where it trains is decided in components/launch/topology.py. One node: trains here (torchrun
over the pod's GPUs when it has several); a step given a GPU that torch cannot see fails before
training (components/launch/accelerator.py). More nodes (or a step compiled as a launcher,
`trainjob["always"]`): submits a Kubeflow Trainer TrainJob that runs the same entry point on
every node, follows it and publishes rank 0's model (components/launch/trainjob.py,
docs/multinode.md).
"""

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
    sampler: str,
    checkpoint_dir: str,
    model: Output[Model],
    metrics: Output[Metrics],
    tensorboard: Output[Artifact],
    num_nodes: int = 1,
    trainjob: dict = None,
    save_steps: int = 500,
    save_minutes: float = 0.0,
    run_id: str = "",
):
    import dataclasses

    from components.io.artifacts import published, write_metrics
    from components.launch.topology import train
    from components.qa.train_config import TrainConfig

    if not checkpoint_dir:  # no durable folder: checkpoints could never be resumed from, and
        save_steps, save_minutes = 0, 0.0  # would be published inside the model artifact
    config = TrainConfig(learning_rate=learning_rate, num_train_epochs=num_train_epochs,
                         max_steps=max_steps, per_device_train_batch_size=batch_size,
                         weight_decay=weight_decay, warmup_fraction=warmup_fraction, seed=seed,
                         precision=precision, sampler=sampler, save_steps=save_steps, save_minutes=save_minutes)
    with published(model.path) as model_dir, published(tensorboard.path) as logs:
        result = train(num_nodes, trainjob, train_features.path, base_model.path, model_dir, config,
                       logging_dir=logs, checkpoint_dir=checkpoint_dir or None, run_id=run_id)
    write_metrics(metrics, result)
    model.metadata.update({"framework": "transformers", "base_model": base_model.metadata.get("model"),
                           "base_revision": base_model.metadata.get("revision"),
                           "train_fingerprint": train_features.metadata.get("fingerprint"),
                           "hyperparameters": {**dataclasses.asdict(config), "num_nodes": num_nodes,
                                               "max_length": train_features.metadata.get("max_length"),
                                               "doc_stride": train_features.metadata.get("doc_stride")}})
    tensorboard.metadata["display_name"] = "TensorBoard logs"
