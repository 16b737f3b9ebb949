"""The batching engines without HTTP: EmbeddingBatcher (merging, the token budget, splitting, the queue limit),
GenerationEngine (events, stop strings, cancellation, the queue limit), StopStrings and the metrics text."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from cpuformer.continuous_decoding import ContinuousDecoder
from cpuformer.serve.embedding_batcher import EmbeddingBatcher, QueueFull, TokenizedText
from cpuformer.serve.generation_engine import GenerationEngine
from cpuformer.serve.metrics import Metrics
from cpuformer.serve.stop_strings import StopStrings


def text(*ids: int) -> TokenizedText:
    arr = np.array(ids, np.int64)
    return TokenizedText(arr, np.zeros_like(arr))


class RecordingModel:
    """embed(): each row is [first id, length, batch size]; records every batch's lengths."""

    def __init__(self):
        self.batches: list[list[int]] = []
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, ids, types, lengths):
        self.gate.wait(10)
        self.batches.append(list(lengths))
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        return np.stack([ids[starts], lengths, np.full(len(lengths), len(lengths))], axis=1).astype(np.float32)


def test_queued_requests_merge_into_one_batch_and_get_their_own_rows():
    model = RecordingModel()
    model.gate.clear()  # hold the first batch so the rest queue up behind it
    batcher = EmbeddingBatcher(model, max_batch_tokens=100, max_wait_ms=0, max_queue=10).start()
    try:
        first = batcher.submit([text(1, 1)])
        while batcher.queue_depth:  # the worker took the first request
            threading.Event().wait(0.001)
        futures = [batcher.submit([text(10 + i, 0, 0), text(20 + i)]) for i in range(4)]
        model.gate.set()
        assert first.result(10)[:, 0].tolist() == [1]
        for i, f in enumerate(futures):
            out = f.result(10)
            assert out[:, 0].tolist() == [10 + i, 20 + i] and out[:, 1].tolist() == [3, 1]
        assert model.batches == [[2], [3, 1] * 4]  # the four requests ran as one batch
    finally:
        batcher.stop()


def test_the_token_budget_splits_batches_and_large_requests():
    model = RecordingModel()
    batcher = EmbeddingBatcher(model, max_batch_tokens=5, max_wait_ms=0, max_queue=10).start()
    try:
        out = batcher.submit([text(1, 1, 1), text(2, 2, 2), text(3, 3, 3, 3, 3, 3, 3)]).result(10)
        assert out[:, 0].tolist() == [1, 2, 3]
        assert model.batches == [[3], [3], [7]]  # a sequence over the budget still runs (alone)
    finally:
        batcher.stop()


def test_a_full_queue_raises_queue_full_and_stop_drains():
    model = RecordingModel()
    model.gate.clear()
    metrics = Metrics()
    batcher = EmbeddingBatcher(model, max_batch_tokens=1, max_wait_ms=0, max_queue=1, metrics=metrics).start()
    running = batcher.submit([text(1)])
    while batcher.queue_depth:
        threading.Event().wait(0.001)
    waiting = batcher.submit([text(2)])
    with pytest.raises(QueueFull, match=r"the embedding queue is full \(1 requests waiting\)"):
        batcher.submit([text(3)])
    assert metrics.rejected.value(engine="embeddings") == 1
    model.gate.set()
    batcher.stop()
    assert running.result(1)[0, 0] == 1 and waiting.result(1)[0, 0] == 2
    with pytest.raises(RuntimeError, match="shutting down"):
        batcher.submit([text(4)])


def test_model_errors_reach_each_request_of_the_batch():
    def broken(ids, types, lengths):
        raise ValueError("boom")

    batcher = EmbeddingBatcher(broken, max_batch_tokens=10, max_wait_ms=0, max_queue=4).start()
    try:
        with pytest.raises(ValueError, match="boom"):
            batcher.submit([text(1)]).result(10)
    finally:
        batcher.stop()


