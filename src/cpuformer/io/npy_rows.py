"""An [N, dim] float32 .npy file written row block by row block, N unknown until the end (the CLI's --output).

The header is written first with room for any N and rewritten with the real N on close; np.load reads the
result like any .npy file. The file is built next to its path and renamed into place on success only.
"""
from __future__ import annotations

import os
import struct
from typing import Any

import numpy as np

__all__ = ["NpyRowWriter", "join_npy_parts", "write_npy_part"]

_MAGIC = b"\x93NUMPY\x01\x00"
_HEADER_BYTES = 128  # magic + version + length + dict: room for 20-digit sizes, a multiple of 64 as numpy wants


def _header(rows: int, dim: int) -> bytes:
    text = f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {dim}), }}"
    pad = _HEADER_BYTES - len(_MAGIC) - 2 - len(text) - 1
    return _MAGIC + struct.pack("<H", _HEADER_BYTES - len(_MAGIC) - 2) + (text + " " * pad + "\n").encode("latin1")


class NpyRowWriter:
    def __init__(self, path: str | os.PathLike, dim: int):
        self.path, self.dim, self.rows = os.fspath(path), dim, 0
        self._tmp = f"{self.path}.tmp{os.getpid()}"
        self._file = open(self._tmp, "wb")
        self._file.write(_header(0, dim))

    def append(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype="<f4")
        if block.ndim != 2 or block.shape[1] != self.dim:
            raise ValueError(f"rows must be [n, {self.dim}], got {block.shape}")
        self._file.write(block.tobytes())
        self.rows += block.shape[0]

    def close(self) -> None:
        """Write the row count and move the file into place."""
        self._file.seek(0)
        self._file.write(_header(self.rows, self.dim))
        self._file.close()
        os.replace(self._tmp, self.path)

    def discard(self) -> None:
        self._file.close()
        if os.path.exists(self._tmp):
            os.remove(self._tmp)

    def __enter__(self) -> "NpyRowWriter":
        return self

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.discard()


def write_npy_part(path: str, texts: Any, vectors: np.ndarray) -> None:
    """One chunk of an embed job: its [n, dim] float32 rows as a .npy file (the texts are not kept)."""
    with open(path, "wb") as f:
        np.save(f, np.ascontiguousarray(vectors, "<f4"))


def join_npy_parts(parts: Any, output: str, dim: int) -> int:
    """Appends the parts' rows into one [N, dim] .npy at `output`, one part in memory at a time; returns N."""
    with NpyRowWriter(output, dim) as writer:
        for part in parts:
            writer.append(np.load(part, mmap_mode="r"))
    return writer.rows
