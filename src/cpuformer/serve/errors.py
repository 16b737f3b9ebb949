"""Errors in the shape each API's clients parse: OpenAI's {"error": {"message", "type", "param", "code"}} for
/v1/*, text-embeddings-inference's {"error", "error_type"} for /embed. One ApiError carries status, message and
the field at fault; handlers turn it (and FastAPI's validation errors: 422 naming the field) into responses."""
from __future__ import annotations

import json
from typing import Any

__all__ = ["ApiError", "error_response", "install_error_handlers", "parse_body"]

_OPENAI_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 404: "invalid_request_error",
                 413: "invalid_request_error", 422: "invalid_request_error", 429: "rate_limit_exceeded",
                 503: "server_unavailable"}
_TEI_TYPES = {400: "Validation", 401: "Unauthorized", 413: "Validation", 422: "Validation", 429: "Overloaded",
              503: "Unhealthy"}


class ApiError(Exception):
    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.headers = headers or {}


def _is_tei(path: str) -> bool:
    return not path.startswith("/v1/")


def error_body(path: str, status: int, message: str, param: str | None = None, code: str | None = None) -> bytes:
    if _is_tei(path):
        body: dict[str, Any] = {"error": message, "error_type": _TEI_TYPES.get(status, "Backend")}
    else:
        body = {"error": {"message": message, "type": _OPENAI_TYPES.get(status, "server_error"), "param": param,
                          "code": code}}
    return json.dumps(body).encode()


def error_response(path: str, error: ApiError):
    from starlette.responses import Response

    return Response(error_body(path, error.status, error.message, error.param, error.code), error.status,
                    headers=error.headers, media_type="application/json")


_UNION_HINTS = {
    "input": "a string, a list of strings, a list of token ids or a list of lists of token ids",
    "prompt": "a string, a list of strings, a list of token ids or a list of lists of token ids",
    "inputs": "a string or a list of strings",
    "stop": "a string or a list of strings",
}


def _is_union_tag(part: Any) -> bool:
    """pydantic names the member of a union it tried in the error's location ('str', 'list[int]')."""
    return isinstance(part, str) and ("[" in part or part in ("str", "int", "float", "bool"))


def validation_message(errors: list[dict[str, Any]]) -> tuple[str, str | None]:
    """pydantic errors -> (one message naming each field at fault, the first field for `param`)."""
    if not errors:
        return "invalid request body", None
    if errors[0].get("type") == "json_invalid":
        reason = str(errors[0].get("msg", "")).removeprefix("Invalid JSON: ")
        return f"the request body is not valid JSON: {reason}", None
    messages: dict[str, str] = {}
    for e in errors:
        loc = tuple(p for p in e.get("loc", ()) if p != "body")
        top = str(loc[0]) if loc else "body"
        if any(_is_union_tag(p) for p in loc) and top in _UNION_HINTS:
            messages.setdefault(top, f"{top}: expected {_UNION_HINTS[top]}")
        else:
            path = ".".join(str(p) for p in loc if not _is_union_tag(p)) or "body"
            messages.setdefault(path, f"{path}: {e.get('msg', 'invalid value')}")
    first = next(iter(messages))
    text = "; ".join(list(messages.values())[:5])
    return f"invalid request: {text}", first.split(".")[0]


def install_error_handlers(app) -> None:
    from fastapi.exceptions import RequestValidationError

    @app.exception_handler(ApiError)
    async def _api_error(request, exc: ApiError):
        return error_response(request.url.path, exc)

    @app.exception_handler(RequestValidationError)  # FastAPI-parsed parameters (the bodies are parsed by us)
    async def _validation_error(request, exc: RequestValidationError):
        message, param = validation_message(list(exc.errors()))
        return error_response(request.url.path, ApiError(422, message, param=param))


async def parse_body(request, model: type):
    """The request body as `model`, parsed straight from the bytes whatever the Content-Type (curl -d sends a
    form type); 422 naming the field on bad JSON or a wrong type."""
    from pydantic import ValidationError

    try:
        return model.model_validate_json(await request.body())
    except ValidationError as exc:
        message, param = validation_message(exc.errors(include_url=False))
        raise ApiError(422, message, param=param) from None
