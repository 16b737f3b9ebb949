"""What the embedding endpoints need from the model: tokenizing with the length check (refuse or truncate),
token-id inputs, and batched embedding through the EmbeddingBatcher. HTTP-free; errors are ApiErrors whose
status each endpoint chooses (OpenAI answers a too-long input with 400, text-embeddings-inference with 413)."""
from __future__ import annotations

import asyncio
import threading
from typing import Sequence

import numpy as np

from ..sentence_encoder import SentenceEncoder
from .embedding_batcher import EmbeddingBatcher, TokenizedText
from .metrics import Metrics
from .options import ServeOptions

__all__ = ["EmbeddingService", "InputTooLong"]

_NO_LIMIT = 2**31 - 1
# Texts up to this many characters are tokenized on the event loop (tens of microseconds); longer ones in a
# worker thread, so one large request never stalls every other connection.
_INLINE_CHARS = 4096


class InputTooLong(ValueError):
    def __init__(self, index: int, tokens: int, limit: int):
        super().__init__(f"input {index} has {tokens} tokens; this model takes at most {limit} tokens. Shorten it "
                         "or set \"truncate\": true to cut it at the limit")
        self.index, self.tokens, self.limit = index, tokens, limit


class EmbeddingService:
    kind = "embeddings"

    def __init__(self, encoder: SentenceEncoder, name: str, options: ServeOptions, metrics: Metrics):
        self.encoder, self.name = encoder, name
        self.metrics = metrics
        self.max_length = encoder.max_seq_length
        self.dimension = encoder.embedding_dimension
        self.vocab_size = encoder.tokenizer.vocab_size
        self.prefix = encoder.resolve_prompt()  # the folder's default prompt, if it names one
        self.skip = encoder.tokenizer.prompt_length(self.prefix) if self.prefix and not encoder.include_prompt else 0
        self._tokenizer_lock = threading.Lock()  # Tokenizer sets its truncation length on a shared object
        self.batcher = EmbeddingBatcher(self._embed, max_batch_tokens=options.max_batch_tokens,
                                        max_wait_ms=options.max_wait_ms, max_queue=options.max_queue, metrics=metrics)

    def start(self) -> None:
        self.batcher.start()

    def stop(self) -> None:
        self.batcher.stop()

    def _embed(self, ids: np.ndarray, types: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        return self.encoder.embed_tokens(ids, types, lengths, skip=self.skip)

    # --- inputs -------------------------------------------------------------------------------------------------
    def _tokenize_now(self, texts: Sequence[str], truncate: bool, prefix: str) -> list[TokenizedText]:
        with self._tokenizer_lock:
            return self._tokenize_locked(texts, truncate, prefix)

    def _tokenize_locked(self, texts: Sequence[str], truncate: bool, prefix: str) -> list[TokenizedText]:
        tokenizer = self.encoder.tokenizer
        texts = [prefix + t for t in texts]
        ids, types, lengths = tokenizer.encode_packed(texts, max_length=_NO_LIMIT)
        starts = np.concatenate([[0], np.cumsum(lengths)])
        out = [TokenizedText(ids[starts[i]:starts[i + 1]], types[starts[i]:starts[i + 1]])
               for i in range(len(texts))]
        too_long = [i for i, n in enumerate(lengths) if n > self.max_length]
        if too_long and not truncate:
            i = too_long[0]
            raise InputTooLong(i, int(lengths[i]), self.max_length)
        if too_long:  # the tokenizer's own truncation: the same tokens SentenceEncoder.encode embeds
            cut_ids, cut_types, cut_lengths = tokenizer.encode_packed([texts[i] for i in too_long])
            cut_starts = np.concatenate([[0], np.cumsum(cut_lengths)])
            for j, i in enumerate(too_long):
                out[i] = TokenizedText(cut_ids[cut_starts[j]:cut_starts[j + 1]],
                                       cut_types[cut_starts[j]:cut_starts[j + 1]])
        return out

    async def tokenize(self, texts: Sequence[str], truncate: bool, prefix: str | None = None) -> list[TokenizedText]:
        """Token ids of each text (after the model's default prompt, or `prefix`); InputTooLong past max_length
        unless truncate. An empty text still gets the model's special tokens, as in SentenceEncoder.encode."""
        prefix = self.prefix if prefix is None else prefix
        # Inline only when the lock is free: waiting for it on the event loop would stall every connection.
        if sum(len(t) for t in texts) <= _INLINE_CHARS and self._tokenizer_lock.acquire(blocking=False):
            try:
                return self._tokenize_locked(texts, truncate, prefix)
            finally:
                self._tokenizer_lock.release()
        return await asyncio.to_thread(self._tokenize_now, texts, truncate, prefix)

    def token_inputs(self, lists: Sequence[Sequence[int]], truncate: bool) -> list[TokenizedText]:
        """Token-id inputs, used as given (no special tokens added); ValueError for ids outside the vocabulary."""
        out = []
        for i, ids in enumerate(lists):
            if not ids:
                raise ValueError(f"input {i} is an empty list of token ids")
            if len(ids) > self.max_length and not truncate:
                raise InputTooLong(i, len(ids), self.max_length)
            bad = next((t for t in ids if not 0 <= t < self.vocab_size), None)
            if bad is not None:
                raise ValueError(f"input {i} has token id {bad} outside the vocabulary [0, {self.vocab_size})")
            arr = np.asarray(ids[:self.max_length], np.int64)
            out.append(TokenizedText(arr, np.zeros_like(arr)))
        return out

    async def embed(self, sequences: list[TokenizedText]) -> np.ndarray:
        """[len(sequences), dim] float32, not normalized; QueueFull when the queue is full."""
        return await asyncio.wrap_future(self.batcher.submit(sequences))

    @staticmethod
    def normalize(vectors: np.ndarray) -> np.ndarray:
        """As SentenceEncoder.encode (torch.nn.functional.normalize): x / max(||x||, 1e-12)."""
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    @property
    def normalizes(self) -> bool:
        """Whether the folder says to normalize (its Normalize module)."""
        return bool(self.encoder.normalize)
