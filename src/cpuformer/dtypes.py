"""The weight dtypes a model, an LSTM or a PackedLinear can keep its matrices in, and the one check of a name."""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["SUPPORTED_DTYPES", "check_dtype"]

SUPPORTED_DTYPES = ("float32", "bf16", "int8")
_ALIASES = {"bfloat16": "bf16"}  # torch's name


def check_dtype(dtype: Any) -> str:
    """The weight dtype name for `dtype` ("float32", np.float32, "bf16", "bfloat16", "int8"); ValueError for one
    not implemented."""
    try:
        name = np.dtype(dtype).name if not isinstance(dtype, str) else _ALIASES.get(dtype, dtype)
    except TypeError:
        name = repr(dtype)
    if name not in SUPPORTED_DTYPES:
        raise ValueError(f"dtype {dtype!r} is not supported; supported: {', '.join(SUPPORTED_DTYPES)}")
    return name
