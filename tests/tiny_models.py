"""Tiny random checkpoints written with our own safetensors writer (no torch): a BERT-layout encoder (BERT, RoBERTa,
ELECTRA share the names) and a GPT-2, for tests of loading and input checks that need no reference outputs."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cpuformer.io import save_safetensors

HIDDEN, INTER, VOCAB, POSITIONS = 8, 16, 30, 16


def bert_config(**overrides) -> dict:
    config = dict(model_type="bert", architectures=["BertModel"], vocab_size=VOCAB, hidden_size=HIDDEN,
                  num_hidden_layers=1, num_attention_heads=2, intermediate_size=INTER,
                  max_position_embeddings=POSITIONS, type_vocab_size=2, layer_norm_eps=1e-12, hidden_act="gelu")
    config.update(overrides)
    return config


def gpt2_config(**overrides) -> dict:
    config = dict(model_type="gpt2", architectures=["GPT2LMHeadModel"], vocab_size=VOCAB, n_positions=POSITIONS,
                  n_embd=HIDDEN, n_layer=1, n_head=2)
    config.update(overrides)
    return config


def bert_weights(positions: int = POSITIONS, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)

    def t(*shape):
        return (rng.standard_normal(shape) * 0.5).astype(np.float32)

    w = {"embeddings.word_embeddings.weight": t(VOCAB, HIDDEN), "embeddings.position_embeddings.weight":
         t(positions, HIDDEN), "embeddings.token_type_embeddings.weight": t(2, HIDDEN),
         "embeddings.LayerNorm.weight": 1 + t(HIDDEN), "embeddings.LayerNorm.bias": t(HIDDEN)}
    p = "encoder.layer.0."
    for name, (n_out, n_in) in {"attention.self.query": (HIDDEN, HIDDEN), "attention.self.key": (HIDDEN, HIDDEN),
                                "attention.self.value": (HIDDEN, HIDDEN), "attention.output.dense": (HIDDEN, HIDDEN),
                                "intermediate.dense": (INTER, HIDDEN), "output.dense": (HIDDEN, INTER)}.items():
        w[p + name + ".weight"], w[p + name + ".bias"] = t(n_out, n_in), t(n_out)
    for name in ("attention.output.LayerNorm", "output.LayerNorm"):
        w[p + name + ".weight"], w[p + name + ".bias"] = 1 + t(HIDDEN), t(HIDDEN)
    return w


def gpt2_weights(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)

    def t(*shape):
        return (rng.standard_normal(shape) * 0.5).astype(np.float32)

    w = {"transformer.wte.weight": t(VOCAB, HIDDEN), "transformer.wpe.weight": t(POSITIONS, HIDDEN),
         "transformer.ln_f.weight": 1 + t(HIDDEN), "transformer.ln_f.bias": t(HIDDEN)}
    p = "transformer.h.0."
    for name in ("ln_1", "ln_2"):
        w[p + name + ".weight"], w[p + name + ".bias"] = 1 + t(HIDDEN), t(HIDDEN)
    for name, (n_in, n_out) in {"attn.c_attn": (HIDDEN, 3 * HIDDEN), "attn.c_proj": (HIDDEN, HIDDEN),
                                "mlp.c_fc": (HIDDEN, 4 * HIDDEN), "mlp.c_proj": (4 * HIDDEN, HIDDEN)}.items():
        w[p + name + ".weight"], w[p + name + ".bias"] = t(n_in, n_out), t(n_out)
    return w


def write_model(folder: Path, config: dict, weights: dict[str, np.ndarray]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    save_safetensors(folder / "model.safetensors", weights)
    return folder


def tiny_bert(folder: Path, **overrides) -> Path:
    config = bert_config(**overrides)
    return write_model(folder, config, bert_weights(config["max_position_embeddings"]))


def tiny_gpt2(folder: Path, **overrides) -> Path:
    return write_model(folder, gpt2_config(**overrides), gpt2_weights())


def tiny_sentence_model(folder: Path, tokenizer_folder: Path, positions: int = 64) -> Path:
    """A tiny BERT (hidden 8, one layer) with the tokenizer files of `tokenizer_folder` (all-MiniLM-L6-v2's) and a
    word table as large as its vocabulary: a sentence-transformers-like folder (mean pooling) that embeds real
    text thousands of times faster than MiniLM, for tests of jobs and plumbing rather than of the model."""
    import shutil

    vocab = json.loads((tokenizer_folder / "config.json").read_text())["vocab_size"]
    config = bert_config(vocab_size=vocab, max_position_embeddings=positions)
    weights = bert_weights(positions)
    weights["embeddings.word_embeddings.weight"] = (np.random.default_rng(1).standard_normal((vocab, HIDDEN))
                                                   * 0.5).astype(np.float32)
    write_model(folder, config, weights)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tokenizer_folder / name, folder / name)
    return folder
