"""Beam search with transformers' semantics (its vectorised `_beam_search`, written here with numpy), for every
GenerationMixin model (GPT-2, BART): one loop, the model only runs steps and reorders its KV cache rows.

Per prompt, `num_beams` running beams; each step:
1. log-softmax of the logits, then the score rules (cpuformer.logits_processors) on those log-probabilities, plus
   each beam's running score;
2. the best K = max(2, 1 + number of stop ids) * num_beams continuations over all beams x vocabulary;
3. a continuation that ends (a stop id, or the last step) and ranks among the first num_beams becomes a finished
   hypothesis scored sum_logprobs / generated_length ** length_penalty (generated_length counts the new tokens,
   the stop token included, never the prompt); the best num_beams finished hypotheses are kept;
4. the best num_beams continuations that did not end are the next running beams; the KV cache rows follow them.
A prompt is done when its num_beams finished hypotheses cannot be beaten: with early_stopping=True as soon as
there are num_beams of them; with False when the best running beam's score at the current length is no better
than the worst finished one; with "never" at the best length the running beam could still reach (max_length when
length_penalty > 0). Everything runs in float32, as transformers does on CPU, so near-ties resolve alike.
"""
from __future__ import annotations

import numpy as np

from .generation import GenerateOutput, log_softmax
from .logits_processors import LogitsProcessors

__all__ = ["beam_search"]

_MASKED = np.float32(-1.0e9)  # transformers' "never pick this" score


