"""Embeddings as JSON Lines ({"text", "embedding"} per row, as `cpuformer embed` prints them): one file per chunk
of an embed job, and the chunks joined into the final file."""
from __future__ import annotations

import json
import os
import shutil
from typing import Sequence

import numpy as np

__all__ = ["jsonl_lines", "join_jsonl_parts", "write_jsonl_part"]


def jsonl_lines(texts: Sequence[str], vectors: np.ndarray) -> str:
    return "".join(json.dumps({"text": t, "embedding": [float(v) for v in vector]}) + "\n"
                   for t, vector in zip(texts, vectors))


def write_jsonl_part(path: str, texts: Sequence[str], vectors: np.ndarray) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(jsonl_lines(texts, vectors))


def join_jsonl_parts(parts: Sequence[str], output: str, dim: int) -> int:
    """Concatenates the parts into `output` (written next to it, renamed on success); returns the rows."""
    tmp, rows = f"{output}.tmp{os.getpid()}", 0
    try:
        with open(tmp, "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    shutil.copyfileobj(f, out, 1 << 20)
                    f.seek(0)
                    rows += sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 20), b""))
        os.replace(tmp, output)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return rows
