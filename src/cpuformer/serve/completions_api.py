"""POST /v1/completions (OpenAI) on a CompletionService: one GenerationJob per prompt in the continuous-batching
engine, whose events (posted from the engine thread onto the event loop) become the response, or server-sent
events with `stream: true`. A client that goes away cancels its jobs, which frees their cache rows."""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from functools import partial

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from .completion_service import CompletionService, PromptTooLong
from .embedding_batcher import QueueFull
from .embeddings_api import require_service
from .errors import ApiError, parse_body
from .generation_engine import GenerationEvent
from .schemas import CompletionRequest

__all__ = ["register"]

_MAX_STOPS = 4
_DISCONNECT_POLL_S = 0.5  # a non-streamed request checks this often whether its client is still there


def _unsupported(body: CompletionRequest) -> None:
    """OpenAI options we do not implement are an error unless left at their neutral value."""
    checks = [("n", body.n == 1, "only n=1 is supported"), ("echo", not body.echo, "echo is not supported"),
              ("logprobs", body.logprobs is None, "logprobs is not supported"),
              ("best_of", body.best_of in (None, 1), "best_of is not supported"),
              ("presence_penalty", not body.presence_penalty, "presence_penalty is not supported"),
              ("frequency_penalty", not body.frequency_penalty, "frequency_penalty is not supported"),
              ("logit_bias", not body.logit_bias, "logit_bias is not supported"),
              ("suffix", body.suffix is None, "suffix is not supported")]
    for param, ok, message in checks:
        if not ok:
            raise ApiError(400, message, param=param)


def _post(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue, index: int, event: GenerationEvent) -> None:
    """Engine thread -> event loop."""
    loop.call_soon_threadsafe(queue.put_nowait, (index, event))


def _chunk(cid: str, created: int, model: str, index: int, text: str, finish: str | None) -> str:
    body = {"id": cid, "object": "text_completion", "created": created, "model": model,
            "choices": [{"text": text, "index": index, "logprobs": None, "finish_reason": finish}]}
    return f"data: {json.dumps(body, separators=(',', ':'))}\n\n"


def _usage(prompt: int, completion: int) -> dict:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def register(app, state) -> None:
    @app.post("/v1/completions")
    async def create_completion(request: Request):
        body = await parse_body(request, CompletionRequest)
        service: CompletionService = require_service(state, CompletionService, body.model)
        _unsupported(body)
        stops = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
        if len(stops) > _MAX_STOPS:
            raise ApiError(400, f"stop takes at most {_MAX_STOPS} sequences, got {len(stops)}", param="stop")
        try:
            prompts = await service.prompts(body.prompt)
        except ValueError as exc:
            raise ApiError(400, str(exc), param="prompt") from None
        try:
            config = service.config(max_tokens=16 if body.max_tokens is None else body.max_tokens,
                                    temperature=1.0 if body.temperature is None else body.temperature,
                                    top_p=1.0 if body.top_p is None else body.top_p, seed=body.seed)
            checked = [service.check(i, ids, config) for i, ids in enumerate(prompts)]
        except PromptTooLong as exc:
            raise ApiError(400, str(exc), param="prompt", code="context_length_exceeded") from None
        except (ValueError, TypeError) as exc:
            raise ApiError(400, str(exc)) from None

        loop, events = asyncio.get_running_loop(), asyncio.Queue()
        jobs = []
        try:
            for i, (ids, cfg) in enumerate(checked):
                jobs.append(service.engine.submit(ids, cfg, stops, partial(_post, loop, events, i)))
        except QueueFull as exc:
            for job in jobs:
                job.cancel()
            raise ApiError(429, f"{exc}; retry later", headers={"Retry-After": "1"}) from None

        def cancel_unfinished():
            for job in jobs:
                if not job.finished:
                    job.cancel()

        cid, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)

            async def stream():
                remaining, prompt_tokens, completion_tokens = len(jobs), 0, 0
                try:
                    while remaining:
                        index, event = await events.get()
                        if event.finish_reason == "error":
                            error = {"error": {"message": event.error, "type": "server_error"}}
                            yield f"data: {json.dumps(error)}\n\n"
                            return
                        if event.finish_reason is not None:
                            remaining -= 1
                            prompt_tokens += event.prompt_tokens
                            completion_tokens += event.completion_tokens
                        if event.text or event.finish_reason is not None:
                            yield _chunk(cid, created, service.name, index, event.text, event.finish_reason)
                    if include_usage:
                        usage = {"id": cid, "object": "text_completion", "created": created, "model": service.name,
                                 "choices": [], "usage": _usage(prompt_tokens, completion_tokens)}
                        yield f"data: {json.dumps(usage)}\n\n"
                    yield "data: [DONE]\n\n"
                finally:  # also when the client disconnects: the stream is cancelled here
                    cancel_unfinished()

            return StreamingResponse(stream(), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

        texts, finish = [""] * len(jobs), [None] * len(jobs)
        prompt_tokens = completion_tokens = 0
        try:
            remaining = len(jobs)
            while remaining:
                try:
                    index, event = await asyncio.wait_for(events.get(), _DISCONNECT_POLL_S)
                except asyncio.TimeoutError:
                    if await request.is_disconnected():
                        return Response(status_code=499)  # nobody reads it; the jobs are cancelled below
                    continue
                if event.finish_reason == "error":
                    raise ApiError(500, f"generation failed: {event.error}")
                texts[index] += event.text
                if event.finish_reason is not None:
                    finish[index] = event.finish_reason
                    remaining -= 1
                    prompt_tokens += event.prompt_tokens
                    completion_tokens += event.completion_tokens
        finally:
            cancel_unfinished()
        body_out = {"id": cid, "object": "text_completion", "created": created, "model": service.name,
                    "choices": [{"text": t, "index": i, "logprobs": None, "finish_reason": f}
                                for i, (t, f) in enumerate(zip(texts, finish))],
                    "usage": _usage(prompt_tokens, completion_tokens)}
        return Response(json.dumps(body_out), media_type="application/json")
