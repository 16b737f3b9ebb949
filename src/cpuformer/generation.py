"""Autoregressive generation on top of a decoder that can prefill a prompt and decode one token at a time:
greedy search and sampling (temperature, top_k, top_p, repetition_penalty, a seeded numpy Generator), stopping
on an eos token, streaming of token ids and of text (decoded incrementally, never splitting a character).

A model mixes in `GenerationMixin` and provides `vocab_size`, `max_positions`, `eos_token_id`, `tokenizer`
(or None) and `start_decoding(input_ids, attention_mask, max_len)`, which returns a session with
`prefill() -> logits [B, vocab]` (the last prompt position only), `step(next_ids [B]) -> logits [B, vocab]` and
`close()` (called when generation ends, also early).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

from .inputs import check_attention_mask, check_id_range, check_input_ids

__all__ = ["GenerationMixin", "IncrementalDecoder", "Sampler", "SamplingConfig", "check_prompt"]

# top_p first looks for the nucleus among this many best tokens and sorts the whole vocabulary only when
# their probability mass falls short of top_p (rare with trained models).
_NUCLEUS_CANDIDATES = 256


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


@dataclass(frozen=True)
class SamplingConfig:
    """Validated decoding settings. Greedy (do_sample=False) ignores temperature, top_k and top_p, as
    transformers does; repetition_penalty applies in both modes."""

    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    seed: int | None = None

    def __post_init__(self):
        if not isinstance(self.do_sample, (bool, np.bool_)):
            raise ValueError(f"do_sample must be True or False, got {self.do_sample!r}")
        if not np.isfinite(self.temperature) or (self.do_sample and self.temperature <= 0):
            raise ValueError(f"temperature must be a finite number > 0 when sampling, got {self.temperature!r}; "
                             "use do_sample=False for greedy decoding")
        if not _is_int(self.top_k) or self.top_k < 0:
            raise ValueError(f"top_k must be an int >= 0 (0 = no top-k filter), got {self.top_k!r}")
        if not (0.0 < self.top_p <= 1.0):
            raise ValueError(f"top_p must be in (0, 1] (1 = no nucleus filter), got {self.top_p!r}")
        if not np.isfinite(self.repetition_penalty) or self.repetition_penalty <= 0:
            raise ValueError(f"repetition_penalty must be a finite number > 0 (1 = none), got "
                             f"{self.repetition_penalty!r}")
        if self.seed is not None and (not _is_int(self.seed) or self.seed < 0):
            raise ValueError(f"seed must be None or an int >= 0, got {self.seed!r}")


class Sampler:
    """Picks the next token of each row from its logits. Holds the random generator (one per generate call,
    seeded by `seed`) and, with a repetition penalty, which tokens each row has seen."""

    def __init__(self, config: SamplingConfig, batch: int, vocab_size: int):
        self.config = config
        self.rng = np.random.default_rng(config.seed)
        self.seen = np.zeros((batch, vocab_size), bool) if config.repetition_penalty != 1.0 else None

    def observe(self, ids: np.ndarray, mask: np.ndarray | None = None) -> None:
        """Record tokens for the repetition penalty: ids [B, T] (only where mask is 1) or [B]."""
        if self.seen is None:
            return
        ids = ids.reshape(ids.shape[0], -1)
        rows = np.broadcast_to(np.arange(ids.shape[0])[:, None], ids.shape)
        keep = np.ones(ids.shape, bool) if mask is None else mask.reshape(ids.shape).astype(bool)
        self.seen[rows[keep], ids[keep]] = True

    def __call__(self, logits: np.ndarray) -> np.ndarray:
        """logits [B, vocab] float32 -> next ids [B] int64."""
        cfg = self.config
        if self.seen is not None:
            # CTRL's penalty (as transformers): seen tokens' logits move towards lower probability.
            penalized = np.where(logits > 0, logits / cfg.repetition_penalty, logits * cfg.repetition_penalty)
            logits = np.where(self.seen, penalized, logits)
        if not cfg.do_sample:
            return logits.argmax(axis=1).astype(np.int64)
        return np.fromiter((self._sample_row(row) for row in logits), np.int64, logits.shape[0])

    def _sample_row(self, logits: np.ndarray) -> int:
        cfg = self.config
        scores = logits.astype(np.float64) / cfg.temperature
        vocab = scores.shape[0]
        ids = None  # candidate token ids; None = the whole vocabulary in order
        if 0 < cfg.top_k < vocab:
            ids = np.argpartition(scores, vocab - cfg.top_k)[vocab - cfg.top_k:]
        if cfg.top_p < 1.0:
            ids = self._nucleus(scores, ids, cfg.top_p)
        values = scores if ids is None else scores[ids]
        probs = np.exp(values - values.max())
        cumulative = np.cumsum(probs)
        pick = int(np.searchsorted(cumulative, self.rng.random() * cumulative[-1], side="right"))
        pick = min(pick, len(values) - 1)  # guard the u * total == total rounding edge
        return pick if ids is None else int(ids[pick])

    @staticmethod
    def _nucleus(scores: np.ndarray, ids: np.ndarray | None, top_p: float) -> np.ndarray:
        """The fewest best tokens whose probability reaches top_p (at least one), best first."""
        pool = np.arange(scores.shape[0]) if ids is None else ids
        pool_scores = scores[pool]
        weights = np.exp(pool_scores - pool_scores.max())
        total = weights.sum()
        if len(pool) > _NUCLEUS_CANDIDATES:
            part = np.argpartition(pool_scores, len(pool) - _NUCLEUS_CANDIDATES)[len(pool) - _NUCLEUS_CANDIDATES:]
            if weights[part].sum() >= top_p * total:  # the nucleus lies among these candidates
                pool, weights = pool[part], weights[part]
        order = np.argsort(-weights, kind="stable")
        probs = weights[order] / total
        before = np.cumsum(probs) - probs  # mass of the better tokens
        count = max(1, int(np.count_nonzero(before < top_p)))
        return pool[order[:count]]


def check_prompt(input_ids: Any, attention_mask: Any, vocab_size: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Validate a left-padded prompt batch: ids int [B, T] (B, T >= 1) within [0, vocab_size) where the mask is
    1; mask [B, T] of 0/1, each row zeros then ones (at least one). Returns (ids int64, mask int64 or None when
    there is no padding)."""
    ids = check_input_ids(input_ids)
    mask = None
    if attention_mask is not None:
        mask = check_attention_mask(attention_mask, ids.shape)
        not_left = np.flatnonzero((np.diff(mask, axis=1) < 0).any(axis=1))
        if not_left.size:
            raise ValueError(
                f"attention_mask row {int(not_left[0])} is not left-padded (a 0 follows a 1); generation needs "
                "padding on the left so every prompt ends at the last column")
        if mask.all():
            mask = None
    check_id_range(ids if mask is None else ids[mask.astype(bool)], vocab_size, "input_ids",
                   f"vocab_size={vocab_size}")
    return ids, mask


