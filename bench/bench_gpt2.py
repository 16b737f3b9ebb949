"""GPT-2 small (random init, GPT2Config() shape) generation: cpuformer vs transformers generate in the same run,
same weights, same thread count, greedy, a 32-token prompt and exactly 64 new tokens.

Groups: prefill of the prompt (last position's logits), and whole generate calls at batch 1 and batch 8; each
generate benchmark records prefill ms and decode ms/token (measured step by step for cpuformer; for transformers
(generate - prefill) / steps) and tokens/s.
Peers, each in its own process (bench/peers.py), same checkpoint, prompts and threads: CTranslate2 fp32 and int8
and ONNX Runtime fp32 and int8 (per-channel QInt8 dynamic quantization; one exported graph with explicit past
key/value inputs and outputs, fed back step by step by a numpy greedy loop). For every peer, prefill = a generate
of one token, and generate = greedy search of exactly 64 new tokens, its tokens checked against ours. Targets on the 2-core dev box: <= 20 ms/token at b1, >= 250 tok/s at b8.
"""
from __future__ import annotations

import time

import numpy as np
import pytest
from peers import PEERS, skip_if_missing

import cpuformer
from cpuformer import GPT2LMHeadModel

PROMPT, NEW = 32, 64


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """(folder, torch model): the random GPT-2 small, saved once for us and the peers."""
    import torch
    from transformers import GPT2Config
    from transformers import GPT2LMHeadModel as TorchGPT2

    torch.set_num_threads(cpuformer.get_num_threads())
    torch.manual_seed(0)
    ref = TorchGPT2(GPT2Config()).eval()
    ref.generation_config.eos_token_id = None  # always exactly NEW tokens
    ref.generation_config.pad_token_id = 0
    folder = tmp_path_factory.mktemp("gpt2_small")
    ref.save_pretrained(folder, safe_serialization=True)
    return str(folder), ref


@pytest.fixture(scope="module")
def models(checkpoint):
    folder, ref = checkpoint
    return GPT2LMHeadModel.from_pretrained(folder), ref


@pytest.fixture(scope="module", params=["int8", "bf16"])
def ours_low(checkpoint, request):
    """Our model with int8 or bf16 weights (dtype rows of the best-peer table; bf16 is judged against fp32 peers)."""
    try:
        return request.param, GPT2LMHeadModel.from_pretrained(checkpoint[0], dtype=request.param)
    except (TypeError, ValueError, NotImplementedError) as e:  # an installed cpuformer without these weights
        pytest.skip(f"cpuformer {request.param}: {e}")


@pytest.mark.parametrize("batch", [0, 1, 8], ids=["prefill", "b1", "b8"])
def test_gpt2_cpuformer_low_precision(benchmark, models, ours_low, batch):
    """Our int8 / bf16 weights in the prefill group (batch 0) and the generate groups, next to the peers."""
    dtype, model = ours_low
    ids = prompt(max(batch, 1))
    benchmark.extra_info.update(impl="cpuformer", dtype=dtype)
    if batch == 0:
        benchmark.group = f"gpt2-small prefill b1 p{PROMPT}"
        benchmark.pedantic(lambda: model.start_decoding(ids, None, PROMPT + 1).prefill(), rounds=5,
                           warmup_rounds=1)
        benchmark.extra_info["rate"] = f"{PROMPT / benchmark.stats.stats.median:,.0f} prompt tokens/s"
        return
    same = float((model.generate(ids, NEW) == models[0].generate(ids, NEW))[:, PROMPT:].mean())
    benchmark.group = f"gpt2-small generate b{batch} p{PROMPT}+{NEW}"
    benchmark.extra_info.update(batch=batch, same_tokens_as_fp32=same)
    benchmark.pedantic(lambda: model.generate(ids, NEW), rounds=3, iterations=1, warmup_rounds=0)
    median = benchmark.stats.stats.median
    benchmark.extra_info["rate"] = f"{batch * NEW / median:,.0f} tok/s, {same:.0%} tokens as our fp32"


def prompt(batch: int) -> np.ndarray:
    return np.random.default_rng(batch).integers(0, 50257, (batch, PROMPT))


def ours_phases(model, ids):
    """(prefill seconds, decode seconds per step) of one greedy generate, timed step by step."""
    session = model.start_decoding(ids, None, PROMPT + NEW)
    t0 = time.perf_counter()
    logits = session.prefill()
    t1 = time.perf_counter()
    for _ in range(NEW - 1):
        logits = session.step(logits.argmax(axis=1))
    return t1 - t0, (time.perf_counter() - t1) / (NEW - 1)


def torch_runners(ref, ids):
    import torch

    tids = torch.from_numpy(ids)

    def prefill():
        with torch.inference_mode():
            return ref(tids, use_cache=True, logits_to_keep=1).logits

    def generate():
        with torch.inference_mode():
            return ref.generate(tids, attention_mask=torch.ones_like(tids), do_sample=False, max_new_tokens=NEW,
                                min_new_tokens=NEW)

    return prefill, generate


