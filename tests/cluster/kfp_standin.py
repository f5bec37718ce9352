"""A stand-in for the Kubeflow Pipelines v2beta1 REST API, for tests. It is not a cluster.

A stdlib `http.server` in a thread on 127.0.0.1 (random port) answering the endpoints that
`kfp.Client` (kfp 2.17.3, kfp-server-api 2.17.3) calls for pipeline/kfp_client.py and
pipeline/kfp_runs.py, with the paths and JSON field names of KFP's v2beta1 API, and the
server's own checks, each citing where the KFP backend does it (master at 7b70c7b; the same
at tag 2.5.0 where noted):

    GET  /apis/v2beta1/healthz                        (multi_user as configured)
    GET  /apis/v2beta1/pipelines[?filter&namespace]    GET /apis/v2beta1/pipelines/{id}
    POST /apis/v2beta1/pipelines/upload?name=&namespace=   (multipart `uploadfile`)
    POST /apis/v2beta1/pipelines/upload_version?name=&pipelineid=
    GET  /apis/v2beta1/pipelines/{id}/versions[?filter]   .../versions/{version_id}
    GET|POST /apis/v2beta1/experiments                 GET /apis/v2beta1/experiments/{id}
    GET|POST /apis/v2beta1/runs                        GET /apis/v2beta1/runs/{id}
    GET|POST /apis/v2beta1/recurringruns               GET|DELETE /apis/v2beta1/recurringruns/{id}
    POST /apis/v2beta1/recurringruns/{id}:enable | :disable

Every request needs `Authorization: Bearer <token>` (401 otherwise). In multi-user mode a
request without a namespace is refused with 400 and one in a namespace the user may not act
in with 403 (`KfpStandin._authorize`). Recurring runs: max_concurrency 1..10 and robfig/cron
parsing (`create_recurring_run`). State lives in memory. Nothing executes: a run's tasks
(the DAG tasks of its pipeline spec, in dependency order) finish one per `GET /runs/{id}`,
reported as the Argo nodes KFP's persistence agent stores (`_advance`): no pod_name, no
task error, no run error. The run ends as `outcome` says: SUCCEEDED (then `on_success(run)`
is called, which is where a test makes "the cluster" register metrics), or FAILED in the
executor of a named task after all its retries.
What this cannot tell: Argo, the driver, caching, pod scheduling, the real RBAC of a profile.
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
    def __init__(self, status: int, message: str, grpc_code: int | str = 2):
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

    def error(self, e: HttpError) -> tuple[int, bytes, str]:
        """Status, body and content type of an error answer (grpc-gateway's JSON by default)."""
        code = 5 if e.grpc_code == "no-route" else e.grpc_code
        body = {"error": e.message, "code": code, "message": e.message, "details": []}
        return e.status, json.dumps(body).encode(), "application/json"

    def _handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        parsed = urlparse(request.path)
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length) if length else b""
        self.requests.append((method, parsed.path))
        self.authorization_headers.append(request.headers.get("Authorization", ""))
        content_type = "application/json"
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
                raise HttpError(404, f"no route for {method} {parsed.path}", "no-route")
            payload = json.dumps(body).encode()
        except HttpError as e:
            status, payload, content_type = self.error(e)
        request.send_response(status)
        request.send_header("Content-Type", content_type)
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        request.wfile.write(payload)


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _matches(item: dict, filter_json: str | None) -> bool:
    """EQUALS predicates, as kfp.Client (operation 1) and kfp_client.py ("EQUALS") send them."""
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
    """How runs created from now on end: SUCCEEDED, or FAILED in the executor of `failed_task`."""
    state: str = "SUCCEEDED"
    failed_task: str | None = None

    @classmethod
    def failed(cls, task: str) -> Outcome:
        return cls("FAILED", task)


