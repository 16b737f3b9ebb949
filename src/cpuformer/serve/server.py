"""Load the model a folder holds into the matching service, and run the app with uvicorn until SIGTERM/SIGINT.

The model type comes from the folder: sentence-transformers folders (modules.json) and encoder checkpoints
serve embeddings; checkpoints of a generating architecture (GPT-2) serve completions; no folder serves the
default embedding model. The model is loaded before the port opens, so /health answers only when it is ready."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from .metrics import Metrics
from .options import ServeOptions

__all__ = ["load_service", "run"]

_INSTALL_HINT = 'the server needs FastAPI and uvicorn: pip install "cpuformer[serve]"'


def load_service(options: ServeOptions, metrics: Metrics | None = None):
    from ..generation import GenerationMixin
    from ..models.base import Checkpoint
    from ..models.registry import AutoModel
    from ..sentence_encoder import SentenceEncoder
    from .completion_service import CompletionService
    from .embedding_service import EmbeddingService

    metrics = metrics or Metrics()
    if options.model is None:
        from ..default_model import DEFAULT_MODEL_NAME

        encoder = SentenceEncoder.from_pretrained(None, dtype=options.dtype)
        return EmbeddingService(encoder, DEFAULT_MODEL_NAME.split("/")[-1], options, metrics)
    root = Path(options.model)
    if not root.is_dir():
        raise FileNotFoundError(f"model folder {os.fspath(options.model)!r} does not exist")
    name = root.resolve().name
    if not (root / "modules.json").is_file():
        checkpoint = Checkpoint.open(root)
        if issubclass(AutoModel.model_class(checkpoint), GenerationMixin):
            model = AutoModel.from_checkpoint(checkpoint, dtype=options.dtype)
            return CompletionService(model, name, options, metrics)
    return EmbeddingService(SentenceEncoder.from_pretrained(root, dtype=options.dtype), name, options, metrics)


def run(options: ServeOptions) -> int:
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError as exc:
        raise RuntimeError(f"{_INSTALL_HINT} ({exc})") from None
    from .app import create_app

    service = load_service(options)
    app = create_app(service, options)
    state = app.state.server

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame):
            # From the signal on, new requests get 503 while uvicorn lets the in-flight ones finish.
            state.draining = True
            super().handle_exit(sig, frame)

    config = uvicorn.Config(app, host=options.host, port=options.port, log_level="info", access_log=False,
                            timeout_graceful_shutdown=options.graceful_timeout_s, lifespan="on")
    print(f"cpuformer serve: {service.kind} with {service.name} on http://{options.host}:{options.port}",
          file=sys.stderr, flush=True)
    Server(config).run()
    return 0
