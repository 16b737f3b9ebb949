"""Offline checkpoint I/O in pure Python + numpy: safetensors files and Hugging Face folders."""

from .checkpoint import CheckpointError, WeightStore, find_weight_files, read_config, read_json
from .safetensors import (
    BFLOAT16,
    SafetensorsError,
    load_safetensors,
    read_safetensors_metadata,
    save_safetensors,
    to_float32,
)

__all__ = [
    "BFLOAT16",
    "CheckpointError",
    "SafetensorsError",
    "WeightStore",
    "find_weight_files",
    "load_safetensors",
    "read_config",
    "read_json",
    "read_safetensors_metadata",
    "save_safetensors",
    "to_float32",
]
