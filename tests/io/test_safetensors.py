"""Tests for cpuformer/io/safetensors.py: interop with the reference `safetensors` package (a
test-only dependency), zero-copy mmap loading, BF16 decoding, and every malformed-header error."""

import json
import math
import os
import mmap
import struct

import numpy as np
import pytest

from cpuformer.io import (
    BFLOAT16,
    SafetensorsError,
    load_safetensors,
    read_safetensors_metadata,
    save_safetensors,
    to_float32,
)
from helpers import HealthCheck, given, hnp, settings, st

safetensors = pytest.importorskip("safetensors")
from safetensors import TensorSpec, deserialize, serialize  # noqa: E402
from safetensors.numpy import load_file, save_file  # noqa: E402

# safetensors dtype name -> numpy dtype, for the dtypes numpy has natively (BF16 is tested apart).
NUMPY_DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U8": np.uint8,
    "BOOL": np.bool_,
}


def sample(dtype, shape=(3, 5), seed=0):
    return np.asarray(_sample(dtype, shape, seed))


def _sample(dtype, shape, seed):
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return (rng.standard_normal(shape) * 100).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, shape).astype(bool)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)


def bf16(bits):
    return np.asarray(bits, dtype="<u2").view(BFLOAT16)


def bf16_bits(arr):
    return arr.view("<u2")


