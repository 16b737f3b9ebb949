"""`cpuformer embed --input FILE --output OUT`: embed a file of any size in chunks, resumable.

How it runs:
- The input (io/text_sources: .txt, .jsonl, .parquet) is read as a stream and cut into chunks of `chunk_size`
  texts; each chunk goes through `SentenceEncoder.encode`, which sorts its texts by length into batches.
- Each chunk's rows are written to `OUT.parts/part-<index>.<ext>` (to a temporary name, then renamed: a part
  file exists only when complete). `OUT.parts/job.json` records what the parts were made from (input path, size,
  mtime, column, model, dtype, normalize, chunk size, output format) and is written before the first chunk.
- When every chunk is written, the parts are joined into OUT (a .npy [N, dim] float32 array, .jsonl lines
  {"text", "embedding"}, or .parquet columns text + embedding), streamed one part at a time, and OUT.parts is
  removed. The disk holds the output twice for a moment.
- `resume=True` skips the chunks whose part exists, when job.json matches this run; a different input, model or
  setting is a ValueError. Without it, an existing OUT.parts is an error (never silently mixed).
- Ctrl-C (KeyboardInterrupt) removes the chunk being written: OUT.parts holds complete chunks only.
Memory stays at one chunk of texts and vectors plus the model, whatever the input's size.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass
from typing import Callable, Optional

from .io.jsonl_rows import join_jsonl_parts, write_jsonl_part
from .io.npy_rows import join_npy_parts, write_npy_part
from .io.parquet_rows import join_parquet_parts, write_parquet_part
from .io.text_lines import batched
from .io.text_sources import TextSource, file_format
from .progress import progress_bar

__all__ = ["DEFAULT_CHUNK_SIZE", "OUTPUT_FORMATS", "EmbedJob", "EmbedJobInterrupted", "run_embed_job"]

DEFAULT_CHUNK_SIZE = 4096
OUTPUT_FORMATS = {".npy": (write_npy_part, join_npy_parts), ".jsonl": (write_jsonl_part, join_jsonl_parts),
                  ".parquet": (write_parquet_part, join_parquet_parts)}
_JOB_FILE = "job.json"


class EmbedJobInterrupted(KeyboardInterrupt):
    """Ctrl-C during a job: `chunks_done` complete chunks are in `parts_dir`; run again with resume=True."""

    def __init__(self, parts_dir: str, chunks_done: int):
        super().__init__(f"interrupted: {chunks_done} complete chunk(s) kept in {parts_dir}; run the same command "
                         "with --resume to finish")
        self.parts_dir, self.chunks_done = parts_dir, chunks_done


@dataclass(frozen=True)
class EmbedJob:
    source: TextSource
    output: str
    model: Optional[str] = None  # a model folder; None: the default model
    dtype: str = "float32"
    normalize: bool = False
    batch_size: int = 32
    chunk_size: int = DEFAULT_CHUNK_SIZE

    def __post_init__(self) -> None:
        file_format(self.output, tuple(OUTPUT_FORMATS), "--output")
        if self.chunk_size < 1:
            raise ValueError(f"--chunk-size must be >= 1, got {self.chunk_size}")
        if self.batch_size < 1:
            raise ValueError(f"--batch-size must be >= 1, got {self.batch_size}")
        if os.path.abspath(self.output) == os.path.abspath(self.source.path):
            raise ValueError(f"--output {self.output!r} is the input file")

    @property
    def output_format(self) -> str:
        return os.path.splitext(self.output)[1].lower()

    @property
    def parts_dir(self) -> str:
        return self.output + ".parts"

    def description(self) -> dict:
        """What job.json holds: a resumed run must match it exactly."""
        model = os.path.abspath(self.model) if self.model is not None else "default"
        return {**self.source.fingerprint(), "model": model, "dtype": self.dtype, "normalize": self.normalize,
                "chunk_size": self.chunk_size, "output_format": self.output_format}

    def part_path(self, index: int) -> str:
        return os.path.join(self.parts_dir, f"part-{index:06d}{self.output_format}")


def _write_atomically(path: str, write: Callable[[str], None]) -> None:
    tmp = path + ".tmp"
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:  # also on KeyboardInterrupt: no half-written file stays behind
        if os.path.exists(tmp):
            os.remove(tmp)


def _start_parts(job: EmbedJob, resume: bool) -> None:
    """Creates OUT.parts with job.json, or (resume) checks the existing one describes this job."""
    job_file = os.path.join(job.parts_dir, _JOB_FILE)
    want = job.description()
    if os.path.isdir(job.parts_dir):
        if not resume:
            raise ValueError(f"{job.parts_dir} holds the chunks of an earlier run; pass --resume to continue it, "
                             "or delete that folder to start again")
        try:
            with open(job_file, encoding="utf-8") as f:
                had = json.load(f)
        except (OSError, ValueError):
            raise ValueError(f"--resume: {job_file} is missing or unreadable; delete {job.parts_dir} to start "
                             "again") from None
        changed = [k for k in want if had.get(k) != want[k]]
        if changed:
            detail = ", ".join(f"{k}: was {had.get(k)!r}, now {want[k]!r}" for k in changed)
            raise ValueError(f"--resume: {job.parts_dir} was written by a different job ({detail}); run with the "
                             f"same input, model and settings, or delete {job.parts_dir} to start again")
        return
    os.makedirs(job.parts_dir)
    _write_atomically(job_file, lambda tmp: _write_text(tmp, json.dumps(want, indent=1)))


def _write_text(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def _chunks_done(job: EmbedJob) -> set[int]:
    prefix, ext = "part-", job.output_format
    return {int(name[len(prefix):-len(ext)]) for name in os.listdir(job.parts_dir)
            if name.startswith(prefix) and name.endswith(ext) and name[len(prefix):-len(ext)].isdigit()}


def run_embed_job(job: EmbedJob, *, resume: bool = False, progress: Optional[bool] = None,
                  warn: Callable[[str], None] = lambda message: print(f"cpuformer: warning: {message}",
                                                                       file=sys.stderr)) -> int:
    """Runs `job` (see the module docstring); returns the rows written to job.output. progress: a tqdm bar of
    texts with rate and ETA (None: only when stderr is a terminal)."""
    from .sentence_encoder import SentenceEncoder

    encoder = SentenceEncoder.from_pretrained(job.model, dtype=job.dtype)  # a bad model fails before any file
    _start_parts(job, resume)
    done = _chunks_done(job)
    write_part, join_parts = OUTPUT_FORMATS[job.output_format]
    show = sys.stderr.isatty() if progress is None else progress
    total = job.source.count() if show else None
    bar = progress_bar(total, desc="Embedding", unit="texts", enabled=show)
    chunks_written = len(done)
    try:
        with bar:
            for index, texts in enumerate(batched(job.source.texts(warn), job.chunk_size)):
                if index in done:  # written by an earlier run: read past
                    bar.update(len(texts))
                    continue
                vectors = encoder.encode(texts, batch_size=job.batch_size, normalize_embeddings=job.normalize)
                _write_atomically(job.part_path(index), lambda tmp: write_part(tmp, texts, vectors))
                chunks_written += 1
                bar.update(len(texts))
    except KeyboardInterrupt:
        raise EmbedJobInterrupted(job.parts_dir, chunks_written) from None
    except Exception:  # bad input (a row without the column, invalid UTF-8): no folder of nothing left behind
        if not _chunks_done(job):
            shutil.rmtree(job.parts_dir, ignore_errors=True)
        raise
    parts = sorted(_chunks_done(job))
    if parts != list(range(len(parts))):
        raise ValueError(f"{job.parts_dir} has parts {parts[:5]}... that do not follow the input's chunks; delete it "
                         "and run again")
    rows = join_parts([job.part_path(i) for i in parts], job.output, encoder.embedding_dimension)
    shutil.rmtree(job.parts_dir)
    return rows
