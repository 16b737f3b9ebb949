"""cpuformer/io/text_lines.py (the CLI's bounded line reader) and io/npy_rows.py (its streamed .npy output)."""
from __future__ import annotations

import io

import numpy as np
import pytest

from cpuformer.io.npy_rows import NpyRowWriter
from cpuformer.io.text_lines import TextLine, batched, read_lines
from rss_probe import run_measuring_peak_rss


def lines(data: bytes, **options) -> list[TextLine]:
    return list(read_lines(io.BytesIO(data), source="src", **options))


@pytest.mark.parametrize("chunk_bytes", [1, 2, 3, 7, 1 << 16])
def test_lines_are_what_split_gives_whatever_the_chunk_size(chunk_bytes):
    data = "a\n\nbé c\r\n\r\nlast line ünïcode".encode()
    got = lines(data, chunk_bytes=chunk_bytes)
    assert [line.text for line in got] == ["a", "", "bé c", "", "last line ünïcode"]
    assert [line.number for line in got] == [1, 2, 3, 4, 5] and not any(line.cut for line in got)
    assert [line.text for line in lines(b"x\n", chunk_bytes=chunk_bytes)] == ["x"]  # the final newline ends it
    assert lines(b"", chunk_bytes=chunk_bytes) == []


@pytest.mark.parametrize("chunk_bytes", [1, 3, 5, 1 << 16])
def test_long_lines_are_cut_and_the_next_lines_still_read(chunk_bytes):
    text = "é" * 10  # 2 bytes each: a cut at an odd byte splits a character, which is dropped
    got = lines(f"{text}\nshort\n{'z' * 9}".encode(), max_line_bytes=7, chunk_bytes=chunk_bytes)
    assert [(line.text, line.cut) for line in got] == [("ééé", True), ("short", False), ("z" * 7, True)]
    assert [line.number for line in got] == [1, 2, 3]


def test_invalid_utf8_names_the_source_and_line():
    with pytest.raises(ValueError, match=r"src: line 2 is not valid UTF-8 \(byte 0xff at byte 3 of the line\)"):
        lines(b"ok\nabc\xffdef\n")
    with pytest.raises(ValueError, match="max_line_bytes must be >= 4"):
        lines(b"x", max_line_bytes=3)


def test_an_endless_line_costs_no_more_than_the_bound():
    """Like /dev/zero: 1 GB without a newline, then one more line. Before issue 16 the CLI read everything first."""
    out = run_measuring_peak_rss("""
from cpuformer.io.text_lines import read_lines
class Zeros:
    left = 1 << 30
    def read(self, n):
        if self.left <= 0:
            return b"\\nafter\\n" if self.left == 0 and not setattr(self, "left", -1) else b""
        n = min(n, self.left); self.left -= n
        return bytes(n)
before = peak_rss_mb()
got = [(len(l.text), l.cut) for l in read_lines(Zeros(), max_line_bytes=1 << 20)]
print(got, peak_rss_mb() - before)
""")
    got, grown = out.rsplit(" ", 1)
    assert got == "[(1048576, True), (5, False)]"
    assert float(grown) < 30, f"peak RSS grew by {grown} MB reading a 1 GB line"


def test_batched():
    assert list(batched(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(batched([], 3)) == []


def test_npy_rows_load_like_np_save(tmp_path):
    rng = np.random.default_rng(0)
    blocks = [rng.standard_normal((n, 5)).astype(np.float32) for n in (3, 0, 7)]
    with NpyRowWriter(tmp_path / "x.npy", 5) as writer:
        for block in blocks:
            writer.append(block)
    np.testing.assert_array_equal(np.load(tmp_path / "x.npy"), np.concatenate(blocks))
    with pytest.raises(ValueError, match=r"rows must be \[n, 5\], got \(2, 4\)"):
        with NpyRowWriter(tmp_path / "y.npy", 5) as writer:
            writer.append(np.zeros((2, 4)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npy"]  # a failed write leaves nothing behind