@pytest.mark.parametrize("impl", ["cpuformer", "transformers"])
def test_gpt2_prefill(benchmark, models, impl):
    ours, ref = models
    ids = prompt(1)
    run = (lambda: ours.start_decoding(ids, None, PROMPT + 1).prefill()) if impl == "cpuformer" else \
        torch_runners(ref, ids)[0]
    benchmark.group = f"gpt2-small prefill b1 p{PROMPT}"
    benchmark.extra_info["impl"] = impl
    benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)
    benchmark.extra_info["rate"] = f"{PROMPT / benchmark.stats.stats.median:,.0f} prompt tokens/s"


@pytest.mark.parametrize("batch", [1, 8], ids=["b1", "b8"])
@pytest.mark.parametrize("impl", ["cpuformer", "transformers"])
def test_gpt2_generate(benchmark, models, impl, batch):
    ours, ref = models
    ids = prompt(batch)
    torch_prefill, torch_generate = torch_runners(ref, ids)
    run = (lambda: ours.generate(ids, NEW)) if impl == "cpuformer" else torch_generate
    if impl == "transformers":  # same weights, same greedy tokens: an apples-to-apples comparison
        np.testing.assert_array_equal(run().numpy(), ours.generate(ids, NEW))
    benchmark.group = f"gpt2-small generate b{batch} p{PROMPT}+{NEW}"
    benchmark.extra_info.update(impl=impl, batch=batch, prompt=PROMPT, new_tokens=NEW)
    # transformers' correctness run above doubles as its warm-up
    benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1 if impl == "cpuformer" else 0)
    median = benchmark.stats.stats.median
    if impl == "cpuformer":
        phases = [ours_phases(ours, ids) for _ in range(2)]
        prefill, step = min(p for p, _ in phases), min(s for _, s in phases)
    else:
        prefill = min(_timed(torch_prefill) for _ in range(3))
        step = (median - prefill) / NEW
    benchmark.extra_info.update(prefill_ms=prefill * 1e3, decode_ms_per_token=step * 1e3,
                                tokens_per_s=batch * NEW / median)
    benchmark.extra_info["rate"] = (f"{batch * NEW / median:,.0f} tok/s, prefill {prefill * 1e3:.1f} ms, "
                                    f"decode {step * 1e3:.2f} ms/step")


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


@pytest.fixture(scope="module")
def peer_inputs(tmp_path_factory):
    path = tmp_path_factory.mktemp("gpt2_inputs") / "prompts.npz"
    np.savez(path, prompt_b1=prompt(1), prompt_b8=prompt(8))
    return str(path)


def peer_measured(peers, checkpoint, peer_inputs, peer, dtype) -> dict:
    """All of one peer's GPT-2 timings, from one process per (peer, dtype) per session."""
    skip_if_missing(peer)
    folder = checkpoint[0]
    if peer == "onnxruntime":
        path = peers.convert("convert_gpt2_onnx", folder)[dtype]
    else:
        path = peers.convert("convert_gpt2_ct2", folder)["path"]
    return peers.measure("time_gpt2", ("gpt2", peer, dtype), peer="ort" if peer == "onnxruntime" else "ct2",
                         dtype=dtype, model=path, inputs=peer_inputs, rounds=5, new_tokens=NEW)


@pytest.mark.parametrize("peer,dtype", PEERS, ids=[f"{p}-{d}" for p, d in PEERS])
def test_gpt2_prefill_peer(peer_result, benchmark, peers, checkpoint, peer_inputs, peer, dtype):
    measured = peer_measured(peers, checkpoint, peer_inputs, peer, dtype)["prefill"]
    benchmark.group = f"gpt2-small prefill b1 p{PROMPT}"
    what = "generate 1 token"
    peer_result(measured["times"], impl=peer, dtype=dtype, measured=what)
    benchmark.extra_info["rate"] = f"{PROMPT / benchmark.stats.stats.median:,.0f} prompt tokens/s ({what})"


@pytest.mark.parametrize("batch", [1, 8], ids=["b1", "b8"])
@pytest.mark.parametrize("peer,dtype", PEERS, ids=[f"{p}-{d}" for p, d in PEERS])
def test_gpt2_generate_peer(peer_result, benchmark, peers, checkpoint, peer_inputs, models, peer, dtype, batch):
    measured = peer_measured(peers, checkpoint, peer_inputs, peer, dtype)
    run = measured[f"generate_b{batch}"]
    mine = models[0].generate(prompt(batch), NEW)[:, -NEW:]  # without the prompt
    same = float((np.asarray(run["ids"]) == mine).mean())  # greedy tokens identical to ours (fp32: ~1)
    benchmark.group = f"gpt2-small generate b{batch} p{PROMPT}+{NEW}"
    peer_result(run["times"], impl=peer, dtype=dtype, batch=batch, prompt=PROMPT, new_tokens=NEW,
                same_tokens_as_ours=same)
    median = benchmark.stats.stats.median
    prefill = min(measured["prefill"]["times"]) if batch == 1 else None
    benchmark.extra_info["tokens_per_s"] = batch * NEW / median
    benchmark.extra_info["rate"] = (f"{batch * NEW / median:,.0f} tok/s"
                                    + (f", decode {(median - prefill) / (NEW - 1) * 1e3:.2f} ms/step" if prefill
                                       else "") + f", {same:.0%} tokens as ours")
