"""Kubeflow Pipelines on a cluster: connect, upload, experiment, submit, wait, schedule, compare.

Plain functions over `kfp.Client`, shared by `python -m pipeline submit|schedule|runs|compare`
(pipeline/cluster_cli.py) and pipeline.ipynb. Every KFP API error a person can act on
(unreachable host, rejected token, unknown experiment, failed run) becomes a `ClusterError`
whose message says what to do; see docs/cluster.md.

    export KFP_HOST=https://kubeflow.example.com/pipeline KFP_TOKEN=...   # outside the cluster
    python -m pipeline submit --profile cluster --experiment qa --wait
    python -m pipeline schedule --experiment qa --cron "0 0 3 * * *" --max-concurrency 1   # or --cron @daily
    python -m pipeline compare --experiment qa --experiment qa-lr --out local_outputs/compare
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import json
import os
import re
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from components.qa.errors import InvalidInputError
from pipeline.parameters import DEFAULTS
from pipeline.qa_pipeline import PIPELINE_NAME

SA_TOKEN_ENV = "KF_PIPELINES_SA_TOKEN_PATH"  # set by Kubeflow's PodDefault in notebooks
DEFAULT_SA_TOKEN_PATH = "/var/run/secrets/kubeflow/pipelines/token"
IN_CLUSTER_HOST = "http://ml-pipeline.kubeflow.svc.cluster.local:8888"
POD_NAMESPACE_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
DEFAULT_SERVICE_ACCOUNT = "qa-pipeline"  # manifests/: the account the pipeline's pods run as
MAX_CONCURRENCY = 10  # the API server's limit (api_converter.go toModelJob)
# robfig/cron v1.2.0 descriptors, which the KFP backend's cron parser accepts
CRON_DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
FINAL_STATES = ("SUCCEEDED", "FAILED", "SKIPPED", "CANCELED")
METRICS = ("exact_match", "f1")


class ClusterError(InvalidInputError):
    """A cluster call failed for a reason the user can fix; the message says how."""

    def __init__(self, problem: str, *, fix: str):
        super().__init__(problem, fix=fix)


# ---------------------------------------------------------------------------------------- connect

def connect(host: str | None = None, token: str | None = None):
    """A `kfp.Client` for the configured KFP API, or None when none is configured (use kfp.local).

    Token, in order: `token`, $KFP_TOKEN, then the service-account token Kubeflow mounts in
    notebooks ($KF_PIPELINES_SA_TOKEN_PATH, default /var/run/secrets/kubeflow/pipelines/token).
    kfp.Client reads that file by itself only when it is given no host and finds itself in a
    pod; with an explicit host it sends no credentials, so the file is passed on explicitly.
    Host: `host`, $KFP_HOST, $KF_PIPELINES_ENDPOINT, else the in-cluster service when the
    service-account token is present. The token is never printed.
    """
    import kfp
    from kfp.client import ServiceAccountTokenVolumeCredentials

    host = host or os.environ.get("KFP_HOST") or os.environ.get("KF_PIPELINES_ENDPOINT")
    token = token or os.environ.get("KFP_TOKEN") or None
    token_path = Path(os.environ.get(SA_TOKEN_ENV) or DEFAULT_SA_TOKEN_PATH)
    credentials = None
    if not token and token_path.is_file():
        credentials = ServiceAccountTokenVolumeCredentials(str(token_path))
        host = host or IN_CLUSTER_HOST
    if not host:
        return None
    host = host.rstrip("/")
    _check_access(host, token or (token_path.read_text().strip() if credentials else None))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "only works with KFP v2.0.0-beta.2 and later"
        return kfp.Client(host=host, existing_token=token, credentials=credentials)


def _check_access(host: str, token: str | None) -> None:
    """One healthz call before kfp.Client, whose own healthz check retries for 25 s on a bad token."""
    request = urllib.request.Request(f"{host}/apis/v2beta1/healthz")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            body = response.read()
    except urllib.error.HTTPError as e:
        if e.code == 401:
            raise ClusterError(f"KFP at {host} rejected the token (HTTP 401)", fix=_TOKEN_FIX) from None
        if e.code == 403:
            raise ClusterError(f"KFP at {host} refused access (HTTP 403): the gateway in front of it "
                               "let the token in but not to the API", fix=_FORBIDDEN_FIX) from None
        raise ClusterError(f"KFP at {host} answered HTTP {e.code} on /apis/v2beta1/healthz",
                           fix=_HOST_FIX) from None
    except (urllib.error.URLError, OSError) as e:
        raise ClusterError(f"cannot reach KFP at {host} ({getattr(e, 'reason', e)})",
                           fix=_HOST_FIX) from None
    try:
        json.loads(body)
    except ValueError:  # an auth proxy (Dex, oauth2-proxy) answers a login page with HTTP 200
        raise ClusterError(f"{host} answered a web page, not the KFP API (a login page?)",
                           fix=_TOKEN_FIX) from None


def resolve_namespace(client, namespace: str | None = None) -> str | None:
    """The profile namespace to list and create in: the given one, $KFP_NAMESPACE, kfp's
    context (`kfp.Client.set_user_namespace`), then this pod's own namespace (a Kubeflow
    notebook runs in its profile's namespace). None: a single-user install needs none."""
    found = namespace or os.environ.get("KFP_NAMESPACE") or (client.get_user_namespace() if client else "")
    if not found and Path(POD_NAMESPACE_PATH).is_file():
        found = Path(POD_NAMESPACE_PATH).read_text().strip()
    return found or None


