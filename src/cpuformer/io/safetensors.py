"""Read and write the safetensors format with numpy only (no torch, no `safetensors` package).

Layout: 8-byte little-endian u64 header length N, N bytes of UTF-8 JSON, then the data section.
The JSON maps tensor name -> {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to
the data section) plus an optional "__metadata__" dict of str -> str.

`load_safetensors` memory-maps the file read-only and returns numpy views into it, so loading is
O(header) and F32 weights are never copied. Every header field is checked before any view is made,
because a bad offset in an mmap'd file would otherwise surface as garbage weights, not an error.

numpy has no bfloat16, so BF16 tensors come back with the `BFLOAT16` dtype: a 2-byte structured
dtype whose fields (lo, hi) are the little-endian bytes. Two fields make `astype(float32)` raise
instead of silently turning the raw bits into integers; use `to_float32` to convert.
"""

from __future__ import annotations

import json
import math
import mmap
import os
import re
from typing import Any, Mapping, NamedTuple

import numpy as np

from .paths import open_regular_file

__all__ = [
    "BFLOAT16",
    "SafetensorsError",
    "load_safetensors",
    "read_safetensors_metadata",
    "save_safetensors",
    "to_float32",
]

BFLOAT16 = np.dtype([("lo", "u1"), ("hi", "u1")])

# Explicit little-endian dtypes: the format is little-endian whatever the host is.
_DTYPES: dict[str, np.dtype] = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": BFLOAT16,
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}

_HEADER_LEN_BYTES = 8
# Guard against a corrupt length making us decode gigabytes of "JSON" (the reference reader
# uses the same 100 MB cap).
_MAX_HEADER_BYTES = 100 * 1024 * 1024
_MAX_DIMS = 64  # numpy's limit
# Tensors one file may declare. Each costs ~400 bytes while parsed and as a numpy view, so a 99 MB header of
# 1.5 million one-byte tensors peaked at 1.1 GB; real shards hold a few thousand (a 128-expert MoE layer stack
# ~40K across all shards, a few thousand per shard). Counted in the header text before parsing.
_MAX_TENSORS = 100_000


class SafetensorsError(ValueError):
    """A safetensors file is malformed or uses a feature this reader does not support."""


def _dtype_name(dtype: np.dtype) -> str:
    """Safetensors dtype name for a numpy dtype (byte order ignored)."""
    if dtype == BFLOAT16:
        return "BF16"
    for name, known in _DTYPES.items():
        if name != "BF16" and dtype.kind == known.kind and dtype.itemsize == known.itemsize:
            return name
    raise SafetensorsError(
        f"numpy dtype {dtype} has no supported safetensors dtype; supported: {', '.join(_DTYPES)}"
    )


def _is_int(value: Any) -> bool:
    # bool is an int subclass in Python, but `true` is not a valid size or offset.
    return isinstance(value, int) and not isinstance(value, bool)


class _Entry(NamedTuple):
    """One tensor's header entry, kept compact while the header is parsed: a 100 MB header of small entries
    would take ~25x its size as dicts and lists (2.4 GB), as tuples about a third of that."""

    dtype: str
    shape: tuple
    data_offsets: tuple


_ENTRY_FIELDS = {"dtype", "shape", "data_offsets"}


_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_DTYPE_NAMES = {name: name for name in _DTYPES}  # one shared str per dtype name instead of one per entry


def _object_from_pairs(pairs: list[tuple[str, Any]]) -> Any:
    if (len(pairs) == 3 and {k for k, _ in pairs} == _ENTRY_FIELDS):
        fields = dict(pairs)
        if isinstance(fields["dtype"], str) and isinstance(fields["shape"], list) and isinstance(
                fields["data_offsets"], list):
            dtype = _DTYPE_NAMES.get(fields["dtype"], fields["dtype"])
            return _Entry(dtype, tuple(fields["shape"]), tuple(fields["data_offsets"]))
    # json.loads keeps the last of duplicate keys silently; a duplicated tensor name is corruption.
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise SafetensorsError(f"duplicate key {key!r} in header")
        out[key] = value
    return out


