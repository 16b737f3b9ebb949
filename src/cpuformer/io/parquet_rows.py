"""Embeddings as Parquet (columns `text`: string, `embedding`: fixed_size_list<float32, dim>), pyarrow: one file
per chunk of an embed job, and the chunks joined into the final file (one row group per chunk)."""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from .parquet_texts import _pyarrow_parquet

__all__ = ["embedding_table", "join_parquet_parts", "write_parquet_part"]


def embedding_table(texts: Sequence[str], vectors: np.ndarray):
    """A pyarrow Table of `texts` and their [n, dim] float32 `vectors`."""
    _pyarrow_parquet()
    import pyarrow as pa

    vectors = np.ascontiguousarray(vectors, np.float32)
    flat = pa.array(vectors.reshape(-1), pa.float32())
    column = pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])
    return pa.table({"text": pa.array(list(texts), pa.string()), "embedding": column})


def write_parquet_part(path: str, texts: Sequence[str], vectors: np.ndarray) -> None:
    _pyarrow_parquet().write_table(embedding_table(texts, vectors), path)


def join_parquet_parts(parts: Sequence[str], output: str, dim: int) -> int:
    """Copies the parts' rows into `output` (written next to it, renamed on success); returns the rows."""
    pq = _pyarrow_parquet()
    tmp, rows = f"{output}.tmp{os.getpid()}", 0
    schema = embedding_table([], np.zeros((0, dim), np.float32)).schema
    try:
        with pq.ParquetWriter(tmp, schema) as writer:
            for part in parts:
                table = pq.read_table(part)
                writer.write_table(table)
                rows += table.num_rows
        os.replace(tmp, output)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return rows
