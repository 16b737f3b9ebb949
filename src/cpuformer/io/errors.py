"""The error types of checkpoint I/O (both ValueErrors, so callers catching bad input catch these too)."""
from __future__ import annotations

__all__ = ["CheckpointError"]


class CheckpointError(ValueError):
    """A checkpoint folder or its weights do not match what the model expects."""
