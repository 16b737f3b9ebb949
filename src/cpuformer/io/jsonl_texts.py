"""Texts from a JSON Lines file: one JSON object per line, the text in a named field (`--column`), streamed.

Lines are read with text_lines' bounded reader; a line past the bound is an error (cut JSON cannot be parsed).
Empty lines are skipped; anything else that is not an object with a string in the column is a ValueError naming
the line.
"""
from __future__ import annotations

import json
from typing import BinaryIO, Iterator

from .text_lines import read_lines

__all__ = ["MAX_JSONL_LINE_BYTES", "read_jsonl_texts"]

MAX_JSONL_LINE_BYTES = 16 << 20


def read_jsonl_texts(stream: BinaryIO, column: str, *, source: str = "<stream>",
                     max_line_bytes: int = MAX_JSONL_LINE_BYTES) -> Iterator[str]:
    """The `column` string of every object, in order."""
    for line in read_lines(stream, source=source, max_line_bytes=max_line_bytes):
        if line.cut:
            raise ValueError(f"{source}: line {line.number} is longer than {max_line_bytes} bytes")
        if not line.text.strip():
            continue
        try:
            row = json.loads(line.text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{source}: line {line.number} is not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{source}: line {line.number} is not a JSON object")
        if column not in row:
            raise ValueError(f"{source}: line {line.number} has no field {column!r} (fields: "
                             f"{', '.join(map(repr, list(row)[:10])) or 'none'}); name the text field with --column")
        text = row[column]
        if not isinstance(text, str):
            raise ValueError(f"{source}: line {line.number}: field {column!r} is {type(text).__name__}, not a string")
        yield text
