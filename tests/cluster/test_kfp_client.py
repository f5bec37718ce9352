"""pipeline/kfp_client.py, kfp_runs.py, comparison.py and `python -m pipeline submit|schedule|runs|compare`
against the KFP stand-in.

The stand-in (tests/cluster/kfp_standin.py) answers KFP's v2beta1 REST API on loopback; it is
not a cluster. A finished run "registers" its model through the real register step
(kfp_standin.register_like_the_pipeline) into the Model Registry stand-in, scored by
kfp_standin.fake_scores: seed 3 -> EM 63, F1 73.

    python -m pytest tests/cluster/test_kfp_client.py -q
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml

from pipeline import comparison, kfp_client, kfp_runs
from pipeline.__main__ import main
from pipeline.parameters import profile_parameters
from pipeline.steps import task_names
from tests.cluster.kfp_standin import KfpStandin, Outcome, register_like_the_pipeline
from tests.cluster.registry_standin import ModelRegistryStandin

TOKEN = "kfp-test-token-3f1c"
MR_TOKEN = "mr-token"
PROFILE_NS = "kubeflow-user-example-com"
STEPS = task_names()  # the default DAG's tasks (pipeline/steps.py)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in ("KFP_HOST", "KFP_TOKEN", "KF_PIPELINES_ENDPOINT", "KFP_NAMESPACE", "MODEL_REGISTRY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(tmp_path / "no-such-token"))
    import kfp.client.client

    # kfp.Client keeps a namespace context in ~/.config/kfp; keep tests away from the real one
    monkeypatch.setattr(kfp.client.client.Client, "_LOCAL_KFP_CONTEXT", str(tmp_path / "kfp-context.json"))


@pytest.fixture
def registry(monkeypatch):
    """The Model Registry runs register into (stand-in; the v1 API model-registry 0.3.18 speaks)."""
    with ModelRegistryStandin(token=MR_TOKEN) as server:
        monkeypatch.setenv("MODEL_REGISTRY_TOKEN", MR_TOKEN)
        yield server


def start_kfp(tmp_path, monkeypatch, **options) -> KfpStandin:
    server = KfpStandin(token=TOKEN, **options).start()
    server.on_success = lambda run: register_like_the_pipeline(run, tmp_path)
    monkeypatch.setenv("KFP_HOST", server.url)
    monkeypatch.setenv("KFP_TOKEN", TOKEN)
    return server


@pytest.fixture
def kfp(tmp_path, monkeypatch, registry):
    server = start_kfp(tmp_path, monkeypatch)
    server.registry = registry
    yield server
    server.stop()


@pytest.fixture
def multi_user_kfp(tmp_path, monkeypatch, registry):
    """Multi-user mode; the token's user may act in PROFILE_NS only."""
    server = start_kfp(tmp_path, monkeypatch, multi_user=True, namespaces=(PROFILE_NS,))
    server.registry = registry
    yield server
    server.stop()


@pytest.fixture
def client(kfp):
    return kfp_client.connect()


@pytest.fixture(scope="module")
def packages(tmp_path_factory) -> tuple[Path, Path]:
    """The pipeline compiled twice: as is, and with a different accelerator count."""
    out = tmp_path_factory.mktemp("packages")
    assert main(["compile", "--output", str(out / "a.yaml")]) == 0
    assert main(["compile", "--output", str(out / "b.yaml"), "--accelerator-count", "2"]) == 0
    return out / "a.yaml", out / "b.yaml"


def submit_args(package: Path, *extra: str, registry: ModelRegistryStandin | str) -> list[str]:
    url = registry if isinstance(registry, str) else registry.url
    return ["submit", "--package", str(package), "--profile", "tiny", "--set", f"registry_uri={url}", *extra]


def durable(params: dict | None = None, registry=None) -> dict:
    """Tiny-profile parameters with a durable registry_uri (a cluster submit needs one)."""
    return {**profile_parameters("tiny"), "registry_uri": registry.url if registry else
            "http://model-registry-service.kubeflow.svc.cluster.local:8080", **(params or {})}


