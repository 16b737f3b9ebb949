"""show_config, threads and the CPUFORMER_ISA cap (checked in fresh interpreters: it is read at start-up)."""
from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

import cpuformer
from cpuformer import _core
from conftest import available_isas


def test_show_config_reports_everything():
    buf = io.StringIO()
    cpuformer.show_config(file=buf)
    text = buf.getvalue()
    for needle in [cpuformer.__version__, "isa:", "isa supported:", "openmp:", "threads:", _core._isa(),
                   "weight dtypes: float32, bf16, int8"]:
        assert needle in text


def test_cpu_features_match_proc_cpuinfo():
    """The CPUID + XGETBV reading agrees with the kernel's own flags (an independent reader)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next(line for line in f if line.startswith("flags")).split(":", 1)[1].split()
    except (OSError, StopIteration):
        pytest.skip("no /proc/cpuinfo flags on this system")
    names = ["avx2", "fma", "avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512_vnni", "avx512_bf16", "avx_vnni"]
    assert _core._config()["cpu_features"] == [n for n in names if n in flags]
    buf = io.StringIO()
    cpuformer.show_config(file=buf)
    assert "cpu features:" in buf.getvalue()


def test_thread_count_round_trip():
    before = cpuformer.get_num_threads()
    try:
        cpuformer.set_num_threads(1)
        assert cpuformer.get_num_threads() == 1
    finally:
        cpuformer.set_num_threads(before)
    with pytest.raises(ValueError, match=r"n must be between 1 and \d+ .*got 0"):
        cpuformer.set_num_threads(0)


def _isa_in_subprocess(value: str) -> str:
    env = dict(os.environ, CPUFORMER_ISA=value)
    code = "from cpuformer import _core; print(_core._isa(), _core._config()['CPUFORMER_ISA_valid'])"
    return subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.mark.parametrize("isa", available_isas())
def test_env_caps_isa(isa):
    assert _isa_in_subprocess(isa) == f"{isa} True"


def test_env_above_cpu_is_capped_by_cpu():
    assert _isa_in_subprocess("avx512_bf16").split()[0] == available_isas()[-1]


def test_env_avx512_vnni_caps_below_avx512_bf16():
    assert _isa_in_subprocess("avx512_vnni").split()[0] == [i for i in available_isas() if i != "avx512_bf16"][-1]


def test_env_invalid_is_reported_not_fatal():
    assert _isa_in_subprocess("sse9") == f"{available_isas()[-1]} False"


def test_set_isa_hook_rejects_unknown_and_unavailable():
    with pytest.raises(ValueError,
                       match=r"isa must be 'generic', 'avx2', 'avx2_vnni', 'avx512', 'avx512_vnni' or 'avx512_bf16'; "
                             r"got 'neon'"):
        _core._set_isa("neon")
    for level in ("avx2_vnni", "avx512", "avx512_vnni", "avx512_bf16"):
        if level not in available_isas():
            with pytest.raises(ValueError, match=f"ISA '{level}' is not available here"):
                _core._set_isa(level)
