"""Reference outputs for the GPT-2 tests, made with torch / transformers.

Run as a subprocess (torch and cpuformer never share a process): `python make_gpt2_reference.py OUT CASE...`.
Each case writes OUT/CASE/: a random-initialised GPT2LMHeadModel saved with save_pretrained (safetensors), the
inputs, logits and greedy generate() outputs as .npy.

Cases: small (GPT2Config() defaults, 12 layers, n_positions reduced to 256), odd (n_embd 80, 5 heads, 3 layers,
vocab 1000, n_positions 96, n_inner 200, untied lm_head, attention scaled by 1 / layer index).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from torch_reference import build_cases, run_reference_script

NEW_TOKENS = 64
PROMPT_LENGTHS = (20, 13, 5)  # the batch: left-padded to 20


def save(folder: Path, **arrays) -> None:
    for name, value in arrays.items():
        np.save(folder / f"{name}.npy", np.asarray(value))


def left_padded(rng, lengths, vocab_size, pad_id):
    b, t = len(lengths), max(lengths)
    ids = np.full((b, t), pad_id, np.int64)
    mask = np.zeros((b, t), np.int64)
    for i, n in enumerate(lengths):
        ids[i, t - n:] = rng.integers(0, vocab_size, n)
        mask[i, t - n:] = 1
    return ids, mask


def write_case(model, out: Path, seed: int, full: bool) -> None:
    """Logits (a whole prompt, and a left-padded batch with positions cumsum(mask) - 1 as generate uses), greedy
    generate() of row 0 and of the batch; with `full` also every row alone, greedy with a repetition penalty and
    a batch stopping on an eos token (kept off the 124M model: its generate calls dominate the run time)."""
    import torch

    model.save_pretrained(out, safe_serialization=True)
    config = model.config
    rng = np.random.default_rng(seed)
    ids, mask = left_padded(rng, PROMPT_LENGTHS, config.vocab_size, pad_id=0)
    tid, tmask = torch.from_numpy(ids), torch.from_numpy(mask)
    positions = (tmask.cumsum(-1) - 1).masked_fill(tmask == 0, 0)
    model.generation_config.eos_token_id = None  # random models: never stop early unless a test asks
    model.generation_config.pad_token_id = 0
    gen = dict(do_sample=False, max_new_tokens=NEW_TOKENS, pad_token_id=0)
    arrays = {}
    with torch.no_grad():
        arrays["logits_row0"] = model(tid[:1]).logits.numpy()
        arrays["logits_padded"] = model(tid, attention_mask=tmask, position_ids=positions).logits.numpy()
        arrays["batched"] = model.generate(tid, attention_mask=tmask, **gen).numpy()
        for i, n in enumerate(PROMPT_LENGTHS if full else PROMPT_LENGTHS[:1]):
            arrays[f"row{i}"] = model.generate(tid[i:i + 1, -n:], attention_mask=tmask[i:i + 1, -n:], **gen).numpy()
        if full:
            arrays["penalty"] = model.generate(tid[:1], repetition_penalty=1.3, **gen).numpy()
            # An eos that row 0 produces early: rows stop at different steps, finished rows get pad (7).
            eos = int(arrays["row0"][0, PROMPT_LENGTHS[0] + 5])
            arrays["eos"] = np.int64(eos)
            arrays["eos_batch"] = model.generate(tid, attention_mask=tmask, do_sample=False,
                                                 max_new_tokens=NEW_TOKENS, eos_token_id=eos, pad_token_id=7).numpy()
    save(out, input_ids=ids, attention_mask=mask, **arrays)


def case_small(out: Path) -> None:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=12, n_positions=256)).eval()
    write_case(model, out, seed=10, full=False)


def case_odd(out: Path) -> None:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(1)
    config = GPT2Config(n_embd=80, n_head=5, n_layer=3, vocab_size=1000, n_positions=96, n_inner=200,
                        tie_word_embeddings=False, scale_attn_by_inverse_layer_idx=True, layer_norm_epsilon=1e-6,
                        initializer_range=0.2, bos_token_id=999, eos_token_id=999)
    model = GPT2LMHeadModel(config).eval()
    write_case(model, out, seed=11, full=True)


CASES = {"small": case_small, "odd": case_odd}


def make_reference(root: Path, *cases: str) -> Path:
    """For the tests: build the cases in a separate process (torch never loads in the caller); returns root."""
    return run_reference_script(__file__, root, cases)


if __name__ == "__main__":
    build_cases(sys.argv[1:], CASES)
