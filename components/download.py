"""download: fetch the dataset splits and the base model once, so no later step touches the network.

The splits are read, checked and given one SQuAD version in components/io/dataset_fetch.py.
"""

from kfp.dsl import Dataset, Model, Output


def download(
    dataset: str,
    dataset_config: str,
    dataset_revision: str,
    train_split: str,
    validation_split: str,
    max_train_samples: int,
    max_eval_samples: int,
    answer_policy: str,
    max_context_chars: int,
    model: str,
    model_revision: str,
    train_data: Output[Dataset],
    validation_data: Output[Dataset],
    base_model: Output[Model],
):
    from components.io.artifacts import published
    from components.io.dataset_fetch import fetch_squad_splits
    from components.io.model_source import snapshot_model

    train_metadata, validation_metadata = fetch_squad_splits(
        dataset, dataset_config, dataset_revision,
        train=(train_split, max_train_samples, train_data.path),
        validation=(validation_split, max_eval_samples, validation_data.path),
        answer_policy=answer_policy, max_context_chars=max_context_chars)
    train_data.metadata.update(train_metadata)
    validation_data.metadata.update(validation_metadata)

    with published(base_model.path) as tmp:
        base_model.metadata.update(snapshot_model(model, model_revision, tmp))
    print(f"base model: {base_model.metadata}", flush=True)