def write_raw(path, header, data=b"", header_len=None):
    """A file with an arbitrary header (dict -> JSON, or raw bytes) and data section."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    n = len(raw) if header_len is None else header_len
    path.write_bytes(struct.pack("<Q", n) + raw + data)
    return path


def entry(dtype="F32", shape=(2,), offsets=(0, 8)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


def mmap_base(arr):
    while isinstance(arr, np.ndarray):
        arr = arr.base
    return arr.obj if isinstance(arr, memoryview) else arr


# ---------------------------------------------------------------- interop with the reference package


@pytest.mark.parametrize("name", NUMPY_DTYPES)
def test_reads_file_written_by_reference(tmp_path, name):
    tensors = {"w": sample(NUMPY_DTYPES[name]), "scalar": sample(NUMPY_DTYPES[name], ())}
    save_file(tensors, tmp_path / "m.safetensors")
    loaded = load_safetensors(tmp_path / "m.safetensors")
    assert loaded.keys() == tensors.keys()
    for key, want in tensors.items():
        assert loaded[key].dtype == want.dtype
        assert loaded[key].shape == want.shape
        np.testing.assert_array_equal(loaded[key], want)


@pytest.mark.parametrize("name", NUMPY_DTYPES)
def test_reference_reads_file_written_by_us(tmp_path, name):
    tensors = {"w": sample(NUMPY_DTYPES[name]), "empty": sample(NUMPY_DTYPES[name], (0, 4))}
    save_safetensors(tmp_path / "m.safetensors", tensors)
    loaded = load_file(tmp_path / "m.safetensors")
    for key, want in tensors.items():
        assert loaded[key].dtype == want.dtype
        np.testing.assert_array_equal(loaded[key], want)


def test_bf16_reads_file_written_by_reference(tmp_path):
    bits = np.array([0x3F80, 0xC000, 0x7F80, 0x0001, 0x8000, 0x4049], dtype="<u2")
    spec = TensorSpec(dtype="bfloat16", shape=(2, 3), data_ptr=bits.ctypes.data, data_len=bits.nbytes)
    (tmp_path / "m.safetensors").write_bytes(bytes(serialize({"x": spec}, metadata=None)))
    x = load_safetensors(tmp_path / "m.safetensors")["x"]
    assert x.dtype == BFLOAT16 and x.shape == (2, 3)
    np.testing.assert_array_equal(bf16_bits(x).ravel(), bits)
    np.testing.assert_array_equal(to_float32(x).ravel()[:5], [1.0, -2.0, np.inf, 2.0**-133, -0.0])


def test_bf16_written_by_us_reads_in_reference(tmp_path):
    bits = np.arange(0, 65536, 4099, dtype="<u2").reshape(2, -1)
    save_safetensors(tmp_path / "m.safetensors", {"x": bf16(bits)})
    [(name, info)] = deserialize((tmp_path / "m.safetensors").read_bytes())
    assert name == "x" and info["dtype"] == "BF16" and info["shape"] == [2, bits.shape[1]]
    assert bytes(info["data"]) == bits.tobytes()


def test_metadata_round_trips_both_ways(tmp_path):
    save_file({"a": np.zeros(2, np.float32)}, tmp_path / "ref.safetensors", metadata={"format": "pt"})
    assert read_safetensors_metadata(tmp_path / "ref.safetensors") == {"format": "pt"}
    save_safetensors(tmp_path / "ours.safetensors", {"a": np.zeros(2, np.float32)}, metadata={"k": "v"})
    with safetensors.safe_open(tmp_path / "ours.safetensors", framework="np") as f:
        assert f.metadata() == {"k": "v"}
    assert "__metadata__" not in load_safetensors(tmp_path / "ours.safetensors")
    save_safetensors(tmp_path / "none.safetensors", {})
    assert read_safetensors_metadata(tmp_path / "none.safetensors") == {}


# ---------------------------------------------------------------- mmap behaviour and the writer's layout


def test_f32_is_a_read_only_view_of_the_mapping(tmp_path):
    save_safetensors(tmp_path / "m.safetensors", {"w": sample(np.float32, (4, 8))})
    w = load_safetensors(tmp_path / "m.safetensors")["w"]
    assert isinstance(mmap_base(w), mmap.mmap)
    assert not w.flags.writeable and not w.flags.owndata
    with pytest.raises(ValueError, match="read-only"):
        w[0, 0] = 1.0


def test_writer_aligns_every_tensor_and_pads_header_with_spaces(tmp_path):
    tensors = {"b": sample(np.int8, (3,)), "h": sample(np.float16, (5,)), "d": sample(np.float64, (3,)),
               "f": sample(np.float32, (7,)), "z": sample(np.uint8, (1,))}
    path = tmp_path / "m.safetensors"
    save_safetensors(path, tensors)
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    assert (8 + n) % 8 == 0
    assert raw[8:8 + n].decode().rstrip(" ").endswith("}")
    for name, arr in load_safetensors(path).items():
        assert arr.ctypes.data % arr.itemsize == 0, name
        assert arr.flags.aligned


def test_writer_handles_big_endian_non_contiguous_and_scalars(tmp_path):
    big = np.arange(12, dtype=">f4").reshape(3, 4)
    tensors = {"big": big, "t": np.arange(12, dtype=np.float32).reshape(3, 4).T, "s": np.float64(2.5),
               "empty": np.zeros((2, 0, 3), np.int32)}
    save_safetensors(tmp_path / "m.safetensors", tensors)
    loaded = load_safetensors(tmp_path / "m.safetensors")
    for name, want in tensors.items():
        np.testing.assert_array_equal(loaded[name], want)
        assert loaded[name].shape == np.shape(want)
    np.testing.assert_array_equal(load_file(tmp_path / "m.safetensors")["big"], big)


def test_overwriting_a_mapped_file_keeps_old_views_valid(tmp_path):
    path = tmp_path / "m.safetensors"
    save_safetensors(path, {"w": np.full(1024, 1.0, np.float32)})
    old = load_safetensors(path)["w"]
    save_safetensors(path, {"w": np.full(3, 2.0, np.float32)})
    assert old.sum() == 1024.0
    assert load_safetensors(path)["w"].tolist() == [2.0, 2.0, 2.0]
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


@pytest.mark.parametrize(
    "tensors, message",
    [
        ({"c": np.zeros(2, np.complex64)}, "numpy dtype complex64 has no supported safetensors dtype"),
        ({"u": np.zeros(2, np.uint16)}, "numpy dtype uint16 has no supported safetensors dtype"),
        ({"__metadata__": np.zeros(2, np.float32)}, "invalid tensor name '__metadata__'"),
    ],
)
def test_writer_rejects_what_it_cannot_store(tmp_path, tensors, message):
    with pytest.raises(SafetensorsError, match=message):
        save_safetensors(tmp_path / "m.safetensors", tensors)
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------- to_float32


def decode_bf16_by_formula(bits):
    """Reference decoder from the IEEE fields (sign 1, exponent 8, mantissa 7), no bit reinterpretation."""
    out = []
    for b in bits.tolist():
        sign = -1.0 if b >> 15 else 1.0
        exp, man = (b >> 7) & 0xFF, b & 0x7F
        if exp == 0xFF:
            out.append(sign * math.inf if man == 0 else math.nan)
        elif exp == 0:
            out.append(sign * man / 128 * 2.0**-126)
        else:
            out.append(sign * (1 + man / 128) * 2.0 ** (exp - 127))
    return np.array(out, dtype=np.float64)


def test_bf16_to_float32_matches_formula_for_every_bit_pattern():
    bits = np.arange(65536, dtype=np.uint32).astype("<u2")
    got = to_float32(bf16(bits))
    assert got.dtype == np.float32
    want = decode_bf16_by_formula(bits)
    nan = np.isnan(want)
    np.testing.assert_array_equal(np.isnan(got), nan)
    np.testing.assert_array_equal(got[~nan].astype(np.float64), want[~nan])
    # Signed zeros and NaN payload class survive.
    assert np.signbit(got[0x8000]) and not np.signbit(got[0])
    assert np.isnan(got[0x7FC0]) and np.isnan(got[0xFFC1])


def test_bf16_to_float32_on_strided_views():
    bits = np.arange(40, dtype="<u2").reshape(5, 8) + 0x3F00
    x = bf16(bits)[1:, ::3]
    np.testing.assert_array_equal(to_float32(x), decode_bf16_by_formula(bits[1:, ::3].ravel()).reshape(4, 3))
    assert to_float32(bf16(0x3F80)).shape == ()


def test_bf16_refuses_astype_so_raw_bits_are_never_mistaken_for_values():
    with pytest.raises(TypeError):
        bf16([0x3F80]).astype(np.float32)


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_to_float32_widens_and_narrows_floats(dtype):
    x = sample(dtype)
    got = to_float32(x)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, x.astype(np.float32))


def test_to_float32_returns_f32_unchanged_and_rejects_integers():
    x = sample(np.float32)
    assert to_float32(x) is x
    with pytest.raises(TypeError, match="expects a floating-point array.*int32"):
        to_float32(np.zeros(2, np.int32))


# ---------------------------------------------------------------- malformed files


def test_file_too_short_for_length(tmp_path):
    for size in (0, 7):
        (tmp_path / "m.safetensors").write_bytes(b"\0" * size)
        with pytest.raises(SafetensorsError, match=f"file is {size} bytes, too short"):
            load_safetensors(tmp_path / "m.safetensors")


def test_header_length_beyond_file_size(tmp_path):
    path = write_raw(tmp_path / "m.safetensors", {}, header_len=1000)
    with pytest.raises(SafetensorsError, match=r"header length 1000 exceeds the file size \(10 bytes\)"):
        load_safetensors(path)
    with pytest.raises(SafetensorsError, match="header length 1000 exceeds the file size"):
        read_safetensors_metadata(path)


def test_huge_header_length_is_refused_before_parsing(tmp_path):
    path = tmp_path / "m.safetensors"
    n = 200 * 1024 * 1024
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", n))
        f.truncate(8 + n)  # sparse: costs no disk
    with pytest.raises(SafetensorsError, match=f"header length {n} exceeds the 104857600-byte limit"):
        load_safetensors(path)


_NEAR_CAP = 99 * 1024 * 1024  # a header just under the 100 MB limit


def _write_99_mb_header(path, kind):
    """Headers an attacker can make under the cap: many one-byte tensors (1.5 million), the most tensors allowed
    with long names, one 52-million-dimension shape, a 99 MB metadata string, a 52-million-value metadata list."""
    data = b""
    if kind == "tiny tensors":
        parts, size, i = [], 2, 0
        while size < _NEAR_CAP - 100:
            parts.append(f'"t{i}":{{"dtype":"U8","shape":[1],"data_offsets":[{i},{i + 1}]}}')
            size += len(parts[-1]) + 1
            i += 1
        text, data = "{" + ",".join(parts[:-1]) + "}", bytes(i)
    elif kind == "long names":
        n = 99_000
        width = _NEAR_CAP // n - 60
        text = "{" + ",".join(f'"{i:0{width}d}":{{"dtype":"U8","shape":[1],"data_offsets":[{i},{i + 1}]}}'
                              for i in range(n)) + "}"
        data = bytes(n)
    elif kind == "long shape":
        text = '{"a":{"dtype":"U8","shape":[' + ",".join(["0"] * ((_NEAR_CAP - 100) // 2)) + '],"data_offsets":[0,0]}}'
    elif kind == "metadata string":
        text = '{"__metadata__":{"a":"' + "x" * (_NEAR_CAP - 40) + '"}}'
    else:  # metadata list
        text = '{"__metadata__":{"a":[' + ",".join(["0"] * ((_NEAR_CAP - 40) // 2)) + "]}}"
    raw = text.encode()
    raw += b" " * (_NEAR_CAP - len(raw))
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        f.write(data)


@pytest.mark.parametrize("kind, outcome", [
    ("tiny tensors", "tensors; at most 100000 per file are supported"),
    ("long names", "99000 tensors"),
    ("long shape", "header has 51904464 JSON values for 1 tensors"),
    ("metadata string", "0 tensors"),
    ("metadata list", "header has 51904491 JSON values for 0 tensors"),
])
def test_a_99_mb_header_peaks_below_400_mb(tmp_path, kind, outcome):
    """Issue 16: 1.5 million one-byte tensors in a 99 MB header peaked at +1084 MB (38 s) while parsing, a 99 MB
    shape list at +990 MB. Now the tensors are counted and the JSON values outside strings bounded before json
    parses anything, and the header is decoded from the mapping without a bytes copy (the mapped header pages
    count in RSS too: ~99 MB of the bound)."""
    from rss_probe import run_measuring_peak_rss

    path = tmp_path / "big.safetensors"
    _write_99_mb_header(path, kind)
    result = run_measuring_peak_rss(f"""
