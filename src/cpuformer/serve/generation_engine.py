"""Continuous batching for generation, independent of HTTP: one engine thread drives a ContinuousDecoder.

Between decode steps it admits waiting requests while cache rows are free (each prompt is prefilled, then its
sequence joins the running batch), drops the ones whose clients went away, and runs one step for all running
sequences. Every new token becomes a GenerationEvent (its text piece, decoded incrementally and cut at the
request's stop strings) handed to the request's listener on the engine thread; the HTTP layer forwards it to the
event loop. A finished, stopped or cancelled sequence leaves the batch at once and its row is reused.
"""
from __future__ import annotations

import collections
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..continuous_decoding import ContinuousDecoder, RunningSequence
from ..generation import GenerationConfig, IncrementalDecoder
from .embedding_batcher import QueueFull
from .metrics import Metrics
from .stop_strings import StopStrings
from .worker_thread import WorkerThread

__all__ = ["GenerationEngine", "GenerationEvent", "GenerationJob"]

ENGINE = "generation"


@dataclass(frozen=True)
class GenerationEvent:
    """text: the new text that is safe to send (may be ""); token_ids: the new tokens; finish_reason: None while
    running, then "stop" (eos or a stop string), "length" (max tokens), "cancelled" or "error" (see `error`)."""

    text: str
    token_ids: tuple[int, ...]
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    error: str | None = None


class GenerationJob:
    """One prompt's generation. `cancel()` (any thread) makes the engine drop it before its next step."""

    def __init__(self, engine: "GenerationEngine", prompt_ids: np.ndarray, config: GenerationConfig,
                 stops: Sequence[str], listener: Callable[[GenerationEvent], None]):
        self._engine = engine
        self.prompt_ids, self.config, self.listener = prompt_ids, config, listener
        self.stops = StopStrings(stops)
        self.text = IncrementalDecoder(engine.tokenizer)
        self.seq: RunningSequence | None = None
        self.sent = 0  # tokens already reported
        self.cancelled = False
        self.finished = False

    def cancel(self) -> None:
        self.cancelled = True
        self._engine.wake()


class GenerationEngine(WorkerThread):
    def __init__(self, decoder: ContinuousDecoder, tokenizer, *, max_queue: int, metrics: Metrics | None = None):
        self.decoder, self.tokenizer, self.max_queue = decoder, tokenizer, max_queue
        self.metrics = metrics or Metrics()
        self._pending: collections.deque[GenerationJob] = collections.deque()
        self._active: dict[int, GenerationJob] = {}  # cache row -> job
        super().__init__("cpuformer-generation-engine")

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def submit(self, prompt_ids: np.ndarray, config: GenerationConfig, stops: Sequence[str],
               listener: Callable[[GenerationEvent], None]) -> GenerationJob:
        """Queue a prompt checked with `decoder.check`. QueueFull when max_queue prompts are already waiting."""
        job = GenerationJob(self, prompt_ids, config, stops, listener)
        with self._cond:
            if self._stopping:
                raise RuntimeError("the server is shutting down")
            if len(self._pending) >= self.max_queue:
                self.metrics.rejected.inc(engine=ENGINE)
                raise QueueFull(f"the generation queue is full ({self.max_queue} requests waiting)")
            self._pending.append(job)
            self.metrics.queue_depth.set(len(self._pending), engine=ENGINE)
            self._cond.notify_all()
        return job

    # --- engine thread ------------------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._active and not self._stopping:
                    self._cond.wait()
                if self._stopping and not self._pending and not self._active:
                    return
            self._admit()
            self._drop_cancelled()
            if self._active:
                self._step()
            elif self._pending:
                continue
            else:
                with self._cond:  # only cancelled work was left: wait for more
                    if not self._pending and not self._stopping:
                        self._cond.wait(0.05)

    def _admit(self) -> None:
        while self.decoder.has_room:
            with self._cond:
                job = self._pending.popleft() if self._pending else None
                self.metrics.queue_depth.set(len(self._pending), engine=ENGINE)
            if job is None:
                return
            if job.cancelled:
                self._finish(job, "", (), "cancelled")
                continue
            try:
                job.seq = self.decoder.start(job.prompt_ids, job.config)
            except Exception as exc:  # noqa: BLE001 - reported to this request only
                self._finish(job, "", (), "error", error=str(exc))
                continue
            self.metrics.tokens.inc(len(job.prompt_ids), kind="prompt")
            self.metrics.tokens.inc(len(job.seq.tokens), kind="generated")  # the prefill's first token
            if job.seq.row >= 0:  # max_tokens=0 takes no row
                self._active[job.seq.row] = job
            self._report(job)
        self.metrics.running_sequences.set(len(self._active))

    def _drop_cancelled(self) -> None:
        for job in [j for j in self._active.values() if j.cancelled]:
            self.metrics.cancelled.inc()
            self._release(job)
            self._finish(job, "", (), "cancelled")

    def _step(self) -> None:
        start = time.perf_counter()
        try:
            stepped = self.decoder.step()
        except Exception as exc:  # noqa: BLE001 - every running request gets the error
            for job in list(self._active.values()):
                self._release(job)
                self._finish(job, "", (), "error", error=str(exc))
            return
        elapsed = time.perf_counter() - start
        if stepped:
            self.metrics.batch_size.observe(len(stepped), engine=ENGINE)
            self.metrics.tokens.inc(len(stepped), kind="generated")
            self.metrics.tokens_per_second.set(len(stepped) / max(elapsed, 1e-9), engine=ENGINE)
        for seq in stepped:
            self._report(self._active[seq.row])
        self.metrics.running_sequences.set(len(self._active))

    def _report(self, job: GenerationJob) -> None:
        """Turn the job's newest token into an event; finish the job when its sequence or a stop string ends."""
        seq = job.seq
        new = tuple(seq.tokens[job.sent:])
        job.sent = len(seq.tokens)
        text = "".join(job.stops.feed(job.text.push(t)) for t in new)
        finish = "stop" if job.stops.stopped else seq.finish_reason
        if finish is not None:
            if not job.stops.stopped:
                text += job.stops.feed(job.text.flush())
                text += job.stops.flush()
                finish = "stop" if job.stops.stopped else finish
            seq.finish_reason = finish
            self._release(job)
            self._finish(job, text, new, finish)
        else:
            self._send(job, GenerationEvent(text, new, None, len(job.prompt_ids), len(seq.tokens)))

    def _release(self, job: GenerationJob) -> None:
        if job.seq is not None:
            self._active.pop(job.seq.row, None)
            self.decoder.release(job.seq)
            self.metrics.running_sequences.set(len(self._active))

    def _finish(self, job: GenerationJob, text: str, new: tuple[int, ...], reason: str, error: str | None = None):
        job.finished = True
        completion = len(job.seq.tokens) if job.seq is not None else 0
        self._send(job, GenerationEvent(text, new, reason, len(job.prompt_ids), completion, error))

    @staticmethod
    def _send(job: GenerationJob, event: GenerationEvent) -> None:
        try:
            job.listener(event)
        except Exception:  # noqa: BLE001 - a broken listener must not stop the other sequences
            job.cancelled = True
