"""Dynamic batching for encoders, independent of HTTP: requests (each a list of tokenized sequences) wait in a
FIFO queue; one worker thread merges the sequences at its head into one packed batch of at most
`max_batch_tokens` tokens, waiting at most `max_wait_ms` after the oldest request for more to arrive, runs it (our
ops release the GIL, so the event loop keeps serving meanwhile) and hands each request its own rows.

Packed batches have no padding, so merging many short requests costs nothing extra: the batch is exactly the
sum of its sequences. A request larger than the budget is split over consecutive batches; its future completes
when all its sequences are done.
"""
from __future__ import annotations

import collections
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from .metrics import Metrics
from .worker_thread import WorkerThread

__all__ = ["EmbeddingBatcher", "QueueFull", "TokenizedText"]

ENGINE = "embeddings"


class QueueFull(Exception):
    """The queue holds max_queue requests already; the caller should answer 429 and retry later."""


@dataclass(frozen=True)
class TokenizedText:
    ids: np.ndarray  # int64 [n]
    token_type_ids: np.ndarray  # int64 [n]

    def __len__(self) -> int:
        return int(self.ids.shape[0])


@dataclass(eq=False)
class _Job:
    sequences: Sequence[TokenizedText]
    future: Future
    rows: list = field(default_factory=list)  # one embedding per sequence, filled as batches finish
    taken: int = 0  # sequences handed to a batch so far
    done: int = 0
    arrived: float = field(default_factory=time.monotonic)


class EmbeddingBatcher(WorkerThread):
    """`submit(sequences) -> Future` of a float32 [len(sequences), dim] array. `embed(ids, types, lengths)` is the
    model call on one packed batch (SentenceEncoder.embed_tokens)."""

    def __init__(self, embed: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray], *, max_batch_tokens: int,
                 max_wait_ms: float, max_queue: int, metrics: Metrics | None = None):
        self._embed = embed
        self.max_batch_tokens, self.max_wait, self.max_queue = max_batch_tokens, max_wait_ms / 1000.0, max_queue
        self.metrics = metrics or Metrics()
        self._jobs: collections.deque[_Job] = collections.deque()
        self._queued_tokens = 0
        super().__init__("cpuformer-embedding-batcher")

    @property
    def queue_depth(self) -> int:
        return len(self._jobs)

    def submit(self, sequences: Sequence[TokenizedText]) -> Future:
        future: Future = Future()
        if not sequences:
            future.set_result(np.zeros((0, 0), np.float32))
            return future
        with self._cond:
            if self._stopping:
                raise RuntimeError("the server is shutting down")
            if len(self._jobs) >= self.max_queue:
                self.metrics.rejected.inc(engine=ENGINE)
                raise QueueFull(f"the embedding queue is full ({self.max_queue} requests waiting)")
            self._jobs.append(_Job(list(sequences), future, [None] * len(sequences)))
            self._queued_tokens += sum(len(s) for s in sequences)
            self.metrics.queue_depth.set(len(self._jobs), engine=ENGINE)
            self._cond.notify()
        return future

    # --- worker thread ------------------------------------------------------------------------------------------
    def _next_batch(self) -> list[tuple[_Job, int]] | None:
        """Wait for work, then take (job, sequence index) pairs up to the token budget; None when stopped."""
        with self._cond:
            while not self._jobs:
                if self._stopping:
                    return None
                self._cond.wait()
            # Let more requests arrive while the batch is not full, up to max_wait after the oldest one.
            deadline = self._jobs[0].arrived + self.max_wait
            while self._queued_tokens < self.max_batch_tokens and not self._stopping:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            picked, tokens = [], 0
            while self._jobs:
                job = self._jobs[0]
                while job.taken < len(job.sequences):
                    n = len(job.sequences[job.taken])
                    if picked and tokens + n > self.max_batch_tokens:
                        break
                    picked.append((job, job.taken))
                    tokens += n
                    job.taken += 1
                if job.taken < len(job.sequences):
                    break  # the budget is full; the rest of this job goes in the next batch
                self._jobs.popleft()
            self._queued_tokens -= tokens
            self.metrics.queue_depth.set(len(self._jobs), engine=ENGINE)
            return picked

    def _run(self) -> None:
        while True:
            picked = self._next_batch()
            if picked is None:
                return
            sequences = [job.sequences[i] for job, i in picked]
            lengths = np.array([len(s) for s in sequences], np.int64)
            start = time.perf_counter()
            try:
                out = self._embed(np.concatenate([s.ids for s in sequences]),
                                  np.concatenate([s.token_type_ids for s in sequences]), lengths)
            except Exception as exc:  # noqa: BLE001 - handed to every request of the batch
                for job in dict.fromkeys(job for job, _ in picked):
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            elapsed = time.perf_counter() - start
            total = int(lengths.sum())
            self.metrics.batch_size.observe(len(picked), engine=ENGINE)
            self.metrics.batch_tokens.observe(total, engine=ENGINE)
            self.metrics.tokens.inc(total, kind="embedded")
            self.metrics.tokens_per_second.set(total / max(elapsed, 1e-9), engine=ENGINE)
            for row, (job, i) in enumerate(picked):
                job.rows[i] = out[row]
                job.done += 1
                if job.done == len(job.sequences) and not job.future.done():
                    job.future.set_result(np.stack(job.rows))