def check_registry(params: dict[str, Any]) -> None:
    """Refuse a cluster run whose registration would die with its pod, before any server call.

    The register step writes where registry_uri points; anything but the Model Registry
    service would be the step's scratch disk on a cluster (docs/cluster.md, "Registration").
    """
    from components.registry.client import IN_CLUSTER_URI

    uri = str(params.get("registry_uri") or "")
    if not uri.startswith(("http://", "https://")):
        raise ClusterError(
            f"registry_uri={uri!r}: on a cluster the register step would write the record to its pod's "
            "scratch disk, and it would vanish with the pod",
            fix=f"Set registry_uri to the Model Registry service, e.g. --set registry_uri={IN_CLUSTER_URI} "
                "(Kubeflow's in-cluster service), or your registry's http(s) URL.")


_TOKEN_FIX = ("Set KFP_TOKEN to a valid token for your profile (outside the cluster), or run inside a "
              "Kubeflow notebook whose PodDefault mounts the pipelines token.")
_FORBIDDEN_FIX = ("The token is valid, but your user may not do this in that namespace (Kubernetes RBAC of "
                  "the profile). Pass --namespace <your profile namespace> (or set KFP_NAMESPACE), or ask "
                  "the profile's owner to add you as a contributor.")
_HOST_FIX = ("Set KFP_HOST (or --host) to the KFP API, e.g. http://localhost:8888 after "
             "`kubectl port-forward -n kubeflow svc/ml-pipeline 8888`, or https://<kubeflow>/pipeline.")


@contextlib.contextmanager
def api_errors(action: str) -> Iterator[None]:
    """Turn KFP API exceptions into ClusterErrors that say what to do.

    401: the token (authentication). 403: RBAC on the namespace (the server's
    SubjectAccessReview said no). A multi-user server answers 400 to a request with no
    namespace ("cannot have an empty namespace in multi-user mode").
    """
    import kfp_server_api
    import urllib3

    try:
        yield
    except kfp_server_api.ApiException as e:
        message = _api_message(e.body)
        if e.status == 401:
            raise ClusterError(f"{action}: KFP rejected the token (HTTP 401)", fix=_TOKEN_FIX) from None
        if e.status == 403:
            raise ClusterError(f"{action}: KFP denied access (HTTP 403): {message}",
                               fix=_FORBIDDEN_FIX) from None
        if e.status == 400 and "empty namespace" in message:
            raise ClusterError(f"{action}: this is a multi-user KFP and no namespace was given ({message})",
                               fix="Pass --namespace <your profile namespace> (or set KFP_NAMESPACE).") from None
        if e.status == 404:
            raise ClusterError(f"{action}: not found ({message})",
                               fix="Check the name or ID with `python -m pipeline runs`.") from None
        raise ClusterError(f"{action}: KFP answered HTTP {e.status}: {message}",
                           fix="Fix the request as the message says, or see the KFP API server log.") from None
    except urllib3.exceptions.HTTPError as e:
        raise ClusterError(f"{action}: cannot reach KFP ({e})", fix=_HOST_FIX) from None


def _api_message(body: Any) -> str:
    try:
        doc = json.loads(body)
        return str(doc.get("message") or doc.get("error") or doc)[:500]
    except (TypeError, ValueError, AttributeError):
        return str(body or "no details")[:500]


# ------------------------------------------------------------------- upload, experiment, submit

@dataclasses.dataclass(frozen=True)
class Uploaded:
    pipeline_id: str
    version_id: str
    version_name: str
    created: bool  # False: this exact YAML was uploaded before


