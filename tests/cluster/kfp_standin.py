"""A stand-in for the Kubeflow Pipelines v2beta1 REST API, for tests. It is not a cluster.

A stdlib `http.server` in a thread on 127.0.0.1 (random port) answering the endpoints that
`kfp.Client` (kfp 2.17.3, kfp-server-api 2.17.3) calls for pipeline/cluster.py, with the
paths and JSON field names of KFP's published v2beta1 API spec:

    GET  /apis/v2beta1/healthz
    GET  /apis/v2beta1/pipelines[?filter]              GET /apis/v2beta1/pipelines/{id}
    POST /apis/v2beta1/pipelines/upload?name=          (multipart `uploadfile`)
    POST /apis/v2beta1/pipelines/upload_version?name=&pipelineid=
    GET  /apis/v2beta1/pipelines/{id}/versions[?filter]   .../versions/{version_id}
    GET|POST /apis/v2beta1/experiments                 GET /apis/v2beta1/experiments/{id}
    GET|POST /apis/v2beta1/runs                        GET /apis/v2beta1/runs/{id}
    GET|POST /apis/v2beta1/recurringruns               GET|DELETE /apis/v2beta1/recurringruns/{id}
    POST /apis/v2beta1/recurringruns/{id}:enable | :disable

Every request needs `Authorization: Bearer <token>` (401 otherwise). State lives in memory.
Nothing executes: a run's tasks (the DAG tasks of its pipeline spec, in dependency order)
finish one per `GET /runs/{id}`, and the run ends as `outcome` says: SUCCEEDED (then
`on_success(run)` is called, which is where a test makes "the cluster" register metrics), or
FAILED at a named task with an error message, as KFP reports an executor failure.
What this cannot tell: Argo, the driver, caching, pod scheduling, real authorization rules.
"""

from __future__ import annotations

import dataclasses
import datetime
import email.parser
import email.policy
import itertools
import json
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlparse

import yaml


class HttpError(Exception):
    def __init__(self, status: int, message: str, grpc_code: int = 2):
        super().__init__(message)
        self.status, self.message, self.grpc_code = status, message, grpc_code


class JsonServer:
    """A loopback JSON API with bearer-token checking; subclasses list `routes`."""

    routes: ClassVar[list[tuple[str, str, str]]] = []  # (method, path regex, handler method name)

    def __init__(self, token: str | None = "standin-token"):
        self.token = token
        self.requests: list[tuple[str, str]] = []
        self.authorization_headers: list[str] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self):
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _serve(self, method: str):
                owner._handle(self, method)

            def do_GET(self):
                self._serve("GET")

            def do_POST(self):
                self._serve("POST")

            def do_DELETE(self):
                self._serve("DELETE")

            def do_PATCH(self):
                self._serve("PATCH")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def new_id(self) -> str:
        return str(next(self._ids))

    def _handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        parsed = urlparse(request.path)
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length) if length else b""
        self.requests.append((method, parsed.path))
        self.authorization_headers.append(request.headers.get("Authorization", ""))
        try:
            if self.token is not None and request.headers.get("Authorization") != f"Bearer {self.token}":
                raise HttpError(401, "Unauthenticated: the bearer token is missing or invalid", 16)
            for route_method, pattern, name in self.routes:
                match = re.fullmatch(pattern, parsed.path)
                if match and route_method == method:
                    with self._lock:
                        status, body = getattr(self, name)(query, raw, request.headers, *match.groups())
                    break
            else:
                raise HttpError(404, f"no route for {method} {parsed.path}", 5)
        except HttpError as e:
            status, body = e.status, {"error": e.message, "code": e.grpc_code, "message": e.message}
        payload = json.dumps(body).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        request.wfile.write(payload)


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _matches(item: dict, filter_json: str | None) -> bool:
    """EQUALS predicates, as kfp.Client (operation 1) and cluster.py ("EQUALS") send them."""
    if not filter_json:
        return True
    for p in json.loads(filter_json).get("predicates", []):
        if p.get("operation") not in ("EQUALS", 1):
            raise HttpError(400, f"the stand-in only filters with EQUALS, not {p.get('operation')}", 3)
        if str(item.get(p["key"])) != str(p.get("stringValue", p.get("string_value"))):
            return False
    return True


def _page(items: list[dict], query: dict, key: str) -> tuple[int, dict]:
    start = int(query.get("page_token") or 0)
    size = int(query.get("page_size") or 20)
    chunk = items[start:start + size]
    body: dict[str, Any] = {key: chunk, "total_size": len(items)}
    if start + size < len(items):
        body["next_page_token"] = str(start + size)
    return 200, body


