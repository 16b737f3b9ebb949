"""Servers for the serve tests: the real `cpuformer serve` in a subprocess on a free loopback port (see
server_process.py), one per configuration and module, stopped in teardown. Skipped without the serve extra."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

for module in ("fastapi", "uvicorn", "httpx", "openai"):
    pytest.importorskip(module, reason=f'{module} is not installed (pip install "cpuformer[serve]" httpx openai)')

from server_process import ServerProcess  # noqa: E402


@pytest.fixture(scope="session")
def gpt2_folder(tmp_path_factory):
    from gpt2_folder import write_gpt2_folder

    return write_gpt2_folder(tmp_path_factory.mktemp("gpt2") / "serve_gpt2")  # served as model "serve_gpt2"


@pytest.fixture(scope="module")
def embedding_server(default_model_folder):
    with ServerProcess([]) as server:
        yield server


@pytest.fixture(scope="module")
def gpt2_server(gpt2_folder):
    with ServerProcess(["--model", str(gpt2_folder), "--max-sequences", "4"]) as server:
        yield server


@pytest.fixture(scope="module")
def encoder(default_model_folder):
    from cpuformer import SentenceEncoder

    return SentenceEncoder.from_pretrained(default_model_folder)


@pytest.fixture(scope="module")
def gpt2(gpt2_folder):
    from cpuformer import GPT2LMHeadModel

    return GPT2LMHeadModel.from_pretrained(gpt2_folder)
