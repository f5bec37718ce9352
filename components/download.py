"""download: fetch the dataset splits and the base model once, so no later step touches the network."""

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
    from components.io.model_source import snapshot_model
    from components.qa import squad_io, squad_records
    from components.qa.answers import SQUAD_V2, check_trainable, count_unanswerable, squad_version

    counts = []  # (split, artifact, rows, unanswerable)
    for split, limit, artifact in ((train_split, max_train_samples, train_data),
                                   (validation_split, max_eval_samples, validation_data)):
        data, report, where = squad_io.load_checked(
            dataset, split, config=dataset_config, revision=dataset_revision, max_samples=limit,
            answer_policy=answer_policy, max_context_chars=max_context_chars)
        unanswerable = count_unanswerable(data["answers"])
        if artifact is train_data:
            check_trainable(len(data), unanswerable, f"{where} (split {split!r})")
        with published(artifact.path) as tmp:
            data.save_to_disk(tmp)
        artifact.metadata.update({
            "rows": len(data), "source": dataset, "file": where, "split": split, "config": dataset_config,
            "revision": dataset_revision, "fingerprint": squad_records.fingerprint(data),
            "answer_check": report.as_dict(), "answer_policy": answer_policy,
            "unanswerable": unanswerable,
        })
        print(f"{split}: {len(data)} examples from {dataset}; answers: {report.as_dict()}", flush=True)
        counts.append((split, artifact, len(data), unanswerable))

    # one version for both splits: evaluation scores the way the model was trained
    total = sum(c[3] for c in counts)
    declared = None if total else next(filter(None, (
        squad_io.declared_version(dataset, split) for split in (train_split, validation_split))),
        None)
    version = squad_version(total, declared)
    for split, artifact, rows, unanswerable in counts:
        artifact.metadata["squad_version"] = version
        if version == SQUAD_V2:
            why = f" (the file declares version {declared!r})" if declared else ""
            print(f"{split}: taken as SQuAD v2.0{why}: {unanswerable} of {rows} questions "
                  "unanswerable", flush=True)

    with published(base_model.path) as tmp:
        base_model.metadata.update(snapshot_model(model, model_revision, tmp))
    print(f"base model: {base_model.metadata}", flush=True)
