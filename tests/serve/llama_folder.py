"""A small random Llama folder written with numpy (no torch) for the chat endpoint: a byte-level BPE with ChatML
special tokens, GQA weights (4 heads, 2 KV heads) and a ChatML template; its eos is <|im_end|>."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cpuformer.io import save_safetensors

CHATML = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
          "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
TEXT = ("The quick brown fox jumps over the lazy dog. What is a CPU? A processor runs programs. "
        "Caf\u00e9 cr\u00e8me, na\u00efve fa\u00e7ade. ") * 20


def write_llama_folder(folder: Path, *, hidden: int = 64, heads: int = 4, kv_heads: int = 2, layers: int = 2,
                       inner: int = 96, seed: int = 0) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    folder.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([TEXT], trainer)
    tok.save(str(folder / "tokenizer.json"))
    vocab, eos = tok.get_vocab_size(), tok.token_to_id("<|im_end|>")
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"eos_token": "<|im_end|>", "chat_template": CHATML, "clean_up_tokenization_spaces": False}))
    rng = np.random.default_rng(seed)
    w = lambda *shape: rng.normal(0, 0.3, shape).astype(np.float32)  # noqa: E731 - peaked logits, few ties
    d = hidden // heads
    tensors = {"model.embed_tokens.weight": w(vocab, hidden), "model.norm.weight": 1 + w(hidden),
               "lm_head.weight": w(vocab, hidden)}
    for i in range(layers):
        p = f"model.layers.{i}."
        tensors[p + "input_layernorm.weight"] = 1 + w(hidden)
        tensors[p + "post_attention_layernorm.weight"] = 1 + w(hidden)
        for name, shape in {"self_attn.q_proj": (heads * d, hidden), "self_attn.k_proj": (kv_heads * d, hidden),
                            "self_attn.v_proj": (kv_heads * d, hidden), "self_attn.o_proj": (hidden, heads * d),
                            "mlp.gate_proj": (inner, hidden), "mlp.up_proj": (inner, hidden),
                            "mlp.down_proj": (hidden, inner)}.items():
            tensors[p + name + ".weight"] = w(*shape)
    save_safetensors(folder / "model.safetensors", tensors)
    config = dict(architectures=["LlamaForCausalLM"], model_type="llama", vocab_size=vocab, hidden_size=hidden,
                  intermediate_size=inner, num_hidden_layers=layers, num_attention_heads=heads,
                  num_key_value_heads=kv_heads, max_position_embeddings=512, rms_norm_eps=1e-5, rope_theta=10000.0,
                  eos_token_id=eos, tie_word_embeddings=False)
    (folder / "config.json").write_text(json.dumps(config))
    return folder