def version_name(package_path: str | os.PathLike, name: str) -> str:
    """`<name>-<12 hex of sha256(YAML)>`: the same YAML always maps to the same version."""
    return f"{name}-{hashlib.sha256(Path(package_path).read_bytes()).hexdigest()[:12]}"


def upload(client, package_path: str | os.PathLike, name: str, namespace: str | None = None) -> Uploaded:
    """Upload a compiled pipeline as `name`, or as a new version of it; the same YAML is a no-op.

    With a namespace (multi-user installs) the pipeline is the profile's own, not a shared
    one. A new pipeline also gets KFP's default first version (named like the pipeline);
    runs here always use the content-named version.
    """
    version = version_name(package_path, name)
    with api_errors(f"upload pipeline {name!r}"):
        found = client.list_pipelines(page_size=2, filter=_name_filter(name), namespace=namespace).pipelines
        if found and len(found) > 1:
            raise ClusterError(f"more than one pipeline is named {name!r}",
                               fix="Delete or rename the duplicates in the KFP UI.")
        pipeline_id = found[0].pipeline_id if found else None
        if pipeline_id is None:
            pipeline_id = client.upload_pipeline(str(package_path), pipeline_name=name,
                                                 namespace=namespace).pipeline_id
        existing = client.list_pipeline_versions(pipeline_id, page_size=1,
                                                 filter=_name_filter(version)).pipeline_versions
        if existing:
            print(f"pipeline {name} version {version} is already uploaded; nothing to do")
            return Uploaded(pipeline_id, existing[0].pipeline_version_id, version, created=False)
        uploaded = client.upload_pipeline_version(str(package_path), version, pipeline_id=pipeline_id)
    return Uploaded(pipeline_id, uploaded.pipeline_version_id, version, created=True)


def _name_filter(name: str) -> str:
    return json.dumps({"predicates": [{"operation": "EQUALS", "key": "display_name",
                                       "stringValue": name}]})


def experiment(client, name: str, namespace: str | None = None) -> str:
    """The ID of experiment `name`, created if it does not exist."""
    with api_errors(f"experiment {name!r}"):
        return client.create_experiment(name, namespace=namespace).experiment_id  # gets or creates


def find_experiment(client, name: str, namespace: str | None = None) -> str:
    """The ID of an existing experiment; a ClusterError naming the known ones if there is none."""
    with api_errors(f"experiment {name!r}"):
        found = client.list_experiments(page_size=1, filter=_name_filter(name),
                                        namespace=namespace).experiments
        if found:
            return found[0].experiment_id
        known = [e.display_name for e in client.list_experiments(page_size=50, namespace=namespace)
                 .experiments or []]
    raise ClusterError(f"experiment {name!r} not found",
                       fix=f"Use one of: {', '.join(known) or '(none yet)'}; `submit` creates experiments.")


def without_caching(package_path: str | os.PathLike, out_path: str | os.PathLike) -> Path:
    """A copy of a compiled YAML with caching off for every task, to upload as its own version.

    KFP applies no caching override to a run of an uploaded version, and submitting the YAML
    itself would leave the run without a pipeline version; a content-named version of this
    copy keeps the link (`--no-cache`).
    """
    docs = list(yaml.safe_load_all(Path(package_path).read_text(encoding="utf-8")))
    spec = docs[0]
    dags = [spec["root"].get("dag", {})] + [c.get("dag", {}) for c in spec.get("components", {}).values()]
    for dag in dags:
        for task in dag.get("tasks", {}).values():
            task["cachingOptions"] = {**task.get("cachingOptions", {}), "enableCache": False}
    Path(out_path).write_text(yaml.safe_dump_all(docs, sort_keys=True), encoding="utf-8")
    return Path(out_path)


def submit(client, params: dict[str, Any], experiment_id: str, *, pipeline_id: str,
           version_id: str, run_name: str | None = None,
           service_account: str = DEFAULT_SERVICE_ACCOUNT) -> str:
    """Start a run of an uploaded version as `service_account`; returns the run ID.

    The compiled caching options stand (register-model is never cached; for a run without
    cache upload `without_caching(...)`). Refused before any call when the run would have
    nowhere durable to register its model (`check_registry`).
    """
    check_registry(params)
    with api_errors("submit run"):
        run = client.run_pipeline(experiment_id, run_name or f"{PIPELINE_NAME} {time.strftime('%Y-%m-%d %H-%M-%S')}",
                                  params=params, pipeline_id=pipeline_id, version_id=version_id,
                                  service_account=service_account or None)
    return run.run_id


# ------------------------------------------------------------------------------------------ wait

def _tasks(run) -> list:
    return (run.run_details.task_details or []) if run.run_details else []


