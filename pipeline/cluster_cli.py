"""Cluster subcommands of `python -m pipeline`: submit, schedule, runs, compare (kfp.Client).

    export KFP_HOST=https://kubeflow.example.com/pipeline KFP_TOKEN=...   # or --token-file
    python -m pipeline submit --profile cluster --set learning_rate=5e-5 --experiment qa-lr --wait
    python -m pipeline submit --params my-run.yaml --images build/images.env --accelerator-count 2
    python -m pipeline schedule --experiment nightly --cron "0 0 3 * * *" --max-concurrency 1
    python -m pipeline schedule --experiment nightly --cron @daily --namespace kubeflow-user-example-com
    python -m pipeline schedule --list | --disable ID | --enable ID | --delete ID
    python -m pipeline runs --experiment qa-lr
    python -m pipeline compare --experiment qa --experiment qa-lr --out compare/

A token is never a flag (it would land in shell history and `ps`): $KFP_TOKEN, --token-file,
or the service-account token Kubeflow mounts in notebooks.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml

from components.qa.errors import InvalidInputError
from pipeline import comparison, kfp_client, kfp_runs
from pipeline.cli_options import add_compile_arguments, compile_pipeline, key_values
from pipeline.parameters import PROFILES, profile_parameters
from pipeline.qa_pipeline import PIPELINE_NAME


def add_cluster_commands(sub) -> None:
    """Register the cluster subcommands on the `python -m pipeline` parser."""
    s = sub.add_parser("submit", help="compile, upload (new version if changed) and run on KFP")
    _connection_flags(s)
    _compile_flags(s)
    _run_flags(s)
    s.add_argument("--run-name")
    s.add_argument("--no-cache", action="store_true",
                   help="run every task, ignoring KFP's cache (uploads a caching-off version)")
    s.add_argument("--wait", action="store_true", help="follow the run until it ends")
    s.add_argument("--timeout", type=float, default=24 * 3600, help="seconds --wait waits")
    s.add_argument("--poll", type=float, default=15.0, help="seconds between --wait checks")
    s.add_argument("--registry-uri", help="Model Registry to read the metrics from after --wait")
    s.set_defaults(func=submit_command)

    r = sub.add_parser("schedule", help="create, list, enable, disable or delete recurring runs")
    _connection_flags(r)
    _compile_flags(r)
    _run_flags(r)
    r.add_argument("--name", default=f"{PIPELINE_NAME}-recurring")
    when = r.add_mutually_exclusive_group()
    when.add_argument("--cron", help="6 fields, seconds first: '0 0 3 * * *' is daily at 03:00; "
                                     "or @daily, @hourly, '@every 24h'")
    when.add_argument("--interval", type=int, metavar="SECONDS")
    r.add_argument("--max-concurrency", type=int, default=1, help="1 to 10 (KFP's limit)")
    r.add_argument("--paused", action="store_true", help="create it disabled")
    act = r.add_mutually_exclusive_group()
    act.add_argument("--list", action="store_true", help="list recurring runs")
    for action in ("enable", "disable", "delete"):
        act.add_argument(f"--{action}", metavar="ID")
    r.set_defaults(func=schedule_command)

    ls = sub.add_parser("runs", help="list the runs of experiments")
    _connection_flags(ls)
    ls.add_argument("--experiment", action="append", default=[], required=True)
    ls.set_defaults(func=runs_command)

    c = sub.add_parser("compare", help="parameters and metrics of runs across experiments")
    _connection_flags(c)
    c.add_argument("--experiment", action="append", default=[], required=True)
    c.add_argument("--registry-uri", help="Model Registry to read metrics from (default: each run's "
                                          "registry_uri, e.g. after kubectl port-forward)")
    c.add_argument("--out", type=Path, default=Path("local_outputs/compare"),
                   help="folder for compare.csv, compare.md, compare.png")
    c.set_defaults(func=compare_command)


def _connection_flags(p) -> None:
    p.add_argument("--host", help="KFP API (default $KFP_HOST, or in-cluster inside a notebook)")
    p.add_argument("--token-file", type=Path, help="file holding the bearer token (default $KFP_TOKEN)")
    p.add_argument("--namespace", help="Kubeflow profile namespace (multi-user installs; default "
                                       "$KFP_NAMESPACE, kfp's context, or this pod's namespace)")


def _compile_flags(p) -> None:
    add_compile_arguments(p)  # the `compile` command's own flags: both compile the same way
    p.add_argument("--package", type=Path, help="submit this compiled YAML instead of compiling")


def _run_flags(p) -> None:
    p.add_argument("--profile", default="cluster", choices=list(PROFILES))
    p.add_argument("--params", type=Path, help="YAML mapping of pipeline parameters")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="override a parameter (wins over --params)")
    p.add_argument("--experiment", default=PIPELINE_NAME, help="created if it does not exist")
    p.add_argument("--pipeline-name", default=PIPELINE_NAME)
    p.add_argument("--service-account", default=kfp_client.DEFAULT_SERVICE_ACCOUNT,
                   help="Kubernetes service account the run's pods use (manifests/ creates "
                        f"{kfp_client.DEFAULT_SERVICE_ACCOUNT!r}; '' for the profile's default-editor)")


def run_parameters(profile: str, params_file: Path | None, settings: list[str]) -> dict[str, Any]:
    """Profile, then the YAML file, then --set flags; checked by profile_parameters."""
    overrides: dict[str, Any] = {}
    if params_file is not None:
        try:
            loaded = yaml.safe_load(params_file.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as e:
            raise InvalidInputError(f"cannot read it: {e}", fix="Give a readable YAML file.",
                                    source=str(params_file)) from None
        if not isinstance(loaded, dict):
            raise InvalidInputError("it is not a mapping of parameter names to values",
                                    fix="Write lines like `learning_rate: 5.0e-5`.", source=str(params_file))
        overrides.update(loaded)
    overrides.update(key_values(settings))
    return profile_parameters(profile, overrides)


def _client(args):
    """A kfp.Client; sets args.namespace to the profile namespace it resolves (or None)."""
    token = args.token_file.read_text().strip() if args.token_file else None
    client = kfp_client.connect(args.host, token)
    if client is None:
        raise kfp_client.ClusterError("no KFP host configured",
                                      fix="Set KFP_HOST or --host; to run on this machine use "
                                          "`python -m pipeline run --local`.")
    args.namespace = kfp_client.resolve_namespace(client, args.namespace)
    return client


def _uploaded(client, args, scratch: str) -> kfp_client.Uploaded:
    package = args.package
    if package is None:
        package = Path(scratch) / "qa_finetune.yaml"
        compile_pipeline(args, package)
    if getattr(args, "no_cache", False):
        package = kfp_client.without_caching(package, Path(scratch) / "qa_finetune-no-cache.yaml")
    return kfp_client.upload(client, package, args.pipeline_name, args.namespace)


def submit_command(args) -> None:
    params = run_parameters(args.profile, args.params, args.set)  # before any network call
    kfp_client.check_registry(params)
    client = _client(args)
    with tempfile.TemporaryDirectory() as scratch:
        up = _uploaded(client, args, scratch)
    print(f"pipeline {args.pipeline_name}: version {up.version_name} "
          f"({'new' if up.created else 'unchanged'})")
    experiment_id = kfp_client.experiment(client, args.experiment, args.namespace)
    run_id = kfp_client.submit(client, params, experiment_id, pipeline_id=up.pipeline_id,
                               version_id=up.version_id, run_name=args.run_name,
                               service_account=args.service_account)
    print(f"run {run_id} submitted to experiment {args.experiment}")
    if args.wait:
        run = kfp_runs.run_summary(kfp_runs.wait(client, run_id, timeout=args.timeout, poll=args.poll,
                                                 namespace=args.namespace), args.experiment)
        try:
            metrics, note = comparison.registry_metrics(run, args.registry_uri)
        except kfp_client.ClusterError as e:  # the run succeeded; only reading its metrics failed
            metrics, note = {}, str(e)
        print("metrics: " + (", ".join(f"{k}={v:.2f}" for k, v in metrics.items()
                                       if isinstance(v, (int, float))) or note))


def schedule_command(args) -> None:
    change = next((a for a in ("enable", "disable", "delete") if getattr(args, a)), None)
    if change:
        kfp_runs.set_schedule(_client(args), getattr(args, change), change)
        print(f"{change}d recurring run {getattr(args, change)}")
        return
    if args.list:
        client = _client(args)
        for job in kfp_runs.list_schedules(client, namespace=args.namespace):
            print(f"{job['id']}  {job['status']:<9} {job['trigger']:<16} "
                  f"max_concurrency={job['max_concurrency']}  {job['name']}")
        return
    params = run_parameters(args.profile, args.params, args.set)  # before any network call
    kfp_runs.check_schedule(args.cron, args.interval, args.max_concurrency)
    kfp_client.check_registry(params)
    client = _client(args)
    with tempfile.TemporaryDirectory() as scratch:
        up = _uploaded(client, args, scratch)
    experiment_id = kfp_client.experiment(client, args.experiment, args.namespace)
    job_id = kfp_runs.schedule(client, experiment_id, args.name, pipeline_id=up.pipeline_id,
                               version_id=up.version_id, params=params, cron=args.cron,
                               interval_s=args.interval, max_concurrency=args.max_concurrency,
                               enabled=not args.paused, service_account=args.service_account)
    print(f"recurring run {job_id} ({args.cron or f'every {args.interval} s'}, "
          f"max_concurrency={args.max_concurrency}, no catch-up) on version {up.version_name}")


def runs_command(args) -> None:
    client = _client(args)
    for run in kfp_runs.list_runs(client, args.experiment, args.namespace):
        print(f"{run['run_id']}  {run['state']:<9} {run['created_at']:<25} "
              f"{run['experiment']}  {run['run_name']}")


def compare_command(args) -> None:
    client = _client(args)
    rows = comparison.compare(client, args.experiment, args.registry_uri, args.namespace)
    paths = comparison.write_comparison(rows, args.out)
    print(paths["md"].read_text(), end="")
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
