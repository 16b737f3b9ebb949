"""Runs a reference-building script in its own process, so torch and transformers never load (and never bring
their OpenMP runtime) into the test process. Shared by make_bert_reference.py and make_gpt2_reference.py."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Callable, Mapping

OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def run_reference_script(script: str | os.PathLike, root: Path, cases: tuple[str, ...]) -> Path:
    """Runs `python script root case...` offline and returns root; a failure raises with the script's stderr."""
    proc = subprocess.run([sys.executable, str(script), str(root), *cases], capture_output=True, text=True,
                          env=dict(os.environ, **OFFLINE_ENV))
    if proc.returncode != 0:
        raise RuntimeError(f"{Path(script).name} failed:\n{proc.stderr[-4000:]}")
    return root


def build_cases(argv: list[str], cases: Mapping[str, Callable[[Path], None]]) -> None:
    """The scripts' entry point: argv = [root, case...]; each case writes its files into root/case."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    import torch

    torch.set_num_threads(1)
    root, names = Path(argv[0]), argv[1:]
    for name in names:
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        cases[name](folder)