def _parse_header(raw) -> dict[str, Any]:
    """raw: the header bytes (any buffer: a memoryview of the mapping is decoded without a bytes copy)."""
    try:
        text = str(raw, "utf-8")
    except UnicodeDecodeError as exc:
        raise SafetensorsError(f"header is not valid UTF-8 ({exc})") from None
    del raw
    # Every entry has a "data_offsets" key; counting them bounds the tensors before anything is built.
    declared = text.count('"data_offsets"')
    if declared > _MAX_TENSORS:
        raise SafetensorsError(f"header declares {declared} tensors; at most {_MAX_TENSORS} per file are "
                               "supported (split the checkpoint into shards)")
    # JSON arrays are built before anything can check them (a 99 MB shape or metadata list of zeros peaked at 1 GB):
    # outside strings an entry has at most _MAX_DIMS + 5 commas and a metadata pair one.
    commas, strings = text.count(","), 0
    for match in _JSON_STRING.finditer(text):  # counted in place: no copy of the text
        strings += 1
        commas -= text.count(",", match.start(), match.end())
    if commas > (_MAX_DIMS + 5) * (declared + 1) + strings:
        raise SafetensorsError(f"header has {commas} JSON values for {declared} tensors; a shape or metadata list "
                               "this long is not a safetensors header")
    try:
        header = json.loads(text, object_pairs_hook=_object_from_pairs)
    except json.JSONDecodeError as exc:
        raise SafetensorsError(f"header is not valid JSON ({exc})") from None
    except RecursionError:
        raise SafetensorsError("header JSON is nested too deeply") from None
    if not isinstance(header, dict):
        kind = "a tensor entry's fields" if isinstance(header, _Entry) else type(header).__name__
        raise SafetensorsError(f"header must be a JSON object of tensor name -> entry, got {kind}")
    return header


def _check_metadata(metadata: Any) -> dict[str, str]:
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise SafetensorsError("__metadata__ must be a JSON object of string values")
    return metadata


