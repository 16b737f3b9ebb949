"""Texts from one string column of a Parquet file, streamed record batch by record batch (pyarrow, the
`parquet` extra). Memory: one row group's column chunk plus one batch, whatever the file's size."""
from __future__ import annotations

import os
from typing import Iterator

__all__ = ["parquet_num_rows", "read_parquet_texts"]


def _pyarrow_parquet():
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ValueError("reading or writing .parquet needs pyarrow: pip install 'cpuformer[parquet]'") from None
    return pq


def _open(path: str | os.PathLike, column: str):
    pq = _pyarrow_parquet()
    import pyarrow as pa

    try:
        file = pq.ParquetFile(path)
    except (pa.ArrowInvalid, pa.ArrowIOError) as exc:
        raise ValueError(f"{os.fspath(path)}: not a readable Parquet file ({exc})") from None
    schema = file.schema_arrow
    if column not in schema.names:
        raise ValueError(f"{os.fspath(path)} has no column {column!r} (columns: "
                         f"{', '.join(map(repr, schema.names[:10]))}); name the text column with --column")
    kind = schema.field(column).type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)):
        raise ValueError(f"{os.fspath(path)}: column {column!r} holds {kind}, not strings")
    return file


def parquet_num_rows(path: str | os.PathLike, column: str) -> int:
    """Rows in the file (from its footer; nothing else is read)."""
    return _open(path, column).metadata.num_rows


def read_parquet_texts(path: str | os.PathLike, column: str, *, batch_rows: int = 4096) -> Iterator[str]:
    """The strings of `column`, in order; a null is a ValueError naming its row."""
    file = _open(path, column)
    row = 0
    for batch in file.iter_batches(batch_size=batch_rows, columns=[column]):
        values = batch.column(0)
        if values.null_count:
            first = next(i for i, v in enumerate(values.is_null().to_pylist()) if v)
            raise ValueError(f"{os.fspath(path)}: column {column!r} is null at row {row + first}")
        yield from values.to_pylist()
        row += len(values)
