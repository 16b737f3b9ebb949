"""One threading scenario of bench_threads.py, measured in a fresh process (numpy's OpenBLAS, torch and a busy
neighbour must start from a known state). Prints one `THREADS_RESULT {json}` line: per-round seconds of the
reference and of cpuformer in that scenario.

usage: python threads_worker.py SCENARIO ROUNDS
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import numpy as np

SENTENCES = [f"sentence number {i} talks about {topic} and a few more words to make it longer" * (1 + i % 3)
             for i, topic in enumerate(["cats", "markets", "rivers", "chess", "music", "the weather", "trains",
                                        "gardens"] * 4)]


def _encoder():
    import cpuformer

    return cpuformer.SentenceEncoder.from_pretrained()


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def encode_after(rounds: int, other: str) -> dict:
    """encode(32 sentences) alone, and right after one 512x512 matmul of numpy (OpenBLAS) or torch each time."""
    encoder = _encoder()
    a = np.random.default_rng(0).standard_normal((512, 512), dtype=np.float32)
    if other == "torch":
        import torch

        ta = torch.from_numpy(a)
        disturb = lambda: torch.matmul(ta, ta)  # noqa: E731
    else:
        disturb = lambda: a @ a  # noqa: E731
    encode = lambda: encoder.encode(SENTENCES, batch_size=32)  # noqa: E731
    encode()
    alone, after = [], []
    for _ in range(rounds):  # interleaved so drift hits both alike
        alone.append(_timed(encode))
        disturb()
        after.append(_timed(encode))
    return {"reference": alone, "cpuformer": after}


def linear_alternating(rounds: int) -> dict:
    """PackedLinear 512x768x3072 and np.matmul of the same shape: alone, then alternated call by call."""
    import cpuformer

    rng = np.random.default_rng(0)
    x = rng.standard_normal((512, 768), dtype=np.float32)
    w = rng.standard_normal((3072, 768), dtype=np.float32)
    wt = np.ascontiguousarray(w.T)
    layer = cpuformer.ops.PackedLinear(w)
    ours = lambda: layer(x)  # noqa: E731
    theirs = lambda: x @ wt  # noqa: E731
    ours(), theirs()
    result = {"ours_alone": [], "numpy_alone": [], "ours_alternating": [], "numpy_alternating": []}
    for _ in range(rounds):
        result["ours_alone"].append(min(_timed(ours) for _ in range(3)))
    for _ in range(rounds):
        result["numpy_alone"].append(min(_timed(theirs) for _ in range(3)))
    for _ in range(rounds):
        result["numpy_alternating"].append(_timed(theirs))
        result["ours_alternating"].append(_timed(ours))
    return result


def busy_neighbour(rounds: int) -> dict:
    """A CPU-bound process pinned to the last CPU; encode with 1 thread (reference) vs 2 threads, interleaved."""
    import cpuformer

    cpus = sorted(os.sched_getaffinity(0))
    code = f"import os; os.sched_setaffinity(0, {{{cpus[-1]}}})\nwhile True: pass"
    hog = subprocess.Popen([sys.executable, "-c", code])
    try:
        time.sleep(0.5)  # let the neighbour start spinning
        encoder = _encoder()
        encode = lambda: encoder.encode(SENTENCES[:8], batch_size=8)  # noqa: E731
        encode()
        one, two = [], []
        for _ in range(rounds):
            with cpuformer.num_threads(1):
                one.append(_timed(encode))
            with cpuformer.num_threads(2):
                two.append(_timed(encode))
        return {"reference": one, "cpuformer": two}
    finally:
        hog.kill()
        hog.wait()


def concurrent_callers(rounds: int) -> dict:
    """4 Python threads encoding at once on one SentenceEncoder vs one caller: seconds per batch of 32."""
    encoder = _encoder()
    encode = lambda: encoder.encode(SENTENCES, batch_size=32)  # noqa: E731
    encode()
    one = [_timed(encode) for _ in range(rounds)]
    per_batch = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        workers = [threading.Thread(target=encode) for _ in range(4)]
        for t in workers:
            t.start()
        for t in workers:
            t.join()
        per_batch.append((time.perf_counter() - t0) / 4)
    return {"reference": one, "cpuformer": per_batch}


SCENARIOS = {
    "encode_after_numpy": lambda r: encode_after(r, "numpy"),
    "encode_after_torch": lambda r: encode_after(r, "torch"),
    "linear_alternating_numpy": linear_alternating,
    "busy_neighbour": busy_neighbour,
    "concurrent_callers": concurrent_callers,
}

if __name__ == "__main__":
    name, rounds = sys.argv[1], int(sys.argv[2])
    print("THREADS_RESULT " + json.dumps(SCENARIOS[name](rounds)))