# ------------------------------------------------------------------------------ connect

def test_no_host_means_local(capsys):
    assert kfp_client.connect() is None
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
    client = kfp_client.connect()
    assert kfp_client.experiment(client, "from-notebook")
    assert set(kfp.authorization_headers) == {f"Bearer {TOKEN}"}


def test_unreachable_host_says_how_to_connect(monkeypatch):
    with pytest.raises(kfp_client.ClusterError, match="cannot reach KFP.*port-forward"):
        kfp_client.connect("http://127.0.0.1:9", TOKEN)


# ------------------------------------------------------------------ upload and experiments

def test_upload_is_idempotent_by_name_and_adds_a_version_on_change(kfp, client, packages):
    a, b = packages
    first = kfp_client.upload(client, a, "qa-finetune")
    again = kfp_client.upload(client, a, "qa-finetune")
    changed = kfp_client.upload(client, b, "qa-finetune")
    assert first.created and not again.created and changed.created
    assert again == kfp_client.Uploaded(first.pipeline_id, first.version_id, first.version_name, False)
    assert changed.pipeline_id == first.pipeline_id and changed.version_id != first.version_id
    assert len(kfp.pipelines) == 1
    names = sorted(v["name"] for v in kfp.versions.values())
    assert names == sorted(["qa-finetune", first.version_name, changed.version_name])
    assert first.version_name == kfp_client.version_name(a, "qa-finetune")


def test_experiment_is_created_on_demand_and_reused(kfp, client):
    first = kfp_client.experiment(client, "qa-lr")
    assert kfp_client.experiment(client, "qa-lr") == first
    assert [e["display_name"] for e in kfp.experiments.values()] == ["qa-lr"]
    assert kfp_client.find_experiment(client, "qa-lr") == first


def test_unknown_experiment_names_the_known_ones(kfp, client, capsys):
    kfp_client.experiment(client, "qa-lr")
    assert main(["runs", "--experiment", "qa-typo"]) == 2
    err = capsys.readouterr().err
    assert "experiment 'qa-typo' not found" in err and "qa-lr" in err


# ------------------------------------------------------------------ multi-user KFP (point 4)

def test_multi_user_uploads_lists_and_schedules_in_the_profile_namespace(multi_user_kfp, packages, capsys):
    kfp = multi_user_kfp
    ns = ["--namespace", PROFILE_NS]
    assert main(["schedule", "--package", str(packages[0]), "--profile", "tiny", "--set",
                 f"registry_uri={kfp.registry.url}", "--cron", "@daily", *ns]) == 0
    (pipeline,) = kfp.pipelines.values()
    assert pipeline["namespace"] == PROFILE_NS  # the profile's own pipeline, not a shared one
    (experiment,) = kfp.experiments.values()
    assert experiment["namespace"] == PROFILE_NS
    capsys.readouterr()
    assert main(["schedule", "--list", *ns]) == 0
    assert "@daily" in capsys.readouterr().out
    assert ("GET", "/apis/v2beta1/recurringruns") in kfp.requests


def test_multi_user_list_without_a_namespace_says_to_pass_one(multi_user_kfp, capsys):
    # before: --list sent no namespace and the answer was reported as a rejected token
    assert main(["schedule", "--list"]) == 2
    err = capsys.readouterr().err
    assert "multi-user KFP and no namespace was given" in err and "--namespace" in err
    assert "token" not in err


def test_403_is_told_apart_from_a_bad_token(multi_user_kfp, monkeypatch, capsys):
    assert main(["schedule", "--list", "--namespace", "someone-else"]) == 2
    err = capsys.readouterr().err
    assert "denied access (HTTP 403)" in err and "namespace" in err and "contributor" in err
    assert "rejected the token" not in err
    monkeypatch.setenv("KFP_TOKEN", "expired")
    assert main(["schedule", "--list", "--namespace", PROFILE_NS]) == 2
    assert "rejected the token (HTTP 401)" in capsys.readouterr().err


