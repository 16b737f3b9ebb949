"""POST /v1/embeddings (OpenAI) and POST /embed (text-embeddings-inference) on an EmbeddingService. Imported by
app.py only (it needs the serve extra).

Responses are serialized with json.dumps directly (float32 values as Python floats round-trip exactly), not
through FastAPI's generic encoder, which costs more than the model for short sentences."""
from __future__ import annotations

import base64
import json

import numpy as np
from starlette.requests import Request
from starlette.responses import Response

from .embedding_batcher import QueueFull
from .embedding_service import EmbeddingService, InputTooLong
from .errors import ApiError, parse_body
from .schemas import EmbeddingRequest, TeiEmbedRequest

__all__ = ["register", "require_service"]


def require_service(state, kind: type, model: str | None):
    service = state.service
    if not isinstance(service, kind):
        raise ApiError(404, f"this server serves {service.kind} with {service.name!r}; start `cpuformer serve "
                            f"--model` with a {'sentence-transformers or BERT' if kind is EmbeddingService else 'GPT-2'}"
                            " folder for this endpoint", code="unsupported_endpoint")
    if model is not None and model != service.name:
        raise ApiError(404, f"the model {model!r} does not exist; this server serves {service.name!r}",
                       param="model", code="model_not_found")
    return service


async def embed_or_429(service: EmbeddingService, sequences) -> np.ndarray:
    try:
        return await service.embed(sequences)
    except QueueFull as exc:
        raise ApiError(429, f"{exc}; retry later", headers={"Retry-After": "1"}) from None


def _json(body) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), media_type="application/json")


def register(app, state) -> None:
    @app.post("/v1/embeddings")
    async def create_embeddings(request: Request):
        body = await parse_body(request, EmbeddingRequest)
        service = require_service(state, EmbeddingService, body.model)
        inputs = [body.input] if isinstance(body.input, str) else body.input
        if not inputs:
            raise ApiError(400, "input must not be empty: give a string, a list of strings or token ids",
                           param="input")
        try:
            if isinstance(inputs[0], str):
                sequences = await service.tokenize(inputs, body.truncate)
            else:
                sequences = service.token_inputs([inputs] if isinstance(inputs[0], int) else inputs, body.truncate)
        except InputTooLong as exc:
            raise ApiError(400, str(exc), param="input", code="context_length_exceeded") from None
        except ValueError as exc:
            raise ApiError(400, str(exc), param="input") from None
        if body.dimensions is not None and body.dimensions > service.dimension:
            raise ApiError(400, f"dimensions must be at most this model's {service.dimension}, got "
                                f"{body.dimensions}", param="dimensions")
        vectors = await embed_or_429(service, sequences)
        if body.dimensions is not None:  # Matryoshka-style: keep the leading dimensions, then normalize
            vectors = vectors[:, :body.dimensions]
        if service.normalizes:
            vectors = service.normalize(vectors)
        if body.encoding_format == "base64":
            encoded = [base64.b64encode(v.astype("<f4").tobytes()).decode("ascii") for v in vectors]
        else:
            encoded = vectors.tolist()
        tokens = sum(len(s) for s in sequences)
        return _json({"object": "list", "model": service.name,
                      "data": [{"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(encoded)],
                      "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    @app.post("/embed")
    async def tei_embed(request: Request):
        body = await parse_body(request, TeiEmbedRequest)
        service = require_service(state, EmbeddingService, None)
        texts = [body.inputs] if isinstance(body.inputs, str) else body.inputs
        if not texts:
            raise ApiError(400, "inputs must not be empty")
        if body.truncation_direction.lower() != "right":
            raise ApiError(400, "truncation_direction 'left' is not supported; use 'right'")
        prefix = None
        if body.prompt_name is not None:
            try:
                prefix = service.encoder.resolve_prompt(prompt_name=body.prompt_name)
            except ValueError as exc:
                raise ApiError(400, str(exc)) from None
            if service.skip or (prefix and not service.encoder.include_prompt):
                raise ApiError(400, "prompt_name is not supported for a model that pools without its prompt")
        try:
            sequences = await service.tokenize(texts, body.truncate, prefix)
        except InputTooLong as exc:  # text-embeddings-inference answers a too-long input with 413
            raise ApiError(413, str(exc)) from None
        vectors = await embed_or_429(service, sequences)
        if body.normalize:
            vectors = service.normalize(vectors)
        return _json(vectors.tolist())
