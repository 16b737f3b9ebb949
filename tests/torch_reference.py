"""The one way tests run torch / transformers references: a script in its own process, offline, torch on one
thread, so torch's OpenMP runtime never loads into the test process (and never shares it with ours).

Two forms, one runner:
- case folders (the model references): parent `run_reference_script(script, root, cases)` runs
  `python script root case...`; the script ends with `build_cases(sys.argv[1:], CASES)`, and each case writes
  its files (checkpoint, inputs, outputs) into root/case.
- arrays (the op references): parent `run_reference_arrays(script, folder, inputs, params)` writes
  folder/inputs.npz and folder/params.json, runs `python script folder` and returns folder/outputs.npz as a
  dict; the script ends with `serve_arrays(compute)`, where compute(inputs, params) returns the output arrays.

Scripts import this module by name (the parent puts tests/ on the child's PYTHONPATH; to run one by hand:
`PYTHONPATH=tests python tests/ops/make_attention_reference.py FOLDER`). When a module the reference needs is
not installed, the parent skips the calling test or fixture with a reason that names the module.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
TESTS_DIR = Path(__file__).resolve().parent
TIMEOUT_S = 1800  # the BERT-base and GPT-2 cases take a minute or two on a loaded 2-core machine


def _skip(reason: str) -> None:
    import pytest

    pytest.skip(reason)


def require(*modules: str, purpose: str = "the torch reference") -> None:
    """Skips the calling test / fixture unless every module can be imported here (found, not imported)."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        _skip(f"{', '.join(missing)} not installed (pip install cpuformer[test]): needed by {purpose}")


# ---- parent side ---------------------------------------------------------------------------------------------

def run_reference_script(script: str | os.PathLike, root: Path, cases: tuple[str, ...] = (), *,
                         requires: tuple[str, ...] = ("torch",)) -> Path:
    """Runs `python script root case...` in its own process, offline, and returns root. A missing module (in
    `requires`, or a ModuleNotFoundError from the script for a module not installed) skips; any other failure
    raises with the script's stderr."""
    name = Path(script).name
    require(*requires, purpose=name)
    env = dict(os.environ, **OFFLINE_ENV)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(TESTS_DIR), os.environ.get("PYTHONPATH")) if p)
    proc = subprocess.run([sys.executable, str(script), str(root), *cases], capture_output=True, text=True,
                          env=env, timeout=TIMEOUT_S)
    if proc.returncode != 0:
        missing = re.search(r"ModuleNotFoundError: No module named '([\w.]+)'", proc.stderr)
        if missing:
            require(missing.group(1).split(".")[0], purpose=name)
        raise RuntimeError(f"{name} failed:\n{proc.stderr[-4000:]}")
    return root


def run_reference_arrays(script: str | os.PathLike, folder: Path, inputs: Mapping[str, np.ndarray] | None = None,
                         params: Any = None, *, requires: tuple[str, ...] = ("torch",)) -> dict[str, np.ndarray]:
    """Writes inputs (.npz) and params (JSON) into folder, runs `python script folder` as run_reference_script
    does, and returns the arrays the script's compute function produced."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "inputs.npz", **dict(inputs or {}))
    (folder / "params.json").write_text(json.dumps(params))
    run_reference_script(script, folder, requires=requires)
    with np.load(folder / "outputs.npz") as data:
        return {key: data[key] for key in data.files}


# ---- child side ----------------------------------------------------------------------------------------------

def _start_child():
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    import torch

    torch.set_num_threads(1)
    return torch


def build_cases(argv: list[str], cases: Mapping[str, Callable[[Path], None]]) -> None:
    """Entry point of a case-folder script: argv = [root, case...]; each case writes its files into root/case."""
    _start_child()
    root, names = Path(argv[0]), argv[1:]
    for name in names:
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        cases[name](folder)


def serve_arrays(compute: Callable[[dict[str, np.ndarray], Any], Mapping[str, np.ndarray]],
                 argv: list[str] | None = None) -> None:
    """Entry point of an arrays script: argv = [folder]; saves compute(inputs, params) as folder/outputs.npz."""
    _start_child()
    folder = Path((sys.argv[1:] if argv is None else argv)[0])
    with np.load(folder / "inputs.npz") as data:
        inputs = {key: data[key] for key in data.files}
    params = json.loads((folder / "params.json").read_text())
    outputs = {key: np.asarray(value) for key, value in compute(inputs, params).items()}
    np.savez(folder / "outputs.npz", **outputs)
