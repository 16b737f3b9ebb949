"""Lines of text from a byte stream in bounded memory: the CLI's input reader (a file, stdin, /dev/zero).

The stream is read in chunks of `chunk_bytes`; a line keeps at most `max_line_bytes` (the rest, up to its newline,
is read and dropped, so one endless "line" costs no more than the bound). Lines are decoded as UTF-8: invalid bytes
are a ValueError naming the source and the line, never a surrogate that fails later inside a tokenizer.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO, Iterable, Iterator, TypeVar

__all__ = ["DEFAULT_MAX_LINE_BYTES", "TextLine", "batched", "read_lines"]

# A model truncates to a few hundred tokens (a few KB of text); 1 MiB leaves room for text made mostly of what
# tokenizers drop (whitespace, control characters) and bounds what one line can cost.
DEFAULT_MAX_LINE_BYTES = 1 << 20
_CHUNK_BYTES = 1 << 16

T = TypeVar("T")


@dataclass(frozen=True)
class TextLine:
    number: int  # from 1
    text: str  # without its newline (and trailing "\r")
    cut: bool  # True when the line was longer than max_line_bytes and `text` is its beginning


def _decode(raw: bytearray, cut: bool, number: int, source: str) -> TextLine:
    data = bytes(raw)
    if not cut:
        data = data.rstrip(b"\r")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if cut and exc.reason == "unexpected end of data":  # the cut split a character: drop its first bytes
            text = data[:exc.start].decode("utf-8")
        else:
            raise ValueError(f"{source}: line {number} is not valid UTF-8 (byte 0x{data[exc.start]:02x} at byte "
                             f"{exc.start} of the line)") from None
    return TextLine(number, text, cut)


def read_lines(stream: BinaryIO, *, source: str = "<stream>", max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
               chunk_bytes: int = _CHUNK_BYTES) -> Iterator[TextLine]:
    """The lines of a binary stream, in order; the text after the last newline is a line when not empty (so a
    file's final newline does not start an empty line). Memory: one chunk plus one line of at most
    max_line_bytes, whatever the stream holds."""
    if max_line_bytes < 4:
        raise ValueError(f"max_line_bytes must be >= 4 (one UTF-8 character), got {max_line_bytes}")
    number, line, cut = 0, bytearray(), False
    while True:
        chunk = stream.read(chunk_bytes)
        if not chunk:
            break
        start = 0
        while start <= len(chunk):
            newline = chunk.find(b"\n", start)
            end = len(chunk) if newline < 0 else newline
            if not cut:
                room = max_line_bytes - len(line)
                line += chunk[start:min(end, start + room)]
                cut = end - start > room
            if newline < 0:
                break
            number += 1
            yield _decode(line, cut, number, source)
            line, cut, start = bytearray(), False, newline + 1
    if line or cut:
        yield _decode(line, cut, number + 1, source)


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of `size` items (the last one shorter)."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
