"""BERT's relatives at base size: RoBERTa-base and MPNet-base shapes (random init), encoder + mean pooling on
token ids, against the same peers as bench_bert.py (transformers / torch in this run; ONNX Runtime and
CTranslate2 fp32 / int8 in their own processes), same threads.

Cases as bench_bert.py: b1 s128, b32 s128, b32 with lengths 8..128. The random checkpoints are written once per
session by a subprocess (torch never runs next to our OpenMP runtime in the timing process... except for the
in-process torch row, as in bench_bert.py). CTranslate2 does not convert MPNet: that peer is skipped with the reason.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from bench_bert import CASES, cosines, finish, rounds_for, useful_gflop
from peers import PEERS, skip_if_missing

from cpuformer.layers import PackedBatch
from cpuformer.models import AutoModel
from cpuformer.sentence_encoder import pool

ARCHS = {  # name -> (transformers config class, keyword arguments): the base-size checkpoints people deploy
    "roberta-base": ("RobertaConfig", dict(vocab_size=50265, max_position_embeddings=514, type_vocab_size=1,
                                           pad_token_id=1, layer_norm_eps=1e-5)),
    "mpnet-base": ("MPNetConfig", dict(vocab_size=30527, max_position_embeddings=514, pad_token_id=1,
                                       layer_norm_eps=1e-5)),
}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Random base-size RobertaModel and MPNetModel folders (safetensors), made in a subprocess."""
    pytest.importorskip("transformers")
    root = tmp_path_factory.mktemp("encoders")
    script = textwrap.dedent(f"""
        import sys, torch, transformers
        torch.manual_seed(0)
        for name, (cls, kw) in {ARCHS!r}.items():
            config = getattr(transformers, cls)(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                                intermediate_size=3072, **kw)
            transformers.AutoModel.from_config(config).eval().save_pretrained(sys.argv[1] + "/" + name)
    """)
    subprocess.run([sys.executable, "-c", script, str(root)], check=True, capture_output=True)
    return {name: root / name for name in ARCHS}


def batch_ids(lengths, vocab_size):
    """Padded [B, T] ids (<s> ... </s>, padding id 1) and mask."""
    rng = np.random.default_rng(1)
    ids = np.ones((len(lengths), max(lengths)), np.int64)
    mask = np.zeros_like(ids)
    for i, n in enumerate(lengths):
        ids[i, :n] = rng.integers(5, vocab_size, n)
        ids[i, 0], ids[i, n - 1] = 0, 2
        mask[i, :n] = 1
    return ids, mask


_models: dict = {}


def ours(folders, arch, dtype="float32"):
    if (arch, dtype) not in _models:
        _models[arch, dtype] = AutoModel.from_pretrained(folders[arch], dtype=dtype)
    return _models[arch, dtype]


def packed_encoder(model, lengths):
    ids, mask = batch_ids(lengths, model.config.vocab_size)
    batch, flat, types = model.prepare_inputs(ids, mask)
    return lambda: pool(model.forward_packed(flat, types, batch), batch, ["mean"])


def record(benchmark, impl, arch, name, lengths):
    benchmark.group = f"{arch} {name}"
    benchmark.extra_info.update(impl=impl, batch=len(lengths), tokens=int(sum(lengths)))


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("arch", list(ARCHS))
def test_encoder_cpuformer(benchmark, folders, arch, name):
    model, lengths = ours(folders, arch), CASES[name]
    record(benchmark, "cpuformer", arch, name, lengths)
    benchmark.pedantic(packed_encoder(model, lengths), rounds=rounds_for(lengths), warmup_rounds=1)
    finish(benchmark, lengths, useful_gflop(lengths, model.config))


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("arch", list(ARCHS))
def test_encoder_cpuformer_int8(benchmark, folders, arch, name):
    model, lengths = ours(folders, arch, "int8"), CASES[name]
    encode = packed_encoder(model, lengths)
    cos = cosines(encode(), packed_encoder(ours(folders, arch), lengths)())
    record(benchmark, "cpuformer", arch, name, lengths)
    benchmark.extra_info.update(dtype="int8", cos_min=float(cos.min()), cos_mean=float(cos.mean()))
    benchmark.pedantic(encode, rounds=rounds_for(lengths), warmup_rounds=1)
    finish(benchmark, lengths, useful_gflop(lengths, model.config))


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("arch", list(ARCHS))
def test_encoder_torch(benchmark, folders, arch, name):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    model = transformers.AutoModel.from_pretrained(str(folders[arch])).eval()
    lengths = CASES[name]
    ids, mask = batch_ids(lengths, model.config.vocab_size)
    ids_t, mask_t = torch.from_numpy(ids), torch.from_numpy(mask)

    def encode():
        with torch.no_grad():
            hidden = model(input_ids=ids_t, attention_mask=mask_t).last_hidden_state
            m = mask_t.unsqueeze(-1).to(hidden.dtype)
            return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)

    record(benchmark, "torch", arch, name, lengths)
    benchmark.pedantic(encode, rounds=rounds_for(lengths), warmup_rounds=1)
    finish(benchmark, lengths, useful_gflop(lengths, ours(folders, arch).config))


@pytest.fixture(scope="module")
def peer_inputs(tmp_path_factory):
    paths = {}
    for arch, (_, kw) in ARCHS.items():
        path = tmp_path_factory.mktemp(f"{arch}_inputs") / "inputs.npz"
        arrays = {}
        for name, lengths in CASES.items():
            arrays[f"ids_{name}"], arrays[f"mask_{name}"] = batch_ids(lengths, kw["vocab_size"])
        np.savez(path, **arrays)
        paths[arch] = str(path)
    return paths


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("peer,dtype", PEERS, ids=[f"{p}-{d}" for p, d in PEERS])
@pytest.mark.parametrize("arch", list(ARCHS))
def test_encoder_peer(peer_result, benchmark, peers, peer_inputs, folders, arch, peer, dtype, name):
    skip_if_missing(peer)
    model = str(folders[arch])
    if peer == "onnxruntime":
        path = peers.convert("convert_bert_onnx", model)[dtype]
    else:
        path = peers.convert("convert_bert_ct2", model)["path"]
    measured = peers.measure("time_bert", (arch, peer, dtype), peer="ort" if peer == "onnxruntime" else "ct2",
                             dtype=dtype, model=path, inputs=peer_inputs[arch],
                             cases={n: rounds_for(ls) for n, ls in CASES.items()})[name]
    lengths = CASES[name]
    ours_model = ours(folders, arch)
    cos = cosines(measured["embeddings"], packed_encoder(ours_model, lengths)())
    record(benchmark, peer, arch, name, lengths)
    peer_result(measured["times"], dtype=dtype, cos_min=float(cos.min()), cos_mean=float(cos.mean()))
    finish(benchmark, lengths, useful_gflop(lengths, ours_model.config))