def test_namespace_comes_from_the_environment_or_kfp_context(multi_user_kfp, monkeypatch):
    client = kfp_client.connect()
    assert kfp_client.resolve_namespace(client) is None
    monkeypatch.setenv("KFP_NAMESPACE", PROFILE_NS)
    assert kfp_client.resolve_namespace(client) == PROFILE_NS
    assert kfp_client.resolve_namespace(client, "explicit") == "explicit"


# ------------------------------------------------------- registration must be durable (point 2)

@pytest.mark.parametrize("uri", ["", "/tmp/registry", "file:///mnt/registry"])
def test_submit_with_nowhere_durable_to_register_is_refused_before_any_call(kfp, packages, capsys, uri):
    args = ["submit", "--package", str(packages[0]), "--profile", "tiny"]
    assert main(args + (["--set", f"registry_uri={uri}"] if uri else [])) == 2
    err = capsys.readouterr().err
    assert "registry_uri" in err and "vanish with the pod" in err
    assert "model-registry-service.kubeflow.svc.cluster.local:8080" in err
    assert kfp.requests == []
    with pytest.raises(kfp_client.ClusterError, match="registry_uri"):
        kfp_client.submit(object(), {**profile_parameters("tiny"), "registry_uri": uri}, "e",
                          pipeline_id="p", version_id="v")


def test_schedule_with_nowhere_durable_to_register_is_refused_before_any_call(kfp, packages, capsys):
    assert main(["schedule", "--package", str(packages[0]), "--profile", "tiny",
                 "--cron", "@daily"]) == 2
    assert "registry_uri" in capsys.readouterr().err and kfp.requests == []


def test_no_compiled_task_input_is_a_placeholder_the_backend_does_not_resolve(packages, tmp_path):
    # the constants the KFP driver resolves (backend/src/v2/driver/resolve.go, KFP 7b70c7b);
    # any other {{$...}} placeholder would reach the component verbatim on a cluster
    resolved = {"{{$.pipeline_job_name}}", "{{$.pipeline_job_resource_name}}", "{{$.pipeline_job_uuid}}",
                "{{$.pipeline_task_name}}", "{{$.pipeline_task_uuid}}",
                "{{$.pipeline_job_create_time_utc}}", "{{$.pipeline_job_schedule_time_utc}}"}
    committed = Path(__file__).resolve().parents[2] / "pipeline" / "qa_finetune.yaml"
    with_deploy = tmp_path / "deploy.yaml"  # the seventh step takes the registry as register does
    assert main(["compile", "--output", str(with_deploy), "--deploy"]) == 0
    for package in (committed, *packages, with_deploy):
        spec = next(yaml.safe_load_all(package.read_text()))
        dags = [spec["root"]["dag"]] + [c["dag"] for c in spec["components"].values() if "dag" in c]
        constants = [(task_name, name, param["runtimeValue"]["constant"])
                     for dag in dags for task_name, task in dag["tasks"].items()
                     for name, param in task.get("inputs", {}).get("parameters", {}).items()
                     if isinstance(param.get("runtimeValue", {}).get("constant"), str)]
        placeholders = [c for c in constants if "{{$" in c[2]]
        assert ("register-model", "pipeline_run_id", "{{$.pipeline_job_uuid}}") in placeholders
        assert [c for c in placeholders if c[2] not in resolved and "{{$.workspace_path}}" not in c[2]] == []


# ------------------------------------------------------------------------------- submit

