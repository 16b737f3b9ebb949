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


def test_embed_file_to_npy_with_progress_on_stderr_when_asked(tmp_path, expected, default_model_folder):
    source = tmp_path / "sentences.txt"
    source.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    out = tmp_path / "emb.npy"
    proc = run_cli("embed", "--file", str(source), "--output", str(out), "--batch-size", "2",
                   "--model", str(default_model_folder), "--normalize", "--progress")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert "Embedded: 3 sentences [" in proc.stderr and "sentences/s]" in proc.stderr  # tqdm: count and rate
    assert f"wrote 3 x 384 embeddings to {out}" in proc.stderr
    ref.assert_close(np.load(out), expected, "cli_vs_in_process")
    # stderr is not a terminal (a log file, a pipe): no bar unless asked, so no carriage returns in logs
    quiet = run_cli("embed", "--file", str(source), "--output", str(out), "--model", str(default_model_folder),
                    "--normalize")
    assert quiet.returncode == 0 and quiet.stderr == f"wrote 3 x 384 embeddings to {out}\n"
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


def test_embed_streams_many_lines_in_order(tmp_path, default_model_folder):
    """More lines than one block (16 batches): rows still follow the lines."""
    texts = [f"sentence {i} about {'cats' if i % 3 else 'the weather today in a long sentence'}" for i in range(70)]
    source = tmp_path / "many.txt"
    source.write_text("\n".join(texts), encoding="utf-8")
    proc = run_cli("embed", "--file", str(source), "--batch-size", "4", "--output", str(tmp_path / "e.npy"))
    assert proc.returncode == 0, proc.stderr
    want = SentenceEncoder.from_pretrained(default_model_folder).encode(texts)
    ref.assert_close(np.load(tmp_path / "e.npy"), want, "cli_vs_in_process")


def test_non_utf8_stdin_is_a_one_line_error():
    """Before issue 16: a TypeError traceback from inside the tokenizer."""
    env = dict(os.environ, PYTHONPATH=IMPORT_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "cpuformer.cli", "embed", "--file", "-"], capture_output=True,
                          env=env, input=b"fine\nhello \xff\xfe world\n")
    err = proc.stderr.decode()
    assert proc.returncode == 1 and "Traceback" not in err
    assert err == "cpuformer: error: stdin: line 2 is not valid UTF-8 (byte 0xff at byte 6 of the line)\n"


def test_a_huge_line_is_cut_and_memory_stays_bounded(tmp_path, default_model_folder):
    """300 MB of NUL bytes without a newline (what --file /dev/zero gives, but finite), then one more line. Before
    issue 16 the whole input was read and tokenized first (5.9 GB and a MemoryError for /dev/zero)."""
    from rss_probe import run_measuring_peak_rss

    source = tmp_path / "zeros.txt"
    with open(source, "wb") as f:
        f.truncate(300 * 1024 * 1024)  # sparse: no disk used
    with open(source, "ab") as f:
        f.write(b"\nhello\n")
    out = tmp_path / "e.npy"
    result = run_measuring_peak_rss(f"""
import contextlib, io, sys
from cpuformer.cli import main
err = io.StringIO()
with contextlib.redirect_stderr(err):
    rc = main(["embed", "--file", {str(source)!r}, "--output", {str(out)!r}, "--no-progress",
               "--model", {str(default_model_folder)!r}])
print(rc, peak_rss_mb(), repr(err.getvalue()))
""")
    rc, peak, err = result.split(" ", 2)
    assert rc == "0"
    assert "line 1 is longer than 1048576 bytes; embedding its beginning" in err
    rows = np.load(out)
    assert rows.shape == (2, 384)
    encoder = SentenceEncoder.from_pretrained(default_model_folder)
    ref.assert_close(rows, encoder.encode(["\0" * (1 << 20), "hello"]), "cli_vs_in_process")
    assert float(peak) < 700, f"peak RSS {float(peak):.0f} MB"


def test_bad_model_folders_are_one_line_errors(tmp_path, capsys, default_model_folder):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(default_model_folder, model)
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps(config).replace('"layer_norm_eps": 1e-12',
                                                                    '"layer_norm_eps": Infinity'))
    assert main(["embed", "x", "--model", str(model)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "config layer_norm_eps must be a finite number > 0, got inf" in err
    assert str(model / "config.json") in err
    (model / "config.json").write_text(json.dumps(config))
    (model / "modules.json").write_text(json.dumps([{"idx": 0, "name": "0", "path": "../..",
                                                      "type": "sentence_transformers.models.Transformer"}]))
    assert main(["embed", "x", "--model", str(model)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "modules.json: module path '../..' leads outside the model folder" in err


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
