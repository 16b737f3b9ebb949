"""embed_job.py: `cpuformer embed --input FILE --output OUT` in chunks: every input and output format, rows in input
order and equal to one `encode` call, --resume after Ctrl-C, one-line errors, and flat memory for big inputs."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import reference as ref
from cpuformer import embed_job
from cpuformer.cli import main
from cpuformer.embed_job import EmbedJob, EmbedJobInterrupted, run_embed_job
from cpuformer.io.text_sources import open_text_source
from cpuformer.sentence_encoder import SentenceEncoder
from tiny_models import tiny_sentence_model

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

TEXTS = [f"text {i}: " + " ".join(["cats", "a long sentence about the weather", "dogs"][: 1 + i % 3]) * (1 + i % 5)
         for i in range(53)]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, default_model_folder) -> Path:
    return tiny_sentence_model(tmp_path_factory.mktemp("tiny") / "model", default_model_folder)


@pytest.fixture(scope="module")
def expected(tiny_model) -> np.ndarray:
    return SentenceEncoder.from_pretrained(tiny_model).encode(TEXTS)


def write_input(folder: Path, ext: str, texts=TEXTS, column: str = "text") -> Path:
    path = folder / f"in{ext}"
    if ext == ".txt":
        path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    elif ext == ".jsonl":
        path.write_text("".join(json.dumps({"id": i, column: t}) + "\n" for i, t in enumerate(texts)),
                        encoding="utf-8")
    else:
        pq.write_table(pa.table({"id": list(range(len(texts))), column: texts}), path, row_group_size=20)
    return path


def read_output(path: Path) -> tuple[list[str] | None, np.ndarray]:
    if path.suffix == ".npy":
        return None, np.load(path)
    if path.suffix == ".jsonl":
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        return [r["text"] for r in rows], np.array([r["embedding"] for r in rows], np.float32)
    table = pq.read_table(path)
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), 8)
    return table.column("text").to_pylist(), np.stack(table.column("embedding").to_numpy(zero_copy_only=False))


@pytest.mark.parametrize("in_ext", [".txt", ".jsonl", ".parquet"])
@pytest.mark.parametrize("out_ext", [".npy", ".jsonl", ".parquet"])
def test_every_format_gives_the_rows_of_one_encode_call(tmp_path, tiny_model, expected, in_ext, out_ext):
    source = write_input(tmp_path, in_ext)
    out = tmp_path / f"out{out_ext}"
    rc = main(["embed", "--input", str(source), "--output", str(out), "--chunk-size", "10", "--batch-size", "4",
               "--model", str(tiny_model), "--no-progress"])
    assert rc == 0
    texts, vectors = read_output(out)
    assert texts in (None, TEXTS)
    ref.assert_close(vectors, expected, "cli_vs_in_process")
    assert not os.path.exists(f"{out}.parts")


def test_dtype_and_normalize_reach_the_encoder(tmp_path, tiny_model):
    source = write_input(tmp_path, ".txt")
    out = tmp_path / "out.npy"
    assert main(["embed", "--input", str(source), "--output", str(out), "--dtype", "bf16", "--normalize",
                 "--model", str(tiny_model)]) == 0
    want = SentenceEncoder.from_pretrained(tiny_model, dtype="bf16").encode(TEXTS, normalize_embeddings=True)
    ref.assert_close(np.load(out), want, "cli_vs_in_process")


def test_progress_bar_has_rate_and_eta_only_when_asked(tmp_path, tiny_model, capsys):
    source = write_input(tmp_path, ".txt")
    assert main(["embed", "--input", str(source), "--output", str(tmp_path / "a.npy"), "--model",
                 str(tiny_model)]) == 0
    assert capsys.readouterr().err == f"wrote 53 embeddings to {tmp_path / 'a.npy'}\n"  # not a terminal: no bar
    assert main(["embed", "--input", str(source), "--output", str(tmp_path / "b.npy"), "--model",
                 str(tiny_model), "--progress", "--chunk-size", "20"]) == 0
    err = capsys.readouterr().err
    assert "Embedding: 100%" in err and "53/53" in err and "texts/s]" in err and "<00:00" in err


class Interrupt:
    """encode() that raises KeyboardInterrupt (Ctrl-C) on its `at`-th call."""

    def __init__(self, monkeypatch, at: int):
        self.calls, self.at, self.real = 0, at, SentenceEncoder.encode
        monkeypatch.setattr(SentenceEncoder, "encode", self)

    def __get__(self, obj, cls):
        return lambda *args, **kwargs: self(obj, *args, **kwargs)

    def __call__(self, encoder, *args, **kwargs):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return self.real(encoder, *args, **kwargs)


@pytest.mark.parametrize("out_ext", [".npy", ".parquet"])
def test_ctrl_c_keeps_complete_chunks_and_resume_finishes(tmp_path, tiny_model, expected, monkeypatch, capsys,
                                                          out_ext):
    source = write_input(tmp_path, ".jsonl")
    out = tmp_path / f"out{out_ext}"
    args = ["embed", "--input", str(source), "--output", str(out), "--chunk-size", "10", "--model", str(tiny_model)]
    interrupt = Interrupt(monkeypatch, at=4)
    assert main(args) == 130
    err = capsys.readouterr().err
    assert "interrupted: 3 complete chunk(s) kept in" in err and "--resume" in err
    parts = sorted(os.listdir(f"{out}.parts"))
    assert parts == ["job.json"] + [f"part-{i:06d}{out_ext}" for i in range(3)]
    assert not out.exists()

    assert main(args) == 1  # the parts are never mixed into a run that did not ask to resume
    assert "pass --resume to continue it" in capsys.readouterr().err

    interrupt.at, interrupt.calls = 0, 0
    assert main(args + ["--resume"]) == 0
    assert interrupt.calls == 3  # chunks 3, 4, 5 only
    ref.assert_close(read_output(out)[1], expected, "cli_vs_in_process")
    assert not os.path.exists(f"{out}.parts")


def test_ctrl_c_while_a_chunk_is_written_leaves_no_partial_file(tmp_path, tiny_model, monkeypatch):
    source = write_input(tmp_path, ".txt")
    out = tmp_path / "out.jsonl"
    write, join = embed_job.OUTPUT_FORMATS[".jsonl"]

    def write_half_then_interrupt(path, texts, vectors):
        if path.endswith("part-000002.jsonl.tmp"):
            with open(path, "w") as f:
                f.write('{"text": "half')
            raise KeyboardInterrupt
        write(path, texts, vectors)

    monkeypatch.setitem(embed_job.OUTPUT_FORMATS, ".jsonl", (write_half_then_interrupt, join))
    job = EmbedJob(open_text_source(str(source)), str(out), model=str(tiny_model), chunk_size=10)
    with pytest.raises(EmbedJobInterrupted) as info:
        run_embed_job(job, progress=False)
    assert info.value.chunks_done == 2
    assert sorted(os.listdir(job.parts_dir)) == ["job.json", "part-000000.jsonl", "part-000001.jsonl"]


def test_resume_refuses_a_different_job(tmp_path, tiny_model, default_model_folder, monkeypatch, capsys):
    source = write_input(tmp_path, ".txt")
    out = tmp_path / "out.npy"
    args = ["embed", "--input", str(source), "--output", str(out), "--chunk-size", "10", "--model", str(tiny_model)]
    Interrupt(monkeypatch, at=2)
    assert main(args) == 130
    monkeypatch.undo()
    capsys.readouterr()
    for change, field in [(["--dtype", "int8"], "dtype: was 'float32', now 'int8'"),
                          (["--chunk-size", "11"], "chunk_size: was 10, now 11"),
                          (["--model", str(default_model_folder)], "model: was")]:
        assert main(args + change + ["--resume"]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--resume: " in err and field in err and "different job" in err
    source.write_text("other texts\n", encoding="utf-8")
    assert main(args + ["--resume"]) == 1
    assert "input_bytes: was" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--input", "{d}/in.csv", "--output", "{d}/o.npy"], "--input '{d}/in.csv': unknown extension '.csv'; use one of "
                                                         ".txt, .jsonl, .parquet"),
    (["--input", "{d}/in.txt", "--output", "{d}/o.h5"], "--output '{d}/o.h5': unknown extension '.h5'; use one of "
                                                        ".npy, .jsonl, .parquet"),
    (["--input", "{d}/in.txt"], "--input needs --output OUT"),
    (["--input", "{d}/in.txt", "--output", "{d}/o.npy", "--column", "body"], "--column names a field of .jsonl or "
                                                                             ".parquet rows"),
    (["--input", "{d}/in.parquet", "--output", "{d}/o.npy", "--column", "body"], "{d}/in.parquet has no column "
                                                                                 "'body' (columns: 'id', 'text')"),
    (["--input", "{d}/in.parquet", "--output", "{d}/o.npy", "--column", "id"], "column 'id' holds int64, not "
                                                                               "strings"),
    (["--input", "{d}/in.jsonl", "--output", "{d}/o.npy", "--column", "body"], "{d}/in.jsonl: line 1 has no field "
                                                                               "'body' (fields: 'id', 'text')"),
    (["--input", "{d}/missing.txt", "--output", "{d}/o.npy"], "cannot read --input file '{d}/missing.txt'"),
    (["--input", "{d}/in.txt", "--output", "{d}/o.npy", "--chunk-size", "0"], "--chunk-size must be >= 1"),
    (["--input", "{d}/in.txt", "--output", "{d}/in.txt"], "--output '{d}/in.txt': unknown extension"),
    (["--file", "{d}/in.txt", "--resume"], "--resume and --ray apply to --input FILE --output OUT"),
    (["--input", "{d}/in.txt", "--output", "{d}/o.npy", "--ray-actors", "2"], "--ray-actors and "
                                                                              "--ray-cpus-per-actor apply to --ray"),
])
def test_bad_jobs_are_one_line_errors(tmp_path, tiny_model, capsys, argv, message):
    for ext in (".txt", ".jsonl", ".parquet"):
        write_input(tmp_path, ext)
    argv = [a.format(d=tmp_path) for a in argv]
    assert main(["embed", *argv, "--model", str(tiny_model)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message.format(d=tmp_path) in err, err
    assert not list(tmp_path.glob("o.*"))


def test_bad_jsonl_and_null_parquet_rows_are_named(tmp_path, tiny_model, capsys):
    (tmp_path / "in.jsonl").write_text('{"text": "fine"}\n\n{"text": 3}\n', encoding="utf-8")
    assert main(["embed", "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "o.npy"),
                 "--model", str(tiny_model)]) == 1
    assert "in.jsonl: line 3: field 'text' is int, not a string" in capsys.readouterr().err
    pq.write_table(pa.table({"text": ["a", None]}), tmp_path / "in.parquet")
    assert main(["embed", "--input", str(tmp_path / "in.parquet"), "--output", str(tmp_path / "o.npy"),
                 "--model", str(tiny_model)]) == 1
    assert "column 'text' is null at row 1" in capsys.readouterr().err


def test_memory_stays_flat_for_an_input_of_many_chunks(tmp_path, tiny_model):
    """40 chunks of 500 texts of 1,000 characters (20 MB of text, ~45 MB as Python strings) cost no more than 4
    chunks: the input is never held whole. encode is replaced by zeros (the model's own memory is not what this
    measures, and tokenizing 20 MB took 100 s on the 2-core CI machine)."""
    from rss_probe import run_measuring_peak_rss

    line = ("the quick brown fox jumps over the lazy dog " * 23)[:999]
    peaks = {}
    for n in (2_000, 20_000):
        source = tmp_path / f"in{n}.txt"
        with open(source, "w", encoding="utf-8") as f:
            for i in range(n):
                f.write(f"{i:06d}{line[6:]}\n")
        out = tmp_path / f"out{n}.npy"
        peaks[n] = float(run_measuring_peak_rss(f"""
import numpy as np
from cpuformer.cli import main
from cpuformer.sentence_encoder import SentenceEncoder
SentenceEncoder.encode = lambda self, texts, **kw: np.zeros((len(texts), self.embedding_dimension), np.float32)
assert main(["embed", "--input", {str(source)!r}, "--output", {str(out)!r}, "--chunk-size", "500",
             "--model", {str(tiny_model)!r}, "--no-progress"]) == 0
print(peak_rss_mb())
"""))
        assert np.load(out).shape == (n, 8)
    assert peaks[20_000] - peaks[2_000] < 12, peaks
