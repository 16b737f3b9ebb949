"""Validation of the padded token batches every model takes, with one set of messages.

Each check raises ValueError saying what was wrong and what was expected; they return int64 arrays.
"""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["check_attention_mask", "check_id_range", "check_input_ids", "check_int_array", "check_packed_ids",
           "check_packed_lengths"]


def check_int_array(value: Any, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """An integer array of exactly `shape` (e.g. token_type_ids next to input_ids), as int64."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must be an integer array, got dtype {arr.dtype}")
    if arr.shape != shape:
        raise ValueError(f"{name} must have the shape of input_ids {shape}, got {arr.shape}")
    return arr.astype(np.int64, copy=False)


def check_input_ids(input_ids: Any) -> np.ndarray:
    """Token ids [batch, seq_len] with batch, seq_len >= 1, as int64."""
    ids = np.asarray(input_ids)
    if ids.dtype.kind not in "iu":
        raise ValueError(f"input_ids must be an integer array, got dtype {ids.dtype}")
    if ids.ndim != 2:
        hint = "; use ids[None] for one sequence" if ids.ndim == 1 else ""
        raise ValueError(f"input_ids must have shape (batch, seq_len), got {ids.shape}{hint}")
    if ids.shape[0] == 0 or ids.shape[1] == 0:
        raise ValueError(f"empty batch: input_ids has shape {ids.shape}")
    return ids.astype(np.int64, copy=False)


def check_attention_mask(attention_mask: Any, shape: tuple[int, ...]) -> np.ndarray:
    """A 0/1 mask (bool, int or float) of the ids' shape with at least one token per row, as int64;
    None means every position is a token."""
    if attention_mask is None:
        return np.ones(shape, np.int64)
    mask = np.asarray(attention_mask)
    if mask.dtype.kind not in "biuf":
        raise ValueError(f"attention_mask must be an integer array of 0/1, got dtype {mask.dtype}")
    if mask.shape != shape:
        raise ValueError(f"attention_mask must have the shape of input_ids {shape}, got {mask.shape}")
    if not np.isin(mask, (0, 1)).all():
        raise ValueError("attention_mask must hold only 0 (padding) and 1 (token)")
    mask = mask.astype(np.int64)
    empty = np.flatnonzero(mask.sum(axis=1) == 0)
    if empty.size:
        raise ValueError(f"sequence {int(empty[0])} has no tokens (its attention_mask row is all 0)")
    return mask


def check_id_range(ids: np.ndarray, limit: int, name: str, what: str) -> None:
    """Every id in [0, limit); the message names the first offender and what the limit is (`what`)."""
    if ids.size and (ids.min() < 0 or ids.max() >= limit):
        bad = ids[(ids < 0) | (ids >= limit)][0]
        raise ValueError(f"{name} holds {int(bad)}, outside [0, {limit}) ({what})")


def check_packed_ids(value: Any, name: str, total_tokens: int, limit: int, what: str) -> np.ndarray:
    """Packed ids ([total_tokens] integers, e.g. a PackedBatch's input ids or token types), each in [0, limit), as
    int64: what a model's public packed forward takes. A negative id would otherwise read a table from its end."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must be an integer array, got dtype {arr.dtype}")
    if arr.shape != (total_tokens,):
        raise ValueError(f"{name} must have shape ({total_tokens},) (the batch's total tokens), got {arr.shape}")
    arr = arr.astype(np.int64, copy=False)
    check_id_range(arr, limit, name, what)
    return arr


def check_packed_lengths(cu_seqlens: Any, max_tokens: int, what: str) -> None:
    """A PackedBatch's cu_seqlens: starts at 0, never decreases, and no sequence is longer than max_tokens (the
    position table)."""
    cu = np.asarray(cu_seqlens)
    if cu.ndim != 1 or cu.size < 1 or cu.dtype.kind not in "iu" or cu[0] != 0 or (np.diff(cu) < 0).any():
        raise ValueError(f"batch.cu_seqlens must be non-decreasing integers from 0, got {cu!r}")
    longest = int(np.diff(cu).max(initial=0))
    if longest > max_tokens:
        raise ValueError(f"sequence length {longest} exceeds {what}; truncate the input")
