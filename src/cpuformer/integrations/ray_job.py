"""`cpuformer embed --input FILE --output OUT --ray ADDRESS`: the embed job of embed_job.py on a Ray cluster.

Ray Data reads the input on the cluster (so FILE must be readable by every node: a shared file system, or an
s3:// / gs:// URI that pyarrow can open), `embed_dataset` embeds it on actors, and the driver (this process)
receives the rows in input order and writes OUT in the same formats as a local run, one received block at a time
through OUT.parts (so OUT appears complete or not at all). A .txt input is read with Ray's read_text, which also
splits lines at Unicode line separators (\\x0b, \\x0c, \\u2028, ...) where a local run does not; .parquet and
.jsonl give the same rows either way. A failed actor is retried by Ray; a failed driver starts again (no --resume).
"""
from __future__ import annotations

import os
import shutil
import sys
from typing import Optional

from ..embed_job import OUTPUT_FORMATS, EmbedJob
from ..progress import progress_bar
from .ray import embed_dataset

__all__ = ["read_dataset", "run_ray_embed_job"]


def read_dataset(path: str, input_format: str, column: Optional[str], blocks: Optional[int] = None):
    """The input as a Ray Dataset with the texts in a column named `column` (.txt: "text"), asking Ray for `blocks`
    blocks. Ray splits by file and parquet row group: one parquet file with one row group stays one block, which
    only one actor embeds (docs/ray.md: write big inputs with row groups)."""
    import ray.data

    if input_format == ".parquet":
        return ray.data.read_parquet(path, columns=[column], override_num_blocks=blocks)
    if input_format == ".jsonl":
        return ray.data.read_json(path, lines=True, override_num_blocks=blocks).select_columns([column])
    return ray.data.read_text(path, drop_empty_lines=False, override_num_blocks=blocks)


def _connect(address: str) -> None:
    import ray

    if ray.is_initialized():  # already connected (a test, a notebook): use that cluster
        return
    ray.init(address=address, log_to_driver=False, logging_level="WARNING")


def run_ray_embed_job(job: EmbedJob, address: str, *, actors: Optional[int] = None, cpus_per_actor: int = 1,
                      progress: Optional[bool] = None) -> int:
    """Runs `job` on the Ray cluster at `address` ("auto": the one this machine belongs to); returns the rows."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ValueError("--ray needs Ray Data: pip install 'cpuformer[ray]'") from None
    if cpus_per_actor < 1 or (actors is not None and actors < 1):
        raise ValueError(f"--ray-actors and --ray-cpus-per-actor must be >= 1, got {actors} and {cpus_per_actor}")
    if os.path.isdir(job.parts_dir):
        raise ValueError(f"{job.parts_dir} holds the chunks of an earlier local run; delete it first (a --ray run "
                         "does not resume)")
    _connect(address)
    column = job.source.column or "text"
    if actors is None:
        actors = max(1, int(ray.cluster_resources().get("CPU", 1)) // cpus_per_actor)
    # A few blocks per actor, so every actor gets work and a retried block is small.
    ds = read_dataset(job.source.path, job.source.format, column, blocks=4 * actors)
    # Each actor runs cpus_per_actor threads but books half a CPU less with Ray: Ray Data's file listing and read
    # tasks need 1 CPU each, and actors that booked every CPU left them waiting forever (seen on a 2-CPU cluster
    # with 2 one-CPU actors: the run never started).
    ds = embed_dataset(ds, model=job.model, column=column, dtype=job.dtype, normalize=job.normalize,
                       batch_size=job.batch_size, rows_per_call=job.chunk_size, num_cpus=cpus_per_actor - 0.5,
                       num_threads=cpus_per_actor, concurrency=actors)
    write_part, join_parts = OUTPUT_FORMATS[job.output_format]
    os.makedirs(job.parts_dir)
    show = sys.stderr.isatty() if progress is None else progress
    total = job.source.count() if show and os.path.exists(job.source.path) else None
    count, dim = 0, None
    try:
        with progress_bar(total, desc="Embedding on Ray", unit="texts", enabled=show) as bar:
            for batch in ds.iter_batches(batch_format="numpy", batch_size=None):
                vectors = batch["embedding"]
                dim = vectors.shape[1] if len(vectors) else dim
                tmp = job.part_path(count) + ".tmp"
                write_part(tmp, batch[column].tolist(), vectors)
                os.replace(tmp, job.part_path(count))
                count += 1
                bar.update(len(vectors))
        if dim is None:
            from ..sentence_encoder import SentenceEncoder

            dim = SentenceEncoder.from_pretrained(job.model).embedding_dimension
        return join_parts([job.part_path(i) for i in range(count)], job.output, dim)
    finally:
        shutil.rmtree(job.parts_dir, ignore_errors=True)