def dag_tasks(spec: dict) -> list[tuple[str, int]]:
    """Root DAG tasks in dependency order (as the driver would start them), with max retries."""
    spec = spec.get("pipeline_spec", spec)  # kfp.Client sends {pipeline_spec, platform_spec}
    tasks = spec["root"]["dag"]["tasks"]
    order: list[str] = []
    while len(order) < len(tasks):
        ready = sorted(n for n, t in tasks.items() if n not in order
                       and set(t.get("dependentTasks", [])) <= set(order))
        order += ready[:1]
    return [(n, int(tasks[n].get("retryPolicy", {}).get("maxRetryCount", 0))) for n in order]


# robfig/cron v1.2.0, which the API server's cron check uses (backend/src/apiserver/server/
# api_converter.go: `cron.Parse`): Parse = Second|Minute|Hour|Dom|Month|DowOptional|Descriptor,
# so 5 fields are ACCEPTED (read seconds first, weekday omitted) as well as 6; descriptors too.
CRON_DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
GO_DURATION = re.compile(r"([0-9]*(\.[0-9]*)?(ns|us|µs|ms|s|m|h))+")
_CRON_BOUNDS = [(0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 6)]
_CRON_NAMES = [{}, {}, {}, {}, {m: i + 1 for i, m in enumerate(
    "jan feb mar apr may jun jul aug sep oct nov dec".split())},
    {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}]


def robfig_cron_error(spec: str) -> str | None:
    """None when robfig/cron v1.2.0 `Parse` accepts the spec, else its complaint (abridged)."""
    if spec.startswith("@"):
        if spec in CRON_DESCRIPTORS:
            return None
        if spec.startswith("@every ") and GO_DURATION.fullmatch(spec[len("@every "):]):
            return None
        return f"Unrecognized descriptor: {spec}"
    fields = spec.split()
    if not 5 <= len(fields) <= 6:
        return f"Expected 5 to 6 fields, found {len(fields)}: {spec}"
    for field, (low, high), names in zip(fields, _CRON_BOUNDS, _CRON_NAMES):
        for part in field.split(","):
            base, _, step = part.partition("/")
            if step and not step.isdigit():
                return f"Failed to parse int from {step}"
            if base in ("*", "?"):
                continue
            ends = [names.get(x.lower(), x) for x in base.split("-", 1)]
            if not all(str(x).isdigit() for x in ends):
                return f"Failed to parse int from {base}"
            if not all(low <= int(x) <= high for x in ends):
                return f"End of range ({ends[-1]}) above maximum ({high}): {base}"
    return None


def _sanitize(model) -> dict:
    """A kfp_server_api model as the JSON the API server sends (its attribute_map names)."""
    import kfp_server_api

    return kfp_server_api.ApiClient().sanitize_for_serialization(model)


