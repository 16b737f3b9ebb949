"""show_config(): what this build runs on, in the spirit of scikit-learn's show_versions()."""
from __future__ import annotations

import platform
import sys

from . import _core
from .dtypes import SUPPORTED_DTYPES


def config() -> dict:
    """The configuration as a dict: version, ISA chosen and available, OpenMP runtime, threads."""
    info = {"version": _core.__version__, "python": sys.version.split()[0], "platform": platform.platform()}
    info.update(_core._config())
    info["weight_dtypes"] = list(SUPPORTED_DTYPES)
    return info


def show_config(file=None) -> None:
    """Print version, CPU, ISA chosen and available, the CPUFORMER_ISA cap, OpenMP runtime and threads."""
    info = config()
    out = file or sys.stdout
    lines = [
        f"cpuformer {info['version']}",
        f"  python:        {info['python']} ({info['platform']})",
        f"  cpu:           {info['cpu'].strip() or 'unknown'}",
        f"  cpu features:  {' '.join(info['cpu_features']) or 'none beyond SSE2'}",
        f"  isa:           {info['isa']} (gemm tile {info['gemm_tile']})",
        f"  isa supported: {', '.join(info['isa_supported'])}",
        f"  isa allowed:   up to {info['isa_max_allowed']}"
        + (f" (CPUFORMER_ISA={info['CPUFORMER_ISA']})" if info["CPUFORMER_ISA"] else ""),
        f"  openmp:        {info['openmp']}",
        f"  threads:       {info['num_threads']} (limit {info['max_num_threads']})"
        + (" - serial: forked after threads had started" if info["forked_serial"] else ""),
        f"  weight dtypes: {', '.join(info['weight_dtypes'])} (int8: "
        + (f"int8 compute from {info['int8_compute_min_rows']} rows on {info['int8_compute']}, weight-only below"
           if info["int8_compute_active"] else
           f"weight-only; int8 compute ({info['int8_compute']}) is off here, CPUFORMER_INT8_COMPUTE="
           f"{info['int8_compute_mode']}") + ")",
        "  bf16 kernel:   "
        + (f"bf16 compute on {info['bf16_compute']} from {info['bf16_compute_min_rows']} rows, weight-only below"
           if info["bf16_compute_active"] else
           f"weight-only (float32 compute on bf16 weights); bf16 compute: {info['bf16_compute']}, "
           f"CPUFORMER_BF16_COMPUTE={info['bf16_compute_mode']}"),
    ]
    if not info["CPUFORMER_ISA_valid"]:
        lines.append(
            f"  warning:       CPUFORMER_ISA={info['CPUFORMER_ISA']!r} is not one of generic, avx2, avx2_vnni, "
            "avx512, avx512_vnni, avx512_bf16; ignored"
        )
    print("\n".join(lines), file=out)
