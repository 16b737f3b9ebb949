"""Extractive question answering on any encoder: `...ForQuestionAnswering.answer(question, context)`.

The head is one linear `qa_outputs` [2, hidden] giving a start and an end logit per token. `answer` follows the
question-answering pipeline of transformers < 5 (removed in 5) step by step, so its answers match those of
checkpoints people fine-tuned and evaluated with it:
- question + context are tokenized as a pair, truncating only the context to `max_seq_len` tokens; what does
  not fit comes back as further windows that overlap by `doc_stride` tokens;
- per window, tokens outside the context (question, special tokens, padding) get logit -10000 except the CLS
  token, which stays in the softmax (so the scores equal the pipeline's); start and end logits are
  softmax-ed separately, the CLS probability is then zeroed;
- span score = p_start(s) * p_end(e) for s <= e < s + max_answer_len, both inside the context; the top_k
  spans of every window are pooled and the best top_k returned;
- a span becomes characters of the context through the words its first and last tokens belong to
  (align_to_words), else through the tokens' own offsets.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..io import WeightStore
from ..layers import take_linear
from .heads import EncoderTaskModel

__all__ = ["QuestionAnsweringModel", "QuestionAnsweringOutput", "best_spans"]

_MASKED_LOGIT = -10000.0  # what the pipeline put on tokens that cannot be part of an answer


@dataclass
class QuestionAnsweringOutput:
    start_logits: np.ndarray  # [B, T]; zeros at padding positions
    end_logits: np.ndarray
    last_hidden_state: np.ndarray  # [B, T, hidden]


def best_spans(p_start: np.ndarray, p_end: np.ndarray, allowed: np.ndarray, top_k: int,
               max_answer_len: int) -> list[tuple[int, int, float]]:
    """The top_k (start, end, score) of one window, score = p_start[s] * p_end[e] with s <= e <=
    s + max_answer_len - 1; spans whose ends are not `allowed` (bool [T]) are dropped after choosing the top_k,
    as the pipeline did."""
    scores = np.triu(np.tril(np.outer(p_start, p_end), max_answer_len - 1))
    flat = scores.ravel()
    k = min(top_k, flat.size)
    order = np.argsort(-flat, kind="stable")[:k]
    starts, ends = np.unravel_index(order, scores.shape)
    return [(int(s), int(e), float(scores[s, e])) for s, e in zip(starts, ends) if allowed[s] and allowed[e]]


class QuestionAnsweringModel(EncoderTaskModel):
    """Encoder + qa_outputs. `model(ids, mask, types)` -> start / end logits; `answer(question, context)`."""

    def __init__(self, config: Any, store: WeightStore):
        self.build_encoder(config, store)
        self.qa_outputs = take_linear(store, "qa_outputs", config.hidden_size, 2)

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None) -> QuestionAnsweringOutput:
        batch, _, hidden = self.encode(input_ids, attention_mask, token_type_ids)
        logits = batch.scatter(self.qa_outputs(hidden))
        return QuestionAnsweringOutput(np.ascontiguousarray(logits[..., 0]), np.ascontiguousarray(logits[..., 1]),
                                       batch.scatter(hidden))

    def answer(self, question: str | Sequence[str], context: str | Sequence[str], top_k: int = 1,
               max_answer_len: int = 15, doc_stride: int | None = None, *, max_seq_len: int | None = None,
               handle_impossible_answer: bool = False, align_to_words: bool = True):
        """The answer span(s) to `question` in `context`: {"score", "start", "end", "answer"} with character
        offsets into the context. top_k > 1 gives a list (one dict when only one span qualifies, as the
        pipeline). Lists of questions and contexts (same length) give one result per pair. With
        handle_impossible_answer, the empty answer competes with score p_start(CLS) * p_end(CLS).
        max_seq_len: window length in tokens (default: the tokenizer's max length, at most 384; never more than
        the model's positions); doc_stride: tokens shared by consecutive windows (default min(max_seq_len // 2,
        128)), as the pipeline."""
        tok = self.require_tokenizer()
        if max_seq_len is None:
            max_seq_len = min(tok.max_length, 384)
        if doc_stride is None:
            doc_stride = min(max_seq_len // 2, 128)
        for name, value, low in (("top_k", top_k, 1), ("max_answer_len", max_answer_len, 1),
                                 ("doc_stride", doc_stride, 0), ("max_seq_len", max_seq_len, 2)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        max_seq_len = min(max_seq_len, tok.max_length)
        if doc_stride > max_seq_len:
            raise ValueError(f"doc_stride ({doc_stride}) is larger than max_seq_len ({max_seq_len})")
        single = isinstance(question, str) and isinstance(context, str)
        questions = self.text_list(question, "answer")
        contexts = self.text_list(context, "answer")
        if len(questions) != len(contexts):
            raise ValueError(f"got {len(questions)} questions but {len(contexts)} contexts")
        results = [self._answer_one(q, c, top_k, max_answer_len, doc_stride, max_seq_len,
                                    handle_impossible_answer, align_to_words) for q, c in zip(questions, contexts)]
        return results[0] if single else results

    def _answer_one(self, question: str, context: str, top_k: int, max_answer_len: int, doc_stride: int,
                    max_seq_len: int, handle_impossible: bool, align_to_words: bool):
        tok = self.require_tokenizer()
        (first,) = tok.encode_with_offsets([question], [context], max_length=max_seq_len, stride=doc_stride,
                                           strategy="only_second")
        windows = [first, *first.overflowing]
        longest = max(len(w.ids) for w in windows)
        ids = np.full((len(windows), longest), tok.pad_token_id, np.int64)
        types = np.zeros_like(ids)
        mask = np.zeros_like(ids)
        for i, w in enumerate(windows):
            ids[i, :len(w.ids)], types[i, :len(w.ids)], mask[i, :len(w.ids)] = w.ids, w.type_ids, 1
        out = self(ids, mask, types)
        answers, null_score = [], 1e6
        for i, w in enumerate(windows):
            n = len(w.ids)
            in_context = np.array([s == 1 for s in w.sequence_ids])
            candidate = in_context | (ids[i, :n] == tok.cls_token_id)  # the pipeline kept CLS in the softmax
            p_start = _masked_softmax(out.start_logits[i, :n], candidate)
            p_end = _masked_softmax(out.end_logits[i, :n], candidate)
            null_score = min(null_score, float(p_start[0] * p_end[0]))
            p_start[0] = p_end[0] = 0.0
            allowed = candidate.copy()
            allowed[0] = True  # the pipeline's check let index 0 through (its probability is 0 by now)
            for s, e, score in best_spans(p_start, p_end, allowed, top_k, max_answer_len):
                start, end = _char_span(w, s, e, align_to_words)
                answers.append({"score": score, "start": start, "end": end, "answer": context[start:end]})
        if handle_impossible:
            answers.append({"score": null_score, "start": 0, "end": 0, "answer": ""})
        answers = sorted(answers, key=lambda a: a["score"], reverse=True)[:top_k]
        return answers[0] if len(answers) == 1 else answers


def _masked_softmax(logits: np.ndarray, keep: np.ndarray) -> np.ndarray:
    x = np.where(keep, logits.astype(np.float64), _MASKED_LOGIT)
    x = np.exp(x - x.max())
    return x / x.sum()


def _char_span(window, s: int, e: int, align_to_words: bool) -> tuple[int, int]:
    """Character [start, end) in the context of tokens s..e: the words they are part of, or their offsets."""
    if align_to_words:
        start_word, end_word = window.token_to_word(s), window.token_to_word(e)
        if start_word is not None and end_word is not None:
            try:
                return (window.word_to_chars(start_word, sequence_index=1)[0],
                        window.word_to_chars(end_word, sequence_index=1)[1])
            except Exception:  # noqa: BLE001 - tokenizers without words: the pipeline fell back to offsets too
                pass
    return window.offsets[s][0], window.offsets[e][1]
