"""Speed inside a real process (issue 11): cpuformer right after numpy or torch work, alternated with numpy call
by call, next to a busy neighbour process, and called from 4 Python threads at once. Each scenario runs in its own
process (bench/threads_worker.py) with 2 threads; the reference is cpuformer itself measured in the same run
without the disturbance, so the ratio is the speed that holds (target in the group name).

run: pytest bench/bench_threads.py   (ratio > 1 would mean faster than the reference)
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "threads_worker.py")
ROUNDS = 15
_cache: dict[str, dict] = {}


def scenario(name: str) -> dict:
    if name not in _cache:
        if name == "encode_after_torch":
            pytest.importorskip("torch", reason="torch not installed (pip install '.[bench]')")
        env = dict(os.environ, OMP_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2", TOKENIZERS_PARALLELISM="false")
        proc = subprocess.run([sys.executable, WORKER, name, str(ROUNDS)], capture_output=True, text=True, env=env,
                              timeout=900)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("THREADS_RESULT ")]
        if proc.returncode != 0 or not lines:
            pytest.fail(f"{name} worker failed:\n{proc.stderr[-2000:]}")
        _cache[name] = json.loads(lines[-1].split(" ", 1)[1])
    return _cache[name]


GROUPS = {
    # scenario: (group name with the target, reference label)
    "encode_after_numpy": ("encode 32 after numpy matmul (>= 0.85x alone)", "alone"),
    "encode_after_torch": ("encode 32 after torch matmul (>= 0.95x alone)", "alone"),
    "busy_neighbour": ("encode 8 beside a busy process: 2 threads vs 1 (>= 0.95x)", "1 thread"),
    "concurrent_callers": ("encode 32 per caller, 4 callers vs 1 (>= 0.95x)", "1 caller"),
}


@pytest.mark.parametrize("name", list(GROUPS))
@pytest.mark.parametrize("side", ["reference", "cpuformer"])
def test_scenario(peer_result, benchmark, name, side):
    group, label = GROUPS[name]
    benchmark.group = group
    peer_result(scenario(name)[side], impl="cpuformer" if side == "cpuformer" else label)


@pytest.mark.parametrize("phase", ["alone", "alternating"])
@pytest.mark.parametrize("side", ["numpy", "cpuformer"])
def test_linear_alternating_numpy(peer_result, benchmark, phase, side):
    benchmark.group = f"PackedLinear 512x768x3072 vs np.matmul, {phase} (alternating >= 0.9x alone ratio)"
    key = ("ours" if side == "cpuformer" else "numpy") + "_" + phase
    peer_result(scenario("linear_alternating_numpy")[key], impl=side)
