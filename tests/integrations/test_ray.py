"""cpuformer.integrations.ray on a local Ray cluster started here (loopback, 2 CPUs): embed_dataset gives the local
encode() vectors in input order, an actor killed mid-run still yields every row exactly once (Ray retries its block),
and `cpuformer embed --input ... --ray ADDRESS` writes the same file as a local run."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import cpuformer
from cpuformer.cli import main
from cpuformer.sentence_encoder import SentenceEncoder
from tiny_models import tiny_sentence_model

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from cpuformer.integrations.ray import SentenceEmbedder, embed_dataset  # noqa: E402

N_TEXTS, N_BLOCKS = 5_000, 5
TEXTS = [f"row {i}: " + ["a cat", "the weather is nice today", "dogs bark at night in the city"][i % 3] * (1 + i % 4)
         for i in range(N_TEXTS)]


@pytest.fixture(scope="module")
def cluster():
    """A 2-CPU Ray cluster on 127.0.0.1 for this module; its workers import cpuformer from where we do."""
    package_parent = str(Path(cpuformer.__file__).resolve().parents[1])
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, previous) if p)
    context = ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
                       logging_level="WARNING", configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # KillOnce below, without importing this file
    try:
        yield context.address_info["gcs_address"]
    finally:
        ray.shutdown()
        if previous is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = previous


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, default_model_folder) -> Path:
    return tiny_sentence_model(tmp_path_factory.mktemp("tiny") / "model", default_model_folder)


@pytest.fixture(scope="module")
def expected(tiny_model) -> np.ndarray:
    return SentenceEncoder.from_pretrained(tiny_model).encode(TEXTS)


def dataset():
    ds = ray.data.from_items([{"id": i, "text": t} for i, t in enumerate(TEXTS)], override_num_blocks=N_BLOCKS)
    return ds


def test_embed_dataset_gives_local_vectors_in_input_order(cluster, tiny_model, expected):
    start = time.perf_counter()
    out = embed_dataset(dataset(), model=tiny_model, column="text", concurrency=2, num_cpus=1, rows_per_call=500)
    rows = out.take_all()
    assert [r["id"] for r in rows] == list(range(N_TEXTS))
    assert [r["text"] for r in rows] == TEXTS
    got = np.stack([r["embedding"] for r in rows])
    assert got.dtype == np.float32 and got.shape == expected.shape
    assert np.abs(got - expected).max() <= 1e-6
    print(f"embed_dataset: {N_TEXTS} texts in {time.perf_counter() - start:.1f} s")


class KillOnce(SentenceEmbedder):
    """Dies (os._exit, as a crashed or OOM-killed worker would) on the block holding row `kill_at`, the first
    time only: the file `flag` records that it happened."""

    kill_at, flag = N_TEXTS // 2, None

    def __call__(self, batch):
        if self.kill_at in batch["id"] and not os.path.exists(self.flag):
            Path(self.flag).write_text(str(os.getpid()))
            os._exit(1)
        return super().__call__(batch)


def test_an_actor_killed_mid_run_still_yields_every_row_once(cluster, tiny_model, expected, tmp_path):
    flag = tmp_path / "killed"
    embedder = type("KillOnceHere", (KillOnce,), {"flag": str(flag)})
    out = embed_dataset(dataset(), model=tiny_model, concurrency=2, num_cpus=1, rows_per_call=500, embedder=embedder)
    rows = out.take_all()
    assert flag.exists(), "the actor was never killed"
    ids = [r["id"] for r in rows]
    assert sorted(ids) == list(range(N_TEXTS))  # every row exactly once
    got = np.stack([r["embedding"] for r in rows])
    assert np.abs(got - expected[ids]).max() <= 1e-6


def test_embedder_threads_follow_the_actor_cpus(cluster, tiny_model):
    @ray.remote(num_cpus=2)
    class Probe(SentenceEmbedder):
        def threads(self):
            return self.num_threads, cpuformer.get_num_threads()

    probe = Probe.remote(str(tiny_model))
    assert ray.get(probe.threads.remote()) == (2, 2)
    ray.kill(probe)


def test_cli_ray_writes_what_a_local_run_writes(cluster, tiny_model, tmp_path, capsys):
    source = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": list(range(N_TEXTS)), "body": TEXTS}), source, row_group_size=1000)
    local, remote = tmp_path / "local.parquet", tmp_path / "ray.parquet"
    common = ["embed", "--input", str(source), "--column", "body", "--model", str(tiny_model), "--chunk-size", "1000"]
    assert main([*common, "--output", str(local)]) == 0
    assert main([*common, "--output", str(remote), "--ray", cluster, "--ray-actors", "2"]) == 0, capsys.readouterr()
    assert f"wrote {N_TEXTS} embeddings to {remote}" in capsys.readouterr().err
    a, b = pq.read_table(local), pq.read_table(remote)
    assert b.column("text").to_pylist() == TEXTS
    diff = np.abs(np.stack(a.column("embedding").to_numpy(zero_copy_only=False))
                  - np.stack(b.column("embedding").to_numpy(zero_copy_only=False)))
    assert diff.max() <= 1e-6
    assert not os.path.exists(f"{remote}.parts")


def test_missing_column_is_named(cluster, tiny_model):
    embedder = SentenceEmbedder(str(tiny_model), column="body", num_threads=1)
    with pytest.raises(ValueError, match="the dataset has no column 'body' \\(columns: 'id', 'text'\\)"):
        embedder({"id": np.arange(2), "text": np.array(["a", "b"], object)})