def _top(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest entries of each row, best first (ties: lower index first)."""
    return np.argsort(-values, axis=1, kind="stable")[:, :k]


def _gather(array: np.ndarray, index: np.ndarray) -> np.ndarray:
    """array [B, N, ...], index [B, M] -> [B, M, ...] (take along the beam axis)."""
    return array[np.arange(array.shape[0])[:, None], index]


def beam_search(model, request, record=None) -> GenerateOutput:
    config = request.config
    beams, returned = config.num_beams, config.num_return_sequences
    prompt, prompt_mask = model.decoder_prompt(request)
    batch, width = prompt.shape
    max_length = width + config.max_new_tokens
    stop_ids = np.asarray(config.stop_ids, np.int64)
    keep = max(2, 1 + stop_ids.size) * beams
    fill = config.pad_token_id if config.pad_token_id is not None else (int(stop_ids[0]) if stop_ids.size else 0)
    vocab = model.vocab_size
    rows = batch * beams
    row_mask = None if prompt_mask is None else np.repeat(prompt_mask, beams, axis=0)
    processors = LogitsProcessors(config, width, max_length, config.stop_ids, row_mask)

    running = np.full((batch, beams, max_length), fill, np.int64)
    running[:, :, :width] = prompt[:, None, :]
    finished_seqs = running.copy()
    running_scores = np.zeros((batch, beams), np.float32)
    running_scores[:, 1:] = _MASKED  # only the first beam's tokens compete at the first step
    finished_scores = np.full((batch, beams), _MASKED, np.float32)
    is_finished = np.zeros((batch, beams), bool)
    improvable = np.ones((batch, 1), bool)
    new_tokens = max(config.max_new_tokens, 1)
    running_paths = np.full((batch, beams, new_tokens), -1, np.int64)  # global row of each step's parent beam
    finished_paths = running_paths.copy()
    top_beams = np.arange(keep) < beams
    scores_seen: list[np.ndarray] = []

    if config.max_new_tokens == 0:
        return GenerateOutput(np.repeat(prompt, returned, axis=0))
    session = model.start_decoding(request.ids, request.mask, max_length, expand=beams, decoder_prompt=prompt)
    try:
        logits = session.prefill()
        cur = width
        while True:
            flat = running.reshape(rows, max_length)
            logprobs = log_softmax(logits)
            if processors.active:
                logprobs = processors(logprobs, flat[:, :cur])
            if record is not None:
                scores_seen.append(logprobs.copy())
            total = (logprobs.reshape(batch, beams, vocab) + running_scores[:, :, None]).reshape(batch, -1)

            # the best `keep` continuations of each prompt
            pick = _top(total, keep)
            top_scores = np.take_along_axis(total, pick, axis=1)
            parent, token = pick // vocab, pick % vocab
            top_seqs = _gather(running, parent)
            top_seqs[:, :, cur] = token
            top_paths = _gather(running_paths, parent)
            top_paths[:, :, cur - width] = parent + np.arange(batch)[:, None] * beams
            ends = np.isin(token, stop_ids) | (cur + 1 >= max_length)

            # the next running beams: the best continuations that did not end
            alive_scores = top_scores + ends.astype(np.float32) * _MASKED
            nxt = _top(alive_scores, beams)
            new_running = _gather(top_seqs, nxt)
            new_running_scores = np.take_along_axis(alive_scores, nxt, axis=1)
            new_running_paths = _gather(top_paths, nxt)

            # finished hypotheses: the ones among the first `beams` continuations that ended
            just_done = ends & top_beams[None, :]
            done_scores = top_scores / np.float32((cur + 1 - width) ** config.length_penalty)
            full = is_finished.all(axis=1, keepdims=True) & (config.early_stopping is True)
            done_scores = done_scores + full.astype(np.float32) * _MASKED
            done_scores = done_scores + (~improvable).astype(np.float32) * _MASKED
            done_scores = done_scores + (~just_done).astype(np.float32) * _MASKED
            merged_scores = np.concatenate([finished_scores, done_scores], axis=1)
            best = _top(merged_scores, beams)
            finished_seqs = _gather(np.concatenate([finished_seqs, top_seqs], axis=1), best)
            finished_scores = np.take_along_axis(merged_scores, best, axis=1)
            finished_paths = _gather(np.concatenate([finished_paths, top_paths], axis=1), best)
            is_finished = np.take_along_axis(np.concatenate([is_finished, just_done], axis=1), best, axis=1)

            running, running_scores, running_paths = new_running, new_running_scores, new_running_paths
            cur += 1
            improvable &= _may_improve(running_scores, finished_scores, is_finished, cur, width, max_length, config)
            open_beams = not (is_finished.all() and config.early_stopping is True)
            if not (improvable.any() and open_beams and not ends.all()):
                break
            source = running_paths[:, :, cur - 1 - width].reshape(rows)
            session.reorder(source)
            logits = session.step(running[:, :, cur - 1].reshape(rows))
    finally:
        session.close()

    sequences = finished_seqs[:, :returned].reshape(batch * returned, max_length)
    paths = finished_paths[:, :returned].reshape(batch * returned, new_tokens)
    generated = int((paths >= 0).sum(axis=1).max())
    result = GenerateOutput(sequences[:, :width + generated].copy())
    if record is not None:
        steps = np.stack(scores_seen, axis=1)  # [rows, steps, vocab], rows as the running beams of each step
        result.scores = steps
        result.sequences_scores = finished_scores[:, :returned].reshape(-1).copy()
        result.token_logprobs = _path_logprobs(steps, paths[:, :generated], result.sequences[:, width:])
    return result


def _may_improve(running_scores, finished_scores, is_finished, cur, width, max_length, config) -> np.ndarray:
    """bool [B, 1]: could the best running beam still beat the worst finished hypothesis of its prompt?"""
    if config.early_stopping == "never" and config.length_penalty > 0.0:
        length = max_length - width
    else:
        length = cur - width
    best_running = running_scores[:, :1] / np.float32(length ** config.length_penalty)
    worst_done = np.where(is_finished, finished_scores.min(axis=1, keepdims=True), _MASKED)
    return (best_running > worst_done).any(axis=1, keepdims=True)


def _path_logprobs(steps: np.ndarray, paths: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """Each returned sequence's token log-probabilities, read along the beam it came from at every step."""
    out = np.zeros(paths.shape, np.float32)
    for t in range(paths.shape[1]):
        alive = paths[:, t] >= 0
        out[alive, t] = steps[paths[alive, t], t, tokens[alive, t]]
    return out
