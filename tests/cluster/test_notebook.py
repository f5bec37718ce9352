"""pipeline.ipynb: committed without outputs, and runs top to bottom with no KFP host (kfp.local).

    python -m pytest tests/cluster/test_notebook.py -q            # the slow one runs the tiny DAG
"""

from __future__ import annotations

import csv
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "pipeline.ipynb"


def test_committed_notebook_has_no_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code)
    assert [c for c in code if "parameters" in c.metadata.get("tags", [])] == [code[0]]
    assert "PROFILE = " in code[0].source


@pytest.mark.slow
def test_notebook_runs_top_to_bottom_on_kfp_local(tmp_path, monkeypatch):
    papermill = pytest.importorskip("papermill")
    for name in ("KFP_HOST", "KFP_TOKEN", "KF_PIPELINES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(tmp_path / "no-token"))  # not in a Kubeflow pod
    out_dir = tmp_path / "out"
    executed = papermill.execute_notebook(
        str(NOTEBOOK), str(tmp_path / "executed.ipynb"), cwd=str(REPO), kernel_name="python3",
        progress_bar=False, parameters={"PROFILE": "tiny", "PIPELINE_ROOT": str(tmp_path / "root"),
                                        "OUT_DIR": str(out_dir)})

    text = "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/markdown", ""))
                     for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    assert "running on this machine through kfp.local" in text
    assert "| f1 |" in text and "kfp.local has no scheduler" in text
    (row,) = list(csv.DictReader((out_dir / "compare.csv").open()))
    assert row["state"] == "SUCCEEDED" and 0 <= float(row["exact_match"]) <= float(row["f1"]) <= 100
    assert row["max_steps"] == "4"  # the tiny profile reached the run
    assert (out_dir / "compare.png").read_bytes()[:4] == b"\x89PNG"
    assert list((tmp_path / "root" / "model-registry" / "squad-qa").glob("*.json"))


def test_notebook_runs_the_same_cells_against_kfp(tmp_path, monkeypatch):
    """The cluster branch of every cell, against the KFP stand-in (not a cluster; no training)."""
    papermill = pytest.importorskip("papermill")
    from tests.cluster.kfp_standin import KfpStandin, register_like_the_pipeline
    from tests.cluster.registry_standin import ModelRegistryStandin

    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(tmp_path / "no-token"))
    for name in ("KF_PIPELINES_ENDPOINT", "KFP_NAMESPACE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MODEL_REGISTRY_TOKEN", "mr-token")
    out_dir = tmp_path / "out"
    namespace = "kubeflow-user-example-com"
    with KfpStandin(token="nb-token", multi_user=True, namespaces=(namespace,)) as kfp, \
            ModelRegistryStandin(token="mr-token") as registry:
        kfp.on_success = lambda run: register_like_the_pipeline(run, tmp_path)
        monkeypatch.setenv("KFP_HOST", kfp.url)
        monkeypatch.setenv("KFP_TOKEN", "nb-token")
        executed = papermill.execute_notebook(
            str(NOTEBOOK), str(tmp_path / "executed.ipynb"), cwd=str(REPO), kernel_name="python3",
            progress_bar=False, parameters={"PROFILE": "tiny", "OUT_DIR": str(out_dir), "POLL_S": 0,
                                            "REGISTRY": registry.url, "NAMESPACE": namespace,
                                            "OVERRIDES": {"seed": 3}})
        (run,) = kfp.runs.values()
        (job,) = kfp.recurring_runs.values()
        (version,) = registry.versions.values()

    text = "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/markdown", ""))
                     for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    assert "Connected to Kubeflow Pipelines." in text and "SUCCEEDED done:" in text
    assert "| f1 | 73.00 |" in text  # read back from the registry record of the run
    assert run["runtime_config"]["parameters"]["max_steps"] == 4
    assert run["service_account"] == job["service_account"] == "qa-pipeline"
    assert version["name"] == run["run_id"]  # registered in the Model Registry, not on a pod's disk
    assert {p["namespace"] for p in kfp.pipelines.values()} == {namespace}
    assert (job["trigger"]["cron_schedule"]["cron"], job["no_catchup"], job["max_concurrency"]) == \
        ("0 0 3 * * *", True, "1")
    (row,) = list(csv.DictReader((out_dir / "compare.csv").open()))
    assert (row["run_id"], row["f1"], row["experiment"]) == (run["run_id"], "73.0", "qa-finetune")
