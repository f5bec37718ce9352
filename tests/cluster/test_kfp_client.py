"""pipeline/cluster.py and `python -m pipeline submit|schedule|runs|compare` against the KFP stand-in.

The stand-in (tests/cluster/kfp_standin.py) answers KFP's v2beta1 REST API on loopback; it is
not a cluster. A finished run "registers" its model through the real register step
(kfp_standin.register_like_the_pipeline), scored by kfp_standin.fake_scores: seed 3 -> EM 63, F1 73.

    python -m pytest tests/cluster/test_kfp_client.py -q
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml

from pipeline import cluster
from pipeline.__main__ import main
from pipeline.parameters import profile_parameters
from tests.cluster.kfp_standin import KfpStandin, Outcome, register_like_the_pipeline
from tests.cluster.registry_standin import ModelRegistryStandin

TOKEN = "kfp-test-token-3f1c"
STEPS = ["download", "preprocess-train", "preprocess-validation", "fine-tune", "evaluate",
         "register-model"]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in ("KFP_HOST", "KFP_TOKEN", "KF_PIPELINES_ENDPOINT", "MODEL_REGISTRY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(tmp_path / "no-such-token"))
    import kfp.client.client

    # kfp.Client keeps a namespace context in ~/.config/kfp; keep tests away from the real one
    monkeypatch.setattr(kfp.client.client.Client, "_LOCAL_KFP_CONTEXT", str(tmp_path / "kfp-context.json"))


@pytest.fixture
def kfp(tmp_path, monkeypatch):
    with KfpStandin(token=TOKEN) as server:
        server.on_success = lambda run: register_like_the_pipeline(run, tmp_path)
        monkeypatch.setenv("KFP_HOST", server.url)
        monkeypatch.setenv("KFP_TOKEN", TOKEN)
        yield server


@pytest.fixture
def client(kfp):
    return cluster.connect()


@pytest.fixture(scope="module")
def packages(tmp_path_factory) -> tuple[Path, Path]:
    """The pipeline compiled twice: as is, and with a different accelerator count."""
    out = tmp_path_factory.mktemp("packages")
    assert main(["compile", "--output", str(out / "a.yaml")]) == 0
    assert main(["compile", "--output", str(out / "b.yaml"), "--accelerator-count", "2"]) == 0
    return out / "a.yaml", out / "b.yaml"


def submit_args(package: Path, *extra: str) -> list[str]:
    return ["submit", "--package", str(package), "--profile", "tiny", *extra]


# ------------------------------------------------------------------------------ connect

def test_no_host_means_local(capsys):
    assert cluster.connect() is None
    assert main(["runs", "--experiment", "x"]) == 2
    err = capsys.readouterr().err
    assert "no KFP host configured" in err and "run --local" in err


def test_bad_token_is_rejected_without_printing_it(kfp, monkeypatch, capsys):
    monkeypatch.setenv("KFP_TOKEN", "wrong-token-77")
    assert main(["runs", "--experiment", "x"]) == 2
    out = capsys.readouterr()
    assert "rejected the token (HTTP 401)" in out.err and "KFP_TOKEN" in out.err
    assert "wrong-token-77" not in out.out + out.err
    assert kfp.requests == [("GET", "/apis/v2beta1/healthz")]  # stopped before kfp.Client's retries


def test_notebook_service_account_token_is_used(kfp, monkeypatch, tmp_path):
    monkeypatch.delenv("KFP_TOKEN")
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(token_file))
    client = cluster.connect()
    assert cluster.experiment(client, "from-notebook")
    assert set(kfp.authorization_headers) == {f"Bearer {TOKEN}"}


def test_unreachable_host_says_how_to_connect(monkeypatch):
    with pytest.raises(cluster.ClusterError, match="cannot reach KFP.*port-forward"):
        cluster.connect("http://127.0.0.1:9", TOKEN)


# ------------------------------------------------------------------ upload and experiments

def test_upload_is_idempotent_by_name_and_adds_a_version_on_change(kfp, client, packages):
    a, b = packages
    first = cluster.upload(client, a, "qa-finetune")
    again = cluster.upload(client, a, "qa-finetune")
    changed = cluster.upload(client, b, "qa-finetune")
    assert first.created and not again.created and changed.created
    assert again == cluster.Uploaded(first.pipeline_id, first.version_id, first.version_name, False)
    assert changed.pipeline_id == first.pipeline_id and changed.version_id != first.version_id
    assert len(kfp.pipelines) == 1
    names = sorted(v["name"] for v in kfp.versions.values())
    assert names == sorted(["qa-finetune", first.version_name, changed.version_name])
    assert first.version_name == cluster.version_name(a, "qa-finetune")


def test_experiment_is_created_on_demand_and_reused(kfp, client):
    first = cluster.experiment(client, "qa-lr")
    assert cluster.experiment(client, "qa-lr") == first
    assert [e["display_name"] for e in kfp.experiments.values()] == ["qa-lr"]
    assert cluster.find_experiment(client, "qa-lr") == first


def test_unknown_experiment_names_the_known_ones(kfp, client, capsys):
    cluster.experiment(client, "qa-lr")
    assert main(["runs", "--experiment", "qa-typo"]) == 2
    err = capsys.readouterr().err
    assert "experiment 'qa-typo' not found" in err and "qa-lr" in err


# ------------------------------------------------------------------------------- submit

def test_submit_takes_parameters_from_a_yaml_file_and_flags(kfp, packages, tmp_path):
    params_file = tmp_path / "run.yaml"
    params_file.write_text(yaml.safe_dump({"learning_rate": 5e-4, "seed": 7, "max_steps": 3}))
    assert main(submit_args(packages[0], "--params", str(params_file), "--set", "seed=11",
                            "--experiment", "qa-lr")) == 0
    (run,) = kfp.runs.values()
    sent = run["runtime_config"]["parameters"]
    assert sent == {**profile_parameters("tiny"), "learning_rate": 5e-4, "seed": 11, "max_steps": 3}
    assert run["pipeline_version_reference"]["pipeline_version_id"] in kfp.versions
    assert kfp.experiments[run["experiment_id"]]["display_name"] == "qa-lr"


@pytest.mark.parametrize("content, message", [
    ({"learning_rate": 2.0}, "learning_rate"),
    ({"no_such_parameter": 1}, "unknown parameter"),
    (["learning_rate", 1], "not a mapping"),
])
def test_bad_parameters_are_rejected_before_any_call(kfp, packages, tmp_path, capsys, content, message):
    params_file = tmp_path / "bad.yaml"
    params_file.write_text(yaml.safe_dump(content))
    assert main(submit_args(packages[0], "--params", str(params_file))) == 2
    assert message in capsys.readouterr().err
    assert kfp.requests == []


def test_submit_compiles_with_the_compile_flags(kfp):
    assert main(["submit", "--profile", "tiny"]) == 0
    assert main(["submit", "--profile", "tiny"]) == 0
    assert main(["submit", "--profile", "tiny", "--accelerator-count", "2"]) == 0
    assert len(kfp.versions) == 3  # default + one per distinct YAML
    used = [r["pipeline_version_reference"]["pipeline_version_id"] for r in kfp.runs.values()]
    assert used[0] == used[1] != used[2]


def test_no_cache_submits_the_yaml_with_caching_off(kfp, packages):
    assert main(submit_args(packages[0], "--no-cache")) == 0
    (run,) = kfp.runs.values()
    assert not run.get("pipeline_version_reference")
    tasks = run["_spec"]["pipeline_spec"]["root"]["dag"]["tasks"]
    assert sorted(tasks) == sorted(STEPS)
    assert not any(task.get("cachingOptions", {}).get("enableCache") for task in tasks.values())


def test_wait_reports_progress_and_success(kfp, packages, tmp_path, capsys):
    registry = tmp_path / "registry"
    assert main(submit_args(packages[0], "--set", f"registry_uri={registry}", "--set", "seed=3",
                            "--wait", "--poll", "0")) == 0
    out = capsys.readouterr().out
    progress = [line for line in out.splitlines() if "done:" in line]
    assert "RUNNING" in progress[0] and "done: -" in progress[0]
    state, done = progress[-1].split("] ")[1].split(" done: ")
    assert state.strip() == "SUCCEEDED" and sorted(done.split(", ")) == sorted(STEPS)
    assert len(progress) == len(STEPS) + 2  # one line per change, drivers and root left out
    assert "metrics: exact_match=63.00, f1=73.00" in out


def test_failed_run_names_the_task_and_quotes_its_error(kfp, packages, capsys):
    kfp.outcome = Outcome.failed("fine-tune", "Traceback (most recent call last):\n"
                                 "  File \"train.py\", line 9\n"
                                 "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB")
    assert main(submit_args(packages[0], "--wait", "--poll", "0")) == 2
    err = capsys.readouterr().err
    assert "FAILED: task fine-tune failed" in err
    assert "CUDA out of memory. Tried to allocate 2.00 GiB" in err
    assert "kubectl logs" in err and "fine-tune-pod" in err


def test_wait_times_out_with_advice(kfp, client, packages):
    up = cluster.upload(client, packages[0], "qa-finetune")
    run_id = cluster.submit(client, profile_parameters("tiny"), cluster.experiment(client, "e"),
                            pipeline_id=up.pipeline_id, version_id=up.version_id)
    with pytest.raises(cluster.ClusterError, match="still RUNNING after 0 s.*--timeout"):
        cluster.wait(client, run_id, timeout=0, poll=0, echo=lambda line: None)


# ---------------------------------------------------------------------------- schedules

def test_recurring_run_create_disable_enable_delete(kfp, packages, capsys):
    assert main(["schedule", "--package", str(packages[0]), "--profile", "tiny", "--experiment",
                 "nightly", "--cron", "0 0 3 * * *", "--max-concurrency", "2"]) == 0
    (job,) = kfp.recurring_runs.values()
    assert job["trigger"] == {"cron_schedule": {"cron": "0 0 3 * * *"}}
    assert job["no_catchup"] is True and job["max_concurrency"] == "2"
    assert job["status"] == "ENABLED" and job["runtime_config"]["parameters"]["max_steps"] == 4
    job_id = job["recurring_run_id"]

    assert main(["schedule", "--disable", job_id]) == 0
    assert kfp.recurring_runs[job_id]["status"] == "DISABLED"
    assert main(["schedule", "--enable", job_id]) == 0
    assert kfp.recurring_runs[job_id]["status"] == "ENABLED"
    capsys.readouterr()
    assert main(["schedule", "--list"]) == 0
    listed = capsys.readouterr().out
    assert job_id in listed and "ENABLED" in listed and "0 0 3 * * *" in listed
    assert main(["schedule", "--delete", job_id]) == 0
    assert kfp.recurring_runs == {}


def test_a_five_field_cron_is_refused_before_any_upload(kfp, packages, capsys):
    assert main(["schedule", "--package", str(packages[0]), "--cron", "0 3 * * *"]) == 2
    assert "KFP's cron has 6" in capsys.readouterr().err and kfp.requests == []


def test_interval_schedule_and_cron_mistakes(kfp, client, packages):
    up = cluster.upload(client, packages[0], "qa-finetune")
    experiment_id = cluster.experiment(client, "nightly")
    common = {"pipeline_id": up.pipeline_id, "version_id": up.version_id, "params": profile_parameters("tiny")}
    job_id = cluster.schedule(client, experiment_id, "hourly", interval_s=3600, enabled=False, **common)
    assert kfp.recurring_runs[job_id]["trigger"] == {"periodic_schedule": {"interval_second": 3600}}
    assert kfp.recurring_runs[job_id]["status"] == "DISABLED"
    with pytest.raises(cluster.ClusterError, match="6 .*'0 0 3 \\* \\* \\*'"):
        cluster.schedule(client, experiment_id, "x", cron="0 3 * * *", **common)
    with pytest.raises(cluster.ClusterError, match="exactly one of cron or interval"):
        cluster.schedule(client, experiment_id, "x", **common)
    with pytest.raises(cluster.ClusterError, match="not found"):
        cluster.set_schedule(client, "job-404", "enable")


# ------------------------------------------------------------------------------ compare

@pytest.fixture(params=["embedded", "model-registry"])
def registry_uri(request, tmp_path, monkeypatch):
    if request.param == "embedded":
        yield str(tmp_path / "registry")
        return
    with ModelRegistryStandin(token="mr-token") as server:
        monkeypatch.setenv("MODEL_REGISTRY_TOKEN", "mr-token")
        yield server.url


def test_compare_writes_csv_markdown_and_plot(kfp, packages, registry_uri, tmp_path, capsys):
    def submit(experiment: str, *settings: str) -> None:
        flags = [arg for s in (f"registry_uri={registry_uri}", *settings) for arg in ("--set", s)]
        main(submit_args(packages[0], "--experiment", experiment, "--wait", "--poll", "0", *flags))

    submit("lr-a", "seed=1")
    submit("lr-a", "seed=2", "learning_rate=5e-4")
    submit("lr-b", "seed=3", "min_f1=90")  # below the gate: not registered
    kfp.outcome = Outcome.failed("evaluate", "ValueError: no predictions")
    submit("lr-b", "seed=4")
    capsys.readouterr()

    out = tmp_path / "compare"
    assert main(["compare", "--experiment", "lr-a", "--experiment", "lr-b", "--out", str(out)]) == 0
    rows = list(csv.DictReader((out / "compare.csv").open()))
    got = [(r["experiment"], r["seed"], r["state"], r["exact_match"], r["f1"]) for r in rows]
    assert got == [("lr-a", "2", "SUCCEEDED", "62.0", "72.0"), ("lr-a", "1", "SUCCEEDED", "61.0", "71.0"),
                   ("lr-b", "4", "FAILED", "", ""), ("lr-b", "3", "SUCCEEDED", "", "")]
    assert "not registered" in rows[3]["note"] and rows[2]["note"] == "run FAILED"
    assert rows[1]["learning_rate"] == "0.0003" and rows[0]["learning_rate"] == "0.0005"

    table = (out / "compare.md").read_text()
    header = table.splitlines()[0]
    assert "| seed |" in header and "| learning_rate |" in header and "| f1 |" in header
    assert "| dataset |" not in header  # the same in every run
    assert "| 72.00 |" in table and table == capsys.readouterr().out.split("wrote ")[0]
    assert (out / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_reports_a_version_registered_by_another_run(kfp, packages, tmp_path):
    registry = tmp_path / "registry"
    for seed in ("1", "2"):  # a fixed model_version: only the first run registers it
        main(submit_args(packages[0], "--set", f"registry_uri={registry}", "--set", "model_version=v1",
                         "--set", f"seed={seed}", "--wait", "--poll", "0"))
    rows = cluster.compare(cluster.connect(), ["qa-finetune"])
    assert rows[1]["f1"] == 71.0 and rows[0]["f1"] == ""
    assert rows[0]["note"] == f"squad-qa:v1 was registered by run {rows[1]['run_id']}"
