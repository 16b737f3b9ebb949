"""The `cpuformer serve` subcommand: its flags and the call into server.run (FastAPI is imported only then)."""
from __future__ import annotations

import argparse

from ..models.base import SUPPORTED_DTYPES
from .options import ServeOptions

__all__ = ["add_serve_parser", "serve_main"]

_DEFAULTS = ServeOptions()


def add_serve_parser(commands) -> None:
    serve = commands.add_parser(
        "serve", help="HTTP server: OpenAI-compatible /v1/embeddings and /v1/completions, TEI /embed",
        description="Serve one model over HTTP with dynamic batching (encoders) or continuous batching (GPT-2). "
                    "Needs the serve extra: pip install \"cpuformer[serve]\".")
    serve.add_argument("--model", metavar="PATH", help="model folder: sentence-transformers/BERT (embeddings) or "
                                                       "GPT-2 (completions); default: all-MiniLM-L6-v2")
    serve.add_argument("--host", default=_DEFAULTS.host, help="address to bind (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=_DEFAULTS.port, help="port (default 8080)")
    serve.add_argument("--dtype", default=_DEFAULTS.dtype, choices=SUPPORTED_DTYPES,
                       help="dtype of the linear weights (default float32)")
    serve.add_argument("--api-key", metavar="KEY", help="require 'Authorization: Bearer KEY' (not on /health, "
                                                        "/metrics)")
    serve.add_argument("--max-batch-tokens", type=int, default=_DEFAULTS.max_batch_tokens, metavar="N",
                       help=f"tokens per encoder batch (default {_DEFAULTS.max_batch_tokens})")
    serve.add_argument("--max-wait-ms", type=float, default=_DEFAULTS.max_wait_ms, metavar="N",
                       help=f"how long a queued request waits for a fuller batch (default {_DEFAULTS.max_wait_ms})")
    serve.add_argument("--max-queue", type=int, default=_DEFAULTS.max_queue, metavar="N",
                       help=f"waiting requests before new ones get 429 (default {_DEFAULTS.max_queue})")
    serve.add_argument("--max-request-bytes", type=int, default=_DEFAULTS.max_request_bytes, metavar="N",
                       help=f"larger bodies get 413 unread (default {_DEFAULTS.max_request_bytes})")
    serve.add_argument("--max-sequences", type=int, default=_DEFAULTS.max_sequences, metavar="N",
                       help=f"generation: sequences decoded together (default {_DEFAULTS.max_sequences})")


def serve_main(args: argparse.Namespace) -> int:
    from .server import run

    options = ServeOptions(model=args.model, host=args.host, port=args.port, dtype=args.dtype, api_key=args.api_key,
                           max_batch_tokens=args.max_batch_tokens, max_wait_ms=args.max_wait_ms,
                           max_queue=args.max_queue, max_request_bytes=args.max_request_bytes,
                           max_sequences=args.max_sequences)
    return run(options)
