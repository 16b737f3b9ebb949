"""`cpuformer serve` flags: bad values and missing folders are one-line errors, before any port is opened."""
from __future__ import annotations

import re

import pytest

from cpuformer.cli import main


@pytest.mark.parametrize("args, message", [
    (["--max-queue", "0"], "--max-queue must be an int >= 1, got 0"),
    (["--max-batch-tokens", "-5"], "--max-batch-tokens must be an int >= 1, got -5"),
    (["--max-request-bytes", "0"], "--max-request-bytes must be an int >= 1, got 0"),
    (["--max-sequences", "0"], "--max-sequences must be an int >= 1, got 0"),
    (["--max-wait-ms", "-1"], "--max-wait-ms must be >= 0, got -1.0"),
    (["--port", "70000"], r"--port must be in \[0, 65535\], got 70000"),
    (["--api-key", " "], "--api-key must not be empty"),
    (["--model", "/nonexistent/model/folder"], "model folder '/nonexistent/model/folder' does not exist"),
])
def test_bad_serve_options_are_errors(capsys, args, message):
    assert main(["serve", *args]) == 1
    err = capsys.readouterr().err
    assert err.startswith("cpuformer: error: ")
    assert re.search(message, err), err


def test_a_folder_of_an_unsupported_kind_is_named(tmp_path, capsys):
    (tmp_path / "config.json").write_text('{"architectures": ["T5ForConditionalGeneration"], "model_type": "t5"}')
    assert main(["serve", "--model", str(tmp_path)]) == 1
    assert "architecture 'T5ForConditionalGeneration' is not supported by cpuformer" in capsys.readouterr().err
