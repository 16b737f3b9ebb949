"""The `cpuformer` command: embed (arguments, --file, --output, --normalize, --model) and info."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cpuformer
import reference as ref
from cpuformer.cli import main
from cpuformer.sentence_encoder import SentenceEncoder

# The child imports cpuformer from wherever this process did (the source tree in development, site-packages
# in CI), so the command under test is the same build as the in-process reference.
IMPORT_ROOT = str(Path(cpuformer.__file__).resolve().parents[1])
REPO = Path(__file__).resolve().parents[1]
TEXTS = ["A man is eating food.", "A cheetah chases its prey.", "Hello"]


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=IMPORT_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "cpuformer.cli", *args], capture_output=True, text=True,
                          env=env, input=stdin)


@pytest.fixture(scope="module")
def expected(default_model_folder) -> np.ndarray:
    return SentenceEncoder.from_pretrained().encode(TEXTS)  # the default model, found as the CLI finds it


def test_embed_arguments_print_json_lines(expected):
    proc = run_cli("embed", *TEXTS)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["text"] for r in rows] == TEXTS
    ref.assert_close(np.array([r["embedding"] for r in rows]), expected, "cli_vs_in_process")


def test_embed_file_to_npy_with_progress_on_stderr(tmp_path, expected, default_model_folder):
    source = tmp_path / "sentences.txt"
    source.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    out = tmp_path / "emb.npy"
    proc = run_cli("embed", "--file", str(source), "--output", str(out), "--batch-size", "2",
                   "--model", str(default_model_folder), "--normalize")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert "Batches: 2/2" in proc.stderr and f"wrote 3 x 384 embeddings to {out}" in proc.stderr
    ref.assert_close(np.load(out), expected, "cli_vs_in_process")


@pytest.mark.parametrize("dtype", ["int8", "bf16"])
def test_embed_dtype_uses_those_weights(default_model_folder, dtype):
    proc = run_cli("embed", "--dtype", dtype, *TEXTS)
    assert proc.returncode == 0, proc.stderr
    got = np.array([json.loads(line)["embedding"] for line in proc.stdout.splitlines()], np.float32)
    want = SentenceEncoder.from_pretrained(dtype=dtype).encode(TEXTS)
    ref.assert_close(got, want, "cli_vs_in_process")


def test_embed_rejects_an_unknown_dtype(default_model_folder):
    bad = run_cli("embed", "--dtype", "int4", "x")
    assert bad.returncode == 2 and "invalid choice: 'int4'" in bad.stderr


def test_embed_reads_stdin(expected):
    proc = run_cli("embed", "--file", "-", "--no-progress", stdin="\n".join(TEXTS[:2]))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    got = np.array([json.loads(line)["embedding"] for line in proc.stdout.splitlines()])
    ref.assert_close(got, expected[:2], "cli_vs_in_process")


def test_info_shows_config():
    proc = run_cli("info")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("cpuformer ") and "isa:" in proc.stdout and "threads:" in proc.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["embed"], "nothing to embed: pass sentences as arguments or --file PATH"),
        (["embed", "a", "--batch-size", "0"], "--batch-size must be >= 1, got 0"),
        (["embed", "a", "--output", "x.txt"], "--output must name a .npy file, got 'x.txt'"),
        (["embed", "a", "--file", "f.txt"], "give sentences either as arguments or with --file, not both"),
        (["embed", "--file", "/nonexistent/f.txt"], "No such file or directory"),
        (["embed", "a", "--model", "/nonexistent"], "model folder '/nonexistent' does not exist"),
    ],
)
def test_errors_are_one_line_messages(capsys, args, message):
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("cpuformer: error: ") and message in err and "Traceback" not in err


def test_unknown_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["frobnicate"])
    assert exc.value.code == 2 and "invalid choice: 'frobnicate'" in capsys.readouterr().err


def test_entry_point_is_declared():
    assert 'cpuformer = "cpuformer.cli:main"' in (REPO / "pyproject.toml").read_text()
