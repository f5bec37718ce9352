"""Start KServe's model server with the QA predictor, here or in the cluster image.

`python -m pipeline serve --model DIR` (pipeline/serve_cli.py) and the ServingRuntime in
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

import logging

from components.qa.serving import ServingConfig

log = logging.getLogger(__name__)


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
    from kserve.protocol.rest.server import RESTServer

    server, model = build_model_server(model_dir, config, name)
    rest = RESTServer(FASTAPI_APP_IMPORT_STRING, server.dataplane,
                      server.model_repository_extension, port, grace_period=grace_period)
    rest.config.host = host
    print(f"serving {name!r} from {model_dir} at http://{host}:{port}"
          f" (V1 /v1/models/{name}:predict, V2 /v2/models/{name}/infer)", flush=True)
    try:
        rest.run()  # uvicorn: returns after a graceful shutdown
    finally:
        model.stop()
        print("model server stopped", flush=True)
