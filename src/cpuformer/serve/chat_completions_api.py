"""POST /v1/chat/completions (OpenAI) on a CompletionService whose model has a chat template: the messages are
rendered and tokenized as transformers' apply_chat_template(add_generation_prompt=True), then run as one job of the
same continuous-batching engine as /v1/completions, ending at the template's end-of-turn token (its eos_token) or
any eos id of the model (what `model.chat` stops at), max_tokens or a stop string. `stream: true` sends chat.completion.chunk events (the role first, then content
deltas, then the finish reason)."""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from functools import partial

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from .completion_service import CompletionService, PromptTooLong
from .completions_api import _DISCONNECT_POLL_S, _MAX_STOPS, _post, _usage
from .embedding_batcher import QueueFull
from .embeddings_api import require_service
from .errors import ApiError, parse_body
from .schemas import ChatCompletionRequest

__all__ = ["register"]


def _unsupported(body: ChatCompletionRequest) -> None:
    checks = [("n", body.n == 1, "only n=1 is supported"), ("logprobs", not body.logprobs, "logprobs is not supported"),
              ("presence_penalty", not body.presence_penalty, "presence_penalty is not supported"),
              ("frequency_penalty", not body.frequency_penalty, "frequency_penalty is not supported"),
              ("logit_bias", not body.logit_bias, "logit_bias is not supported"),
              ("tools", not body.tools, "tools are not supported")]
    for param, ok, message in checks:
        if not ok:
            raise ApiError(400, message, param=param)


def _chunk(cid: str, created: int, model: str, delta: dict, finish: str | None) -> str:
    body = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
    return f"data: {json.dumps(body, separators=(',', ':'))}\n\n"


def register(app, state) -> None:
    @app.post("/v1/chat/completions")
    async def create_chat_completion(request: Request):
        body = await parse_body(request, ChatCompletionRequest)
        service: CompletionService = require_service(state, CompletionService, body.model)
        _unsupported(body)
        stops = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
        if len(stops) > _MAX_STOPS:
            raise ApiError(400, f"stop takes at most {_MAX_STOPS} sequences, got {len(stops)}", param="stop")
        messages = [m.model_dump() for m in body.messages]
        try:
            ids = await service.chat_prompt(messages)
        except ValueError as exc:
            raise ApiError(400, str(exc), param="messages") from None
        except Exception as exc:  # the template's raise_exception (jinja2.TemplateError) refuses these messages
            raise ApiError(400, f"the chat template refused the messages: {exc}", param="messages") from None
        max_tokens = body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
        if max_tokens is None:  # OpenAI's default: as long as the context allows
            max_tokens = max(service.max_positions - len(ids), 0)
        try:
            config = service.config(max_tokens=max_tokens, temperature=1.0 if body.temperature is None else
                                    body.temperature, top_p=1.0 if body.top_p is None else body.top_p, seed=body.seed)
            stop_ids = service.chat_stop_ids()
            config = config.replace(eos_token_id=stop_ids[0] if stop_ids else None, stop_token_ids=stop_ids[1:])
            ids, config = service.check(0, ids, config)
        except PromptTooLong as exc:
            raise ApiError(400, str(exc), param="messages", code="context_length_exceeded") from None
        except (ValueError, TypeError) as exc:
            raise ApiError(400, str(exc)) from None

        loop, events = asyncio.get_running_loop(), asyncio.Queue()
        try:
            job = service.engine.submit(ids, config, stops, partial(_post, loop, events, 0))
        except QueueFull as exc:
            raise ApiError(429, f"{exc}; retry later", headers={"Retry-After": "1"}) from None

        def cancel_unfinished():
            if not job.finished:
                job.cancel()

        cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)

            async def stream():
                try:
                    yield _chunk(cid, created, service.name, {"role": "assistant", "content": ""}, None)
                    while True:
                        _, event = await events.get()
                        if event.finish_reason == "error":
                            error = {"error": {"message": event.error, "type": "server_error"}}
                            yield f"data: {json.dumps(error)}\n\n"
                            return
                        if event.text:
                            yield _chunk(cid, created, service.name, {"content": event.text}, None)
                        if event.finish_reason is not None:
                            yield _chunk(cid, created, service.name, {}, event.finish_reason)
                            break
                    if include_usage:
                        usage = {"id": cid, "object": "chat.completion.chunk", "created": created,
                                 "model": service.name, "choices": [],
                                 "usage": _usage(event.prompt_tokens, event.completion_tokens)}
                        yield f"data: {json.dumps(usage)}\n\n"
                    yield "data: [DONE]\n\n"
                finally:
                    cancel_unfinished()

            return StreamingResponse(stream(), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

        text, finish = "", None
        try:
            while finish is None:
                try:
                    _, event = await asyncio.wait_for(events.get(), _DISCONNECT_POLL_S)
                except asyncio.TimeoutError:
                    if await request.is_disconnected():
                        return Response(status_code=499)
                    continue
                if event.finish_reason == "error":
                    raise ApiError(500, f"generation failed: {event.error}")
                text += event.text
                finish = event.finish_reason
        finally:
            cancel_unfinished()
        body_out = {"id": cid, "object": "chat.completion", "created": created, "model": service.name,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                                 "finish_reason": finish}],
                    "usage": _usage(event.prompt_tokens, event.completion_tokens)}
        return Response(json.dumps(body_out), media_type="application/json")
