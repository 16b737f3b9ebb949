"""Shared fixtures: run kernel tests once per ISA this host can execute (Highway's per-target testing)."""
from __future__ import annotations

import pytest

from cpuformer import _core

ALL_ISAS = ("generic", "avx2", "avx512")


def available_isas() -> list[str]:
    allowed = _core._config()["isa_max_allowed"]
    return list(ALL_ISAS[: ALL_ISAS.index(allowed) + 1])


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
