"""download: fetch the dataset splits and the base model once, so no later step touches the network."""

from kfp import dsl
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
    model: str,
    model_revision: str,
    train_data: Output[Dataset],
    validation_data: Output[Dataset],
    base_model: Output[Model],
):
    from components.qa import squad_io
    from components.qa.answers import check_answers
    from components.model_source import snapshot_model
    from components.artifacts import published

    for split, limit, artifact in ((train_split, max_train_samples, train_data),
                                   (validation_split, max_eval_samples, validation_data)):
        data = squad_io.load_split(dataset, split, config=dataset_config, revision=dataset_revision)
        if limit > 0:
            data = data.select(range(min(limit, len(data))))
        where = squad_io.describe_source(dataset, split)
        squad_io.validate_examples(data, where)
        columns, report = check_answers(data.to_dict(), policy=answer_policy, source=where)
        if report.repaired or report.dropped:
            data = data.from_dict(columns, features=data.features)
        if len(data) == 0:
            raise ValueError(f"{where}: no examples left (answer report {report.as_dict()}). "
                             "Check the source and max_*_samples.")
        with published(artifact.path) as tmp:
            data.save_to_disk(tmp)
        artifact.metadata.update({
            "rows": len(data), "source": dataset, "split": split, "config": dataset_config,
            "revision": dataset_revision, "fingerprint": squad_io.fingerprint(data),
            "answer_check": report.as_dict(), "answer_policy": answer_policy,
        })
        print(f"{split}: {len(data)} examples from {dataset}; answers: {report.as_dict()}", flush=True)

    with published(base_model.path) as tmp:
        base_model.metadata.update(snapshot_model(model, model_revision, tmp))
    print(f"base model: {base_model.metadata}", flush=True)
