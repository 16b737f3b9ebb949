"""Offline checkpoint I/O in pure Python + numpy: safetensors files and Hugging Face folders."""

from .checkpoint import MAX_JSON_BYTES, WeightStore, find_weight_files, read_config, read_folder_json, read_json
from .errors import CheckpointError
from .paths import inside_folder
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
    "MAX_JSON_BYTES",
    "SafetensorsError",
    "WeightStore",
    "find_weight_files",
    "inside_folder",
    "load_safetensors",
    "read_config",
    "read_folder_json",
    "read_json",
    "read_safetensors_metadata",
    "save_safetensors",
    "to_float32",
]
