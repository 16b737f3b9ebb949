"""The input of `cpuformer embed --input`: texts from .txt (one per line), .jsonl or .parquet (a named column),
streamed in order whatever the file's size, with what identifies the file for `--resume` (path, size, mtime)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

from .jsonl_texts import read_jsonl_texts
from .parquet_texts import parquet_num_rows, read_parquet_texts
from .paths import check_regular_file
from .text_lines import DEFAULT_MAX_LINE_BYTES, read_lines

__all__ = ["INPUT_FORMATS", "TextSource", "file_format", "open_text_source"]

INPUT_FORMATS = (".txt", ".jsonl", ".parquet")
_COUNT_BYTES = 1 << 20


def file_format(path: str, formats: tuple[str, ...], what: str) -> str:
    """The extension of `path` among `formats` (".npy", ...), else a ValueError naming the accepted ones."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in formats:
        raise ValueError(f"{what} {path!r}: unknown extension {ext or '(none)'!r}; use one of {', '.join(formats)}")
    return ext


@dataclass(frozen=True)
class TextSource:
    path: str
    format: str  # ".txt", ".jsonl" or ".parquet"
    column: Optional[str]  # the text field of .jsonl / .parquet rows

    def texts(self, warn: Callable[[str], None] = lambda message: None) -> Iterator[str]:
        """Every text in order. .txt: every line is a text (a line past 1 MiB is cut there, and `warn` told)."""
        if self.format == ".parquet":
            yield from read_parquet_texts(self.path, self.column)
            return
        with open(self.path, "rb") as f:
            if self.format == ".jsonl":
                yield from read_jsonl_texts(f, self.column, source=self.path)
                return
            for line in read_lines(f, source=self.path):
                if line.cut:
                    warn(f"line {line.number} of {self.path} is longer than {DEFAULT_MAX_LINE_BYTES} bytes; "
                         "embedding its beginning")
                yield line.text

    def count(self) -> int:
        """How many texts (parquet: from the footer; .txt: lines; .jsonl: lines, blank ones included)."""
        if self.format == ".parquet":
            return parquet_num_rows(self.path, self.column)
        lines, last = 0, b"\n"
        with open(self.path, "rb") as f:
            while block := f.read(_COUNT_BYTES):
                lines += block.count(b"\n")
                last = block[-1:]
        return lines + (last != b"\n")

    def fingerprint(self) -> dict:
        """What --resume compares: the same path, size and modification time means the same input."""
        st = os.stat(self.path)
        return {"input": os.path.abspath(self.path), "input_bytes": st.st_size, "input_mtime_ns": st.st_mtime_ns,
                "column": self.column}


def open_text_source(path: str, column: Optional[str] = None) -> TextSource:
    """A TextSource for `path`, checked: a known extension, a regular file, a column only where rows have fields
    (default "text"), and for .parquet that column exists and holds strings."""
    ext = file_format(path, INPUT_FORMATS, "--input")
    check_regular_file(path, "--input file", error=ValueError)
    if ext == ".txt":
        if column is not None:
            raise ValueError("--column names a field of .jsonl or .parquet rows; a .txt input has one text per line")
        return TextSource(path, ext, None)
    source = TextSource(path, ext, column or "text")
    # check the column now (a .jsonl: in the first row), not after the model has loaded
    if ext == ".parquet":
        parquet_num_rows(path, source.column)
    else:
        next(iter(source.texts()), None)
    return source
