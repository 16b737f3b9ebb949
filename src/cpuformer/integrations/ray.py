"""Sentence embeddings on a Ray cluster (`pip install 'cpuformer[ray]'`): Ray Data runs the actors, we embed.

    import ray, cpuformer.integrations.ray as cray
    ds = ray.data.read_parquet("s3://bucket/texts/")
    ds = cray.embed_dataset(ds, column="text", concurrency=8, num_cpus=4)   # 8 actors x 4 threads
    ds.write_parquet("s3://bucket/embeddings/")

`SentenceEmbedder` is the callable class `map_batches` builds once per actor: it loads the model once, sets
cpuformer's threads to the CPUs Ray gave the actor, and adds a column of [dim] float32 vectors. A failed actor is
restarted and its block retried by Ray Data (max_restarts / max_task_retries), so every row comes out once.
"""
from __future__ import annotations

import os
from typing import Any, Optional

import numpy as np

__all__ = ["SentenceEmbedder", "embed_dataset"]


def _actor_cpus() -> int:
    """The whole CPUs Ray assigned to this actor (1 outside an actor or for a fractional share)."""
    import ray

    if not ray.is_initialized():
        return 1
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    return max(1, int(cpus))


class SentenceEmbedder:
    """`ds.map_batches(SentenceEmbedder, fn_constructor_kwargs={...}, batch_format="numpy", ...)`.

    model: a sentence-transformers folder every node can read (None: all-MiniLM-L6-v2 from its pip package);
    column: the text column; output_column: the vectors' column; num_threads: cpuformer threads (default: the
    actor's CPUs, e.g. map_batches(num_cpus=4) -> 4)."""

    def __init__(self, model: Optional[str] = None, *, column: str = "text", output_column: str = "embedding",
                 dtype: str = "float32", batch_size: int = 32, normalize: bool = False,
                 num_threads: Optional[int] = None):
        from ..sentence_encoder import SentenceEncoder
        from ..threads import set_num_threads

        self.num_threads = num_threads or _actor_cpus()
        set_num_threads(self.num_threads)
        self.encoder = SentenceEncoder.from_pretrained(model, dtype=dtype)
        self.column, self.output_column = column, output_column
        self.batch_size, self.normalize = batch_size, normalize

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.column not in batch:
            raise ValueError(f"the dataset has no column {self.column!r} (columns: {', '.join(map(repr, batch))})")
        texts = [t if isinstance(t, str) else _not_text(t, self.column) for t in batch[self.column].tolist()]
        vectors = self.encoder.encode(texts, batch_size=self.batch_size, normalize_embeddings=self.normalize)
        return {**batch, self.output_column: vectors.astype(np.float32, copy=False)}


def _not_text(value: Any, column: str) -> str:
    raise ValueError(f"column {column!r} holds {type(value).__name__} values; texts must be strings")


def embed_dataset(ds: Any, *, model: Optional[str | os.PathLike] = None, column: str = "text",
                  output_column: str = "embedding", dtype: str = "float32", normalize: bool = False,
                  batch_size: int = 32, rows_per_call: int = 1024, concurrency: Optional[int | tuple[int, int]] = None,
                  num_cpus: float = 1, num_threads: Optional[int] = None, preserve_order: bool = True,
                  embedder: type = SentenceEmbedder) -> Any:
    """`ds` with `output_column` added: the embedding of each row's `column`, [dim] float32 (a tensor column).

    concurrency: actors (an int, or (min, max) for an autoscaling pool; default: as many as Ray Data sees fit);
    num_cpus: CPUs per actor, which is also each actor's cpuformer thread count unless num_threads says otherwise
    (whole CPUs, at least 1); rows_per_call: rows per
    map_batches call (encode sorts them by length into batches of batch_size). preserve_order: rows come out in
    input order (sets the order flag of `ds`'s DataContext, which the returned dataset shares). embedder: the
    callable class (a subclass of SentenceEmbedder). Lazy, as every Ray Data transform."""
    import ray.data

    if preserve_order:
        ds.context.execution_options.preserve_order = True
    kwargs = dict(model=None if model is None else os.fspath(model), column=column, output_column=output_column,
                  dtype=dtype, batch_size=batch_size, normalize=normalize, num_threads=num_threads)
    if concurrency is None:
        concurrency = (1, _max_actors(num_cpus))
    low, high = (concurrency, concurrency) if isinstance(concurrency, int) else concurrency
    return ds.map_batches(embedder, fn_constructor_kwargs=kwargs, batch_format="numpy", batch_size=rows_per_call,
                          compute=ray.data.ActorPoolStrategy(min_size=low, max_size=high), num_cpus=num_cpus,
                          zero_copy_batch=True)


def _max_actors(num_cpus: float) -> int:
    import ray

    cpus = ray.cluster_resources().get("CPU", 1) if ray.is_initialized() else 1
    return max(1, int(cpus // max(num_cpus, 1e-9)))
