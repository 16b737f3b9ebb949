"""Autoregressive generation on top of a decoder with a KV cache: greedy search and sampling (temperature, top_k,
top_p, repetition_penalty, a seeded numpy Generator), stopping on an eos token, streaming of token ids and of text
(decoded incrementally, never splitting a character).

All options travel in one `GenerationConfig`, validated once per call. A model mixes in `GenerationMixin` and
provides `vocab_size`, `max_positions`, `tokenizer` (or None), `generation_config` (its defaults: the eos
token, generation_config.json), and two methods the shared decoding loop calls:
- `new_kv_cache(batch, max_len) -> ops.KVCache`
- `next_token_logits(ids [B, T], positions [B, T], batch: KVCacheBatch, workspace, out [B, vocab])`: runs the T
  newest tokens of each row through the model (appending their keys and values to the cache) and writes the
  logits of the last one into `out`.
"""
from __future__ import annotations

import dataclasses
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from .inputs import check_attention_mask, check_id_range, check_input_ids
from .layers import KVCacheBatch, Workspace

__all__ = ["DecodeState", "DecodeStatePool", "DecodingSession", "GenerationConfig", "GenerationMixin",
           "IncrementalDecoder", "Sampler", "check_prompt"]

# top_p first looks for the nucleus among this many best tokens and sorts the whole vocabulary only when
# their probability mass falls short of top_p (rare with trained models).
_NUCLEUS_CANDIDATES = 256


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