class KfpStandin(JsonServer):
    """In-memory KFP v2beta1 API. Set `outcome` and `on_success` before creating runs.

    multi_user=True: the server's multi-user mode as a profile user whose token grants the
    namespaces in `namespaces` (a Kubeflow profile's RoleBinding); see `_authorize`.
    """

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

    def __init__(self, token: str | None = "standin-token", *, multi_user: bool = False,
                 namespaces: tuple[str, ...] = ("kubeflow-user-example-com",)):
        super().__init__(token)
        self.multi_user, self.namespaces = multi_user, set(namespaces)
        self.pipelines: dict[str, dict] = {}
        self.versions: dict[str, dict] = {}
        self.specs: dict[str, dict] = {}  # version id -> pipeline spec
        self.experiments: dict[str, dict] = {}
        self.runs: dict[str, dict] = {}
        self.recurring_runs: dict[str, dict] = {}
        self.outcome = Outcome()
        self.on_success: Callable[[dict], None] | None = None

    # -- multi-user authorization
    def _namespace(self, namespace: str | None) -> str:
        """ResourceManager.ReplaceNamespace: single-user mode drops every namespace."""
        return (namespace or "") if self.multi_user else ""

    def _authorize(self, namespace: str, kind: str) -> None:
        """canAccess{Experiment,Run,Job} + ResourceManager.IsAuthorized (KFP 7b70c7b and 2.5.0:
        backend/src/apiserver/server/{experiment,run,job}_server.go, resource/resource_manager.go):
        an empty namespace in multi-user mode is InvalidInput (400); a namespace the user's
        SubjectAccessReview denies is PermissionDenied (403)."""
        if not self.multi_user:
            return
        if not namespace:
            raise HttpError(400, f"a {kind} cannot have an empty namespace in multi-user mode", 3)
        if namespace not in self.namespaces:
            raise HttpError(403, f"User 'user@example.com' is not authorized with reason: no RBAC "
                                 f"policy matched (request: namespace {namespace}, {kind}s)", 7)

    # -- pipelines
    def healthz(self, query, raw, headers):
        return 200, {"multi_user": self.multi_user, "pipeline_store": "database"}

    def list_pipelines(self, query, raw, headers):
        namespace = self._namespace(query.get("namespace"))  # "" lists the shared pipelines
        if namespace:
            self._authorize(namespace, "pipeline")
        found = [p for p in self.pipelines.values() if p["namespace"] == namespace
                 and _matches(p, query.get("filter"))]
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
        namespace = self._namespace(query.get("namespace"))
        if namespace and self.multi_user and namespace not in self.namespaces:
            # pipeline_upload_server.go: an authorization failure is written as HTTP 400
            raise HttpError(400, "Failed to create a pipeline", 3)
        name = query.get("name") or spec["pipelineInfo"]["name"]
        if any(p["name"] == name and p["namespace"] == namespace for p in self.pipelines.values()):
            raise HttpError(409, f"pipeline {name!r} already exists", 6)
        pipeline = {"pipeline_id": self.new_id(), "name": name, "display_name": name,
                    "description": query.get("description", ""), "created_at": now(),
                    "namespace": namespace}
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
        namespace = self._namespace(query.get("namespace"))
        self._authorize(namespace, "experiment")
        found = [e for e in self.experiments.values() if e["namespace"] == namespace
                 and _matches(e, query.get("filter"))]
        return _page(found, query, "experiments")

    def create_experiment(self, query, raw, headers):
        body = json.loads(raw)
        namespace = self._namespace(body.get("namespace"))
        self._authorize(namespace, "experiment")
        if any(e["display_name"] == body["display_name"] and e["namespace"] == namespace
               for e in self.experiments.values()):
            raise HttpError(409, f"experiment {body['display_name']!r} already exists", 6)
        experiment = {"experiment_id": self.new_id(), "display_name": body["display_name"],
                      "description": body.get("description") or "", "created_at": now(),
                      "namespace": namespace, "storage_state": "AVAILABLE"}
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

    def _check_run_request(self, body: dict, kind: str) -> dict:
        if body.get("experiment_id") not in self.experiments:
            raise HttpError(404, f"experiment {body.get('experiment_id')} not found", 5)
        self._authorize(self.experiments[body["experiment_id"]]["namespace"], kind)
        spec = self._spec_for(body)
        inputs = spec.get("pipeline_spec", spec)["root"].get("inputDefinitions", {}).get("parameters", {})
        unknown = set((body.get("runtime_config") or {}).get("parameters") or {}) - set(inputs)
        if unknown:
            raise HttpError(400, f"unknown pipeline parameters: {sorted(unknown)}", 3)
        return spec

    def create_run(self, query, raw, headers):
        body = json.loads(raw)
        spec = self._check_run_request(body, "run")
        run = {**body, "run_id": f"run-{self.new_id()}", "state": "PENDING", "created_at": now(),
               "storage_state": "AVAILABLE"}
        run.pop("pipeline_spec", None)
        run["_spec"] = spec
        run["_plan"] = {"steps": dag_tasks(spec), "outcome": dataclasses.replace(self.outcome),
                        "workflow": f"{spec.get('pipeline_spec', spec)['pipelineInfo']['name']}-"
                                    f"{int(run['run_id'].split('-')[1]):05d}",
                        "nodes": [], "next": 0}
        self.runs[run["run_id"]] = run
        return 200, self._public(run)

    @staticmethod
    def _public(run: dict) -> dict:
        return {k: v for k, v in run.items() if not k.startswith("_")}

    # -- task details: what the persistence agent reports of the Argo workflow
    def _node(self, run: dict, name: str, state: str, children: tuple[str, ...] = ()) -> str:
        """One Argo node as a task detail (api_converter.go toModelTask(util.NodeStatus) and
        toApiPipelineTaskDetail, KFP 7b70c7b): display_name is the node's display name, the
        children are node IDs under child_tasks[].pod_name; no pod_name, no error, no inputs."""
        import uuid

        node_id = f"{run['_plan']['workflow']}-{1000000000 + len(run['_plan']['nodes'])}"
        run["_plan"]["nodes"].append({"id": node_id, "name": name, "state": state, "children": children,
                                      "task_id": str(uuid.uuid4())})
        return node_id

    def _set_state(self, run: dict, names: tuple[str, ...], state: str) -> None:
        for node in run["_plan"]["nodes"]:
            if node["name"] in names:
                node["state"] = state

    def _task_details(self, run: dict) -> list[dict]:
        import kfp_server_api as api

        return [_sanitize(api.V2beta1PipelineTaskDetail(
            run_id=run["run_id"], task_id=n["task_id"], display_name=n["name"],
            create_time=run["created_at"], state=n["state"],
            child_tasks=[api.PipelineTaskDetailChildTask(pod_name=c) for c in n["children"]] or None))
            for n in run["_plan"]["nodes"]]

    def _advance(self, run: dict) -> None:
        """One step per GET: PENDING -> RUNNING, then a task ends, then the run ends.

        Argo nodes per task X of the root DAG (backend/src/v2/compiler/argocompiler/container.go
        and dag.go, KFP 7b70c7b): `X-driver` (driver pod), `X` (the system-container-executor
        DAG) and its `executor` (the pod; under a retry policy a Retry node `executor` whose
        pods are `executor(0)`, `executor(1)`, ...). Around them: the workflow's own node
        (display name = the workflow name), `root-driver` and `root`.
        """
        plan = run["_plan"]
        if run["state"] in ("SUCCEEDED", "FAILED"):
            return
        if run["state"] == "PENDING":
            run["state"] = "RUNNING"
            self._node(run, plan["workflow"], "RUNNING")
            self._node(run, "root-driver", "SUCCEEDED")
            self._node(run, "root", "RUNNING")
            return
        if plan["next"] == len(plan["steps"]):
            run["state"], run["finished_at"] = "SUCCEEDED", now()
            self._set_state(run, ("root", plan["workflow"]), "SUCCEEDED")
            if self.on_success:
                self.on_success(self._public(run))
            return
        (step, retries), outcome = plan["steps"][plan["next"]], plan["outcome"]
        plan["next"] += 1
        failed = outcome.state == "FAILED" and outcome.failed_task == step
        state = "FAILED" if failed else "SUCCEEDED"
        self._node(run, f"{step}-driver", "SUCCEEDED")
        if retries:
            attempts = retries + 1 if failed else 1
            pods = tuple(self._node(run, f"executor({i})", state) for i in range(attempts))
            executor = self._node(run, "executor", state, pods)
        else:
            executor = self._node(run, "executor", state)
        self._node(run, step, state, (executor,))
        if failed:  # run.error stays unset: the server sets it only when it cannot convert a run
            self._set_state(run, ("root", plan["workflow"]), "FAILED")
            run["state"], run["finished_at"] = "FAILED", now()

    def _answer(self, run: dict) -> dict:
        details = self._task_details(run)
        return {**self._public(run), **({"run_details": {"task_details": details}} if details else {})}

    def get_run(self, query, raw, headers, run_id):
        if run_id not in self.runs:
            raise HttpError(404, f"run {run_id} not found", 5)
        run = self.runs[run_id]
        self._authorize(self.experiments[run["experiment_id"]]["namespace"], "run")
        self._advance(run)
        return 200, self._answer(run)

    def list_runs(self, query, raw, headers):
        experiment_id = query.get("experiment_id")
        namespace = (self.experiments[experiment_id]["namespace"] if experiment_id in self.experiments
                     else self._namespace(query.get("namespace")))
        self._authorize(namespace, "run")
        found = [self._answer(r) for r in self.runs.values()
                 if experiment_id in (None, r["experiment_id"]) and _matches(r, query.get("filter"))]
        if query.get("sort_by", "").startswith("created_at"):
            found.sort(key=lambda r: int(r["run_id"].split("-")[1]),
                       reverse=query["sort_by"].endswith("desc"))
        return _page(found, query, "runs")

    # -- recurring runs
    def create_recurring_run(self, query, raw, headers):
        """api_converter.go toModelJob (KFP 7b70c7b): max_concurrency in [1, 10], cron through
        robfig/cron's Parse, interval >= 1 s; then job_server.go's namespace check."""
        body = json.loads(raw)
        concurrency = int(body.get("max_concurrency") or 0)
        if concurrency > 10 or concurrency < 1:
            raise HttpError(400, "Max concurrency of a recurring run must be at least 1 and at most 10. "
                                 f"Received {concurrency}", 3)
        trigger = body.get("trigger") or {}
        cron = (trigger.get("cron_schedule") or {}).get("cron")
        if cron is not None and (problem := robfig_cron_error(cron)):
            raise HttpError(400, "Schedule cron is not a supported format(https://godoc.org/github.com/"
                                 f"robfig/cron). Error: {problem}", 3)
        interval = (trigger.get("periodic_schedule") or {}).get("interval_second")
        if interval is not None and int(interval) < 1:
            raise HttpError(400, f"Found invalid period schedule interval {interval}. "
                                 "Set at interval to least 1 second", 3)
        self._check_run_request(body, "recurring run")
        enabled = body.get("mode", "ENABLE") == "ENABLE"
        job = {**body, "recurring_run_id": f"job-{self.new_id()}", "created_at": now(),
               "updated_at": now(), "status": "ENABLED" if enabled else "DISABLED",
               "max_concurrency": str(concurrency),
               "namespace": self.experiments[body["experiment_id"]]["namespace"]}
        job.pop("pipeline_spec", None)
        self.recurring_runs[job["recurring_run_id"]] = job
        return 200, job

    def _job(self, job_id: str) -> dict:
        if job_id not in self.recurring_runs:
            raise HttpError(404, f"recurring run {job_id} not found", 5)
        job = self.recurring_runs[job_id]
        self._authorize(job["namespace"], "recurring run")
        return job

    def get_recurring_run(self, query, raw, headers, job_id):
        return 200, self._job(job_id)

    def list_recurring_runs(self, query, raw, headers):
        """job_server.go listJobs: the namespace is the query's, or the experiment's."""
        experiment_id = query.get("experiment_id")
        namespace = (self.experiments[experiment_id]["namespace"] if experiment_id in self.experiments
                     else self._namespace(query.get("namespace")))
        self._authorize(namespace, "recurring run")
        found = [j for j in self.recurring_runs.values()
                 if experiment_id in (None, j["experiment_id"]) and j["namespace"] == namespace]
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
    parameters and `fake_scores`, as register-model would run at the end of the run; the model
    sits under KFP's default pipeline root (minio://mlpipeline/v2/artifacts)."""
    from components.register import register_model

    p = run["runtime_config"]["parameters"]
    register_model(
        model=SimpleNamespace(uri=f"minio://mlpipeline/v2/artifacts/qa-finetune/{run['run_id']}/fine-tune/model",
                              metadata={"base_model": p["model"],
                                        "hyperparameters": {"learning_rate": p["learning_rate"]}}),
        metrics=SimpleNamespace(metadata=fake_scores(p)),
        train_data=SimpleNamespace(metadata={"source": p["dataset"], "fingerprint": "f00d"}),
        model_name=p["model_name"], model_version=p["model_version"], min_f1=p["min_f1"],
        registry_uri=p["registry_uri"], pipeline_run_id=run["run_id"],
        registration=SimpleNamespace(path=str(Path(root) / f"{run['run_id']}.md")))