def test_submit_takes_parameters_from_a_yaml_file_and_flags(kfp, packages, tmp_path):
    params_file = tmp_path / "run.yaml"
    params_file.write_text(yaml.safe_dump({"learning_rate": 5e-4, "seed": 7, "max_steps": 3}))
    assert main(submit_args(packages[0], "--params", str(params_file), "--set", "seed=11",
                            "--experiment", "qa-lr", registry=kfp.registry)) == 0
    (run,) = kfp.runs.values()
    sent = run["runtime_config"]["parameters"]
    assert sent == {**durable(registry=kfp.registry), "learning_rate": 5e-4, "seed": 11, "max_steps": 3}
    assert run["pipeline_version_reference"]["pipeline_version_id"] in kfp.versions
    assert kfp.experiments[run["experiment_id"]]["display_name"] == "qa-lr"


def test_runs_use_the_manifests_service_account_unless_told_otherwise(kfp, packages):
    # before: nothing passed service_account, so qa-pipeline (manifests/) was never used
    assert main(submit_args(packages[0], registry=kfp.registry)) == 0
    assert main(submit_args(packages[0], "--service-account", "team-runner", registry=kfp.registry)) == 0
    assert [r["service_account"] for r in kfp.runs.values()] == ["qa-pipeline", "team-runner"]
    assert main(["schedule", "--package", str(packages[0]), "--profile", "tiny", "--set",
                 f"registry_uri={kfp.registry.url}", "--interval", "3600"]) == 0
    (job,) = kfp.recurring_runs.values()
    assert job["service_account"] == "qa-pipeline"


@pytest.mark.parametrize("content, message", [
    ({"learning_rate": 2.0}, "learning_rate"),
    ({"no_such_parameter": 1}, "unknown parameter"),
    (["learning_rate", 1], "not a mapping"),
])
def test_bad_parameters_are_rejected_before_any_call(kfp, packages, tmp_path, capsys, content, message):
    params_file = tmp_path / "bad.yaml"
    params_file.write_text(yaml.safe_dump(content))
    assert main(submit_args(packages[0], "--params", str(params_file), registry=kfp.registry)) == 2
    assert message in capsys.readouterr().err
    assert kfp.requests == []


def test_submit_compiles_with_the_compile_flags(kfp):
    flags = ["submit", "--profile", "tiny", "--set", f"registry_uri={kfp.registry.url}"]
    assert main(flags) == 0
    assert main(flags) == 0
    assert main([*flags, "--accelerator-count", "2"]) == 0
    assert len(kfp.versions) == 3  # default + one per distinct YAML
    used = [r["pipeline_version_reference"]["pipeline_version_id"] for r in kfp.runs.values()]
    assert used[0] == used[1] != used[2]


def test_no_cache_runs_a_caching_off_version_and_keeps_the_link(kfp, packages):
    # before: --no-cache submitted the bare YAML and the run had no pipeline version
    assert main(submit_args(packages[0], "--no-cache", registry=kfp.registry)) == 0
    (run,) = kfp.runs.values()
    version_id = run["pipeline_version_reference"]["pipeline_version_id"]
    tasks = kfp.specs[version_id]["root"]["dag"]["tasks"]
    assert sorted(tasks) == sorted(STEPS)
    assert all(task["cachingOptions"]["enableCache"] is False for task in tasks.values())
    assert main(submit_args(packages[0], "--no-cache", registry=kfp.registry)) == 0  # same version again
    assert len({r["pipeline_version_reference"]["pipeline_version_id"] for r in kfp.runs.values()}) == 1
    cached = next(yaml.safe_load_all(packages[0].read_text()))["root"]["dag"]["tasks"]
    assert cached["download"]["cachingOptions"].get("enableCache", True)  # the input is untouched


def test_wait_reports_progress_and_success(kfp, packages, capsys):
    # before: the progress skipped every node with child tasks, i.e. every pipeline task
    assert main(submit_args(packages[0], "--set", "seed=3", "--wait", "--poll", "0",
                            registry=kfp.registry)) == 0
    out = capsys.readouterr().out
    progress = [line for line in out.splitlines() if "done:" in line]
    assert "RUNNING" in progress[0] and "done: -" in progress[0]
    assert "RUNNING   done: download" in progress[1]
    state, done = progress[-1].split("] ")[1].split(" done: ")
    assert state.strip() == "SUCCEEDED" and sorted(done.split(", ")) == sorted(STEPS)
    assert len(progress) == len(STEPS) + 2  # one line per change, drivers, executors and root left out
    assert "metrics: exact_match=63.00, f1=73.00" in out


