"""Bounded, seeded fuzzing of the safetensors reader (issue 16): mutated files give arrays that lie inside the file
or a SafetensorsError (a ValueError), never another exception, a crash or a hang."""
from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from cpuformer.io import CheckpointError, SafetensorsError, WeightStore, load_safetensors, read_safetensors_metadata
from cpuformer.io import save_safetensors
from helpers import HealthCheck, given, settings, st

FUZZ = settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def valid_file(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("valid") / "model.safetensors"
    rng = np.random.default_rng(0)
    save_safetensors(path, {"a": rng.standard_normal((3, 4)).astype(np.float32), "b": np.arange(5, dtype=np.int64),
                            "c": np.zeros((0, 2), np.float16), "d": np.ones(3, np.uint8)}, {"format": "pt"})
    return path.read_bytes()


def check_loads_or_refuses(path, file_size: int) -> None:
    try:
        tensors = load_safetensors(path)
    except SafetensorsError:
        pass
    else:
        for arr in tensors.values():
            assert arr.nbytes <= file_size and not arr.flags.writeable
            np.asarray(arr).tobytes()  # every byte readable: views inside the mapping
    try:
        read_safetensors_metadata(path)
    except SafetensorsError:
        pass


@FUZZ
@given(data=st.data())
def test_byte_mutations(tmp_path_factory, valid_file, data):
    raw = bytearray(valid_file)
    for _ in range(data.draw(st.integers(1, 6))):
        kind = data.draw(st.sampled_from(["flip", "set", "cut", "insert", "delete"]))
        at = data.draw(st.integers(0, max(len(raw) - 1, 0)))
        if kind == "flip" and raw:
            raw[at] ^= 1 << data.draw(st.integers(0, 7))
        elif kind == "set" and raw:
            raw[at] = data.draw(st.sampled_from([0, 0x22, 0x5b, 0x5d, 0x7b, 0x7d, 0x2c, 0x2d, 0x30, 0x39, 0xff]))
        elif kind == "cut":
            del raw[at:]
        elif kind == "insert":
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del raw[at:at + data.draw(st.integers(1, 8))]
    path = tmp_path_factory.mktemp("bytes") / "m.safetensors"
    path.write_bytes(bytes(raw))
    check_loads_or_refuses(path, len(raw))


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                                        max_size=4), max_leaves=12)


@FUZZ
@given(data=st.data())
def test_header_mutations(tmp_path_factory, valid_file, data):
    """Structured: entries with fields replaced by other JSON values, dropped, added; header lengths that lie."""
    n = struct.unpack("<Q", valid_file[:8])[0]
    header = json.loads(valid_file[8:8 + n])
    body = valid_file[8 + n:]
    for _ in range(data.draw(st.integers(1, 4))):
        name = data.draw(st.sampled_from(sorted(header)))
        entry = header[name]
        if isinstance(entry, dict) and entry and data.draw(st.booleans()):
            field = data.draw(st.sampled_from(sorted(entry)))
            choice = data.draw(st.integers(0, 3))
            if choice == 0:
                del entry[field]
            elif choice == 1 and isinstance(entry[field], list) and entry[field]:
                entry[field][data.draw(st.integers(0, len(entry[field]) - 1))] = data.draw(
                    st.integers(-3, 2**64) | JSON_VALUES)
            else:
                entry[field] = data.draw(JSON_VALUES)
        else:
            header[name if data.draw(st.booleans()) else data.draw(st.text(max_size=6))] = data.draw(JSON_VALUES)
    raw = json.dumps(header, allow_nan=True).encode()
    length = len(raw) + data.draw(st.sampled_from([0, 0, 0, -1, 1, 2**40, -len(raw)]))
    path = tmp_path_factory.mktemp("header") / "model.safetensors"
    path.write_bytes(struct.pack("<Q", max(length, 0) % 2**64) + raw + body)
    check_loads_or_refuses(path, path.stat().st_size)
    try:  # through a folder: the same refusal as a CheckpointError
        WeightStore(path.parent)
    except CheckpointError:
        pass
