"""Benchmark session helpers: a ratio table (reference time / cpuformer time) printed after the run.

Each benchmark puts `impl` ("cpuformer", "numpy", "torch", "onnxruntime", ...) and optionally `dtype` ("fp32" by
default, "int8") in extra_info; benchmarks sharing a group are compared, so ratio > 1 means cpuformer is faster.
Peers that run in their own process (bench/peers.py) record their measured per-round times with `peer_result`,
so they sit in the same group and in pytest-benchmark's own table. A second table gives, per group and dtype,
ours vs the best (fastest) peer of that dtype; a cpuformer int8 benchmark (dtype "int8") is compared with the int8 peers; without one the int8 rows show the bar.
"""
from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))


OURS_INT8 = "ours: not yet (issue 10)"


def _median(bench):
    stats = getattr(bench, "stats", None)
    stats = getattr(stats, "stats", stats)  # pytest-benchmark wraps Stats in Metadata
    return getattr(stats, "median", None)


def _dtype(bench):
    return bench.extra_info.get("dtype", "fp32")


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, config):
    session = getattr(config, "_benchmarksession", None)
    if session is None or not session.benchmarks:
        return
    groups: dict[str, list] = {}
    for bench in session.benchmarks:
        if _median(bench):
            groups.setdefault(bench.group or bench.name, []).append(bench)
    rows, best, accuracy = [], [], []
    for group, benches in sorted(groups.items()):
        ours = {_dtype(b): b for b in benches if b.extra_info.get("impl") == "cpuformer"}
        refs = [b for b in benches if b.extra_info.get("impl") != "cpuformer"]
        for b in benches:
            if "cos_min" in b.extra_info:
                accuracy.append((group, b.extra_info.get("impl"), _dtype(b), b.extra_info["cos_min"],
                                 b.extra_info["cos_mean"]))
        for ref in refs:
            mine = _median(ours[_dtype(ref)]) if _dtype(ref) in ours else None
            ref_t = _median(ref)
            rows.append((group, ref.extra_info.get("impl"), _dtype(ref), mine, ref_t, ref_t / mine if mine else None,
                         ref.extra_info.get("rate", "")))
        # bf16 keeps fp32's accuracy (cosine >= 0.9999), so our bf16 is judged against the fp32 peers.
        for dtype in ("fp32", "bf16", "int8"):
            cands = [r for r in refs if _dtype(r) == ("fp32" if dtype == "bf16" else dtype)]
            if not cands or (dtype == "bf16" and dtype not in ours):
                continue
            top = min(cands, key=_median)
            mine = _median(ours[dtype]) if dtype in ours else None
            best.append((group, dtype, top.extra_info.get("impl"), mine, _median(top),
                         _median(top) / mine if mine else None))
    if not rows:
        return
    ms = lambda t: f"{t * 1e3:>10.3f}" if t is not None else f"{'-':>10}"  # noqa: E731
    ratio = lambda r: f"{r:>7.2f}" if r is not None else f"{'-':>7}"  # noqa: E731
    tr = terminalreporter
    tr.section("cpuformer vs reference (median times; ratio = ref / ours, > 1 means cpuformer is faster)")
    tr.write_line(f"{'group':<40} {'reference':<12} {'dtype':<5} {'ours ms':>10} {'ref ms':>10} {'ratio':>7}  rate")
    for group, impl, dtype, ours_t, ref_t, r, rate in rows:
        tr.write_line(f"{group:<40} {impl:<12} {dtype:<5} {ms(ours_t)} {ms(ref_t)} {ratio(r)}  {rate}")
    tr.section("cpuformer vs the best peer per dtype (ratio = best peer / ours, > 1 means cpuformer is faster)")
    tr.write_line(f"{'group':<40} {'dtype':<5} {'best peer':<12} {'ours ms':>10} {'peer ms':>10} {'ratio':>7}")
    for group, dtype, impl, ours_t, ref_t, r in best:
        note = "" if ours_t is not None else f"  {OURS_INT8 if dtype == 'int8' else 'ours: not measured'}"
        tr.write_line(f"{group:<40} {dtype:<5} {impl:<12} {ms(ours_t)} {ms(ref_t)} {ratio(r)}{note}")
    if accuracy:
        tr.section("accuracy: cosine of mean-pooled embeddings vs cpuformer fp32 (peers' int8 = the bar for ours)")
        tr.write_line(f"{'group':<40} {'impl':<12} {'dtype':<5} {'cos min':>8} {'cos mean':>9}")
        for group, impl, dtype, cmin, cmean in accuracy:
            tr.write_line(f"{group:<40} {impl:<12} {dtype:<5} {cmin:>8.4f} {cmean:>9.4f}")


@pytest.fixture
def peer_result(benchmark):
    """record(times, **extra_info): registers per-round seconds measured in a peer's own process as this test's
    benchmark stats (what pytest-benchmark would have measured had the call run here), so the peer shows up in
    pytest-benchmark's table, its JSON and the ratio tables like any in-process reference."""

    def record(times, **extra_info):
        benchmark.extra_info.update(extra_info)
        if benchmark.disabled:  # --benchmark-disable: nothing to record
            return
        benchmark._mode = "external timing (peer subprocess)"
        stats = benchmark._make_stats(1)  # pytest-benchmark has no public API for externally measured rounds
        for t in times:
            stats.update(t)

    return record


@pytest.fixture(scope="session")
def peers(tmp_path_factory):
    """Session cache of peer conversions (ONNX export/optimize/quantize, CTranslate2) and subprocess timings."""
    import cpuformer
    from peers import Peers

    return Peers(tmp_path_factory.mktemp("peers"), cpuformer.get_num_threads())


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
