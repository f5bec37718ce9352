"""The download step's dataset half: the training and validation splits read, checked and saved
as Arrow, with one SQuAD version for both."""

from __future__ import annotations

from components.io.artifacts import published
from components.qa import squad_io, squad_records
from components.qa.answers import SQUAD_V2, check_trainable, count_unanswerable, squad_version


def fetch_squad_splits(dataset: str, config: str, revision: str,
                       train: tuple[str, int, str], validation: tuple[str, int, str],
                       answer_policy: str, max_context_chars: int) -> tuple[dict, dict]:
    """Save each (split, max_samples, out_path) of `dataset` at its path; return the two
    artifacts' metadata (train, validation).

    Every check of `squad_io.load_checked` runs; a training split with no answered question is
    refused. Both splits get one `squad_version`, so that evaluation scores the way the model
    was trained: v2.0 when a question of either has no answer, else the version their files
    declare (the first split that declares one).
    """
    fetched = []  # (split, metadata)
    for split, limit, path in (train, validation):
        data, report, where = squad_io.load_checked(
            dataset, split, config=config, revision=revision, max_samples=limit,
            answer_policy=answer_policy, max_context_chars=max_context_chars)
        unanswerable = count_unanswerable(data["answers"])
        if not fetched:
            check_trainable(len(data), unanswerable, f"{where} (split {split!r})")
        with published(path) as tmp:
            data.save_to_disk(tmp)
        fetched.append((split, {
            "rows": len(data), "source": dataset, "file": where, "split": split, "config": config,
            "revision": revision, "fingerprint": squad_records.fingerprint(data),
            "answer_check": report.as_dict(), "answer_policy": answer_policy,
            "unanswerable": unanswerable,
        }))
        print(f"{split}: {len(data)} examples from {dataset}; answers: {report.as_dict()}", flush=True)

    total = sum(metadata["unanswerable"] for _, metadata in fetched)
    declared = None if total else next(filter(None, (
        squad_io.declared_version(dataset, split) for split, _ in fetched)), None)
    version = squad_version(total, declared)
    for split, metadata in fetched:
        metadata["squad_version"] = version
        if version == SQUAD_V2:
            why = f" (the file declares version {declared!r})" if declared else ""
            print(f"{split}: taken as SQuAD v2.0{why}: {metadata['unanswerable']} of "
                  f"{metadata['rows']} questions unanswerable", flush=True)
    (_, train_metadata), (_, validation_metadata) = fetched
    return train_metadata, validation_metadata
