"""KeyedVectors vs gensim 4: loading word2vec files, most_similar, and batched most_similar.

Synthetic vocabularies are written by gensim itself: 100k x 300 binary, and a 5k x 300 text file (gensim parses
text one float at a time in Python, so a 100k text file would take it minutes). Each group holds gensim and us,
gensim first; every entry has ``impl`` in extra_info, so bench/conftest.py's table prints the ratio at the end, and
our entry also records ``speedup_vs_gensim`` (gensim median time / ours) and ``rate``.

    PYTHONPATH=src python -m pytest bench/bench_keyed_vectors.py --benchmark-only
"""
import numpy as np
import pytest

gensim_models = pytest.importorskip("gensim.models")
GKV = gensim_models.KeyedVectors

from cpuformer.embeddings import KeyedVectors  # noqa: E402

N_BINARY, N_TEXT, DIM = 100_000, 5_000, 300
N_SINGLE, N_BATCH, TOPN = 10, 256, 10
IMPLS = ["gensim", "cpuformer"]

_median_seconds = {}  # (group, impl) -> median seconds per round


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("kv_bench")
    paths = {}
    for kind, n in [("binary", N_BINARY), ("text", N_TEXT)]:
        words = [f"w{i}" for i in range(n - 3)] + ["naïve", "日本語", "Ζεύς"]
        g = GKV(DIM)
        g.add_vectors(words, rng.standard_normal((n, DIM)).astype(np.float32))
        paths[kind] = folder / f"vectors_{kind}"
        g.save_word2vec_format(str(paths[kind]), binary=kind == "binary")
    return paths


@pytest.fixture(scope="module")
def models(files):
    ours = KeyedVectors.load_word2vec_format(files["binary"], binary=True)
    theirs = GKV.load_word2vec_format(str(files["binary"]), binary=True)
    ours.get_normed_vectors()
    theirs.fill_norms()
    return {"cpuformer": ours, "gensim": theirs}


def run(benchmark, group, impl, fn, rounds, rate, **extra_info):
    """One pedantic run; extra_info gets impl (for bench/conftest.py's ratio table), rate = (count per round,
    unit) as a throughput string, and on our entry speedup_vs_gensim = gensim median / ours (gensim runs first)."""
    benchmark.group = group
    benchmark.extra_info.update(impl=impl, **extra_info)
    result = benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=0)
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        _median_seconds[(group, impl)] = stats.stats.median
        benchmark.extra_info["rate"] = f"{rate[0] / stats.stats.median:,.0f} {rate[1]}"
        reference = _median_seconds.get((group, "gensim"))
        if impl == "cpuformer" and reference:
            benchmark.extra_info["speedup_vs_gensim"] = round(reference / stats.stats.median, 3)
    return result


@pytest.mark.parametrize("impl", IMPLS)
def test_load_binary(benchmark, files, impl):
    path = files["binary"]
    load = {"gensim": lambda: GKV.load_word2vec_format(str(path), binary=True),
            "cpuformer": lambda: KeyedVectors.load_word2vec_format(path, binary=True)}[impl]
    kv = run(benchmark, f"load-binary-{N_BINARY // 1000}k", impl, load, rounds=3, rate=(N_BINARY, "vectors/s"),
             vectors=N_BINARY, dim=DIM)
    assert kv.vectors.shape == (N_BINARY, DIM)


@pytest.mark.parametrize("impl", IMPLS)
def test_load_text(benchmark, files, impl):
    path = files["text"]
    load = {"gensim": lambda: GKV.load_word2vec_format(str(path)),
            "cpuformer": lambda: KeyedVectors.load_word2vec_format(path)}[impl]
    rounds = 1 if impl == "gensim" else 3
    kv = run(benchmark, f"load-text-{N_TEXT // 1000}k", impl, load, rounds=rounds, rate=(N_TEXT, "vectors/s"),
             vectors=N_TEXT, dim=DIM)
    assert kv.vectors.shape == (N_TEXT, DIM)


@pytest.mark.parametrize("impl", IMPLS)
def test_most_similar(benchmark, models, impl):
    kv = models[impl]
    words = [f"w{i * 7919}" for i in range(N_SINGLE)]
    out = run(benchmark, f"most-similar-x{N_SINGLE}-{N_BINARY // 1000}k", impl,
              lambda: [kv.most_similar(w, topn=TOPN) for w in words], rounds=5, rate=(N_SINGLE, "queries/s"),
              queries=N_SINGLE, topn=TOPN)
    assert len(out) == N_SINGLE and len(out[0]) == TOPN


@pytest.mark.parametrize("impl", IMPLS)
def test_most_similar_batch(benchmark, models, impl):
    kv = models[impl]
    words = [f"w{i * 389}" for i in range(N_BATCH)]
    if impl == "gensim":  # gensim has no batch call: one most_similar per query
        fn = lambda: [kv.most_similar(w, topn=TOPN) for w in words]  # noqa: E731
    else:
        fn = lambda: kv.most_similar_batch(words, topn=TOPN)  # noqa: E731
    out = run(benchmark, f"most-similar-batch{N_BATCH}-{N_BINARY // 1000}k", impl, fn, rounds=3,
              rate=(N_BATCH, "queries/s"), queries=N_BATCH, topn=TOPN)
    assert len(out) == N_BATCH and len(out[0]) == TOPN
