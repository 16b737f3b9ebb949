"""ASGI middleware that runs before any request is parsed: the API key, the body size limit, and the request
count / latency metrics. Plain ASGI (not BaseHTTPMiddleware), so streamed responses pass through untouched and a
client's disconnect still reaches the endpoint."""
from __future__ import annotations

import hmac
import time

from .errors import error_body
from .metrics import Metrics

__all__ = ["ApiKeyCheck", "BodySizeLimit", "RefuseWhenDraining", "RequestMetrics"]

OPEN_PATHS = ("/health", "/metrics")  # probes and scrapers need no key


async def _send_error(send, path: str, status: int, message: str, headers: list | None = None, code=None) -> None:
    body = error_body(path, status, message, code=code)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


class ApiKeyCheck:
    """With a key set, every path but /health and /metrics needs `Authorization: Bearer KEY` (else 401)."""

    def __init__(self, app, api_key: str | None):
        self.app, self.expected = app, f"Bearer {api_key}".encode() if api_key else None

    async def __call__(self, scope, receive, send):
        if self.expected is None or scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            return await self.app(scope, receive, send)
        given = dict(scope["headers"]).get(b"authorization", b"")
        if not hmac.compare_digest(given, self.expected):
            message = ("missing API key: send the header 'Authorization: Bearer <key>'" if not given
                       else "incorrect API key provided")
            return await _send_error(send, scope["path"], 401, message, [(b"www-authenticate", b"Bearer")],
                                     code="invalid_api_key")
        return await self.app(scope, receive, send)


class BodySizeLimit:
    """A body over `max_bytes` gets 413 before anything parses or tokenizes it: at once when Content-Length says
    so, else as soon as the streamed body passes the limit (it is read here, at most max_bytes, then replayed)."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    def _too_large(self, send, path: str, size: str):
        return _send_error(send, path, 413, f"request body is {size} bytes; the limit is {self.max_bytes} bytes "
                           "(--max-request-bytes)")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await self._too_large(send, scope["path"], length.decode())
        chunks, total, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away while sending
                return
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > self.max_bytes:
                return await self._too_large(send, scope["path"], f"more than {self.max_bytes}")
            chunks.append(chunk)
            more = message.get("more_body", False)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()  # later calls wait for the disconnect, as the endpoint expects

        return await self.app(scope, replay, send)


class RequestMetrics:
    """Counts requests by endpoint and status and times them to the last byte sent (streams included)."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] == "/metrics":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), [500]

        async def timed_send(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            endpoint = scope["path"] if scope["path"] in KNOWN_PATHS else "other"
            self.metrics.requests.inc(endpoint=endpoint, status=str(status[0]))
            self.metrics.request_latency.observe(time.perf_counter() - start, endpoint=endpoint)


KNOWN_PATHS = ("/v1/embeddings", "/v1/completions", "/v1/models", "/embed", "/health")


class RefuseWhenDraining:
    """After SIGTERM, new requests (also on kept-alive connections) get 503 while in-flight ones finish."""

    def __init__(self, app, state):
        self.app, self.state = app, state

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and self.state.draining and scope["path"] != "/health":
            return await _send_error(send, scope["path"], 503, "the server is shutting down",
                                     [(b"connection", b"close"), (b"retry-after", b"1")])
        return await self.app(scope, receive, send)
