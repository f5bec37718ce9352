"""Start KServe's model server with the QA predictor, here or in the cluster image.

`python -m pipeline serve --model DIR` (pipeline/serving.py) and the ServingRuntime in
manifests/overlays/kserve both end up in `serve`, so the local server is the cluster's.

KServe's `ModelServer` holds the model repository and the data plane (routes, health,
readiness, metrics); its REST server is uvicorn, which KServe binds to 0.0.0.0
(kserve/protocol/rest/server.py RESTServer, v0.21.0). `serve` builds that same REST server
and binds it to `host` (127.0.0.1 by default on a workstation, 0.0.0.0 in a pod). gRPC is
off: the REST protocols are what we serve and test.

SIGTERM/SIGINT: uvicorn stops accepting connections, lets requests in flight finish (up to
`grace_period` seconds), then the model's forward thread is shut down.
"""

from __future__ import annotations

import signal

from components.qa.serving import ServingConfig


def build_model_server(model_dir: str, config: ServingConfig, name: str = "qa"):
    """(ModelServer, QAModel), the model loaded and registered."""
    from kserve import ModelServer

    from components.serving.predictor import QAModel

    model = QAModel(name, model_dir, config)
    model.load()
    server = ModelServer(enable_grpc=False, workers=1, enable_latency_logging=False)
    server.register_model(model)
    return server, model


def serve(model_dir: str, config: ServingConfig, name: str = "qa", host: str = "127.0.0.1",
          port: int = 8080, grace_period: int = 30) -> None:
    """Serve until SIGTERM/SIGINT."""
    from kserve.constants.constants import FASTAPI_APP_IMPORT_STRING

    server, model = build_model_server(model_dir, config, name)
    rest = _rest_server_class()(FASTAPI_APP_IMPORT_STRING, server.dataplane,
                                server.model_repository_extension, port,
                                grace_period=grace_period)
    rest.config.host = host
    print(f"serving {name!r} from {model_dir} at http://{host}:{port}"
          f" (V1 /v1/models/{name}:predict, V2 /v2/models/{name}/infer)", flush=True)
    # uvicorn handles SIGTERM/SIGINT while it serves, then restores the previous handlers and
    # raises the signal again; these absorb it, so that the process exits 0 after cleanup
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    try:
        rest.run()  # uvicorn: returns after a graceful shutdown
    finally:
        model.stop()
        print("model server stopped", flush=True)


def _rest_server_class():
    """KServe's RESTServer, with one more 400.

    KServe decodes a binary Open Inference Protocol request itself, before the predictor, and
    turns BYTES that are not UTF-8 into an InferenceError (a 500) raised while handling the
    UnicodeDecodeError (kserve/protocol/infer_type.py set_data_from_numpy, v0.21.0). That is
    the client's error: answer 400. KServe's message does not say which input, so neither can
    this one; JSON bodies and our own decoding name the row and field.
    """
    from fastapi.responses import JSONResponse
    from kserve.errors import InferenceError, inference_error_handler
    from kserve.protocol.rest.server import RESTServer

    async def bad_text_is_a_bad_request(request, exc: InferenceError):
        cause = exc.__context__
        if not isinstance(cause, UnicodeDecodeError):
            return await inference_error_handler(request, exc)
        return JSONResponse(status_code=400, content={"error": (
            f"a BYTES input holds text that is not UTF-8 ({cause.reason} at byte "
            f"{cause.start} of a string). Encode every question and context as UTF-8.")})

    class QARESTServer(RESTServer):
        def _add_exception_handlers(self, app):
            super()._add_exception_handlers(app)
            app.add_exception_handler(InferenceError, bad_text_is_a_bad_request)

    return QARESTServer


def free_port(host: str = "127.0.0.1") -> int:
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class LocalServer:
    """`python -m pipeline serve` in a child process on a free loopback port.

        with LocalServer(model_dir, "qa", args) as server:
            requests.post(server.url + "/v1/models/qa:predict", json=...)

    Entering waits until KServe reports the model ready (or the process dies: its log is in
    the error); leaving sends SIGTERM and waits for the graceful shutdown.
    """

    def __init__(self, model_dir: str, name: str = "qa", args: list[str] = (),
                 host: str = "127.0.0.1", startup_timeout: float = 300, env: dict | None = None):
        self.model_dir, self.name, self.args, self.host = model_dir, name, list(args), host
        self.startup_timeout, self.env = startup_timeout, env
        self.port = free_port(host)
        self.url = f"http://{host}:{self.port}"
        self.process = None
        self.log_path = None

    def __enter__(self) -> LocalServer:
        import os
        import subprocess
        import sys
        import tempfile
        import time
        import urllib.request

        self._log = tempfile.NamedTemporaryFile("w+", prefix="qa-serve-", suffix=".log",
                                                delete=False)
        self.log_path = self._log.name
        # a KFP step's environment marks it as the executor (_KFP_RUNTIME: kfp.dsl then
        # imports only what the executor needs); the server's CLI needs all of kfp
        env = {k: v for k, v in os.environ.items() if k != "_KFP_RUNTIME"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "serve", "--model", self.model_dir, "--name",
             self.name, "--host", self.host, "--port", str(self.port), *self.args],
            stdout=self._log, stderr=subprocess.STDOUT, env={**env, **(self.env or {})})
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the model server exited with {self.process.returncode}:\n"
                                   f"{self.log()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/v2/models/{self.name}/ready",
                                            timeout=5) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"the model server was not ready after {self.startup_timeout} s:\n"
                           f"{self.log()[-3000:]}")

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, then wait; the exit code."""
        import signal
        import subprocess

        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode

    def __exit__(self, *exc) -> None:
        self.stop()


# our own sentence: a question whose answer is plain, for the deploy step's smoke query
SMOKE_QUESTION = "What covers most of the Amazon basin?"
SMOKE_CONTEXT = ("The Amazon rainforest covers most of the Amazon basin of South America, "
                 "an area of about seven million square kilometres.")


def smoke_query(base_url: str, name: str, timeout: float = 120) -> tuple[dict, float]:
    """One V1 prediction of the smoke question: (the prediction, latency in ms)."""
    import json
    import time
    import urllib.request

    body = {"instances": [{"question": SMOKE_QUESTION, "context": SMOKE_CONTEXT}]}
    request = urllib.request.Request(f"{base_url}/v1/models/{name}:predict",
                                     data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=timeout) as response:
        prediction = json.loads(response.read())["predictions"][0]
    return prediction, (time.perf_counter() - started) * 1000
