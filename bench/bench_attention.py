"""Fused multi-head attention vs torch.nn.functional.scaled_dot_product_attention, same run, same threads.

Encoder: B=32, T=128, H=12, D=64 with a random right-padding mask (ours reads q/k/v as strided views of one
fused QKV array; torch gets contiguous [B, H, T, D] tensors, its best layout); varlen: the same lengths packed,
against torch on the padded batch. Decode: B=1, one query over a KVCache of Tk in {128, 1024} vs torch over a
contiguous [1, H, Tk, D] cache.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cpuformer import ops

B, T, H, D = 32, 128, 12, 64
HD = H * D
F = torch.nn.functional


def _encoder_inputs():
    rng = np.random.default_rng(0)
    qkv = rng.standard_normal((B, T, 3 * HD), dtype=np.float32)
    lengths = rng.integers(8, T + 1, B)
    mask = (np.arange(T)[None, :] < lengths[:, None]).astype(np.int64)
    return qkv, lengths, mask


def _torch_heads(x, t):
    return torch.from_numpy(np.ascontiguousarray(x)).view(-1, t, H, D).transpose(1, 2).contiguous()


def _rate(benchmark, gflop):
    median = benchmark.stats.stats.median
    benchmark.extra_info["rate"] = f"{gflop / median:.1f} GFLOP/s"
    benchmark.extra_info["gflops"] = gflop / median


ENCODER_GFLOP = 4.0 * B * H * T * T * D / 1e9  # QK^T and PV over the padded batch


def test_encoder_padded_cpuformer(benchmark):
    qkv, _, mask = _encoder_inputs()
    q, k, v = qkv[..., :HD], qkv[..., HD:2 * HD], qkv[..., 2 * HD:]
    out = np.empty((B, T, HD), np.float32)
    benchmark.group = "attention encoder B32 T128 H12 D64 padded"
    benchmark.extra_info["impl"] = "cpuformer"
    benchmark(ops.multi_head_attention, q, k, v, H, mask, out=out)
    _rate(benchmark, ENCODER_GFLOP)


def test_encoder_padded_torch(benchmark):
    qkv, _, mask = _encoder_inputs()
    q, k, v = (_torch_heads(qkv[..., i * HD:(i + 1) * HD], T) for i in range(3))
    attn_mask = torch.from_numpy(mask.astype(bool))[:, None, None, :]
    benchmark.group = "attention encoder B32 T128 H12 D64 padded"
    benchmark.extra_info["impl"] = "torch"
    with torch.inference_mode():
        benchmark(F.scaled_dot_product_attention, q, k, v, attn_mask=attn_mask)
    _rate(benchmark, ENCODER_GFLOP)


def test_encoder_varlen_cpuformer(benchmark):
    qkv, lengths, _ = _encoder_inputs()
    packed = np.concatenate([qkv[b, :n] for b, n in enumerate(lengths)])
    cu = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    q, k, v = packed[:, :HD], packed[:, HD:2 * HD], packed[:, 2 * HD:]
    out = np.empty((len(packed), HD), np.float32)
    benchmark.group = "attention encoder B32 lengths 8..128 varlen vs padded"
    benchmark.extra_info["impl"] = "cpuformer"
    benchmark(ops.multi_head_attention_varlen, q, k, v, cu, H, out=out)
    _rate(benchmark, 4.0 * H * D * float(np.sum(lengths.astype(np.float64) ** 2)) / 1e9)  # useful flops only


def test_encoder_varlen_torch_padded(benchmark):
    qkv, lengths, mask = _encoder_inputs()
    q, k, v = (_torch_heads(qkv[..., i * HD:(i + 1) * HD], T) for i in range(3))
    attn_mask = torch.from_numpy(mask.astype(bool))[:, None, None, :]
    benchmark.group = "attention encoder B32 lengths 8..128 varlen vs padded"
    benchmark.extra_info["impl"] = "torch"
    with torch.inference_mode():
        benchmark(F.scaled_dot_product_attention, q, k, v, attn_mask=attn_mask)
    _rate(benchmark, 4.0 * H * D * float(np.sum(lengths.astype(np.float64) ** 2)) / 1e9)


def _decode_inputs(tk):
    rng = np.random.default_rng(tk)
    return (rng.standard_normal((1, 1, HD), dtype=np.float32), rng.standard_normal((1, tk, HD), dtype=np.float32),
            rng.standard_normal((1, tk, HD), dtype=np.float32))


@pytest.fixture(params=["all", 1], ids=["all-threads", "1-thread"])
def decode_threads(request):
    """Decode is also measured on one thread: on a shared 2-core machine a fork/join can wait a scheduler tick."""
    import cpuformer

    previous, previous_torch = cpuformer.get_num_threads(), torch.get_num_threads()
    threads = previous if request.param == "all" else 1
    cpuformer.set_num_threads(threads)
    torch.set_num_threads(threads)
    yield f"{threads} thread" + ("s" if threads > 1 else "")
    cpuformer.set_num_threads(previous)
    torch.set_num_threads(previous_torch)


@pytest.mark.parametrize("tk", [128, 1024])
def test_decode_cpuformer(benchmark, tk, decode_threads):
    q, k, v = _decode_inputs(tk)
    cache = ops.KVCache(1, 1, H, D, max_len=tk)
    cache.append(0, k, v)
    out = np.empty((1, 1, HD), np.float32)
    benchmark.group = f"attention decode B1 Tq1 Tk{tk} H12 D64, {decode_threads}"
    benchmark.extra_info["impl"] = "cpuformer"
    benchmark(cache.attend, 0, q, None, True, None, out)
    _rate(benchmark, 4.0 * H * tk * D / 1e9)


@pytest.mark.parametrize("tk", [128, 1024])
def test_decode_torch(benchmark, tk, decode_threads):
    q, k, v = _decode_inputs(tk)
    tq, tk_, tv = _torch_heads(q, 1), _torch_heads(k, tk), _torch_heads(v, tk)
    benchmark.group = f"attention decode B1 Tq1 Tk{tk} H12 D64, {decode_threads}"
    benchmark.extra_info["impl"] = "torch"
    with torch.inference_mode():
        benchmark(F.scaled_dot_product_attention, tq, tk_, tv)
    _rate(benchmark, 4.0 * H * tk * D / 1e9)