def _check_entry(name: str, entry: Any, data_len: int) -> tuple[np.dtype, tuple[int, ...], int, int]:
    """Validate one header entry; return (dtype, shape, begin, end) with offsets into the data section."""
    if isinstance(entry, _Entry):
        dtype_name, shape, offsets = entry.dtype, list(entry.shape), list(entry.data_offsets)
    elif isinstance(entry, dict):
        for field in ("dtype", "shape", "data_offsets"):
            if field not in entry:
                raise SafetensorsError(f"tensor {name!r}: missing field {field!r}")
        dtype_name, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    else:
        raise SafetensorsError(f"tensor {name!r}: entry must be a JSON object, got {type(entry).__name__}")
    if not isinstance(dtype_name, str) or dtype_name not in _DTYPES:
        raise SafetensorsError(
            f"tensor {name!r}: unknown or unsupported dtype {dtype_name!r}; "
            f"supported: {', '.join(_DTYPES)}"
        )
    dtype = _DTYPES[dtype_name]
    if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
        raise SafetensorsError(f"tensor {name!r}: shape must be a list of non-negative ints, got {shape!r}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) and o >= 0 for o in offsets)):
        raise SafetensorsError(
            f"tensor {name!r}: data_offsets must be [begin, end] non-negative ints, got {offsets!r}"
        )
    begin, end = offsets
    if begin > end:
        raise SafetensorsError(f"tensor {name!r}: data_offsets begin {begin} > end {end}")
    if end > data_len:
        raise SafetensorsError(
            f"tensor {name!r}: data ends at byte {end} but the data section has only {data_len} bytes "
            "(truncated file?)"
        )
    if len(shape) > _MAX_DIMS:
        raise SafetensorsError(f"tensor {name!r}: {len(shape)} dimensions; at most {_MAX_DIMS} are supported")
    # Python ints: no overflow for huge (corrupt) shapes.
    expected = math.prod(shape) * dtype.itemsize
    if end - begin != expected:
        raise SafetensorsError(
            f"tensor {name!r}: {end - begin} bytes in data_offsets but shape {shape} of {dtype_name} "
            f"needs {expected}"
        )
    return dtype, tuple(shape), begin, end


def _check_no_overlap(spans: list[tuple[int, int, str]]) -> None:
    """spans are (begin, end, name). Empty tensors own no bytes, so they may share an offset."""
    prev_end, prev_name = 0, ""
    for begin, end, name in sorted(spans):
        if begin == end:
            continue
        if begin < prev_end:
            raise SafetensorsError(
                f"tensors {prev_name!r} and {name!r} overlap (bytes {begin}..{prev_end} of the data section)"
            )
        prev_end, prev_name = end, name


def _check_file_size(file_size: int) -> None:
    if file_size < _HEADER_LEN_BYTES:
        raise SafetensorsError(f"file is {file_size} bytes, too short for the 8-byte header length")


def _read_header(file_size: int, head: bytes) -> tuple[dict[str, Any], int]:
    """Return (header dict, data section start) from the file's first bytes."""
    _check_file_size(file_size)
    header_len = int.from_bytes(head[:_HEADER_LEN_BYTES], "little")
    if _HEADER_LEN_BYTES + header_len > file_size:
        raise SafetensorsError(
            f"header length {header_len} exceeds the file size ({file_size} bytes); truncated or not safetensors"
        )
    if header_len > _MAX_HEADER_BYTES:
        raise SafetensorsError(f"header length {header_len} exceeds the {_MAX_HEADER_BYTES}-byte limit")
    with memoryview(head) as view, view[_HEADER_LEN_BYTES:_HEADER_LEN_BYTES + header_len] as raw:
        header = _parse_header(raw)  # no bytes copy of a mapped header (the mapping is closed only when unused)
    return header, _HEADER_LEN_BYTES + header_len


def _with_path(path: str | os.PathLike, exc: SafetensorsError) -> SafetensorsError:
    return SafetensorsError(f"{os.fspath(path)}: {exc}")


def load_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Map `path` read-only and return {name: array}. Arrays are views into the mapping (no copy);
    the mapping stays open as long as any array is alive. Raises SafetensorsError naming the problem."""
    with os.fdopen(open_regular_file(path, "safetensors file", SafetensorsError), "rb") as f:
        file_size = os.fstat(f.fileno()).st_size
        try:
            _check_file_size(file_size)  # mmap refuses empty files with a vaguer message
        except SafetensorsError as exc:
            raise _with_path(path, exc) from None
        # ACCESS_READ makes every view read-only, so a model can never scribble on the file.
        buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        header, data_start = _read_header(file_size, buf)
        tensors = _views_from_header(header, buf, data_start, file_size - data_start)
    except SafetensorsError as exc:
        buf.close()
        raise _with_path(path, exc) from None
    return tensors


def _views_from_header(header: dict[str, Any], buf: mmap.mmap, data_start: int, data_len: int) -> dict[str, np.ndarray]:
    if "__metadata__" in header:
        _check_metadata(header["__metadata__"])
    tensors: dict[str, np.ndarray] = {}
    spans = []  # (begin, end, name) of the tensors that own bytes
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        dtype, shape, begin, end = _check_entry(name, entry, data_len)
        if end > begin:
            spans.append((begin, end, name))
        # one array object per tensor, a read-only view of the mapping (ACCESS_READ)
        tensors[name] = np.ndarray(shape, dtype, buffer=buf, offset=data_start + begin)
    _check_no_overlap(spans)
    return tensors


def read_safetensors_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The header's `__metadata__` (empty if absent), without mapping the tensors."""
    with os.fdopen(open_regular_file(path, "safetensors file", SafetensorsError), "rb") as f:
        file_size = os.fstat(f.fileno()).st_size
        head = f.read(_HEADER_LEN_BYTES)
        try:
            if file_size >= _HEADER_LEN_BYTES:
                header_len = int.from_bytes(head, "little")
                if header_len <= min(file_size, _MAX_HEADER_BYTES):
                    head += f.read(header_len)
            header, _ = _read_header(file_size, head)
            return dict(_check_metadata(header.get("__metadata__", {})))
        except SafetensorsError as exc:
            raise _with_path(path, exc) from None


def to_float32(arr: np.ndarray) -> np.ndarray:
    """Convert an F16 / BF16 / F32 / F64 array to float32 (F32 arrays are returned as is)."""
    if arr.dtype == BFLOAT16:
        # bf16 is the top half of an f32: put its 16 bits in the upper half of a u32.
        bits = arr.view("<u2").astype(np.uint32) << 16
        return bits.view(np.float32)
    if arr.dtype.kind != "f":
        raise TypeError(f"to_float32 expects a floating-point array (F16/BF16/F32/F64), got {arr.dtype}")
    if arr.dtype == np.float32:
        return arr
    return arr.astype(np.float32)


def save_safetensors(
    path: str | os.PathLike,
    tensors: Mapping[str, np.ndarray],
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write `tensors` to `path` in safetensors format.

    Tensors are laid out largest itemsize first and the header is padded with spaces to a multiple
    of 8, so every tensor starts aligned to its itemsize in the file (and in an mmap of it).
    The file is written next to `path` and renamed into place: overwriting a file that some
    process has mapped would otherwise truncate its pages under it (SIGBUS)."""
    prepared: list[tuple[str, str, np.ndarray]] = []
    for name, arr in tensors.items():
        if not isinstance(name, str) or name == "__metadata__":
            raise SafetensorsError(f"invalid tensor name {name!r}")
        arr = np.asarray(arr)
        dtype_name = _dtype_name(arr.dtype)
        # C-ordered little-endian bytes; no copy when arr already is (ascontiguousarray would make 0-d arrays 1-d).
        arr = np.asarray(arr, dtype=_DTYPES[dtype_name], order="C")
        prepared.append((name, dtype_name, arr))
    prepared.sort(key=lambda item: (-item[2].dtype.itemsize, item[0]))

    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = _check_metadata(dict(metadata))
    offset = 0
    for name, dtype_name, arr in prepared:
        header[name] = {"dtype": dtype_name, "shape": list(arr.shape), "data_offsets": [offset, offset + arr.nbytes]}
        offset += arr.nbytes
    header_bytes = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    header_bytes += b" " * (-(_HEADER_LEN_BYTES + len(header_bytes)) % 8)

    tmp_path = f"{os.fspath(path)}.tmp{os.getpid()}"
    try:
        with open(tmp_path, "wb") as f:
            f.write(len(header_bytes).to_bytes(_HEADER_LEN_BYTES, "little"))
            f.write(header_bytes)
            for _, _, arr in prepared:
                f.write(arr.reshape(-1).view(np.uint8))
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        raise
