"""The server's settings (the `cpuformer serve` flags), checked once."""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ServeOptions"]


@dataclass(frozen=True)
class ServeOptions:
    model: str | None = None          # a model folder; None: the default embedding model
    host: str = "127.0.0.1"
    port: int = 8080
    dtype: str = "float32"            # the linear weights' dtype (float32 | int8)
    api_key: str | None = None        # when set, requests need "Authorization: Bearer <key>"
    max_batch_tokens: int = 16384     # tokens per encoder batch
    max_wait_ms: float = 2.0          # how long the oldest queued request waits for a fuller batch
    max_queue: int = 512              # requests waiting before new ones get 429
    max_request_bytes: int = 2 * 1024 * 1024
    max_sequences: int = 16           # generation: sequences decoded together (KV cache rows)
    graceful_timeout_s: float = 60.0  # SIGTERM: how long in-flight requests may take to finish

    def __post_init__(self):
        for name in ("port", "max_batch_tokens", "max_queue", "max_request_bytes", "max_sequences"):
            value = getattr(self, name)
            low = 0 if name == "port" else 1
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"--{name.replace('_', '-')} must be an int >= {low}, got {value!r}")
        if self.port > 65535:
            raise ValueError(f"--port must be in [0, 65535], got {self.port}")
        if not isinstance(self.max_wait_ms, (int, float)) or self.max_wait_ms < 0:
            raise ValueError(f"--max-wait-ms must be >= 0, got {self.max_wait_ms!r}")
        if self.api_key is not None and not self.api_key.strip():
            raise ValueError("--api-key must not be empty")
