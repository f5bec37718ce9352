"""Kubeflow Pipelines on a cluster: connect, upload, experiment, submit.

Plain functions over `kfp.Client`, shared by `python -m pipeline submit|schedule|runs|compare`
(pipeline/cluster_cli.py) and pipeline.ipynb; following, listing and scheduling runs is in
pipeline/kfp_runs.py, the comparison of runs in pipeline/comparison.py. Every KFP API error
a person can act on (unreachable host, rejected token, unknown experiment, failed run)
becomes a `ClusterError` whose message says what to do; see docs/cluster.md.

    export KFP_HOST=https://kubeflow.example.com/pipeline KFP_TOKEN=...   # outside the cluster
    python -m pipeline submit --profile cluster --experiment qa --wait
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from components.qa.errors import InvalidInputError
from pipeline.qa_pipeline import PIPELINE_NAME

SA_TOKEN_ENV = "KF_PIPELINES_SA_TOKEN_PATH"  # set by Kubeflow's PodDefault in notebooks
DEFAULT_SA_TOKEN_PATH = "/var/run/secrets/kubeflow/pipelines/token"
IN_CLUSTER_HOST = "http://ml-pipeline.kubeflow.svc.cluster.local:8888"
POD_NAMESPACE_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
DEFAULT_SERVICE_ACCOUNT = "qa-pipeline"  # manifests/: the account the pipeline's pods run as


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