def test_failed_run_names_the_task_and_where_its_log_is(kfp, packages, capsys):
    # fine-tune retries twice: Argo reports executor(0..2) under it, and no error text anywhere
    kfp.outcome = Outcome.failed("fine-tune")
    assert main(submit_args(packages[0], "--wait", "--poll", "0", registry=kfp.registry)) == 2
    err = capsys.readouterr().err
    (run,) = kfp.runs.values()
    assert f"run {run['run_id']} FAILED: task fine-tune failed" in err
    assert "finished before it: download, preprocess-train." in err  # the stand-in's task order
    assert f"-l pipeline/runid={run['run_id']}" in err and "kubectl logs" in err
    assert "executor" not in err and "root" not in err


def test_wait_times_out_with_advice(kfp, client, packages):
    up = kfp_client.upload(client, packages[0], "qa-finetune")
    run_id = kfp_client.submit(client, durable(), kfp_client.experiment(client, "e"),
                               pipeline_id=up.pipeline_id, version_id=up.version_id)
    with pytest.raises(kfp_client.ClusterError, match="still RUNNING after 0 s.*--timeout"):
        kfp_runs.wait(client, run_id, timeout=0, poll=0, echo=lambda line: None)


# ---------------------------------------------------------------------------- schedules

def test_recurring_run_create_disable_enable_delete(kfp, packages, capsys):
    assert main(["schedule", "--package", str(packages[0]), "--profile", "tiny", "--experiment",
                 "nightly", "--cron", "0 0 3 * * *", "--max-concurrency", "2",
                 "--set", f"registry_uri={kfp.registry.url}"]) == 0
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


@pytest.mark.parametrize("cron", ["@daily", "@hourly", "@every 24h", "@every 1h30m", "0 30 2 * * MON-FRI"])
def test_cron_descriptors_the_server_accepts_are_accepted(kfp, client, packages, cron):
    # before: everything but 6 fields was refused, though robfig/cron takes the descriptors
    up = kfp_client.upload(client, packages[0], "qa-finetune")
    job_id = kfp_runs.schedule(client, kfp_client.experiment(client, "nightly"), "n", cron=cron,
                               pipeline_id=up.pipeline_id, version_id=up.version_id,
                               params=durable(registry=kfp.registry))
    assert kfp.recurring_runs[job_id]["trigger"] == {"cron_schedule": {"cron": cron}}


@pytest.mark.parametrize("cron, message", [("@fortnightly", "descriptor"), ("@every day", "descriptor"),
                                           ("0 3 * * *", "6 .*'0 0 3 \\* \\* \\*'")])
def test_cron_the_server_refuses_or_misreads_is_refused(cron, message):
    with pytest.raises(kfp_client.ClusterError, match=message):
        kfp_runs.check_schedule(cron, None, 1)


def test_the_standin_accepts_a_five_field_cron_as_the_server_does(kfp, client, packages):
    """Why we refuse 5 fields ourselves: KFP takes them (read seconds first), so it would run hourly."""
    from tests.cluster.kfp_standin import robfig_cron_error

    assert robfig_cron_error("0 3 * * *") is None and robfig_cron_error("0 0 3 * * *") is None
    assert robfig_cron_error("@fortnightly") and robfig_cron_error("0 0 25 * * *")


@pytest.mark.parametrize("max_concurrency", [0, 11])
def test_max_concurrency_outside_what_kfp_accepts_is_refused_before_any_call(kfp, packages, capsys,
                                                                             max_concurrency):
    # before: 11+ went to the server, which answered 400 after the upload
    assert main(["schedule", "--package", str(packages[0]), "--cron", "0 0 3 * * *", "--set",
                 f"registry_uri={kfp.registry.url}", "--max-concurrency", str(max_concurrency)]) == 2
    assert "KFP accepts 1 to 10" in capsys.readouterr().err and kfp.requests == []