def step_names(run) -> list[str]:
    """The pipeline's tasks among the run's task details, in the order they appear.

    The v2beta1 task details are the Argo workflow's nodes (api_converter.go toModelTask):
    for each pipeline task X a driver node `X-driver`, the node `X` and its `executor`
    (`executor(N)` under a retry), plus the workflow's own node and `root`. A pipeline task
    is a node with a `-driver` sibling; `root` is KFP's, not ours.
    """
    names = [t.display_name for t in _tasks(run) if t.display_name]
    drivers = {n.removesuffix("-driver") for n in names if n.endswith("-driver")}
    return list(dict.fromkeys(n for n in names if n in drivers and n != "root"))


def _step_states(run) -> dict[str, str]:
    steps = set(step_names(run))
    return {t.display_name: str(t.state) for t in _tasks(run) if t.display_name in steps}


def progress_line(run) -> str:
    """`RUNNING   done: download, preprocess-train` from what the server returns."""
    states = _step_states(run)
    done = [n for n in step_names(run) if states.get(n) in ("SUCCEEDED", "SKIPPED")]
    return f"{str(run.state or 'PENDING'):<9} done: {', '.join(done) or '-'}"


def wait(client, run_id: str, timeout: float = 24 * 3600, poll: float = 15.0,
         echo: Callable[[str], None] = print, namespace: str | None = None):
    """Poll a run until it ends; one line per change (state + finished tasks).

    Returns the run on success; a ClusterError names the failing task(s) otherwise.
    """
    started, last = time.monotonic(), None
    while True:
        with api_errors(f"run {run_id}"):
            run = client.get_run(run_id)
        state = str(run.state or "PENDING")
        line = progress_line(run)
        if line != last:
            echo(f"[{time.monotonic() - started:6.0f} s] {line}")
            last = line
        if state == "SUCCEEDED":
            return run
        if state in FINAL_STATES:
            raise run_failure(run, namespace)
        if time.monotonic() - started > timeout:
            raise ClusterError(f"run {run_id} is still {state} after {timeout:.0f} s",
                               fix="Wait longer (--timeout) or follow it in the KFP UI; it keeps running.")
        time.sleep(poll)


def run_failure(run, namespace: str | None = None) -> ClusterError:
    """The error for a run that did not succeed: the failed task(s), and where their log is.

    The v2beta1 API returns no error text and no pod name for a task (`error` and `pod_name`
    stay empty; `run.error` is set only when the server cannot convert the run), so the log
    is found through the workflow that carries the run ID as its `pipeline/runid` label.
    """
    states = _step_states(run)
    failed = [n for n in step_names(run) if states.get(n) == "FAILED"]
    done = [n for n in step_names(run) if states.get(n) in ("SUCCEEDED", "SKIPPED")]
    ns = f"-n {namespace} " if namespace else ""
    server_error = f" (server: {run.error.message})" if run.error and run.error.message else ""
    return ClusterError(
        f"run {run.run_id} {run.state}: "
        + (f"task {', '.join(failed)} failed" if failed else "no task reported a failure")
        + f"; finished before it: {', '.join(done) or '-'}{server_error}",
        fix="Read the failed task's log in the KFP UI (run details, task, Logs), or with kubectl: "
            f"`kubectl logs {ns}-c main --prefix -l workflows.argoproj.io/workflow=$(kubectl get "
            f"workflows {ns}-l pipeline/runid={run.run_id} -o jsonpath='{{.items[0].metadata.name}}')`; "
            "fix the cause, then submit again.")


# ------------------------------------------------------------------------------------ schedules

def schedule(client, experiment_id: str, name: str, *, pipeline_id: str, version_id: str,
             params: dict[str, Any], cron: str | None = None, interval_s: int | None = None,
             max_concurrency: int = 1, enabled: bool = True,
             service_account: str = DEFAULT_SERVICE_ACCOUNT) -> str:
    """Create a recurring run (6-field cron, seconds first, a descriptor such as @daily, or an
    interval); no catch-up: after a pause only the latest missed run starts."""
    check_schedule(cron, interval_s, max_concurrency)
    check_registry(params)
    with api_errors(f"schedule {name!r}"):
        job = client.create_recurring_run(
            experiment_id, name, cron_expression=cron, interval_second=interval_s,
            max_concurrency=max_concurrency, no_catchup=True, params=params,
            pipeline_id=pipeline_id, version_id=version_id, enabled=enabled,
            service_account=service_account or None)
    return job.recurring_run_id


