"""Rotary position embeddings (RoPE) as Llama-family checkpoints define them: the inverse frequencies per
`rope_type` (default, linear, llama3), cos / sin tables computed once per model in float32 the way transformers'
LlamaRotaryEmbedding computes them, and ops.rotary_embedding rotating Q and K in place in the fused QKV output.

config.json spells the parameters two ways: transformers 5's `rope_parameters` ({"rope_type", "rope_theta",
"factor", ...}) and the older `rope_theta` + `rope_scaling` ({"type" or "rope_type", "factor", ...}); both read here.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from . import ops

__all__ = ["RopeParameters", "RotaryEmbedding"]

SUPPORTED_ROPE_TYPES = ("default", "linear", "llama3")


def _number(params: Mapping[str, Any], key: str, what: str) -> float:
    value = params.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{what} needs a positive number {key!r}, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class RopeParameters:
    rope_type: str
    theta: float
    factor: float = 1.0
    low_freq_factor: float = 1.0
    high_freq_factor: float = 1.0
    original_max_position_embeddings: int = 0

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "RopeParameters":
        params = config.get("rope_parameters") or config.get("rope_scaling") or {}
        if not isinstance(params, Mapping):
            raise ValueError(f"rope_scaling / rope_parameters must be an object, got {params!r}")
        rope_type = params.get("rope_type", params.get("type", "default"))
        if rope_type not in SUPPORTED_ROPE_TYPES:
            raise ValueError(f"rope type {rope_type!r} is not supported; supported: {', '.join(SUPPORTED_ROPE_TYPES)}")
        theta = _number({"rope_theta": params.get("rope_theta", config.get("rope_theta", 10000.0))}, "rope_theta",
                        "RoPE")
        if rope_type == "default":
            return cls("default", theta)
        what = f"rope type {rope_type!r}"
        factor = _number(params, "factor", what)
        if rope_type == "linear":
            return cls("linear", theta, factor)
        original = params.get("original_max_position_embeddings", config.get("max_position_embeddings"))
        low, high = _number(params, "low_freq_factor", what), _number(params, "high_freq_factor", what)
        if high == low:
            raise ValueError(f"{what} needs high_freq_factor != low_freq_factor, got {high} for both")
        return cls("llama3", theta, factor, low, high,
                   int(_number({"original_max_position_embeddings": original}, "original_max_position_embeddings",
                               what)))

    def inv_freq(self, head_dim: int) -> np.ndarray:
        """float32 [head_dim / 2], in transformers' float32 arithmetic (modeling_rope_utils)."""
        f32 = np.float32
        exponents = np.arange(0, head_dim, 2).astype(f32) / f32(head_dim)
        inv_freq = f32(1.0) / (f32(self.theta) ** exponents)
        if self.rope_type == "linear":
            inv_freq = inv_freq / f32(self.factor)
        elif self.rope_type == "llama3":
            old = self.original_max_position_embeddings
            low_wavelen, high_wavelen = old / self.low_freq_factor, old / self.high_freq_factor
            wavelen = f32(2 * math.pi) / inv_freq
            scaled = np.where(wavelen > low_wavelen, inv_freq / f32(self.factor), inv_freq)
            smooth = (f32(old) / wavelen - f32(self.low_freq_factor)) / f32(self.high_freq_factor - self.low_freq_factor)
            smoothed = (f32(1) - smooth) * scaled / f32(self.factor) + smooth * scaled
            medium = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)
            inv_freq = np.where(medium, smoothed, scaled)
        return inv_freq.astype(f32)


class RotaryEmbedding:
    """cos / sin tables ([positions, head_dim / 2], float32) grown on demand up to max_positions, shared by every
    layer; `rope(qk, positions)` rotates every head of qk (Q and K side by side) in place."""

    _CHUNK = 1024  # tables grow by at least this many positions (values do not depend on the table's length)

    def __init__(self, params: RopeParameters, head_dim: int, max_positions: int):
        if head_dim % 2:
            raise ValueError(f"rotary embeddings need an even head_dim, got {head_dim}")
        self.params, self.head_dim, self.max_positions = params, head_dim, max_positions
        self.inv_freq = params.inv_freq(head_dim)
        self._lock = threading.Lock()
        self.cos = self.sin = np.empty((0, head_dim // 2), np.float32)

    def tables(self, positions: int) -> tuple[np.ndarray, np.ndarray]:
        """The cos and sin tables covering positions [0, positions)."""
        cos, sin = self.cos, self.sin
        if cos.shape[0] < positions:
            with self._lock:
                if self.cos.shape[0] < positions:
                    n = min(max(positions, 2 * self.cos.shape[0], self._CHUNK), max(self.max_positions, positions))
                    angles = np.arange(n, dtype=np.float32)[:, None] * self.inv_freq[None, :]  # float32, as torch
                    self.cos, self.sin = np.cos(angles), np.sin(angles)
                cos, sin = self.cos, self.sin
        return cos, sin

    def __call__(self, qk: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """Rotate qk ([tokens, heads * head_dim] or [B, T, heads * head_dim], any row stride) in place."""
        positions = np.asarray(positions)
        cos, sin = self.tables(int(positions.max(initial=0)) + 1)
        ops.rotary_embedding(qk, positions, cos, sin, self.head_dim)
        return qk