@dataclasses.dataclass
class Outcome:
    """How runs created from now on end."""
    state: str = "SUCCEEDED"
    failed_task: str | None = None
    error: str = ""

    @classmethod
    def failed(cls, task: str, error: str) -> Outcome:
        return cls("FAILED", task, error)


def dag_tasks(spec: dict) -> list[str]:
    """Root DAG task names in dependency order (as the driver would start them)."""
    spec = spec.get("pipeline_spec", spec)  # kfp.Client sends {pipeline_spec, platform_spec}
    tasks = spec["root"]["dag"]["tasks"]
    order: list[str] = []
    while len(order) < len(tasks):
        ready = sorted(n for n, t in tasks.items() if n not in order
                       and set(t.get("dependentTasks", [])) <= set(order))
        order += ready[:1]
    return order


class KfpStandin(JsonServer):
    """In-memory KFP v2beta1 API. Set `outcome` and `on_success` before creating runs."""

    V = "/apis/v2beta1"
    routes: ClassVar = [
        ("GET", V + r"/healthz", "healthz"),
        ("GET", V + r"/pipelines", "list_pipelines"),
        ("POST", V + r"/pipelines/upload", "upload_pipeline"),
        ("POST", V + r"/pipelines/upload_version", "upload_version"),
        ("GET", V + r"/pipelines/([^/]+)", "get_pipeline"),
        ("GET", V + r"/pipelines/([^/]+)/versions", "list_versions"),
        ("GET", V + r"/pipelines/([^/]+)/versions/([^/]+)", "get_version"),
        ("GET", V + r"/experiments", "list_experiments"),
        ("POST", V + r"/experiments", "create_experiment"),
        ("GET", V + r"/experiments/([^/:]+)", "get_experiment"),
        ("GET", V + r"/runs", "list_runs"),
        ("POST", V + r"/runs", "create_run"),
        ("GET", V + r"/runs/([^/:]+)", "get_run"),
        ("GET", V + r"/recurringruns", "list_recurring_runs"),
        ("POST", V + r"/recurringruns", "create_recurring_run"),
        ("GET", V + r"/recurringruns/([^/:]+)", "get_recurring_run"),
        ("DELETE", V + r"/recurringruns/([^/:]+)", "delete_recurring_run"),
        ("POST", V + r"/recurringruns/([^/:]+):(enable|disable)", "set_recurring_run"),
    ]

    def __init__(self, token: str | None = "standin-token"):
        super().__init__(token)
        self.pipelines: dict[str, dict] = {}
        self.versions: dict[str, dict] = {}
        self.specs: dict[str, dict] = {}  # version id -> pipeline spec
        self.experiments: dict[str, dict] = {}
        self.runs: dict[str, dict] = {}
        self.recurring_runs: dict[str, dict] = {}
        self.outcome = Outcome()
        self.on_success: Callable[[dict], None] | None = None

    # -- pipelines
    def healthz(self, query, raw, headers):
        return 200, {"multi_user": False, "pipeline_store": "database"}

    def list_pipelines(self, query, raw, headers):
        found = [p for p in self.pipelines.values() if _matches(p, query.get("filter"))]
        return _page(found, query, "pipelines")

    def get_pipeline(self, query, raw, headers, pipeline_id):
        if pipeline_id not in self.pipelines:
            raise HttpError(404, f"pipeline {pipeline_id} not found", 5)
        return 200, self.pipelines[pipeline_id]

    def _uploaded_spec(self, raw: bytes, headers) -> dict:
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + headers["Content-Type"].encode() + b"\r\n\r\n" + raw)
        for part in message.iter_parts():
            if part.get_param("name", header="content-disposition") == "uploadfile":
                docs = list(yaml.safe_load_all(part.get_payload(decode=True)))
                if not docs or "root" not in (docs[0] or {}):
                    raise HttpError(400, "uploadfile is not a compiled pipeline spec", 3)
                return docs[0]
        raise HttpError(400, "multipart field uploadfile is missing", 3)

    def _new_version(self, pipeline_id: str, name: str, spec: dict) -> dict:
        if any(v["pipeline_id"] == pipeline_id and v["name"] == name for v in self.versions.values()):
            raise HttpError(409, f"pipeline version {name!r} already exists", 6)
        version = {"pipeline_id": pipeline_id, "pipeline_version_id": self.new_id(), "name": name,
                   "display_name": name, "created_at": now()}
        self.versions[version["pipeline_version_id"]] = version
        self.specs[version["pipeline_version_id"]] = spec
        return version

    def upload_pipeline(self, query, raw, headers):
        spec = self._uploaded_spec(raw, headers)
        name = query.get("name") or spec["pipelineInfo"]["name"]
        if any(p["name"] == name for p in self.pipelines.values()):
            raise HttpError(409, f"pipeline {name!r} already exists", 6)
        pipeline = {"pipeline_id": self.new_id(), "name": name, "display_name": name,
                    "description": query.get("description", ""), "created_at": now()}
        self.pipelines[pipeline["pipeline_id"]] = pipeline
        self._new_version(pipeline["pipeline_id"], name, spec)  # KFP's default first version
        return 200, pipeline

    def upload_version(self, query, raw, headers):
        spec = self._uploaded_spec(raw, headers)
        if query.get("pipelineid") not in self.pipelines:
            raise HttpError(404, f"pipeline {query.get('pipelineid')} not found", 5)
        return 200, self._new_version(query["pipelineid"], query["name"], spec)

    def list_versions(self, query, raw, headers, pipeline_id):
        found = [v for v in self.versions.values() if v["pipeline_id"] == pipeline_id
                 and _matches(v, query.get("filter"))]
        return _page(found, query, "pipeline_versions")

    def get_version(self, query, raw, headers, pipeline_id, version_id):
        if version_id not in self.versions:
            raise HttpError(404, f"pipeline version {version_id} not found", 5)
        return 200, self.versions[version_id]

    # -- experiments
    def list_experiments(self, query, raw, headers):
        found = [e for e in self.experiments.values() if _matches(e, query.get("filter"))]
        return _page(found, query, "experiments")

    def create_experiment(self, query, raw, headers):
        body = json.loads(raw)
        if any(e["display_name"] == body["display_name"] for e in self.experiments.values()):
            raise HttpError(409, f"experiment {body['display_name']!r} already exists", 6)
        experiment = {"experiment_id": self.new_id(), "display_name": body["display_name"],
                      "description": body.get("description") or "", "created_at": now(),
                      "namespace": body.get("namespace") or "", "storage_state": "AVAILABLE"}
        self.experiments[experiment["experiment_id"]] = experiment
        return 200, experiment

    def get_experiment(self, query, raw, headers, experiment_id):
        if experiment_id not in self.experiments:
            raise HttpError(404, f"experiment {experiment_id} not found", 5)
        return 200, self.experiments[experiment_id]

    # -- runs
    def _spec_for(self, body: dict) -> dict:
        ref = body.get("pipeline_version_reference")
        if ref:
            if ref.get("pipeline_version_id") not in self.specs:
                raise HttpError(404, f"pipeline version {ref.get('pipeline_version_id')} not found", 5)
            return self.specs[ref["pipeline_version_id"]]
        if not body.get("pipeline_spec"):
            raise HttpError(400, "a run needs pipeline_version_reference or pipeline_spec", 3)
        return body["pipeline_spec"]

    def _check_run_request(self, body: dict) -> dict:
        if body.get("experiment_id") not in self.experiments:
            raise HttpError(404, f"experiment {body.get('experiment_id')} not found", 5)
        spec = self._spec_for(body)
        inputs = spec.get("pipeline_spec", spec)["root"].get("inputDefinitions", {}).get("parameters", {})
        unknown = set((body.get("runtime_config") or {}).get("parameters") or {}) - set(inputs)
        if unknown:
            raise HttpError(400, f"unknown pipeline parameters: {sorted(unknown)}", 3)
        return spec

    def create_run(self, query, raw, headers):
        body = json.loads(raw)
        spec = self._check_run_request(body)
        run = {**body, "run_id": f"run-{self.new_id()}", "state": "PENDING", "created_at": now(),
               "storage_state": "AVAILABLE", "run_details": {"task_details": []}}
        run.pop("pipeline_spec", None)
        run["_spec"] = spec
        run["_plan"] = {"steps": dag_tasks(spec), "outcome": dataclasses.replace(self.outcome)}
        self.runs[run["run_id"]] = run
        return 200, self._public(run)

    @staticmethod
    def _public(run: dict) -> dict:
        return {k: v for k, v in run.items() if not k.startswith("_")}

    def _task(self, run: dict, name: str, state: str, error: str = "") -> dict:
        task = {"run_id": run["run_id"], "task_id": self.new_id(), "display_name": name,
                "state": state, "create_time": now(), "pod_name": f"{run['run_id']}-{name}-pod"}
        if error:
            task["error"] = {"code": 2, "message": error}
        return task

    def _advance(self, run: dict) -> None:
        """One step per GET: PENDING -> RUNNING, then a task ends, then the run ends."""
        plan, details = run["_plan"], run["run_details"]["task_details"]
        if run["state"] in ("SUCCEEDED", "FAILED"):
            return
        if run["state"] == "PENDING":
            run["state"] = "RUNNING"
            details += [self._task(run, "root-driver", "SUCCEEDED"), self._task(run, "root", "RUNNING")]
            return
        finished = [t["display_name"] for t in details if t["display_name"] in plan["steps"]]
        if len(finished) == len(plan["steps"]):
            run["state"], run["finished_at"] = "SUCCEEDED", now()
            details[1]["state"] = "SUCCEEDED"
            if self.on_success:
                self.on_success(self._public(run))
            return
        step, outcome = plan["steps"][len(finished)], plan["outcome"]
        details.append(self._task(run, f"{step}-driver", "SUCCEEDED"))
        if outcome.state == "FAILED" and outcome.failed_task == step:
            details.append(self._task(run, step, "FAILED", outcome.error))
            details[1]["state"] = "FAILED"
            run["state"], run["finished_at"] = "FAILED", now()
            run["error"] = {"code": 2, "message": f"task {step} failed"}
        else:
            details.append(self._task(run, step, "SUCCEEDED"))

    def get_run(self, query, raw, headers, run_id):
        if run_id not in self.runs:
            raise HttpError(404, f"run {run_id} not found", 5)
        self._advance(self.runs[run_id])
        return 200, self._public(self.runs[run_id])

    def list_runs(self, query, raw, headers):
        found = [self._public(r) for r in self.runs.values()
                 if query.get("experiment_id") in (None, r["experiment_id"])
                 and _matches(r, query.get("filter"))]
        if query.get("sort_by", "").startswith("created_at"):
            found.sort(key=lambda r: int(r["run_id"].split("-")[1]),
                       reverse=query["sort_by"].endswith("desc"))
        return _page(found, query, "runs")

    # -- recurring runs
    def create_recurring_run(self, query, raw, headers):
        body = json.loads(raw)
        self._check_run_request(body)
        trigger = body.get("trigger") or {}
        if bool(trigger.get("cron_schedule")) == bool(trigger.get("periodic_schedule")):
            raise HttpError(400, "a recurring run needs exactly one of cron_schedule and periodic_schedule", 3)
        enabled = body.get("mode", "ENABLE") == "ENABLE"
        job = {**body, "recurring_run_id": f"job-{self.new_id()}", "created_at": now(),
               "updated_at": now(), "status": "ENABLED" if enabled else "DISABLED",
               "max_concurrency": str(body.get("max_concurrency") or 1)}
        job.pop("pipeline_spec", None)
        self.recurring_runs[job["recurring_run_id"]] = job
        return 200, job

    def _job(self, job_id: str) -> dict:
        if job_id not in self.recurring_runs:
            raise HttpError(404, f"recurring run {job_id} not found", 5)
        return self.recurring_runs[job_id]

    def get_recurring_run(self, query, raw, headers, job_id):
        return 200, self._job(job_id)

    def list_recurring_runs(self, query, raw, headers):
        found = [j for j in self.recurring_runs.values()
                 if query.get("experiment_id") in (None, j["experiment_id"])]
        return _page(found, query, "recurringRuns")  # the one camelCase list key in the v2beta1 spec

    def set_recurring_run(self, query, raw, headers, job_id, action):
        job = self._job(job_id)
        job["mode"], job["status"] = ("ENABLE", "ENABLED") if action == "enable" else ("DISABLE", "DISABLED")
        job["updated_at"] = now()
        return 200, {}

    def delete_recurring_run(self, query, raw, headers, job_id):
        del self.recurring_runs[self._job(job_id)["recurring_run_id"]]
        return 200, {}


def fake_scores(params: dict) -> dict:
    """Deterministic 'evaluation' so that a comparison can be checked row by row."""
    return {"exact_match": 60.0 + params["seed"] % 10, "f1": 70.0 + params["seed"] % 10}


def register_like_the_pipeline(run: dict, root: Path) -> None:
    """An `on_success` hook: the real register step (components/register.py) with the run's
    parameters and `fake_scores`, as register-model would run at the end of the run."""
    from components.register import register_model

    p = run["runtime_config"]["parameters"]
    register_model(
        model=SimpleNamespace(uri=f"s3://bucket/{run['run_id']}/model",
                              metadata={"base_model": p["model"],
                                        "hyperparameters": {"learning_rate": p["learning_rate"]}}),
        metrics=SimpleNamespace(metadata=fake_scores(p)),
        train_data=SimpleNamespace(metadata={"source": p["dataset"], "fingerprint": "f00d"}),
        model_name=p["model_name"], model_version=p["model_version"], min_f1=p["min_f1"],
        registry_uri=p["registry_uri"], pipeline_run_id=run["run_id"], pipeline_root=str(root),
        registration=SimpleNamespace(path=str(Path(root) / f"{run['run_id']}.md")))
