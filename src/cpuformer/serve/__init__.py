"""`cpuformer serve`: an HTTP inference server (FastAPI + uvicorn, the `serve` extra) with dynamic batching for
encoders and continuous batching for generation. The batching engines (embedding_batcher, generation_engine) are
independent of HTTP; `create_app(service, options)` builds the app around a loaded service (see server.py)."""
from .options import ServeOptions

__all__ = ["ServeOptions", "create_app", "load_service", "run"]


def __getattr__(name):  # FastAPI is imported only when the app is built
    if name == "create_app":
        from .app import create_app

        return create_app
    if name in ("load_service", "run"):
        from . import server

        return getattr(server, name)
    raise AttributeError(name)
