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

import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .inputs import check_attention_mask, check_id_range, check_input_ids
from .generation_config import GenerationConfig
from .layers import KVCacheBatch, Workspace
from .logits_processors import LogitsProcessors

__all__ = ["DecodeState", "DecodeStatePool", "DecodingSession", "GenerateOutput", "GenerationConfig",
           "GenerationMixin", "IncrementalDecoder", "Sampler", "check_prompt", "log_softmax"]

# top_p first looks for the nucleus among this many best tokens and sorts the whole vocabulary only when
# their probability mass falls short of top_p (rare with trained models).
_NUCLEUS_CANDIDATES = 256


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
        """logits [B, vocab] float32 -> next ids [B] int64 (the repetition penalty from `observe`, then pick)."""
        cfg = self.config
        if self.seen is not None:
            # CTRL's penalty (as transformers): seen tokens' logits move towards lower probability.
            penalized = np.where(logits > 0, logits / cfg.repetition_penalty, logits * cfg.repetition_penalty)
            logits = np.where(self.seen, penalized, logits)
        return self.pick(logits)[0]

    def pick(self, scores: np.ndarray, warped: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """scores [B, vocab] float32, already processed (cpuformer.logits_processors) -> (next ids [B] int64, the
        scores the pick was made from [B, vocab] when `warped`: sampling's temperature, top_k and top_p applied,
        -inf outside the kept tokens, as transformers reports them; greedy: the scores themselves)."""
        if not self.config.do_sample:
            return scores.argmax(axis=1).astype(np.int64), (scores.copy() if warped else None)
        out = np.full(scores.shape, -np.inf, np.float32) if warped else None
        ids = np.empty(scores.shape[0], np.int64)
        for i, row in enumerate(scores):
            top = row.max()  # NaN when the row has one
            if not np.isfinite(top):
                # torch.multinomial refuses such a row too; picking from it would be an arbitrary token
                raise ValueError(f"cannot sample row {i}: its scores hold "
                                 f"{'NaN' if np.isnan(top) else 'no finite value' if top < 0 else '+inf'} (the "
                                 "model or a logits processor produced it); greedy decoding picks the first NaN "
                                 "/ +inf as torch's argmax does")
            ids[i] = self._sample_row(row, None if out is None else out[i])
        return ids, out

    def _sample_row(self, logits: np.ndarray, warped: np.ndarray | None = None) -> int:
        cfg = self.config
        scores = logits.astype(np.float64) / cfg.temperature
        vocab = scores.shape[0]
        ids = None  # candidate token ids; None = the whole vocabulary in order
        if 0 < cfg.top_k < vocab:
            ids = np.argpartition(scores, vocab - cfg.top_k)[vocab - cfg.top_k:]
        if cfg.top_p < 1.0:
            ids = self._nucleus(scores, ids, cfg.top_p)
        values = scores if ids is None else scores[ids]
        if warped is not None:
            warped[slice(None) if ids is None else ids] = values
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
    `prefill() -> logits [B, vocab]` of the last prompt position, `step(tokens [B]) -> logits`, `reorder(source)`
    (beam search: row b continues old row source[b]), `close()` (at most once; hands the cache back to the model
    for its next call)."""

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

    def reorder(self, source: np.ndarray) -> None:
        """Row b becomes a copy of row source[b]: its cached keys and values, position and padding mask."""
        source = np.ascontiguousarray(source, np.int64)
        self.state.cache.reorder(source)
        self.next_position = self.next_position[source]
        if self.batch.key_mask is not None:
            self.batch.key_mask = np.ascontiguousarray(self.batch.key_mask[source])

    def _run(self, ids: np.ndarray, positions: np.ndarray, ws: Workspace) -> np.ndarray:
        self.batch.advance(ids.shape[1])
        return self.model.next_token_logits(ids, positions, self.batch, ws, out=self.state.logits)


@dataclass
class _Request:
    """A validated generate call: the prompt, its mask (None without padding) and the options."""

    ids: np.ndarray
    mask: np.ndarray | None
    config: GenerationConfig


@dataclass
class GenerateOutput:
    """What generate returns with return_dict_in_generate=True (transformers' GenerateOutput, as numpy).

    sequences: int64 [rows, length] (rows = prompts x num_return_sequences, each prompt's rows together).
    scores: with output_scores, float32 [rows, steps, vocab]: the scores each step's token was picked from, after
        every processor (greedy / sampling: processed logits; beam search: processed log-probabilities of the
        running beams at that step, as transformers' `scores`), else None.
    sequences_scores: beam search with output_scores: float32 [rows], each returned beam's length-penalised
        score; else None.
    token_logprobs: with output_scores, float32 [rows, steps]: the log-probability of each generated token under
        the distribution it was picked from (log-softmax of `scores`, along the beam's path for beam search);
        0 after a row ended."""

    sequences: np.ndarray
    scores: np.ndarray | None = None
    sequences_scores: np.ndarray | None = None
    token_logprobs: np.ndarray | None = None


def log_softmax(scores: np.ndarray) -> np.ndarray:
    """float32 log-softmax over the last axis (rows that are all -inf stay -inf)."""
    top = scores.max(axis=-1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0).astype(np.float32)
    shifted = scores - top
    with np.errstate(divide="ignore"):
        return (shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))).astype(np.float32)


class _ScoreRecorder:
    """Collects each step's scores and the picked tokens' log-probabilities for GenerateOutput."""

    def __init__(self):
        self.scores: list[np.ndarray] = []
        self.logprobs: list[np.ndarray] = []

    def __call__(self, scores: np.ndarray, tokens: np.ndarray, finished_before: np.ndarray) -> None:
        self.scores.append(scores)
        lp = log_softmax(scores)[np.arange(len(tokens)), tokens]
        self.logprobs.append(np.where(finished_before, np.float32(0), lp).astype(np.float32))


class GenerationMixin:
    """generate / stream on token ids, generate_text / stream_text on strings (needs a tokenizer.json)."""

    is_encoder_decoder = False
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

    def start_decoding(self, input_ids: np.ndarray, attention_mask: np.ndarray | None, max_len: int,
                       expand: int = 1, decoder_prompt: np.ndarray | None = None):
        """A DecodingSession over validated, left-padded prompts (see check_prompt) for up to max_len tokens, each
        prompt in `expand` consecutive rows (beams, return sequences). decoder_prompt: an encoder-decoder's first
        decoder tokens per prompt (`decoder_prompt()`); a decoder-only model continues input_ids."""
        if expand > 1:
            input_ids = np.repeat(input_ids, expand, axis=0)
            attention_mask = None if attention_mask is None else np.repeat(attention_mask, expand, axis=0)
        return DecodingSession(self, input_ids, attention_mask, max_len)

    def decoder_prompt(self, request: _Request) -> tuple[np.ndarray, np.ndarray | None]:
        """The tokens every output row starts with, and their mask (None: no padding). A decoder-only model
        continues its prompt; an encoder-decoder starts from its decoder_start_token_id."""
        return request.ids, request.mask

    def check_prompt(self, input_ids, attention_mask) -> tuple[np.ndarray, np.ndarray | None]:
        """Validated (ids, mask or None) of a prompt batch; a decoder-only model needs left padding."""
        return check_prompt(input_ids, attention_mask, self.vocab_size)

    def check_lengths(self, ids: np.ndarray, config: GenerationConfig) -> None:
        """ValueError when the prompt plus max_new_tokens pass the model's position limit."""
        total = ids.shape[1] + config.max_new_tokens
        if total > self.max_positions:
            raise ValueError(
                f"prompt length {ids.shape[1]} + max_new_tokens {config.max_new_tokens} = {total} exceeds the "
                f"model's n_positions={self.max_positions}; shorten the prompt or generate fewer tokens")

    def _request(self, input_ids, max_new_tokens, attention_mask, generation_config, options) -> _Request:
        """Validate a call once: the options over the model's defaults, the prompt, and the position limit."""
        base = self.generation_config if generation_config is None else generation_config
        if not isinstance(base, GenerationConfig):
            raise TypeError(f"generation_config must be a GenerationConfig, got {type(base).__name__}")
        if max_new_tokens is not None:
            options["max_new_tokens"] = max_new_tokens
        config = base.replace(**options)
        config.check_token_ids(self.vocab_size)
        ids, mask = self.check_prompt(input_ids, attention_mask)
        self.check_lengths(ids, config)
        return _Request(ids, mask, config)

    # --- token ids ----------------------------------------------------------------------------------------
    def stream(self, input_ids, max_new_tokens: int | None = None, *, attention_mask=None,
               generation_config: GenerationConfig | None = None, **options: Any) -> Iterator[np.ndarray]:
        """Yields the next token of every row (int64 [rows]) per step; arguments as `generate`. They are checked
        before this returns (a bad call raises at once, not on the first next()). Beam search cannot stream (its
        best sequence is known only at the end): a ValueError."""
        request = self._request(input_ids, max_new_tokens, attention_mask, generation_config, options)
        if request.config.num_beams > 1:
            raise ValueError("beam search (num_beams > 1) cannot stream: use generate")
        return self._steps(request)

    def _steps(self, request: _Request, record: _ScoreRecorder | None = None,
               stopped: Callable[[np.ndarray], np.ndarray] | None = None) -> Iterator[np.ndarray]:
        """Greedy search or sampling: yields the tokens of every row per step. `stopped(tokens)` -> bool [rows]
        marks rows that end now (stop strings)."""
        config = request.config
        if config.max_new_tokens == 0:
            return
        copies = config.num_return_sequences
        prompt, prompt_mask = self.decoder_prompt(request)
        if copies > 1:
            prompt = np.repeat(prompt, copies, axis=0)
            prompt_mask = None if prompt_mask is None else np.repeat(prompt_mask, copies, axis=0)
        rows, width = prompt.shape
        stop_ids = np.asarray(config.stop_ids, np.int64)
        pad = config.pad_token_id if config.pad_token_id is not None else (int(stop_ids[0]) if stop_ids.size else 0)
        processors = LogitsProcessors(config, width, width + config.max_new_tokens, config.stop_ids, prompt_mask)
        sampler = Sampler(config, rows, self.vocab_size)  # its own penalty stays off: the processors apply it
        sequences = np.empty((rows, width + config.max_new_tokens), np.int64)
        sequences[:, :width] = prompt
        session = self.start_decoding(request.ids, request.mask, width + config.max_new_tokens, expand=copies,
                                      decoder_prompt=self.decoder_prompt(request)[0])
        try:
            logits = session.prefill()
            finished = np.zeros(rows, bool)
            for step in range(config.max_new_tokens):
                cur = width + step
                scores = processors(logits.copy(), sequences[:, :cur]) if processors.active else logits
                tokens, warped = sampler.pick(scores, warped=record is not None)
                if record is not None:
                    record(warped, tokens, finished.copy())
                tokens[finished] = pad
                if stop_ids.size:
                    finished |= np.isin(tokens, stop_ids)
                if stopped is not None:
                    finished |= stopped(tokens)
                sequences[:, cur] = tokens
                yield tokens
                if finished.all() or step + 1 == config.max_new_tokens:
                    return
                logits = session.step(tokens)
        finally:  # also when the caller stops iterating a stream early
            session.close()

    def generate(self, input_ids, max_new_tokens: int | None = None, *, attention_mask=None,
                 generation_config: GenerationConfig | None = None, **options: Any) -> np.ndarray | GenerateOutput:
        """input_ids int [B, T] (left-padded, with attention_mask, for prompts of different lengths) ->
        int64 [B * num_return_sequences, T + new]: the prompts followed by the generated tokens (an
        encoder-decoder returns its decoder tokens: the start token, then the generated ones).

        Options (GenerationConfig fields, over `generation_config` or the model's defaults), with transformers'
        semantics: max_new_tokens; do_sample=False is greedy search, num_beams > 1 beam search (length_penalty,
        early_stopping True / False / "never", num_return_sequences of the best beams); do_sample=True samples
        after temperature, top_k and top_p (in that order) from numpy's Generator seeded with `seed`
        (num_return_sequences samples per prompt). Score rules, in this order: repetition_penalty,
        no_repeat_ngram_size, bad_words_ids, min_length (counting the prompt), min_new_tokens,
        forced_bos_token_id, forced_eos_token_id (at the last step), suppress_tokens. eos_token_id defaults to the
        model's and stop_token_ids end a row as it does; None never stops early; a row that ended is filled
        with pad_token_id (default: the eos) and generation stops when every row has, so the result can be shorter
        than T + max_new_tokens. return_dict_in_generate=True returns a GenerateOutput (with output_scores: the
        scores, the tokens' log-probabilities and, for beams, sequences_scores)."""
        request = self._request(input_ids, max_new_tokens, attention_mask, generation_config, options)
        config = request.config
        record = _ScoreRecorder() if config.output_scores else None
        if config.num_beams > 1:
            from .beam_search import beam_search

            result = beam_search(self, request, record)
        else:
            prompt = np.repeat(self.decoder_prompt(request)[0], config.num_return_sequences, axis=0)
            new = list(self._steps(request, record))
            sequences = np.concatenate([prompt, np.stack(new, axis=1)], axis=1) if new else prompt.copy()
            result = GenerateOutput(sequences)
            if record is not None and new:
                result.scores = np.stack(record.scores, axis=1)
                result.token_logprobs = np.stack(record.logprobs, axis=1)
        return result if config.return_dict_in_generate else result.sequences

    # --- text ---------------------------------------------------------------------------------------------
    padding_side = "left"  # decoder-only prompts end at the last column; an encoder's input is padded on the right

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
            at = slice(width - n, width) if self.padding_side == "left" else slice(0, n)
            ids[i, at] = flat[starts[i]:starts[i + 1]]
            mask[i, at] = 1
        return single, ids, mask

    def _text_request(self, prompts, max_new_tokens, generation_config, options) -> tuple[bool, _Request]:
        single, ids, mask = self._encode_prompts(prompts)
        request = self._request(ids, max_new_tokens, mask, generation_config, options)
        return single and request.config.num_return_sequences == 1, request

    def stream_text(self, prompts: str | Sequence[str], max_new_tokens: int | None = None, *,
                    generation_config: GenerationConfig | None = None, **options: Any) -> Iterator[str | list[str]]:
        """Streams the generated text. One prompt: yields non-empty str pieces. A list (or num_return_sequences >
        1): yields per step one piece per row (possibly ""), each prompt's rows together. Options as `generate`
        (eos_token_id defaults to the model's; None never stops early); `stop`: strings that end a row, the text
        ending before the first of them (a piece's end that could start one is held back until it is known).
        Pieces join to the text `generate_text` returns. Beam search cannot stream."""
        single, request = self._text_request(prompts, max_new_tokens, generation_config, options)
        if request.config.num_beams > 1:
            raise ValueError("beam search (num_beams > 1) cannot stream: use generate_text")
        return self._text_pieces(single, request)

    def _text_pieces(self, single: bool, request: _Request):
        from .serve.stop_strings import StopStrings  # plain Python: no server dependency

        config = request.config
        rows = request.ids.shape[0] * config.num_return_sequences
        decoders = [IncrementalDecoder(self.tokenizer) for _ in range(rows)]
        stoppers = [StopStrings(config.stop) for _ in range(rows)] if config.stop else None
        stop_ids = set(config.stop_ids)
        done = np.zeros(rows, bool)
        pieces: list[str] = []

        def read(tokens: np.ndarray) -> np.ndarray:
            """Decode this step's tokens into `pieces`; rows whose text reached a stop string end now."""
            ended = np.zeros(rows, bool)
            pieces.clear()
            for i, t in enumerate(tokens):
                piece = "" if done[i] else decoders[i].push(t)
                if stoppers is not None and not done[i]:
                    piece = stoppers[i].feed(piece)
                    ended[i] = stoppers[i].stopped
                pieces.append(piece)
                done[i] |= ended[i] or int(t) in stop_ids
            return ended

        for _ in self._steps(request, stopped=read):
            if single:
                if pieces[0]:
                    yield pieces[0]
            else:
                yield list(pieces)
        tails = [d.flush() for d in decoders]
        if stoppers is not None:
            tails = [s.feed(t) + s.flush() for s, t in zip(stoppers, tails)]
        if single:
            if tails[0]:
                yield tails[0]
        elif any(tails):
            yield tails

    def generate_text(self, prompts: str | Sequence[str], max_new_tokens: int | None = None, *,
                      generation_config: GenerationConfig | None = None, **options: Any) -> str | list[str]:
        """The generated continuation of a prompt (str) or of each prompt in a list (list of str; with
        num_return_sequences > 1 a list of every row, each prompt's rows together), without the prompt and without
        special tokens. Options as `generate`; `stop` as in `stream_text` (beam search cuts the finished text at
        the first stop string: beams are scored on tokens, not text)."""
        single, request = self._text_request(prompts, max_new_tokens, generation_config, options)
        config = request.config
        if config.num_beams == 1:
            rows: list[list[str]] = []
            for step in self._text_pieces(single, request):
                rows.append([step] if single else step)
            count = 1 if single else request.ids.shape[0] * config.num_return_sequences
            texts = ["".join(parts) for parts in zip(*rows)] if rows else [""] * count
            return texts[0] if single else texts
        from .beam_search import beam_search

        width = self.decoder_prompt(request)[0].shape[1]
        stop_ids = set(config.stop_ids)
        texts = []
        for row in beam_search(self, request).sequences[:, width:]:
            ends = [i for i, t in enumerate(row) if int(t) in stop_ids]
            text = self.tokenizer.decode(row[:ends[0] + 1] if ends else row, skip_special_tokens=True)
            cuts = [i for i in (text.find(s) for s in config.stop) if i >= 0]
            texts.append(text[:min(cuts)] if cuts else text)
        return texts[0] if single else texts