class IncrementalDecoder:
    """Turns a growing list of token ids into text pieces. A piece is released only when the decoded text does
    not end in U+FFFD, so a character whose UTF-8 bytes span several byte-level tokens comes out whole; the
    pieces join to the decode of all tokens."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.tokens: list[int] = []
        self._prefix = 0  # tokens[_prefix:_read] decode to text already released (context for the next piece)
        self._read = 0

    def _decode(self, tokens: Sequence[int]) -> str:
        return self.tokenizer.decode(tokens, skip_special_tokens=True)

    def push(self, token: int) -> str:
        self.tokens.append(int(token))
        released = self._decode(self.tokens[self._prefix:self._read])
        text = self._decode(self.tokens[self._prefix:])
        if len(text) > len(released) and not text.endswith("\ufffd"):
            self._prefix, self._read = self._read, len(self.tokens)
            return text[len(released):]
        return ""

    def flush(self) -> str:
        """Whatever is held back at the end (an incomplete character decodes to U+FFFD, as in a full decode)."""
        released = self._decode(self.tokens[self._prefix:self._read])
        text = self._decode(self.tokens[self._prefix:])
        self._prefix = self._read = len(self.tokens)
        return text[len(released):]


def _check_token_id(value: Any, name: str, vocab_size: int) -> int | None:
    if value is None:
        return None
    if not _is_int(value) or not 0 <= value < vocab_size:
        raise ValueError(f"{name} must be None or an int in [0, {vocab_size}), got {value!r}")
    return int(value)


class GenerationMixin:
    """generate / stream on token ids, generate_text / stream_text on strings (needs a tokenizer.json)."""

    vocab_size: int
    max_positions: int
    eos_token_id: int | None
    tokenizer: Any

    def start_decoding(self, input_ids: np.ndarray, attention_mask: np.ndarray | None, max_len: int):
        raise NotImplementedError

    # --- token ids ----------------------------------------------------------------------------------------
    def stream(self, input_ids, max_new_tokens: int, do_sample: bool = False, temperature: float = 1.0,
               top_k: int = 0, top_p: float = 1.0, repetition_penalty: float = 1.0, eos_token_id: int | None = None,
               pad_token_id: int | None = None, seed: int | None = None, attention_mask=None) -> Iterator[np.ndarray]:
        """Yields the next token of every row (int64 [B]) per step; same arguments as `generate`. Arguments are
        checked before the first token is produced (a bad call raises at once, not on the first next())."""
        steps = self._stream_steps(input_ids, max_new_tokens, do_sample, temperature, top_k, top_p,
                                   repetition_penalty, eos_token_id, pad_token_id, seed, attention_mask)
        next(steps)  # runs the validation
        return steps

    def _stream_steps(self, input_ids, max_new_tokens, do_sample, temperature, top_k, top_p, repetition_penalty,
                      eos_token_id, pad_token_id, seed, attention_mask):
        config = SamplingConfig(do_sample, temperature, top_k, top_p, repetition_penalty, seed)
        ids, mask = check_prompt(input_ids, attention_mask, self.vocab_size)
        if not _is_int(max_new_tokens) or max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be an int >= 0, got {max_new_tokens!r}")
        total = ids.shape[1] + int(max_new_tokens)
        if total > self.max_positions:
            raise ValueError(
                f"prompt length {ids.shape[1]} + max_new_tokens {max_new_tokens} = {total} exceeds the model's "
                f"n_positions={self.max_positions}; shorten the prompt or generate fewer tokens")
        eos = _check_token_id(eos_token_id, "eos_token_id", self.vocab_size)
        pad = _check_token_id(pad_token_id, "pad_token_id", self.vocab_size)
        pad = eos if pad is None else pad
        yield None  # validated
        if max_new_tokens == 0:
            return
        sampler = Sampler(config, ids.shape[0], self.vocab_size)
        sampler.observe(ids, mask)
        session = self.start_decoding(ids, mask, total)
        try:
            logits = session.prefill()
            finished = np.zeros(ids.shape[0], bool)
            for step in range(max_new_tokens):
                tokens = sampler(logits)
                if eos is not None:
                    tokens[finished] = pad
                    finished |= tokens == eos
                yield tokens
                if finished.all() or step + 1 == max_new_tokens:
                    return
                sampler.observe(tokens)
                logits = session.step(tokens)
        finally:  # also when the caller stops iterating a stream early
            session.close()

    def generate(self, input_ids, max_new_tokens: int, do_sample: bool = False, temperature: float = 1.0,
                 top_k: int = 0, top_p: float = 1.0, repetition_penalty: float = 1.0,
                 eos_token_id: int | None = None, pad_token_id: int | None = None, seed: int | None = None,
                 attention_mask=None) -> np.ndarray:
        """input_ids int [B, T] (left-padded, with attention_mask, for prompts of different lengths) ->
        int64 [B, T + new]: the prompts followed by the generated tokens.

        do_sample=False is greedy search; otherwise tokens are sampled after temperature, top_k and top_p (in
        that order), from numpy's Generator seeded with `seed` (same seed, same tokens). repetition_penalty
        lowers tokens already in the prompt or output. eos_token_id=None never stops early; with an eos, a row
        that produced it is filled with pad_token_id (default: the eos) and generation stops when every row
        has, so the result can be shorter than T + max_new_tokens."""
        ids = check_prompt(input_ids, attention_mask, self.vocab_size)[0]
        new = list(self.stream(ids, max_new_tokens, do_sample, temperature, top_k, top_p, repetition_penalty,
                               eos_token_id, pad_token_id, seed, attention_mask))
        if not new:
            return ids.copy()
        return np.concatenate([ids, np.stack(new, axis=1)], axis=1)

    # --- text ---------------------------------------------------------------------------------------------
    def _encode_prompts(self, prompts: str | Sequence[str]) -> tuple[bool, np.ndarray, np.ndarray | None]:
        if self.tokenizer is None:
            raise ValueError("this model was loaded without a tokenizer.json, so it cannot take text")
        single = isinstance(prompts, str)
        texts = [prompts] if single else list(prompts)
        if not texts:
            raise ValueError("empty batch: no prompts given")
        if not all(isinstance(t, str) for t in texts):
            raise TypeError("prompts must be a str or a list of str")
        # No truncation: a prompt that is too long gets the n_positions error instead of silently losing its end.
        flat, _, lengths = self.tokenizer.encode_packed(texts, max_length=2**31 - 1)
        empty = np.flatnonzero(lengths == 0)
        if empty.size:
            raise ValueError(f"prompt {int(empty[0])} encodes to no tokens; give at least one token of text")
        width = int(lengths.max())
        ids = np.zeros((len(texts), width), np.int64)
        mask = np.zeros((len(texts), width), np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)])
        for i, n in enumerate(lengths):
            ids[i, width - n:] = flat[starts[i]:starts[i + 1]]
            mask[i, width - n:] = 1
        return single, ids, mask

    def stream_text(self, prompts: str | Sequence[str], max_new_tokens: int, *, eos_token_id: int | None = -1,
                    **kwargs) -> Iterator[str | list[str]]:
        """Streams the generated text. One prompt: yields non-empty str pieces. A list: yields per step one
        piece per prompt (possibly ""). eos_token_id defaults to the model's; pass None to never stop early.
        Other keyword arguments are those of `generate`. Pieces join to the text `generate_text` returns."""
        single, ids, mask = self._encode_prompts(prompts)
        eos = self.eos_token_id if eos_token_id == -1 else eos_token_id
        steps = self.stream(ids, max_new_tokens, eos_token_id=eos, attention_mask=mask, **kwargs)
        return self._text_pieces(single, ids.shape[0], steps, eos)

    def _text_pieces(self, single, batch, steps, eos):
        decoders = [IncrementalDecoder(self.tokenizer) for _ in range(batch)]
        done = np.zeros(batch, bool)
        for tokens in steps:
            pieces = ["" if done[i] else decoders[i].push(t) for i, t in enumerate(tokens)]
            if eos is not None:
                done |= tokens == eos
            if single:
                if pieces[0]:
                    yield pieces[0]
            else:
                yield pieces
        tails = [d.flush() for d in decoders]
        if single:
            if tails[0]:
                yield tails[0]
        elif any(tails):
            yield tails

    def generate_text(self, prompts: str | Sequence[str], max_new_tokens: int, *, eos_token_id: int | None = -1,
                      **kwargs) -> str | list[str]:
        """The generated continuation of a prompt (str) or of each prompt in a list (list of str), without the
        prompt and without special tokens. Arguments as `stream_text`."""
        single, ids, mask = self._encode_prompts(prompts)
        eos = self.eos_token_id if eos_token_id == -1 else eos_token_id
        out = self.generate(ids, max_new_tokens, eos_token_id=eos, attention_mask=mask, **kwargs)[:, ids.shape[1]:]
        texts = []
        for row in out:
            stop = np.flatnonzero(row == eos) if eos is not None else np.empty(0)
            row = row[:stop[0] + 1] if stop.size else row
            texts.append(self.tokenizer.decode(row, skip_special_tokens=True))
        return texts[0] if single else texts
