"""Peer engines (ONNX Runtime, CTranslate2) measured in subprocesses, converted once per session.

ORT, CTranslate2 and torch each bring their own OpenMP/thread runtime and clash in one process, so every
conversion and every timing runs `peer_worker.py` in a fresh `python` with the same thread count as cpuformer
and no hub access; the worker prints one `PEER_RESULT {json}` line. A missing package or a failed conversion
skips that peer's benchmarks with the reason, never the whole bench.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peer_worker.py")
# (peer, dtype): what each peer needs installed. ORT int8 = dynamic quantization, QInt8 weights per channel;
# CTranslate2 int8 = its own int8 weights (one scale per output row) chosen at load time.
PEERS = [("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("ctranslate2", "fp32"), ("ctranslate2", "int8")]
NEEDS = {"onnxruntime": ("onnxruntime", "onnx", "torch", "transformers"),
         "ctranslate2": ("ctranslate2", "torch", "transformers")}


class PeerError(RuntimeError):
    pass


def missing(peer: str) -> str | None:
    """The reason this peer cannot run here, or None."""
    absent = [m for m in NEEDS[peer] if importlib.util.find_spec(m) is None]
    return f"{peer} peer needs {', '.join(absent)} (pip install '.[bench]')" if absent else None


def run_worker(command: str, env_threads: int, timeout: float = 900, **args) -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS=str(env_threads),
               TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run([sys.executable, WORKER, command, json.dumps(args)], capture_output=True, text=True,
                          env=env, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("PEER_RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise PeerError(f"{command} failed (exit {proc.returncode}):\n{tail}")
    return json.loads(lines[-1][len("PEER_RESULT "):])


class Peers:
    """Session cache of conversions and of subprocess timings; failures are cached too and become skips."""

    def __init__(self, folder, threads: int):
        self.folder, self.threads = str(folder), threads
        self._memo: dict = {}

    def _once(self, key, fn):
        if key not in self._memo:
            try:
                self._memo[key] = ("ok", fn())
            except (PeerError, subprocess.TimeoutExpired) as e:
                self._memo[key] = ("error", str(e))
        status, value = self._memo[key]
        if status == "error":
            pytest.skip(f"{key[0]}: {value}")
        return value

    def convert(self, command: str, model: str) -> dict:
        """e.g. convert("convert_bert_onnx", folder) -> {"fp32": path, "int8": path, ...}; once per session."""
        out = os.path.join(self.folder, command)
        os.makedirs(out, exist_ok=True)
        return self._once((command, model), lambda: run_worker(command, self.threads, model=model, out=out))

    def measure(self, command: str, key, **args) -> dict:
        """A timing run in its own process, once per key per session."""
        return self._once((command, key), lambda: run_worker(command, self.threads, threads=self.threads, **args))


def skip_if_missing(peer: str) -> None:
    reason = missing(peer)
    if reason:
        pytest.skip(reason)
