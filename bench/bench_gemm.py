"""PackedLinear vs numpy matmul (OpenBLAS) on transformer shapes, in the same run.

Targets: >= 0.95x numpy on the large shapes, >= 1.2x at M = 1 and M = 8 (packed weights, no per-call work).
The "linear int8" groups put PackedLinear(dtype="int8") (weight-only int8) against our float32 and numpy at the
decode sizes, where reading the weight bounds the time: "rate" adds the weight bytes read per second.
"""
from __future__ import annotations

import numpy as np
import pytest

from cpuformer import ops

M_VALUES = [1, 8, 128, 4096]
KN_VALUES = [(384, 1536), (768, 768), (768, 3072), (3072, 768)]


def _cases():
    for m in M_VALUES:
        for k, n in KN_VALUES:
            yield pytest.param(m, k, n, id=f"M{m}-K{k}-N{n}")


def _record(benchmark, impl, m, k, n):
    gflop = 2.0 * m * k * n / 1e9
    benchmark.extra_info.update(impl=impl, m=m, k=k, n=n)
    return gflop


def _gflops(benchmark, gflop, weight_bytes=None):
    median = benchmark.stats.stats.median
    rate = f"{gflop / median:.1f} GFLOP/s"
    benchmark.extra_info["gflops"] = gflop / median
    if weight_bytes is not None:  # effective weight bandwidth: the packed weight is read once per call
        benchmark.extra_info["weight_gbs"] = weight_bytes / median / 1e9
        rate += f", weights {weight_bytes / median / 1e9:.1f} GB/s"
    benchmark.extra_info["rate"] = rate


@pytest.mark.parametrize("m,k,n", _cases())
def test_linear_cpuformer(benchmark, m, k, n):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((m, k), dtype=np.float32)
    lin = ops.PackedLinear(rng.standard_normal((n, k), dtype=np.float32))
    out = np.empty((m, n), np.float32)
    benchmark.group = f"linear M{m} K{k} N{n}"
    gflop = _record(benchmark, "cpuformer", m, k, n)
    benchmark(lin, x, out=out)
    _gflops(benchmark, gflop)


@pytest.mark.parametrize("m,k,n", _cases())
def test_linear_numpy(benchmark, m, k, n):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((m, k), dtype=np.float32)
    w_t = np.ascontiguousarray(rng.standard_normal((n, k), dtype=np.float32).T)  # numpy's best layout
    out = np.empty((m, n), np.float32)
    benchmark.group = f"linear M{m} K{k} N{n}"
    gflop = _record(benchmark, "numpy", m, k, n)
    benchmark(np.matmul, x, w_t, out=out)
    _gflops(benchmark, gflop)


INT8_CASES = [pytest.param(m, k, n, id=f"M{m}-K{k}-N{n}") for m in (1, 8) for k, n in ((768, 3072), (3072, 768))]


@pytest.mark.parametrize("impl", ["cpuformer", "cpuformer-fp32", "numpy"])
@pytest.mark.parametrize("m,k,n", INT8_CASES)
def test_linear_int8(benchmark, m, k, n, impl):
    # "cpuformer" is the int8 layer (1 byte per weight), the references read 4 bytes per weight.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((m, k), dtype=np.float32)
    w = rng.standard_normal((n, k), dtype=np.float32)
    out = np.empty((m, n), np.float32)
    benchmark.group = f"linear int8 M{m} K{k} N{n}"
    gflop = _record(benchmark, impl, m, k, n)
    if impl == "numpy":
        w_t = np.ascontiguousarray(w.T)
        benchmark(np.matmul, x, w_t, out=out)
    else:
        int8 = impl == "cpuformer"
        lin = ops.PackedLinear(w, dtype="int8" if int8 else "float32")
        benchmark(lin, x, out=out)
    _gflops(benchmark, gflop, weight_bytes=k * n * (1 if impl == "cpuformer" else 4))