def check_schedule(cron: str | None, interval_s: int | None, max_concurrency: int) -> None:
    """Refuse a trigger KFP would reject or misread, before anything is uploaded."""
    if (cron is None) == (interval_s is None):
        raise ClusterError("a schedule needs exactly one of cron or interval",
                           fix="Use --cron '0 0 3 * * *' (daily at 03:00) or --interval 86400.")
    if cron is not None and cron.startswith("@"):
        every = cron.removeprefix("@every ")
        if cron not in CRON_DESCRIPTORS and not (every != cron and _GO_DURATION.fullmatch(every)):
            raise ClusterError(f"cron {cron!r} is not a descriptor KFP's cron parser knows",
                               fix=f"Use one of {', '.join(CRON_DESCRIPTORS)} or '@every 24h'.")
    elif cron is not None and len(cron.split()) != 6:
        # KFP's parser takes 5 fields too, but reads them seconds first: '0 3 * * *' runs hourly
        raise ClusterError(f"cron {cron!r} has {len(cron.split())} fields; KFP's cron has 6 "
                           "(second minute hour day month weekday)",
                           fix=f"Prefix a seconds field: '0 {cron}'.")
    if not 1 <= max_concurrency <= MAX_CONCURRENCY:
        raise ClusterError(f"max_concurrency={max_concurrency}: KFP accepts 1 to {MAX_CONCURRENCY}",
                           fix="Use --max-concurrency 1 for training runs that share a GPU.")
    if interval_s is not None and interval_s < 1:
        raise ClusterError(f"interval {interval_s} s: KFP needs at least 1 second",
                           fix="Use e.g. --interval 86400 (daily).")


_GO_DURATION = re.compile(r"([0-9]*(\.[0-9]*)?(ns|us|µs|ms|s|m|h))+")  # Go's time.ParseDuration


def set_schedule(client, recurring_run_id: str, action: str) -> None:
    """enable, disable or delete a recurring run."""
    calls = {"enable": client.enable_recurring_run, "disable": client.disable_recurring_run,
             "delete": client.delete_recurring_run}
    with api_errors(f"{action} recurring run {recurring_run_id}"):
        calls[action](recurring_run_id)


def list_schedules(client, experiment_id: str | None = None,
                   namespace: str | None = None) -> list[dict[str, Any]]:
    """Recurring runs of an experiment, or of a namespace (a multi-user server needs one)."""
    with api_errors("list recurring runs"):
        jobs = client.list_recurring_runs(page_size=100, experiment_id=experiment_id,
                                          namespace=None if experiment_id else namespace).recurring_runs
    return [{"id": j.recurring_run_id, "name": j.display_name, "status": str(j.status),
             "trigger": (j.trigger.cron_schedule.cron if j.trigger.cron_schedule
                         else f"every {j.trigger.periodic_schedule.interval_second} s"),
             "max_concurrency": int(j.max_concurrency or 1), "no_catchup": bool(j.no_catchup)}
            for j in jobs or []]


# ------------------------------------------------------------------------------ runs and compare

def list_runs(client, experiments: list[str], namespace: str | None = None) -> list[dict[str, Any]]:
    """Every run of the named experiments, newest first, as plain dicts."""
    rows = []
    for name in experiments:
        experiment_id, token = find_experiment(client, name, namespace), ""
        while True:
            with api_errors(f"list runs of {name!r}"):
                page = client.list_runs(page_token=token, page_size=100, sort_by="created_at desc",
                                        experiment_id=experiment_id)
            rows += [run_summary(r, name) for r in page.runs or []]
            token = page.next_page_token
            if not token:
                break
    return rows


def run_summary(run, experiment: str) -> dict[str, Any]:
    return {"experiment": experiment, "run_id": run.run_id, "run_name": run.display_name,
            "state": str(run.state), "created_at": _iso(run.created_at),
            "finished_at": _iso(run.finished_at),
            "parameters": dict((run.runtime_config.parameters or {}) if run.runtime_config else {})}


def _iso(value) -> str:
    return value.isoformat(timespec="seconds") if hasattr(value, "isoformat") else str(value or "")


def registry_metrics(run: dict[str, Any], registry_uri: str | None = None,
                     opened: dict | None = None) -> tuple[dict[str, float], str]:
    """A run's evaluation metrics from the register step's record, and a note when there are none.

    KFP v2 keeps metrics in ML Metadata, which the v2beta1 API does not expose; the register
    step writes them with the run ID into the model registry (docs/cluster.md). `opened`
    keeps registry clients by URI across calls (compare passes one for all its runs).
    """
    from components.registry.client import open_registry, registered_version

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
            registries[uri] = open_registry(uri, author="kfp-squad-qa")
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
