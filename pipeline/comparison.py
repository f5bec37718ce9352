"""Compare runs across experiments: parameters (from KFP) and metrics (from the model registry),
as compare.csv (every column), compare.md (what differs) and compare.png.

    python -m pipeline compare --experiment qa --experiment qa-lr --out local_outputs/compare
"""

from __future__ import annotations

import contextlib
import csv
import os
from pathlib import Path
from typing import Any

from components.qa.errors import InvalidInputError
from pipeline.kfp_client import ClusterError
from pipeline.kfp_runs import list_runs
from pipeline.parameters import DEFAULTS

METRICS = ("exact_match", "f1")


def registry_metrics(run: dict[str, Any], registry_uri: str | None = None,
                     opened: dict | None = None) -> tuple[dict[str, float], str]:
    """A run's evaluation metrics from the register step's record, and a note when there are none.

    KFP v2 keeps metrics in ML Metadata, which the v2beta1 API does not expose; the register
    step writes them with the run ID into the model registry (docs/cluster.md). `opened`
    keeps registry clients by URI across calls (compare passes one for all its runs).
    """
    from components.registry.client import AUTHOR, open_registry, registered_version

    params = run["parameters"]
    uri = registry_uri if registry_uri is not None else str(params.get("registry_uri") or "")
    if run["state"] != "SUCCEEDED":
        return {}, f"run {run['state']}"
    if not uri:
        return {}, "registry_uri unset: pass --registry-uri"
    registries = {} if opened is None else opened
    name = str(params.get("model_name") or DEFAULTS["model_name"])
    version = registered_version(str(params.get("model_version") or ""), run["run_id"])
    try:
        if uri not in registries:
            registries[uri] = open_registry(uri, author=AUTHOR)
        record = registries[uri].get(name, version)
    except InvalidInputError:
        raise
    except _registry_errors() as e:
        raise ClusterError(f"cannot read {name}:{version} from the model registry at {uri} "
                           f"({type(e).__name__}: {str(e)[:200]})",
                           fix="Pass a registry_uri reachable from here (e.g. --registry-uri "
                               "http://localhost:8080 after `kubectl port-forward -n kubeflow "
                               "svc/model-registry-service 8080`) and set MODEL_REGISTRY_TOKEN.") from None
    if record is None:
        return {}, f"{name}:{version} not registered (F1 below min_f1?)"
    owner = record.get("metadata", {}).get("pipeline_run_id")
    if owner not in (None, run["run_id"]):
        return {}, f"{name}:{version} was registered by run {owner}"
    return dict(record["metadata"].get("metrics", {})), ""


def _registry_errors() -> tuple[type[BaseException], ...]:
    """What reading a registry raises: files and JSON, or the Model Registry client's types."""
    errors: list[type[BaseException]] = [OSError, ValueError]
    with contextlib.suppress(ImportError):
        import aiohttp
        from model_registry.exceptions import StoreError
        from mr_openapi.exceptions import OpenApiException

        errors += [aiohttp.ClientError, StoreError, OpenApiException]
    return tuple(errors)


def compare(client, experiments: list[str], registry_uri: str | None = None,
            namespace: str | None = None) -> list[dict[str, Any]]:
    """One row per run of the experiments: parameters (from KFP) and metrics (from the registry)."""
    registries: dict = {}
    rows = []
    for run in list_runs(client, experiments, namespace):
        metrics, note = registry_metrics(run, registry_uri, registries)
        rows.append(comparison_row(run, metrics, note))
    return rows


def comparison_row(run: dict[str, Any], metrics: dict[str, Any], note: str = "") -> dict[str, Any]:
    """The flat row compare.csv holds: identity, metrics, note, then every pipeline parameter."""
    row = {k: run.get(k, "") for k in ("experiment", "run_name", "run_id", "state", "created_at")}
    row.update({m: metrics.get(m, "") for m in METRICS})
    row["note"] = note
    row.update({name: run["parameters"].get(name, "") for name in DEFAULTS})
    return row


def write_comparison(rows: list[dict[str, Any]], out_dir: str | os.PathLike) -> dict[str, Path]:
    """compare.csv (every column), compare.md (parameters that differ + metrics), compare.png."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {kind: out / f"compare.{kind}" for kind in ("csv", "md", "png")}
    columns = list(rows[0]) if rows else ["experiment", "run_name", "run_id", "state", *METRICS, "note"]
    with paths["csv"].open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    paths["md"].write_text(markdown_table(rows), encoding="utf-8")
    _plot(rows, paths["png"])
    return paths


def markdown_table(rows: list[dict[str, Any]]) -> str:
    varying = [p for p in DEFAULTS if len({str(r.get(p, "")) for r in rows}) > 1]
    columns = ["experiment", "run_name", "state", *varying, *METRICS, "note"]

    def cell(value) -> str:
        text = f"{value:.2f}" if isinstance(value, float) else str(value)
        return text.replace("|", "\\|")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _plot(rows: list[dict[str, Any]], path: Path) -> None:
    # Figure + Agg canvas directly: pyplot's global backend (inline in notebooks) stays untouched.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    scored = [r for r in rows if all(isinstance(r.get(m), (int, float)) for m in METRICS)]
    fig = Figure(figsize=(max(4.0, 1.2 * len(scored) + 2), 3.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    width = 0.38
    for i, metric in enumerate(METRICS):
        ax.bar([x + (i - 0.5) * width for x in range(len(scored))],
               [float(r[metric]) for r in scored], width, label=metric)
    ax.set_xticks(range(len(scored)), [f"{r['experiment']}\n{r['run_name']}"[:40] for r in scored],
                  fontsize=7)
    ax.set_ylabel("score (%)")
    ax.set_ylim(0, 100)
    ax.set_title("SQuAD exact match and F1 per run" if scored else "no run has metrics yet")
    if scored:
        ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
