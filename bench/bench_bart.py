"""BART-base-sized (random init: d_model 768, 12 heads, 6 + 6 layers, ffn 3072, vocab 50265) encoder-decoder:
cpuformer vs transformers in the same run, same weights, same thread count.

Groups: the encoder forward over a batch of 8 sources of 64 tokens, and greedy generate of exactly 32 new tokens
(min_new_tokens holds eos back in both) at batch 1 and batch 8 from 64-token sources; the generated ids are
checked identical to transformers' before timing. CTranslate2 fp32 and int8 (issue 14) run in their own process
(bench/peers.py, `convert_bart_ct2` / `time_bart` in bench/peer_worker.py) on the same checkpoint and sources, in
the generate groups only (its Translator has no encoder-only call); the share of its greedy tokens equal to ours is
in extra_info. No ONNX Runtime row: exporting the encoder plus a decoder-with-past is not written yet.

`BENCH_BART_SMOKE=1` shrinks the model to d_model 64, 1 + 1 layers, vocab 500 and runs one round: a check that
the benchmark works, not a measurement.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

import cpuformer
from cpuformer import BartForConditionalGeneration

SMOKE = os.environ.get("BENCH_BART_SMOKE") == "1"
SOURCE, NEW = (16, 4) if SMOKE else (64, 32)
ROUNDS = 1 if SMOKE else 3
SIZES = (dict(vocab_size=500, d_model=64, encoder_layers=1, decoder_layers=1, encoder_attention_heads=4,
              decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128, max_position_embeddings=128)
         if SMOKE else
         dict(vocab_size=50265, d_model=768, encoder_layers=6, decoder_layers=6, encoder_attention_heads=12,
              decoder_attention_heads=12, encoder_ffn_dim=3072, decoder_ffn_dim=3072, max_position_embeddings=1024))
NAME = "bart-smoke" if SMOKE else "bart-base"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """(ours, transformers) on the same random weights, saved once."""
    import torch
    from transformers import BartConfig
    from transformers import BartForConditionalGeneration as TorchBart

    torch.set_num_threads(cpuformer.get_num_threads())
    torch.manual_seed(0)
    ref = TorchBart(BartConfig(**SIZES)).eval()
    folder = tmp_path_factory.mktemp(NAME)
    ref.save_pretrained(folder, safe_serialization=True)
    return BartForConditionalGeneration.from_pretrained(folder), ref, folder


def sources(batch: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-padded sources: lengths from SOURCE down to SOURCE / 2, eos last."""
    rng = np.random.default_rng(batch)
    lengths = np.linspace(SOURCE, SOURCE // 2, batch).astype(int)
    ids = np.ones((batch, SOURCE), np.int64)
    mask = np.zeros((batch, SOURCE), np.int64)
    for i, n in enumerate(lengths):
        ids[i, :n - 1] = rng.integers(4, SIZES["vocab_size"], n - 1)
        ids[i, n - 1] = 2
        mask[i, :n] = 1
    return ids, mask


@pytest.mark.parametrize("impl", ["cpuformer", "transformers"])
def test_bart_encoder(benchmark, models, impl):
    ours, ref = models[:2]
    ids, mask = sources(8)
    if impl == "cpuformer":
        run = lambda: ours.model.encode(ids, mask)  # noqa: E731
    else:
        import torch

        tids, tmask = torch.from_numpy(ids), torch.from_numpy(mask)

        def run():
            with torch.inference_mode():
                return ref.get_encoder()(input_ids=tids, attention_mask=tmask).last_hidden_state

    benchmark.group = f"{NAME} encoder b8 s{SOURCE}"
    benchmark.extra_info["impl"] = impl
    benchmark.pedantic(run, rounds=ROUNDS + 2, iterations=1, warmup_rounds=1)
    tokens = int(mask.sum())
    benchmark.extra_info["rate"] = f"{tokens / benchmark.stats.stats.median:,.0f} tokens/s"


@pytest.mark.parametrize("batch", [1, 8], ids=["b1", "b8"])
@pytest.mark.parametrize("impl", ["cpuformer", "transformers"])
def test_bart_generate(benchmark, models, impl, batch):
    ours, ref = models[:2]
    ids, mask = sources(batch)
    if impl == "cpuformer":
        run = lambda: ours.generate(ids, NEW, attention_mask=mask, min_new_tokens=NEW)  # noqa: E731
    else:
        import torch

        tids, tmask = torch.from_numpy(ids), torch.from_numpy(mask)

        def run():
            with torch.inference_mode():
                return ref.generate(tids, attention_mask=tmask, do_sample=False, num_beams=1, max_new_tokens=NEW,
                                    min_new_tokens=NEW).numpy()

        np.testing.assert_array_equal(run(), ours.generate(ids, NEW, attention_mask=mask, min_new_tokens=NEW))
    benchmark.group = f"{NAME} generate b{batch} s{SOURCE}+{NEW}"
    benchmark.extra_info.update(impl=impl, batch=batch, source=SOURCE, new_tokens=NEW)
    benchmark.pedantic(run, rounds=ROUNDS, iterations=1, warmup_rounds=1 if impl == "cpuformer" else 0)
    median = benchmark.stats.stats.median
    benchmark.extra_info["tokens_per_s"] = batch * NEW / median
    benchmark.extra_info["rate"] = f"{batch * NEW / median:,.0f} tok/s"


CT2_PEERS = [("ctranslate2", "fp32"), ("ctranslate2", "int8")]


@pytest.fixture(scope="module")
def peer_inputs(tmp_path_factory):
    path = tmp_path_factory.mktemp("bart_inputs") / "sources.npz"
    (i1, m1), (i8, m8) = sources(1), sources(8)
    np.savez(path, ids_b1=i1, mask_b1=m1, ids_b8=i8, mask_b8=m8, vocab_size=SIZES["vocab_size"])
    return str(path)


@pytest.mark.parametrize("batch", [1, 8], ids=["b1", "b8"])
@pytest.mark.parametrize("peer,dtype", CT2_PEERS, ids=[f"{p}-{d}" for p, d in CT2_PEERS])
def test_bart_generate_peer(peer_result, benchmark, peers, models, peer_inputs, peer, dtype, batch):
    from peers import skip_if_missing

    skip_if_missing(peer)
    ours, _, folder = models
    path = peers.convert("convert_bart_ct2", str(folder))["path"]
    measured = peers.measure("time_bart", ("bart", peer, dtype), peer="ct2", dtype=dtype, model=path,
                             inputs=peer_inputs, new_tokens=NEW, rounds=ROUNDS)
    run = measured[f"generate_b{batch}"]
    ids, mask = sources(batch)
    mine = ours.generate(ids, NEW, attention_mask=mask, min_new_tokens=NEW)[:, -NEW:]
    theirs = np.asarray([row[:NEW] + [-1] * (NEW - len(row)) for row in run["ids"]])
    same = float((theirs == mine).mean())  # greedy tokens equal to ours (CT2 does not force eos at the end)
    benchmark.group = f"{NAME} generate b{batch} s{SOURCE}+{NEW}"
    peer_result(run["times"], impl=peer, dtype=dtype, batch=batch, source=SOURCE, new_tokens=NEW,
                same_tokens_as_ours=same)
    median = benchmark.stats.stats.median
    benchmark.extra_info["tokens_per_s"] = batch * NEW / median
    benchmark.extra_info["rate"] = f"{batch * NEW / median:,.0f} tok/s, {same:.0%} tokens as ours"