def test_the_server_refuses_max_concurrency_above_ten(kfp, client, packages):
    up = kfp_client.upload(client, packages[0], "qa-finetune")
    body = {"experiment_id": kfp_client.experiment(client, "n"), "display_name": "n", "max_concurrency": "11",
            "pipeline_version_reference": {"pipeline_id": up.pipeline_id, "pipeline_version_id": up.version_id},
            "trigger": {"cron_schedule": {"cron": "@daily"}}}
    with pytest.raises(kfp_client.ClusterError, match="HTTP 400.*at most 10"):
        with kfp_client.api_errors("schedule"):
            client._recurring_run_api.recurring_run_service_create_recurring_run(body)


def test_interval_schedule_and_cron_mistakes(kfp, client, packages):
    up = kfp_client.upload(client, packages[0], "qa-finetune")
    experiment_id = kfp_client.experiment(client, "nightly")
    common = {"pipeline_id": up.pipeline_id, "version_id": up.version_id,
              "params": durable(registry=kfp.registry)}
    job_id = kfp_runs.schedule(client, experiment_id, "hourly", interval_s=3600, enabled=False, **common)
    assert kfp.recurring_runs[job_id]["trigger"] == {"periodic_schedule": {"interval_second": 3600}}
    assert kfp.recurring_runs[job_id]["status"] == "DISABLED"
    with pytest.raises(kfp_client.ClusterError, match="6 .*'0 0 3 \\* \\* \\*'"):
        kfp_runs.schedule(client, experiment_id, "x", cron="0 3 * * *", **common)
    with pytest.raises(kfp_client.ClusterError, match="exactly one of cron or interval"):
        kfp_runs.schedule(client, experiment_id, "x", **common)
    with pytest.raises(kfp_client.ClusterError, match="not found"):
        kfp_runs.set_schedule(client, "job-404", "enable")


# ------------------------------------------------------------------------------ compare

def test_compare_writes_csv_markdown_and_plot(kfp, packages, tmp_path, capsys):
    def submit(experiment: str, *settings: str) -> None:
        flags = [arg for s in settings for arg in ("--set", s)]
        main(submit_args(packages[0], "--experiment", experiment, "--wait", "--poll", "0", *flags,
                         registry=kfp.registry))

    submit("lr-a", "seed=1")
    submit("lr-a", "seed=2", "learning_rate=5e-4")
    submit("lr-b", "seed=3", "min_f1=90")  # below the gate: not registered
    kfp.outcome = Outcome.failed("evaluate")
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


def test_registered_uri_is_one_a_deployment_can_load(kfp, packages):
    # before: the minio:// URI of KFP's default pipeline root, which KServe cannot load
    assert main(submit_args(packages[0], "--wait", "--poll", "0", registry=kfp.registry)) == 0
    (run,) = kfp.runs.values()
    (artifact,) = kfp.registry.artifacts.values()
    assert artifact["uri"] == (f"s3://mlpipeline/v2/artifacts/qa-finetune/{run['run_id']}/fine-tune/model"
                               "?endpoint=http://minio-service.kubeflow:9000&defaultRegion=minio")


def test_compare_reports_a_version_registered_by_another_run(kfp, packages):
    for seed in ("1", "2"):  # a fixed model_version: only the first run registers it
        main(submit_args(packages[0], "--set", "model_version=v1", "--set", f"seed={seed}",
                         "--wait", "--poll", "0", registry=kfp.registry))
    rows = comparison.compare(kfp_client.connect(), ["qa-finetune"])
    assert rows[1]["f1"] == 71.0 and rows[0]["f1"] == ""
    assert rows[0]["note"] == f"squad-qa:v1 was registered by run {rows[1]['run_id']}"