from cpuformer.io import load_safetensors
before = peak_rss_mb()
try:
    outcome = f"{{len(load_safetensors({str(path)!r}))}} tensors"
except ValueError as exc:
    outcome = str(exc)
print(peak_rss_mb() - before)
print(outcome)
""")
    path.unlink()
    grown, message = result.split("\n", 1)
    assert outcome in message
    assert float(grown) < 400, f"peak RSS grew by {float(grown):.0f} MB loading a 99 MB header ({kind})"


def test_tensor_count_and_list_length_limits(tmp_path, monkeypatch):
    from cpuformer.io import safetensors as module

    monkeypatch.setattr(module, "_MAX_TENSORS", 2)
    header = {f"t{i}": entry(shape=(0,), offsets=(0, 0)) for i in range(3)}
    with pytest.raises(SafetensorsError, match="header declares 3 tensors; at most 2 per file are supported"):
        load_safetensors(write_raw(tmp_path / "m.safetensors", header))
    header = {"t": entry(shape=(0,) * 64, offsets=(0, 0)), "__metadata__": {"a,b": "c,d,e"}}  # 64 dims is fine
    assert load_safetensors(write_raw(tmp_path / "m.safetensors", header))["t"].shape == (0,) * 64
    with pytest.raises(SafetensorsError, match="header has 200 JSON values for 0 tensors"):
        load_safetensors(write_raw(tmp_path / "m.safetensors", {"__metadata__": {"a": [0] * 201}}))


@pytest.mark.parametrize(
    "header, message",
    [
        (b"\xff\xfe{}", "header is not valid UTF-8"),
        (b"{not json", "header is not valid JSON"),
        (b"", "header is not valid JSON"),
        (b"[1, 2]", "header must be a JSON object of tensor name -> entry, got list"),
        (b'"x"', "header must be a JSON object of tensor name -> entry, got str"),
        (b'{"a": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}, "a": {}}', "duplicate key 'a' in header"),
        (json.dumps({"__metadata__": {"k": 1}}).encode(), "__metadata__ must be a JSON object of string values"),
        (json.dumps({"__metadata__": [1]}).encode(), "__metadata__ must be a JSON object of string values"),
    ],
)
def test_bad_header_json(tmp_path, header, message):
    path = write_raw(tmp_path / "m.safetensors", header)
    with pytest.raises(SafetensorsError, match=message):
        load_safetensors(path)


@pytest.mark.parametrize(
    "tensor, message",
    [
        ([1, 2], "tensor 'w': entry must be a JSON object, got list"),
        ({"dtype": "F32", "shape": [2]}, "tensor 'w': missing field 'data_offsets'"),
        ({"shape": [2], "data_offsets": [0, 8]}, "tensor 'w': missing field 'dtype'"),
        (entry(dtype="F8_E4M3"), "tensor 'w': unknown or unsupported dtype 'F8_E4M3'; supported: F64, F32"),
        (entry(dtype="U16"), "unknown or unsupported dtype 'U16'"),
        (entry(dtype=7), "unknown or unsupported dtype 7"),
        ({**entry(), "shape": "2"}, r"tensor 'w': shape must be a list of non-negative ints, got '2'"),
        ({**entry(), "shape": [2, -1]}, r"shape must be a list of non-negative ints, got \[2, -1\]"),
        ({**entry(), "shape": [2.0]}, r"shape must be a list of non-negative ints, got \[2.0\]"),
        ({**entry(), "shape": [True, 2]}, r"shape must be a list of non-negative ints, got \[True, 2\]"),
        ({**entry(), "shape": None}, "shape must be a list of non-negative ints, got None"),
        ({**entry(), "data_offsets": [0]}, r"tensor 'w': data_offsets must be \[begin, end\] non-negative ints, got \[0\]"),
        ({**entry(), "data_offsets": [0, 4, 8]}, r"data_offsets must be \[begin, end\].*got \[0, 4, 8\]"),
        ({**entry(), "data_offsets": "0:8"}, r"data_offsets must be \[begin, end\].*got '0:8'"),
        ({**entry(), "data_offsets": [0, 8.0]}, r"data_offsets must be \[begin, end\].*got \[0, 8.0\]"),
        ({**entry(), "data_offsets": [-8, 0]}, r"data_offsets must be \[begin, end\].*got \[-8, 0\]"),
        ({**entry(), "data_offsets": [False, 8]}, r"data_offsets must be \[begin, end\].*got \[False, 8\]"),
        (entry(offsets=(8, 0)), "tensor 'w': data_offsets begin 8 > end 0"),
        (entry(offsets=(0, 16)), r"tensor 'w': data ends at byte 16 but the data section has only 8 bytes \(truncated file\?\)"),
        (entry(shape=(3,)), r"tensor 'w': 8 bytes in data_offsets but shape \[3\] of F32 needs 12"),
        (entry(dtype="F64"), r"8 bytes in data_offsets but shape \[2\] of F64 needs 16"),
        (entry(shape=(2**40, 2**40)), r"shape \[1099511627776, 1099511627776\] of F32 needs 4835703278458516698824704"),
    ],
)
def test_bad_tensor_entry(tmp_path, tensor, message):
    path = write_raw(tmp_path / "m.safetensors", {"w": tensor}, data=bytes(8))
    with pytest.raises(SafetensorsError, match=message):
        load_safetensors(path)


def test_truncated_file_from_reference_writer(tmp_path):
    path = tmp_path / "m.safetensors"
    save_file({"a": np.zeros(4, np.float32), "b": np.zeros(4, np.float32)}, path)
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(SafetensorsError, match="data ends at byte 32 but the data section has only 31 bytes"):
        load_safetensors(path)


def test_overlapping_tensors(tmp_path):
    header = {"a": entry(offsets=(0, 8)), "b": entry(offsets=(4, 12)), "c": entry(shape=(0,), offsets=(4, 4))}
    path = write_raw(tmp_path / "m.safetensors", header, data=bytes(12))
    with pytest.raises(SafetensorsError, match=r"tensors 'a' and 'b' overlap \(bytes 4..8 of the data section\)"):
        load_safetensors(path)


def test_empty_tensors_may_share_offsets_and_gaps_are_tolerated(tmp_path):
    header = {"a": entry(offsets=(0, 8)), "e1": entry(shape=(0,), offsets=(4, 4)),
              "e2": entry(shape=(0, 3), offsets=(4, 4)), "b": entry(offsets=(16, 24))}
    path = write_raw(tmp_path / "m.safetensors", header, data=np.arange(6, dtype="<f4").tobytes())
    loaded = load_safetensors(path)
    assert loaded["e2"].shape == (0, 3)
    assert loaded["b"].tolist() == [4.0, 5.0]


def test_error_names_the_file(tmp_path):
    path = write_raw(tmp_path / "broken.safetensors", b"nope")
    with pytest.raises(ValueError, match=r"broken\.safetensors: header is not valid JSON"):
        load_safetensors(path)


# ---------------------------------------------------------------- property tests

DTYPE_NAMES = [*NUMPY_DTYPES, "BF16"]
shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5)


@st.composite
def tensor_dicts(draw):
    names = draw(st.lists(st.text(min_size=1, max_size=12).filter(lambda s: s != "__metadata__"),
                          max_size=5, unique=True))
    out = {}
    for name in names:
        kind = draw(st.sampled_from(DTYPE_NAMES))
        shape = draw(shapes)
        if kind == "BF16":
            out[name] = draw(hnp.arrays(np.uint16, shape)).view(BFLOAT16)
        else:
            out[name] = draw(hnp.arrays(NUMPY_DTYPES[kind], shape))
    return out


def same_tensors(got, want):
    assert got.keys() == want.keys()
    for name, arr in want.items():
        assert got[name].dtype == arr.dtype and got[name].shape == arr.shape, name
        assert got[name].tobytes() == arr.tobytes(), name  # bytewise: NaN payloads and -0.0 too


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tensors=tensor_dicts())
def test_round_trip_random_tensors(tmp_path, tensors):
    path = tmp_path / "m.safetensors"
    save_safetensors(path, tensors)
    same_tensors(load_safetensors(path), tensors)
    # The reference reader sees the same bytes (it has no numpy BF16, so compare raw data).
    ref = {name: info for name, info in deserialize(path.read_bytes())}
    for name, arr in tensors.items():
        assert list(arr.shape) == ref[name]["shape"] and bytes(ref[name]["data"]) == arr.tobytes()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tensors=tensor_dicts())
def test_reads_random_reference_files(tmp_path, tensors):
    plain = {k: v for k, v in tensors.items() if v.dtype != BFLOAT16}
    save_file(plain, tmp_path / "ref.safetensors")
    same_tensors(load_safetensors(tmp_path / "ref.safetensors"), plain)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_corrupted_files_load_or_raise_safetensors_error(tmp_path, data):
    path = tmp_path / "m.safetensors"
    save_safetensors(path, {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.arange(5, dtype=np.int8)})
    raw = bytearray(path.read_bytes())
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    else:
        for _ in range(data.draw(st.integers(1, 4))):
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    path.write_bytes(bytes(raw))
    try:
        loaded = load_safetensors(path)
    except SafetensorsError as exc:
        assert str(exc).startswith(str(path))
    else:
        for arr in loaded.values():  # whatever loaded must be fully readable
            arr.tobytes()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 40) | st.floats(allow_nan=False) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)
entries = st.fixed_dictionaries(
    {},
    optional={"dtype": st.sampled_from(DTYPE_NAMES + ["X"]) | json_values,
              "shape": st.lists(st.integers(-1, 4), max_size=3) | json_values,
              "data_offsets": st.lists(st.integers(-1, 40), min_size=2, max_size=2) | json_values},
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=st.dictionaries(st.text(min_size=1, max_size=3), entries | json_values, max_size=4))
def test_random_headers_load_or_raise_safetensors_error(tmp_path, header):
    path = write_raw(tmp_path / "m.safetensors", header, data=bytes(32))
    try:
        loaded = load_safetensors(path)
    except SafetensorsError:
        return
    for name, arr in loaded.items():
        assert arr.nbytes == header[name]["data_offsets"][1] - header[name]["data_offsets"][0]


# ---------------------------------------------------------------- issue 16: untrusted sizes and odd files


def test_deeply_nested_header_is_a_format_error(tmp_path):
    path = write_raw(tmp_path / "m.safetensors", b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    with pytest.raises(SafetensorsError, match="m.safetensors: header JSON is nested too deeply"):
        load_safetensors(path)
    with pytest.raises(SafetensorsError, match="header JSON is nested too deeply"):
        read_safetensors_metadata(path)


def test_a_fifo_is_refused_without_blocking(tmp_path):
    path = tmp_path / "m.safetensors"
    os.mkfifo(path)  # opening it for reading would wait for a writer forever
    with pytest.raises(SafetensorsError, match="safetensors file .*m.safetensors' is not a regular file"):
        load_safetensors(path)
    with pytest.raises(SafetensorsError, match="is not a regular file"):
        read_safetensors_metadata(path)


def test_a_folder_is_refused(tmp_path):
    (tmp_path / "m.safetensors").mkdir()
    with pytest.raises(SafetensorsError, match="safetensors file .*m.safetensors' is a folder"):
        load_safetensors(tmp_path / "m.safetensors")


def test_too_many_dimensions_is_a_format_error(tmp_path):
    path = write_raw(tmp_path / "m.safetensors", {"t": entry(shape=[1] * 65, offsets=(0, 4))}, data=b"\0" * 4)
    with pytest.raises(SafetensorsError, match="tensor 't': 65 dimensions; at most 64 are supported"):
        load_safetensors(path)


def test_a_large_header_of_tiny_entries_is_parsed_in_bounded_memory(tmp_path):
    """A 5.3 MB header of 90,000 empty tensors (under the 100,000-tensor limit; it was 10 MB of 172,000 before the
    limit): before, dicts per entry and two arrays per tensor took ~25 bytes per header byte (a 99 MB header:
    2.4 GB); now tuples while parsing and one array per tensor."""
    from rss_probe import run_measuring_peak_rss

    path = tmp_path / "many.safetensors"
    one = '"t%09d":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}'
    count = 90_000
    raw = ("{" + ",".join(one % i for i in range(count)) + "}").encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)
    grown = float(run_measuring_peak_rss(f"""
from cpuformer.io import load_safetensors
before = peak_rss_mb()
tensors = load_safetensors({str(path)!r})
assert len(tensors) == {count} and tensors['t000000007'].shape == (0,)
print(peak_rss_mb() - before)
"""))
    assert grown < 150, f"peak RSS grew by {grown:.0f} MB for a 10 MB header"
