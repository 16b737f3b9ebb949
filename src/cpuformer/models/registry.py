"""Architectures register themselves by their config.json "architectures" name; AutoModel picks the class."""
from __future__ import annotations

import os
from typing import Any, Callable, TypeVar

from .base import Checkpoint

__all__ = ["AutoModel", "register_model", "registered_architectures", "supported_model_types"]

_REGISTRY: dict[str, type] = {}
T = TypeVar("T", bound=type)


def register_model(*architectures: str) -> Callable[[T], T]:
    """Class decorator: `@register_model("BertModel")` makes AutoModel load that architecture with the class.
    The class must have `from_checkpoint(checkpoint, dtype=...)` (PretrainedModel provides it)."""
    if not architectures:
        raise ValueError("register_model needs at least one architecture name")

    def register(cls: T) -> T:
        for name in architectures:
            if name in _REGISTRY and _REGISTRY[name] is not cls:
                raise ValueError(f"architecture {name!r} is already registered to {_REGISTRY[name].__name__}")
            _REGISTRY[name] = cls
        return cls

    return register


def registered_architectures() -> list[str]:
    return sorted(_REGISTRY)


def supported_model_types() -> list[str]:
    return sorted({t for cls in _REGISTRY.values() for t in getattr(cls, "model_types", ())})


def _base_model_for(model_type: str | None) -> type | None:
    """The registered bare model (is_base_model) implementing `model_type`, if any."""
    for name in sorted(_REGISTRY):
        cls = _REGISTRY[name]
        if getattr(cls, "is_base_model", False) and model_type in getattr(cls, "model_types", ()):
            return cls
    return None


class AutoModel:
    """`AutoModel.from_pretrained(path)` loads the class registered for config.json["architectures"][0]."""

    @staticmethod
    def model_class(checkpoint: Checkpoint | str | os.PathLike) -> type:
        if not isinstance(checkpoint, Checkpoint):
            checkpoint = Checkpoint.open(checkpoint)
        archs = checkpoint.config.get("architectures")
        if not isinstance(archs, list) or not archs or not all(isinstance(a, str) for a in archs):
            base = _base_model_for(checkpoint.model_type)
            if base is not None:  # no architectures list (older configs): the bare encoder of its model_type
                return base
            raise ValueError(
                f"config.json in {os.fspath(checkpoint.folder)!r} has no 'architectures' list and model_type "
                f"{checkpoint.model_type!r} is not one cpuformer knows ({', '.join(supported_model_types())}); "
                f"load with the model class directly (e.g. BertModel.from_pretrained). Known architectures: "
                f"{', '.join(registered_architectures())}"
            )
        for name in archs:
            if name in _REGISTRY:
                return _REGISTRY[name]
        raise ValueError(
            f"architecture {archs[0]!r} is not supported by cpuformer; supported: "
            f"{', '.join(registered_architectures())}"
        )

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, *, dtype: Any = "float32", mmap: bool = False):
        return cls.from_checkpoint(Checkpoint.open(path), dtype=dtype, mmap=mmap)

    @classmethod
    def from_checkpoint(cls, checkpoint: Checkpoint, *, dtype: Any = "float32", mmap: bool = False):
        """The registered class's model, from a folder already opened (its config.json read once)."""
        return cls.model_class(checkpoint).from_checkpoint(checkpoint, dtype=dtype, mmap=mmap)
