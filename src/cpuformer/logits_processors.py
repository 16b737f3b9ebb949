"""The rules that change next-token scores before a token is picked, in transformers' order (its
`_get_logits_processor`): repetition penalty, no_repeat_ngram_size, bad_words_ids, min_length, min_new_tokens,
forced_bos_token_id, forced_eos_token_id, suppress_tokens. Sampling's temperature / top_k / top_p come after them
(generation.Sampler); beam search runs these on log-probabilities, greedy and sampling on logits, as transformers.

Every rule sees `sequences`: int [rows, cur_len], each row's tokens so far as transformers' `input_ids` holds them
(the decoder prompt, padding ids included, then the generated tokens), so lengths and n-grams count the same.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["LogitsProcessors"]

_NEG_INF = np.float32(-np.inf)


class LogitsProcessors:
    """The constraint rules of one generate call. `prompt_length`: the columns of `sequences` before the first
    generated token; `max_length`: prompt_length + max_new_tokens; `stop_ids`: eos and the other ids that end a
    row (min_length holds them all back)."""

    def __init__(self, config, prompt_length: int, max_length: int, stop_ids: Sequence[int],
                 prompt_mask: np.ndarray | None = None):
        self.config = config
        self.prompt_length, self.max_length = prompt_length, max_length
        self.stop_ids = np.asarray(sorted(set(stop_ids)), np.int64)
        # bad words: single tokens are always banned; longer ones ban their last token after the rest
        bad = [tuple(w) for w in (config.bad_words_ids or ()) if not (len(w) == 1 and w[0] in set(stop_ids))]
        self.banned_always = np.asarray(sorted({w[0] for w in bad if len(w) == 1}), np.int64)
        self.banned_after = [(np.asarray(w[:-1], np.int64), w[-1]) for w in bad if len(w) > 1]
        self.suppressed = np.asarray(sorted(set(config.suppress_tokens or ())), np.int64)
        self.prompt_mask = prompt_mask  # repetition penalty: left padding is not "seen"

    @property
    def active(self) -> bool:
        c = self.config
        return bool(c.repetition_penalty != 1.0 or c.no_repeat_ngram_size or self.banned_always.size
                    or self.banned_after or c.min_length or c.min_new_tokens or c.forced_bos_token_id is not None
                    or c.forced_eos_token_id is not None or self.suppressed.size)

    def __call__(self, scores: np.ndarray, sequences: np.ndarray) -> np.ndarray:
        """scores float32 [rows, vocab] (changed in place and returned); sequences int [rows, cur_len]."""
        c = self.config
        cur_len = sequences.shape[1]
        if c.repetition_penalty != 1.0:
            self._penalize(scores, sequences)
        if c.no_repeat_ngram_size:
            self._ban_repeated_ngrams(scores, sequences, c.no_repeat_ngram_size)
        if self.banned_always.size:
            scores[:, self.banned_always] = _NEG_INF
        for prefix, last in self.banned_after:
            if len(prefix) <= cur_len:
                hit = (sequences[:, cur_len - len(prefix):] == prefix).all(axis=1)
                scores[hit, last] = _NEG_INF
        if self.stop_ids.size and (cur_len < c.min_length or cur_len - self.prompt_length < c.min_new_tokens):
            scores[:, self.stop_ids] = _NEG_INF
        if c.forced_bos_token_id is not None and cur_len == 1:
            scores[:] = _NEG_INF
            scores[:, c.forced_bos_token_id] = 0
        if c.forced_eos_token_id is not None and cur_len == self.max_length - 1:
            scores[:] = _NEG_INF
            scores[:, c.forced_eos_token_id] = 0
        if self.suppressed.size:
            scores[:, self.suppressed] = _NEG_INF
        return scores

    def _penalize(self, scores: np.ndarray, sequences: np.ndarray) -> None:
        """CTRL's penalty (as transformers): seen tokens' scores move towards lower probability; left padding of the
        prompt is not seen."""
        seen = np.zeros(scores.shape, bool)
        rows = np.broadcast_to(np.arange(sequences.shape[0])[:, None], sequences.shape)
        keep = np.ones(sequences.shape, bool)
        if self.prompt_mask is not None:
            keep[:, :self.prompt_mask.shape[1]] = self.prompt_mask.astype(bool)
        seen[rows[keep], sequences[keep]] = True
        p = np.float32(self.config.repetition_penalty)
        penalized = np.where(scores < 0, scores * p, scores / p)
        np.copyto(scores, penalized, where=seen)

    @staticmethod
    def _ban_repeated_ngrams(scores: np.ndarray, sequences: np.ndarray, n: int) -> None:
        """A token that would complete an n-gram the row already holds is banned."""
        cur_len = sequences.shape[1]
        if cur_len < n:  # not one whole n-gram yet
            return
        if n == 1:  # every token seen is banned
            scores[np.arange(scores.shape[0])[:, None], sequences] = _NEG_INF
            return
        windows = np.lib.stride_tricks.sliding_window_view(sequences, n, axis=1)  # [rows, cur_len - n + 1, n]
        prefix = sequences[:, cur_len - n + 1:]
        match = (windows[:, :, :-1] == prefix[:, None, :]).all(axis=2)
        rows, at = np.nonzero(match)
        scores[rows, windows[rows, at, -1]] = _NEG_INF
