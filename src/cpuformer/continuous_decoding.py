"""Continuous batching: sequences join a running decode batch between steps and leave it when they finish, so a
long generation never holds up a short one.

Each sequence owns one row of a shared ops.KVCache; rows advance independently (the cache keeps a length per
row) and a finished row is reset and handed to the next sequence. A new sequence's prompt runs alone (its own
prefill), then it decodes one token per `step()` together with every other running sequence: one forward of
[running, 1] tokens through the model's usual `next_token_logits`, on a `KVCacheRows` batch.

The options, validation, sampling and eos handling are generation.py's (GenerationConfig, Sampler, the model's
`_request` checks), so a sequence decoded here yields the tokens `model.generate` gives for its prompt alone
with the same options and seed. Not thread-safe: one thread drives a decoder (the server's engine thread).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .generation import GenerationConfig, GenerationMixin, Sampler
from .logits_processors import LogitsProcessors
from .layers import KVCacheRows, Workspace

__all__ = ["ContinuousDecoder", "RunningSequence"]


@dataclass(eq=False)
class RunningSequence:
    """One sequence in the running batch. `tokens` are the generated ids so far (the eos included, when it came);
    `finish_reason` becomes "stop" (eos) or "length" (max_new_tokens) when the decoder finishes it."""

    row: int
    prompt_length: int
    config: GenerationConfig
    sampler: Sampler
    tokens: list[int] = field(default_factory=list)
    finish_reason: str | None = None
    prompt: np.ndarray | None = None  # the prompt ids, for the score rules that read the history
    processors: LogitsProcessors | None = None

    @property
    def position(self) -> int:
        """Position of the newest token: the next step feeds it (prompt + generated - 1)."""
        return self.prompt_length + len(self.tokens) - 1


class ContinuousDecoder:
    """Up to `max_sequences` sequences decoding together through one KV cache of `max_len` positions per row
    (default: the model's position limit)."""

    def __init__(self, model: GenerationMixin, max_sequences: int, max_len: int | None = None):
        if not isinstance(max_sequences, int) or max_sequences < 1:
            raise ValueError(f"max_sequences must be an int >= 1, got {max_sequences!r}")
        if getattr(model, "is_encoder_decoder", False):
            raise ValueError(f"{type(model).__name__} is an encoder-decoder: continuous batching (and `cpuformer "
                             "serve`) runs decoder-only models; use model.generate")
        self.model = model
        self.max_len = model.max_positions if max_len is None else max_len
        self.cache = model.new_kv_cache(max_sequences, self.max_len)
        self._free_rows = list(range(max_sequences - 1, -1, -1))  # pop() hands out row 0 first
        self.running: list[RunningSequence] = []
        self._prefill_ws, self._step_ws = Workspace(), Workspace()
        self._logits = np.empty((max_sequences, model.vocab_size), np.float32)

    @property
    def max_sequences(self) -> int:
        return self.cache.batch

    @property
    def has_room(self) -> bool:
        return bool(self._free_rows)

    @property
    def free_rows(self) -> int:
        return len(self._free_rows)

    def check(self, prompt_ids: Any, config: GenerationConfig) -> tuple[np.ndarray, GenerationConfig]:
        """Validate one prompt (int ids [T]) and its options as `model.generate` does (ids in the vocabulary, the
        prompt plus max_new_tokens within the position limit); ValueError/TypeError naming the problem."""
        ids = np.asarray(prompt_ids)
        if ids.ndim != 1:
            raise ValueError(f"a prompt must be a 1-D list of token ids, got shape {ids.shape}")
        request = self.model._request(ids[None], None, None, config, {})
        unsupported = [name for name, off in (("num_beams", 1), ("num_return_sequences", 1), ("output_scores", False),
                                              ("return_dict_in_generate", False))
                       if getattr(request.config, name) != off]
        if unsupported:
            raise ValueError(f"{unsupported[0]} is not supported in continuous batching (one sequence per request, "
                             "tokens only); use model.generate")
        total = request.ids.shape[1] + request.config.max_new_tokens
        if total > self.max_len:
            raise ValueError(f"prompt length {request.ids.shape[1]} + max_new_tokens "
                             f"{request.config.max_new_tokens} = {total} exceeds the decoder's max_len={self.max_len}")
        return request.ids[0], request.config

    def start(self, prompt_ids: np.ndarray, config: GenerationConfig) -> RunningSequence:
        """Take a free row, run the prompt (checked with `check`) and sample the first token (in `.tokens`).
        A sequence with max_new_tokens=0 finishes at once without taking a row."""
        sampler = Sampler(config, 1, self.model.vocab_size)
        if config.max_new_tokens == 0:
            return RunningSequence(-1, len(prompt_ids), config, sampler, finish_reason="length")
        if not self._free_rows:
            raise RuntimeError("no free cache row: wait until a sequence finishes (check has_room)")
        row = self._free_rows.pop()
        self.cache.reset(rows=[row])
        n = len(prompt_ids)
        processors = LogitsProcessors(config, n, n + config.max_new_tokens, config.stop_ids)
        seq = RunningSequence(row, n, config, sampler, prompt=np.asarray(prompt_ids, np.int64),
                              processors=processors if processors.active else None)
        ids = np.asarray(prompt_ids, np.int64)[None]
        sampler.observe(ids)
        try:
            logits = self.model.next_token_logits(ids, np.arange(ids.shape[1])[None], KVCacheRows(self.cache, [row]),
                                                  self._prefill_ws, out=self._logits[:1])
        except BaseException:
            self._free_rows.append(row)
            raise
        self.running.append(seq)
        self._accept(seq, logits)
        return seq

    def step(self) -> list[RunningSequence]:
        """One token for every running, unfinished sequence; returns those sequences (each has a new last token
        and maybe a finish_reason). Finished sequences stay until `release`."""
        live = [s for s in self.running if s.finish_reason is None]
        if not live:
            return []
        n = len(live)
        ids = np.array([[s.tokens[-1]] for s in live], np.int64)
        positions = np.array([[s.position] for s in live], np.int64)
        rows = np.array([s.row for s in live], np.int64)
        logits = self.model.next_token_logits(ids, positions, KVCacheRows(self.cache, rows), self._step_ws,
                                              out=self._logits[:n])
        for i, seq in enumerate(live):
            seq.sampler.observe(ids[i:i + 1])
            self._accept(seq, logits[i:i + 1])
        return live

    def release(self, seq: RunningSequence) -> None:
        """Take a sequence out of the batch (finished, cancelled or stopped by its caller) and free its row."""
        if seq in self.running:
            self.running.remove(seq)
            self.cache.reset(rows=[seq.row])
            self._free_rows.append(seq.row)
        if seq.finish_reason is None:
            seq.finish_reason = "cancelled"

    @staticmethod
    def _accept(seq: RunningSequence, logits: np.ndarray) -> None:
        if seq.processors is not None:  # the score rules (and the repetition penalty) read the whole history
            history = np.concatenate([seq.prompt, np.asarray(seq.tokens, np.int64)])[None]
            token = int(seq.sampler.pick(seq.processors(logits.copy(), history))[0][0])
        else:
            token = int(seq.sampler(logits)[0])
        seq.tokens.append(token)
        if token in seq.config.stop_ids:
            seq.finish_reason = "stop"
        elif len(seq.tokens) >= seq.config.max_new_tokens:
            seq.finish_reason = "length"
