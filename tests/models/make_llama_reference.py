"""Reference outputs for the Llama-family tests, made with torch / transformers.

Run as a subprocess (torch and cpuformer never share a process): `python make_llama_reference.py OUT CASE...`.
Each case writes OUT/CASE/: a random-initialised ...ForCausalLM saved with save_pretrained (safetensors), the
inputs, logits and greedy generate() outputs as .npy.

Cases (all odd sizes: hidden 96, 6 heads, 2 KV heads, 3 layers, intermediate 200, vocab 500):
  llama        LlamaConfig, rope_theta 10000, untied lm_head
  llama3       rope_scaling llama3 (factor 8, low 1, high 4, original 32: every band of frequencies is hit), tied
               embeddings, head_dim 24 from the config (not hidden / heads)
  qwen2        Qwen2Config: q/k/v biases, tied embeddings, rope_theta 1e6, shards of a multi-file checkpoint
  mistral      MistralConfig, sliding_window 4096 (longer than any sequence here), rope_scaling linear (factor 2)
  chat         the llama model with a byte-level BPE trained here (vocab 500 with chat special tokens) and two chat
               templates (Llama-3 style in tokenizer_config.json, ChatML style in chat_template.jinja of a second
               folder): apply_chat_template's text and ids, and greedy generate stopping at either of two eos ids
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from torch_reference import build_cases, run_reference_script

NEW_TOKENS = 64
PROMPT_LENGTHS = (20, 13, 5)  # the batch: left-padded to 20
SIZES = dict(vocab_size=500, hidden_size=96, num_attention_heads=6, num_key_value_heads=2, num_hidden_layers=3,
             intermediate_size=200, max_position_embeddings=256, rms_norm_eps=1e-5, initializer_range=0.2,
             bos_token_id=1, eos_token_id=2)


def save(folder: Path, **arrays) -> None:
    for name, value in arrays.items():
        np.save(folder / f"{name}.npy", np.asarray(value))


def left_padded(rng, lengths, vocab_size, pad_id):
    b, t = len(lengths), max(lengths)
    ids = np.full((b, t), pad_id, np.int64)
    mask = np.zeros((b, t), np.int64)
    for i, n in enumerate(lengths):
        ids[i, t - n:] = rng.integers(3, vocab_size, n)
        mask[i, t - n:] = 1
    return ids, mask


def write_case(model, out: Path, seed: int, **save_options) -> None:
    """Logits (a whole prompt, and a left-padded batch with positions cumsum(mask) - 1 as generate uses), greedy
    generate() of row 0 alone and of the left-padded batch."""
    import torch

    model.save_pretrained(out, safe_serialization=True, **save_options)
    config = model.config
    rng = np.random.default_rng(seed)
    ids, mask = left_padded(rng, PROMPT_LENGTHS, config.vocab_size, pad_id=0)
    tid, tmask = torch.from_numpy(ids), torch.from_numpy(mask)
    positions = (tmask.cumsum(-1) - 1).masked_fill(tmask == 0, 0)
    model.generation_config.eos_token_id = None  # random models: never stop early
    model.generation_config.pad_token_id = 0
    gen = dict(do_sample=False, max_new_tokens=NEW_TOKENS, pad_token_id=0)
    arrays = {}
    with torch.no_grad():
        arrays["logits_row0"] = model(tid[:1]).logits.numpy()
        arrays["logits_padded"] = model(tid, attention_mask=tmask, position_ids=positions).logits.numpy()
        arrays["batched"] = model.generate(tid, attention_mask=tmask, **gen).numpy()
        arrays["row0"] = model.generate(tid[:1], attention_mask=tmask[:1], **gen).numpy()
    save(out, input_ids=ids, attention_mask=mask, **arrays)


def case_llama(out: Path) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(**SIZES, rope_theta=10000.0, tie_word_embeddings=False)
    write_case(LlamaForCausalLM(config).eval(), out, seed=10)


def case_llama3(out: Path) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(1)
    scaling = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 32, "rope_theta": 500000.0}
    config = LlamaConfig(**SIZES, head_dim=24, rope_theta=500000.0, rope_scaling=scaling, rope_parameters=scaling,
                         tie_word_embeddings=True)
    write_case(LlamaForCausalLM(config).eval(), out, seed=11)


def case_qwen2(out: Path) -> None:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(2)
    config = Qwen2Config(**SIZES, rope_theta=1000000.0, tie_word_embeddings=True, use_sliding_window=False)
    model = Qwen2ForCausalLM(config).eval()
    with torch.no_grad():  # random-init biases are zeros: make them count
        for layer in model.model.layers:
            for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                proj.bias.normal_(0.0, 0.5)
    write_case(model, out, seed=12, max_shard_size="200KB")


def case_mistral(out: Path) -> None:
    import torch
    from transformers import MistralConfig, MistralForCausalLM

    torch.manual_seed(3)
    scaling = {"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0}
    config = MistralConfig(**SIZES, sliding_window=4096, rope_theta=10000.0, rope_scaling=scaling,
                           rope_parameters=scaling)
    write_case(MistralForCausalLM(config).eval(), out, seed=13)


CHAT_SPECIALS = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|im_start|>",
                 "<|im_end|>", "<|end_of_text|>"]
LLAMA3_TEMPLATE = (
    "{{- bos_token }}\n"
    "{%- if messages[0]['role'] == 'system' %}\n"
    "    {%- set system = messages[0]['content'] | trim %}\n"
    "    {%- set messages = messages[1:] %}\n"
    "{%- else %}\n"
    "    {%- set system = 'You are a helpful assistant.' %}\n"
    "{%- endif %}\n"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' + system + '<|eot_id|>' }}\n"
    "{%- for message in messages %}\n"
    "    {%- if message['role'] not in ['user', 'assistant'] %}\n"
    "        {{- raise_exception('roles must be user or assistant') }}\n"
    "    {%- endif %}\n"
    "    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n"
    "{%- endif %}\n"
)
CHATML_TEMPLATE = (
    "{% for message in messages %}\n"
    "  {% if loop.first and message['role'] != 'system' %}\n"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "  {% endif %}\n"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}\n"
    "{% if add_generation_prompt %}\n"
    "<|im_start|>assistant\n"
    "{% endif %}"
)
CHAT_MESSAGES = [
    {"role": "system", "content": "  Answer briefly.  "},
    {"role": "user", "content": "What is a CPU?"},
    {"role": "assistant", "content": "A processor: it runs the instructions of programs."},
    {"role": "user", "content": "And a café with \"quotes\" & <tags>?"},
]
CHAT_TEXT = ("The quick brown fox jumps over the lazy dog. A processor runs programs; a café serves coffee. "
             "Answer briefly: what is a CPU, and why do models run on it? ") * 20


def write_chat_tokenizer(folder: Path, template_in_config: str | None) -> None:
    """A byte-level BPE of vocab 500 whose specials are the chat tokens, saved as tokenizer.json with a
    tokenizer_config.json (and the template there, or in chat_template.jinja when template_in_config is None)."""
    import json

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=500, special_tokens=CHAT_SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([CHAT_TEXT], trainer)
    tok.save(str(folder / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|begin_of_text|>",
              "eos_token": {"__type": "AddedToken", "content": "<|eot_id|>", "special": True, "lstrip": False,
                            "rstrip": False, "normalized": False, "single_word": False}, "clean_up_tokenization_spaces": False,
              "model_max_length": 256}
    if template_in_config is not None:
        config["chat_template"] = template_in_config
    (folder / "tokenizer_config.json").write_text(json.dumps(config))


def case_chat(out: Path) -> None:
    """Folders chat (Llama-3 template in tokenizer_config.json) and chat/chatml (ChatML in chat_template.jinja)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(4)
    model = LlamaForCausalLM(LlamaConfig(**SIZES, rope_theta=10000.0)).eval()
    model.save_pretrained(out, safe_serialization=True)
    write_chat_tokenizer(out, LLAMA3_TEMPLATE)
    chatml = out / "chatml"
    chatml.mkdir()
    write_chat_tokenizer(chatml, None)
    (chatml / "chat_template.jinja").write_text(CHATML_TEMPLATE)
    arrays = {}
    for name, folder in (("llama3", out), ("chatml", chatml)):
        tok = AutoTokenizer.from_pretrained(folder)
        if name == "chatml":
            tok.chat_template = CHATML_TEMPLATE  # older transformers do not read chat_template.jinja
        text = tok.apply_chat_template(CHAT_MESSAGES, add_generation_prompt=True, tokenize=False)
        (out / f"{name}_prompt.txt").write_text(text, encoding="utf-8")
        ids = tok(text, add_special_tokens=False, return_tensors="np")["input_ids"]
        arrays[f"{name}_ids"] = ids
        arrays[f"{name}_no_generation_prompt"] = np.frombuffer(
            tok.apply_chat_template(CHAT_MESSAGES, add_generation_prompt=False, tokenize=False).encode(), np.uint8)
    ids = torch.from_numpy(arrays["llama3_ids"].astype(np.int64))
    gen = dict(do_sample=False, pad_token_id=0, attention_mask=torch.ones_like(ids))
    with torch.no_grad():
        free = model.generate(ids, max_new_tokens=24, eos_token_id=None, **gen)[0, ids.shape[1]:].numpy()
        stops = [int(free[9]), int(free[6])]  # two eos ids: generation ends at whichever comes first
        arrays["stops"] = np.array(stops)
        arrays["free"] = free
        arrays["stopped"] = model.generate(ids, max_new_tokens=24, eos_token_id=stops, **gen)[0, ids.shape[1]:].numpy()
    save(out, **arrays)


CASES = {"llama": case_llama, "llama3": case_llama3, "qwen2": case_qwen2, "mistral": case_mistral, "chat": case_chat}


def make_reference(root: Path, *cases: str) -> Path:
    """For the tests: build the cases in a separate process (torch never loads in the caller); returns root."""
    return run_reference_script(__file__, root, cases)


if __name__ == "__main__":
    build_cases(sys.argv[1:], CASES)
