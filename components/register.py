"""register model: record the model with its metrics and lineage, if it passes the min_f1 gate."""

from kfp.dsl import Dataset, Input, Markdown, Metrics, Model, Output


def register_model(
    model: Input[Model],
    metrics: Input[Metrics],
    train_data: Input[Dataset],
    model_name: str,
    model_version: str,
    min_f1: float,
    registry_uri: str,
    pipeline_run_id: str,
    pipeline_root: str,
    registration: Output[Markdown],
):
    from components.registry import open_registry

    f1 = float(metrics.metadata.get("f1", 0.0))
    version = model_version or pipeline_run_id
    if f1 < min_f1:
        message = f"Not registered: F1 {f1:.2f} is below min_f1 {min_f1:.2f}."
    else:
        registry = open_registry(registry_uri, pipeline_root, author="kfp-squad-qa")
        lineage = {
            "metrics": {k: v for k, v in metrics.metadata.items() if isinstance(v, (int, float))},
            "pipeline_run_id": pipeline_run_id,
            "dataset": train_data.metadata.get("source"),
            "dataset_fingerprint": train_data.metadata.get("fingerprint"),
            "base_model": model.metadata.get("base_model"),
            "base_model_revision": model.metadata.get("base_revision"),
            "hyperparameters": model.metadata.get("hyperparameters", {}),
        }
        record, created = registry.register(
            model_name, version, model.uri, model_format_name="transformers",
            model_format_version="5", source_id=pipeline_run_id, metadata=lineage,
            author="kfp-squad-qa")
        message = (f"Registered {model_name} version {version} (F1 {f1:.2f}) at {model.uri}."
                   if created else f"{model_name} version {version} is already registered; nothing to do.")
    print(message, flush=True)
    with open(registration.path, "w", encoding="utf-8") as f:
        f.write(f"# Model registration\n\n{message}\n")