@pytest.mark.parametrize("stops, pieces, sent, stopped", [
    (["END"], ["abc E", "N", "Dxyz"], ["abc ", "", ""], True),
    (["END"], ["abc E", "x", "yz"], ["abc ", "Ex", "yz"], False),
    (["\n\n", "##"], ["one\n", "#two", "\n\nthree"], ["one", "\n#two", ""], True),
    ([""], ["a", "b"], ["a", "b"], False),
])
def test_stop_strings_hold_back_possible_starts(stops, pieces, sent, stopped):
    s = StopStrings(stops)
    assert [s.feed(p) for p in pieces] == sent
    assert s.stopped is stopped


def test_stop_strings_flush_what_was_held():
    s = StopStrings(["STOP"])
    assert s.feed("the ST") == "the " and s.flush() == "ST" and s.flush() == ""


@pytest.fixture(scope="module")
def gpt2_model(gpt2):
    return gpt2


def collect(engine, prompt, config, stops=()):
    events, done = [], threading.Event()

    def listener(event):
        events.append(event)
        if event.finish_reason is not None:
            done.set()

    job = engine.submit(np.array(prompt, np.int64), config, list(stops), listener)
    return job, events, done


def test_generation_engine_runs_jobs_together_and_each_equals_generate(gpt2_model):
    model = gpt2_model
    metrics = Metrics()
    engine = GenerationEngine(ContinuousDecoder(model, 2), model.tokenizer, max_queue=4, metrics=metrics).start()
    try:
        config = model.generation_config.replace(max_new_tokens=12)
        runs = [collect(engine, p, config) for p in ([5, 6, 7], [9], [11, 12])]  # 3 jobs, 2 rows: one waits
        for job, events, done in runs:
            assert done.wait(30)
        for (job, events, _), prompt in zip(runs, ([5, 6, 7], [9], [11, 12])):
            tokens = [t for e in events for t in e.token_ids]
            np.testing.assert_array_equal(tokens, model.generate(np.array([prompt]), max_new_tokens=12)[0, len(prompt):])
            assert "".join(e.text for e in events) == model.tokenizer.decode(tokens, skip_special_tokens=True)
            assert events[-1].finish_reason == "length" and events[-1].completion_tokens == 12
        assert metrics.running_sequences.value() == 0
        _, count = metrics.batch_size.sum_and_count(engine="generation")
        assert count > 0
    finally:
        engine.stop()


def test_generation_engine_cancel_and_queue_full(gpt2_model):
    model = gpt2_model
    metrics = Metrics()
    engine = GenerationEngine(ContinuousDecoder(model, 1), model.tokenizer, max_queue=1, metrics=metrics)
    config = model.generation_config.replace(max_new_tokens=1000)
    long_job, long_events, long_done = collect(engine, [1, 2], config)  # not started: it stays queued
    with pytest.raises(QueueFull, match=r"the generation queue is full \(1 requests waiting\)"):
        collect(engine, [3], config)
    engine.start()
    try:
        while not long_events:
            threading.Event().wait(0.001)
        long_job.cancel()
        assert long_done.wait(30)
        assert long_events[-1].finish_reason == "cancelled" and long_events[-1].completion_tokens < 1000
        assert metrics.cancelled.value() == 1
        _, events, done = collect(engine, [3], model.generation_config.replace(max_new_tokens=3))
        assert done.wait(30) and events[-1].completion_tokens == 3  # the freed row serves the next job
    finally:
        engine.stop()


def test_metrics_text_format():
    m = Metrics()
    m.requests.inc(endpoint="/embed", status="200")
    m.batch_size.observe(3, engine="embeddings")
    text = m.render()
    assert 'cpuformer_requests_total{endpoint="/embed",status="200"} 1' in text
    assert 'cpuformer_batch_size_bucket{engine="embeddings",le="2"} 0' in text
    assert 'cpuformer_batch_size_bucket{engine="embeddings",le="4"} 1' in text
    assert 'cpuformer_batch_size_bucket{engine="embeddings",le="+Inf"} 1' in text
    assert 'cpuformer_batch_size_sum{engine="embeddings"} 3' in text
    assert "# TYPE cpuformer_request_latency_seconds histogram" in text
    with pytest.raises(ValueError, match="takes labels"):
        m.requests.inc(endpoint="/embed")
