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
    registration: Output[Markdown],
):
    """registry_uri names where the record lands (never a placeholder only kfp.local resolves);
    the model's URI is recorded in a form a deployment can load (components.registry.client.serving_uri)."""
    from components.registry.client import (
        AUTHOR,
        MODEL_FORMAT,
        below_gate,
        open_registry,
        registered_version,
        serving_uri,
    )

    f1 = float(metrics.metadata.get("f1", 0.0))
    version = registered_version(model_version, pipeline_run_id)
    refused = below_gate(metrics.metadata, min_f1)
    if refused:
        message = f"Not registered: {refused}."
    else:
        registry = open_registry(registry_uri, author=AUTHOR)
        uri = serving_uri(model.uri)
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
            model_name, version, uri, model_format_name=MODEL_FORMAT,
            model_format_version="5", source_id=pipeline_run_id, metadata=lineage,
            author=AUTHOR)
        message = (f"Registered {model_name} version {version} (F1 {f1:.2f}) at {uri} in {registry_uri}."
                   if created else f"{model_name} version {version} is already registered; nothing to do.")
    print(message, flush=True)
    with open(registration.path, "w", encoding="utf-8") as f:
        f.write(f"# Model registration\n\n{message}\n")
