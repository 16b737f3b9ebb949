"""`create_app(service, options)`: the FastAPI app around one loaded model service (EmbeddingService or
CompletionService). The app is a thin layer: the batching engines know nothing of HTTP, and the endpoints only
translate requests, errors and responses (embeddings_api.py, completions_api.py).

Middleware order, outermost first: metrics (counts every answer), refuse-when-draining (503 after SIGTERM),
API key (401), body size (413 before anything parses the body)."""
from __future__ import annotations

import sys
import time
from contextlib import asynccontextmanager

from .errors import install_error_handlers
from .http_guards import ApiKeyCheck, BodySizeLimit, RefuseWhenDraining, RequestMetrics
from .metrics import Metrics
from .options import ServeOptions

__all__ = ["ServerState", "create_app"]


class ServerState:
    """What every endpoint reads: the model service, the metrics, and whether shutdown has begun."""

    def __init__(self, service, options: ServeOptions, metrics: Metrics):
        self.service, self.options, self.metrics = service, options, metrics
        self.draining = False
        self.started = int(time.time())


def create_app(service, options: ServeOptions | None = None):
    """The app for a loaded service. Its engine thread starts with the app and, at shutdown, finishes the work in
    flight before it stops."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse, PlainTextResponse

    from . import chat_completions_api, completions_api, embeddings_api

    options = options or ServeOptions()
    metrics: Metrics = service.metrics
    state = ServerState(service, options, metrics)

    @asynccontextmanager
    async def lifespan(app):
        service.start()
        try:
            yield
        finally:
            service.stop()  # after uvicorn's graceful shutdown: the queues are empty, the threads end
            print("cpuformer serve: every request answered; stopped", file=sys.stderr, flush=True)

    app = FastAPI(title="cpuformer", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.server = state
    install_error_handlers(app)

    @app.get("/health")
    async def health():
        if state.draining:
            return JSONResponse({"status": "shutting down"}, 503)
        return {"status": "ok", "model": service.name, "task": service.kind}

    @app.get("/metrics")
    async def prometheus_metrics():
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/v1/models")
    async def list_models():
        return {"object": "list", "data": [{"id": service.name, "object": "model", "created": state.started,
                                            "owned_by": "cpuformer"}]}

    embeddings_api.register(app, state)
    completions_api.register(app, state)
    chat_completions_api.register(app, state)

    # add_middleware wraps: the last added runs first
    app.add_middleware(BodySizeLimit, max_bytes=options.max_request_bytes)
    app.add_middleware(ApiKeyCheck, api_key=options.api_key)
    app.add_middleware(RefuseWhenDraining, state=state)
    app.add_middleware(RequestMetrics, metrics=metrics)
    return app
