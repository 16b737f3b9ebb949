"""A small random GPT-2 folder written with numpy (no torch): the byte-level BPE tokenizer trained by
tests/test_generation.py and random weights. It has no eos id, so generation never stops early (every request
runs to max_tokens or a stop string), offline as in the server."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cpuformer.io import save_safetensors
from test_generation import train_tokenizer


def write_gpt2_folder(folder: Path, *, n_positions: int = 2048, n_embd: int = 64, n_head: int = 4,
                      n_layer: int = 3, seed: int = 0, vocab_size: int | None = None) -> Path:
    """vocab_size: the model's vocabulary (default: the tokenizer's 320; larger ones decode past 320 to "")."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab = vocab_size or train_tokenizer(folder)
    if vocab_size:
        train_tokenizer(folder)
    rng = np.random.default_rng(seed)
    w = lambda *shape: rng.normal(0, 0.3, shape).astype(np.float32)  # noqa: E731 - peaked logits, few ties
    tensors = {"transformer.wte.weight": w(vocab, n_embd), "transformer.wpe.weight": w(n_positions, n_embd),
               "transformer.ln_f.weight": 1 + w(n_embd), "transformer.ln_f.bias": w(n_embd)}
    for i in range(n_layer):
        p = f"transformer.h.{i}."
        for ln in ("ln_1", "ln_2"):
            tensors[p + ln + ".weight"], tensors[p + ln + ".bias"] = 1 + w(n_embd), w(n_embd)
        for name, (k, n) in {"attn.c_attn": (n_embd, 3 * n_embd), "attn.c_proj": (n_embd, n_embd),
                             "mlp.c_fc": (n_embd, 4 * n_embd), "mlp.c_proj": (4 * n_embd, n_embd)}.items():
            tensors[p + name + ".weight"], tensors[p + name + ".bias"] = w(k, n), w(n)
    save_safetensors(folder / "model.safetensors", tensors)
    config = dict(architectures=["GPT2LMHeadModel"], model_type="gpt2", vocab_size=vocab, n_positions=n_positions,
                  n_embd=n_embd, n_layer=n_layer, n_head=n_head, eos_token_id=None, bos_token_id=None)
    (folder / "config.json").write_text(json.dumps(config))
    return folder
