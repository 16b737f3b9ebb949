"""Benchmark session helpers: a ratio table (reference time / cpuformer time) printed after the run.

Each benchmark puts `impl` ("cpuformer", "numpy", "torch", ...) in extra_info; benchmarks sharing a group are
compared, so ratio > 1 means cpuformer is faster than that reference.
"""
from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))


def _median(bench):
    stats = getattr(bench, "stats", None)
    stats = getattr(stats, "stats", stats)  # pytest-benchmark wraps Stats in Metadata
    return getattr(stats, "median", None)


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, config):
    session = getattr(config, "_benchmarksession", None)
    if session is None or not session.benchmarks:
        return
    groups: dict[str, list] = {}
    for bench in session.benchmarks:
        if _median(bench):
            groups.setdefault(bench.group or bench.name, []).append(bench)
    rows = []
    for group, benches in sorted(groups.items()):
        ours = [b for b in benches if b.extra_info.get("impl") == "cpuformer"]
        if not ours:
            continue
        ours_t = _median(ours[0])
        for ref in benches:
            impl = ref.extra_info.get("impl")
            if impl == "cpuformer":
                continue
            rate = ours[0].extra_info.get("rate")
            rows.append((group, impl, ours_t * 1e3, _median(ref) * 1e3, _median(ref) / ours_t, rate))
    if not rows:
        return
    tr = terminalreporter
    tr.section("cpuformer vs reference (median times; ratio > 1 means cpuformer is faster)")
    tr.write_line(f"{'group':<44} {'reference':<13} {'ours ms':>10} {'ref ms':>10} {'ratio':>7}  ours")
    for group, impl, ours_ms, ref_ms, ratio, rate in rows:
        tr.write_line(f"{group:<44} {impl:<13} {ours_ms:>10.3f} {ref_ms:>10.3f} {ratio:>7.2f}  {rate or ''}")


@pytest.fixture(scope="session", autouse=True)
def _same_threads_everywhere():
    """Give every library the same thread count so ratios compare kernels, not core counts."""
    import cpuformer

    threads = cpuformer.get_num_threads()
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass
    yield