@dataclass(frozen=True)
class GenerationConfig:
    """Every generation option, validated when the config is made (`replace` validates again).

    Greedy (do_sample=False) ignores temperature, top_k and top_p, as transformers does; repetition_penalty
    applies in both modes. eos_token_id=None never stops early; with an eos, a row that produced it is filled
    with pad_token_id (default: the eos) and generation stops when every row has. A model's own config
    (`model.generation_config`) carries its eos and the folder's generation_config.json; call options override it.
    Token ids are checked against the vocabulary by `check_token_ids` (the config does not know the model)."""

    max_new_tokens: int = 20
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    seed: int | None = None
    eos_token_id: int | None = None
    pad_token_id: int | None = None

    def __post_init__(self):
        if not _is_int(self.max_new_tokens) or self.max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be an int >= 0, got {self.max_new_tokens!r}")
        if not isinstance(self.do_sample, (bool, np.bool_)):
            raise ValueError(f"do_sample must be True or False, got {self.do_sample!r}")
        if not _is_number(self.temperature) or not np.isfinite(self.temperature) or (
                self.do_sample and self.temperature <= 0):
            raise ValueError(f"temperature must be a finite number > 0 when sampling, got {self.temperature!r}; "
                             "use do_sample=False for greedy decoding")
        if not _is_int(self.top_k) or self.top_k < 0:
            raise ValueError(f"top_k must be an int >= 0 (0 = no top-k filter), got {self.top_k!r}")
        if not _is_number(self.top_p) or not (0.0 < self.top_p <= 1.0):
            raise ValueError(f"top_p must be in (0, 1] (1 = no nucleus filter), got {self.top_p!r}")
        if (not _is_number(self.repetition_penalty) or not np.isfinite(self.repetition_penalty)
                or self.repetition_penalty <= 0):
            raise ValueError(f"repetition_penalty must be a finite number > 0 (1 = none), got "
                             f"{self.repetition_penalty!r}")
        if self.seed is not None and (not _is_int(self.seed) or self.seed < 0):
            raise ValueError(f"seed must be None or an int >= 0, got {self.seed!r}")
        for name in ("eos_token_id", "pad_token_id"):
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or value < 0):
                raise ValueError(f"{name} must be None or an int >= 0, got {value!r}")

    def replace(self, **options: Any) -> "GenerationConfig":
        """A copy with `options` changed; an unknown option is a TypeError naming the known ones."""
        unknown = sorted(set(options) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            known = ", ".join(f.name for f in dataclasses.fields(self))
            raise TypeError(f"unknown generation option {unknown[0]!r}; options: {known}")
        return dataclasses.replace(self, **options) if options else self

    def check_token_ids(self, vocab_size: int) -> None:
        """eos and pad ids must be tokens of the model's vocabulary."""
        for name in ("eos_token_id", "pad_token_id"):
            value = getattr(self, name)
            if value is not None and value >= vocab_size:
                raise ValueError(f"{name} must be None or an int in [0, {vocab_size}), got {value!r}")

    @property
    def pad_or_eos(self) -> int | None:
        return self.eos_token_id if self.pad_token_id is None else self.pad_token_id

    @classmethod
    def from_file(cls, path: str | Path, defaults: "GenerationConfig", vocab_size: int) -> "GenerationConfig":
        """`defaults` updated with the options we implement from a generation_config.json (others ignored).
        Token ids outside the vocabulary are ignored, as GPT2Config does with its eos (small test vocabularies
        keep GPT-2's 50256)."""
        try:
            with open(path, encoding="utf-8") as f:
                saved = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path} is not valid JSON: {exc}") from None
        if not isinstance(saved, dict):
            raise ValueError(f"{path} must hold a JSON object, got {type(saved).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        options = {k: v for k, v in saved.items() if k in names and v is not None}
        for name in ("eos_token_id", "pad_token_id"):
            value = options.get(name)
            if isinstance(value, list):  # several eos ids: stop at the first listed (one eos id for now)
                value = value[0] if value else None
            if _is_int(value) and not 0 <= value < vocab_size:
                value = None
            if name in options:
                options[name] = value
        try:
            return defaults.replace(**options)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


class Sampler:
    """Picks the next token of each row from its logits. Holds the random generator (one per generate call,
    seeded by `seed`) and, with a repetition penalty, which tokens each row has seen."""

    def __init__(self, config: GenerationConfig, batch: int, vocab_size: int):
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


class DecodeState:
    """The KV cache and activation buffers of one generate call. A model keeps the last one for its next call with
    the same batch size (DecodeStatePool): a fresh cache pays a page fault per 4 KB on its first writes (a third of
    an 8-row prefill)."""

    def __init__(self, cache, vocab_size: int):
        self.cache = cache
        self.prefill_ws, self.step_ws = Workspace(), Workspace()
        self.logits = np.empty((cache.batch, vocab_size), np.float32)

    def fits(self, batch: int, max_len: int) -> bool:
        return self.cache.batch == batch and self.cache.max_len >= max_len


class DecodeStatePool:
    """Holds at most one finished DecodeState for reuse. Taken, not shared: a generate running at the same time
    (another thread, an unfinished stream) finds none and makes its own."""

    def __init__(self):
        self._lock = threading.Lock()
        self._kept: DecodeState | None = None

    @property
    def kept(self) -> DecodeState | None:
        return self._kept

    def take(self, batch: int, max_len: int) -> DecodeState | None:
        """The kept state if it fits (reset, ready to use), else None."""
        with self._lock:
            state, self._kept = self._kept, None
        if state is not None and state.fits(batch, max_len):
            state.cache.reset()
            return state
        return None

    def give(self, state: DecodeState) -> None:
        with self._lock:
            self._kept = state


def _positions(mask: np.ndarray) -> np.ndarray:
    """cumsum(mask) - 1, and 0 at padding, as transformers' generate builds position_ids."""
    return np.maximum(np.cumsum(mask, axis=1) - 1, 0)


class DecodingSession:
    """One generate call: B left-padded prompts, then one token per row per step, through the model's KV cache.
    `prefill() -> logits [B, vocab]` of the last prompt position, `step(tokens [B]) -> logits`, `close()` (at
    most once; hands the cache back to the model for its next call)."""

    def __init__(self, model: "GenerationMixin", ids: np.ndarray, mask: np.ndarray | None, max_len: int):
        self.model, self.ids, self.mask = model, ids, mask
        rows = ids.shape[0]
        self.state = model.decode_states.take(rows, max_len) or DecodeState(model.new_kv_cache(rows, max_len),
                                                                            model.vocab_size)
        key_mask = None
        if mask is not None:  # uint8, made once: the attention kernel reads it as it is at every layer and step
            key_mask = np.ones((rows, max_len), np.uint8)
            key_mask[:, :ids.shape[1]] = mask
            self.next_position = mask.sum(axis=1)
        else:
            self.next_position = np.full(rows, ids.shape[1], np.int64)
        self.batch = KVCacheBatch(self.state.cache, key_mask)

    def close(self) -> None:
        if self.state is not None:
            self.model.decode_states.give(self.state)
            self.state = self.batch = None

    def prefill(self) -> np.ndarray:
        if self.mask is None:
            ids, positions = self.ids, np.broadcast_to(np.arange(self.ids.shape[1]), self.ids.shape)
        else:  # padding gets id 0 (any valid id: the mask hides it) and position 0
            ids, positions = np.where(self.mask.astype(bool), self.ids, 0), _positions(self.mask)
        return self._run(ids, positions, self.state.prefill_ws)

    def step(self, tokens: np.ndarray) -> np.ndarray:
        logits = self._run(tokens[:, None], self.next_position[:, None], self.state.step_ws)
        self.next_position += 1
        return logits

    def _run(self, ids: np.ndarray, positions: np.ndarray, ws: Workspace) -> np.ndarray:
        self.batch.advance(ids.shape[1])
        return self.model.next_token_logits(ids, positions, self.batch, ws, out=self.state.logits)


@dataclass
class _Request:
    """A validated generate call: the prompt, its mask (None without padding) and the options."""

    ids: np.ndarray
    mask: np.ndarray | None
    config: GenerationConfig


class GenerationMixin:
    """generate / stream on token ids, generate_text / stream_text on strings (needs a tokenizer.json)."""

    vocab_size: int
    max_positions: int
    tokenizer: Any
    generation_config: GenerationConfig
    decode_states: DecodeStatePool

    def new_kv_cache(self, batch: int, max_len: int):
        raise NotImplementedError

    def next_token_logits(self, ids, positions, batch: KVCacheBatch, workspace: Workspace, out: np.ndarray):
        raise NotImplementedError

    @property
    def eos_token_id(self) -> int | None:
        """The eos token generation stops at unless told otherwise (None: never stops early)."""
        return self.generation_config.eos_token_id

    def start_decoding(self, input_ids: np.ndarray, attention_mask: np.ndarray | None, max_len: int):
        """A DecodingSession over validated, left-padded prompts (see check_prompt) for up to max_len tokens."""
        return DecodingSession(self, input_ids, attention_mask, max_len)

    def _request(self, input_ids, max_new_tokens, attention_mask, generation_config, options) -> _Request:
        """Validate a call once: the options over the model's defaults, the prompt, and the position limit."""
        base = self.generation_config if generation_config is None else generation_config
        if not isinstance(base, GenerationConfig):
            raise TypeError(f"generation_config must be a GenerationConfig, got {type(base).__name__}")
        if max_new_tokens is not None:
            options["max_new_tokens"] = max_new_tokens
        config = base.replace(**options)
        config.check_token_ids(self.vocab_size)
        ids, mask = check_prompt(input_ids, attention_mask, self.vocab_size)
        total = ids.shape[1] + config.max_new_tokens
        if total > self.max_positions:
            raise ValueError(
                f"prompt length {ids.shape[1]} + max_new_tokens {config.max_new_tokens} = {total} exceeds the "
                f"model's n_positions={self.max_positions}; shorten the prompt or generate fewer tokens")
        return _Request(ids, mask, config)

    # --- token ids ----------------------------------------------------------------------------------------
    def stream(self, input_ids, max_new_tokens: int | None = None, *, attention_mask=None,
               generation_config: GenerationConfig | None = None, **options: Any) -> Iterator[np.ndarray]:
        """Yields the next token of every row (int64 [B]) per step; arguments as `generate`. They are checked
        before this returns (a bad call raises at once, not on the first next())."""
        return self._steps(self._request(input_ids, max_new_tokens, attention_mask, generation_config, options))

    def _steps(self, request: _Request) -> Iterator[np.ndarray]:
        ids, mask, config = request.ids, request.mask, request.config
        if config.max_new_tokens == 0:
            return
        eos, pad = config.eos_token_id, config.pad_or_eos
        sampler = Sampler(config, ids.shape[0], self.vocab_size)
        sampler.observe(ids, mask)
        session = self.start_decoding(ids, mask, ids.shape[1] + config.max_new_tokens)
        try:
            logits = session.prefill()
            finished = np.zeros(ids.shape[0], bool)
            for step in range(config.max_new_tokens):
                tokens = sampler(logits)
                if eos is not None:
                    tokens[finished] = pad
                    finished |= tokens == eos
                yield tokens
                if finished.all() or step + 1 == config.max_new_tokens:
                    return
                sampler.observe(tokens)
                logits = session.step(tokens)
        finally:  # also when the caller stops iterating a stream early
            session.close()

    def generate(self, input_ids, max_new_tokens: int | None = None, *, attention_mask=None,
                 generation_config: GenerationConfig | None = None, **options: Any) -> np.ndarray:
        """input_ids int [B, T] (left-padded, with attention_mask, for prompts of different lengths) ->
        int64 [B, T + new]: the prompts followed by the generated tokens.

        Options (GenerationConfig fields, over `generation_config` or the model's defaults): max_new_tokens,
        do_sample=False is greedy search; otherwise tokens are sampled after temperature, top_k and top_p (in
        that order), from numpy's Generator seeded with `seed` (same seed, same tokens). repetition_penalty
        lowers tokens already in the prompt or output. eos_token_id defaults to the model's; None never stops
        early; with an eos, a row that produced it is filled with pad_token_id (default: the eos) and generation
        stops when every row has, so the result can be shorter than T + max_new_tokens."""
        request = self._request(input_ids, max_new_tokens, attention_mask, generation_config, options)
        new = list(self._steps(request))
        if not new:
            return request.ids.copy()
        return np.concatenate([request.ids, np.stack(new, axis=1)], axis=1)

    # --- text ---------------------------------------------------------------------------------------------
    def _encode_prompts(self, prompts: str | Sequence[str]) -> tuple[bool, np.ndarray, np.ndarray | None]:
        tokenizer = self.require_tokenizer()
        single = isinstance(prompts, str)
        texts = [prompts] if single else list(prompts)
        if not texts:
            raise ValueError("empty batch: no prompts given")
        if not all(isinstance(t, str) for t in texts):
            raise TypeError("prompts must be a str or a list of str")
        # No truncation: a prompt that is too long gets the n_positions error instead of silently losing its end.
        flat, _, lengths = tokenizer.encode_packed(texts, max_length=2**31 - 1)
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

    def _text_request(self, prompts, max_new_tokens, generation_config, options) -> tuple[bool, _Request]:
        single, ids, mask = self._encode_prompts(prompts)
        return single, self._request(ids, max_new_tokens, mask, generation_config, options)

    def stream_text(self, prompts: str | Sequence[str], max_new_tokens: int | None = None, *,
                    generation_config: GenerationConfig | None = None, **options: Any) -> Iterator[str | list[str]]:
        """Streams the generated text. One prompt: yields non-empty str pieces. A list: yields per step one
        piece per prompt (possibly ""). Options as `generate` (eos_token_id defaults to the model's; None never
        stops early). Pieces join to the text `generate_text` returns."""
        single, request = self._text_request(prompts, max_new_tokens, generation_config, options)
        return self._text_pieces(single, request)

    def _text_pieces(self, single: bool, request: _Request):
        batch, eos = request.ids.shape[0], request.config.eos_token_id
        decoders = [IncrementalDecoder(self.tokenizer) for _ in range(batch)]
        done = np.zeros(batch, bool)
        for tokens in self._steps(request):
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

    def generate_text(self, prompts: str | Sequence[str], max_new_tokens: int | None = None, *,
                      generation_config: GenerationConfig | None = None, **options: Any) -> str | list[str]:
        """The generated continuation of a prompt (str) or of each prompt in a list (list of str), without the
        prompt and without special tokens. Options as `generate`."""
        single, request = self._text_request(prompts, max_new_tokens, generation_config, options)
        eos = request.config.eos_token_id
        new = list(self._steps(request))
        out = np.stack(new, axis=1) if new else np.zeros((request.ids.shape[0], 0), np.int64)
        texts = []
        for row in out:
            stop = np.flatnonzero(row == eos) if eos is not None else np.empty(0)
            row = row[:stop[0] + 1] if stop.size else row
            texts.append(self.tokenizer.decode(row, skip_special_tokens=True))
        return texts[0] if single else texts
