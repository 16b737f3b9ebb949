"""Reference outputs for the GPT-2 beam search and generation-option tests, made with torch / transformers.

Run as a subprocess (torch and cpuformer never share a process): `python make_beam_search_reference.py OUT CASE...`.
OUT/CASE/ holds a random-initialised GPT2LMHeadModel (save_pretrained, safetensors), a left-padded prompt batch
and the sequences (and, for some calls, scores) of transformers' generate() for each call in GENERATE_CALLS.

Case gpt2: n_embd 80, 5 heads, 3 layers, vocab 1000, n_positions 96 (the odd case of make_gpt2_reference.py); eos
is the token row 0's greedy output holds at its 6th step, so beams end at different steps.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from torch_reference import build_cases, run_reference_script

PROMPT_LENGTHS = (20, 13, 5)
NEW_TOKENS = 24
PAD = 7  # transformers fills ended beams with pad_token_id, or with eos when pad is 0: keep it nonzero

GENERATE_CALLS = {
    "greedy": dict(num_beams=1),
    "beam4": dict(num_beams=4),
    "beam4_lp2_ngram2_ret3": dict(num_beams=4, length_penalty=2.0, no_repeat_ngram_size=2, num_return_sequences=3),
    "beam4_early_true": dict(num_beams=4, early_stopping=True),
    "beam4_never_lp_neg": dict(num_beams=4, early_stopping="never", length_penalty=-0.5, num_return_sequences=2),
    "beam5_min_new_6_penalty": dict(num_beams=5, min_new_tokens=6, repetition_penalty=1.3),
    "beam4_suppress_bad_words": dict(num_beams=4, suppress_tokens=[1, 2, 3], bad_words_ids=[[10], [11, 12]]),
    "beam4_min_length_forced_eos": dict(num_beams=4, min_length=30, forced_eos_token_id=PAD, max_new_tokens=16),
    "greedy_options": dict(num_beams=1, min_new_tokens=10, no_repeat_ngram_size=3, bad_words_ids=[[4], [5, 6]],
                           suppress_tokens=[8, 9], repetition_penalty=1.2),
    "greedy_stop_ids": dict(num_beams=1, eos_token_id="second"),  # eos plus a second stop id (filled in below)
}
SCORED_CALLS = ("greedy", "beam4", "beam4_lp2_ngram2_ret3", "greedy_options")


def left_padded(rng, lengths, vocab_size):
    b, t = len(lengths), max(lengths)
    ids = np.full((b, t), PAD, np.int64)
    mask = np.zeros((b, t), np.int64)
    for i, n in enumerate(lengths):
        ids[i, t - n:] = rng.integers(0, vocab_size, n)
        mask[i, t - n:] = 1
    return ids, mask


def case_gpt2(out: Path) -> None:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(1)
    config = GPT2Config(n_embd=80, n_head=5, n_layer=3, vocab_size=1000, n_positions=96, n_inner=200,
                        tie_word_embeddings=False, layer_norm_epsilon=1e-6, initializer_range=0.2)
    model = GPT2LMHeadModel(config).eval()
    rng = np.random.default_rng(12)
    ids, mask = left_padded(rng, PROMPT_LENGTHS, config.vocab_size)
    tid, tmask = torch.from_numpy(ids), torch.from_numpy(mask)
    with torch.no_grad():
        greedy = model.generate(tid, attention_mask=tmask, max_new_tokens=NEW_TOKENS, do_sample=False,
                                pad_token_id=PAD, eos_token_id=None)
        width = ids.shape[1]
        eos, second = int(greedy[0, width + 5]), int(greedy[1, width + 3])
        model.generation_config.eos_token_id = eos
        model.generation_config.pad_token_id = PAD
        model.generation_config.bos_token_id = None
        model.config.eos_token_id, model.config.bos_token_id = eos, None
        model.save_pretrained(out, safe_serialization=True)
        arrays, calls = {}, {}
        for name, options in GENERATE_CALLS.items():
            options = dict(options)
            options.setdefault("max_new_tokens", NEW_TOKENS)
            if options.get("eos_token_id") == "second":
                options["eos_token_id"] = [eos, second]
            scored = name in SCORED_CALLS
            result = model.generate(tid, attention_mask=tmask, do_sample=False, return_dict_in_generate=scored,
                                    output_scores=scored, **options)
            if scored:
                arrays[f"{name}.sequences"] = result.sequences.numpy()
                arrays[f"{name}.scores"] = torch.stack(result.scores, 1).numpy()
                if getattr(result, "sequences_scores", None) is not None:
                    arrays[f"{name}.sequences_scores"] = result.sequences_scores.numpy()
            else:
                arrays[f"{name}.sequences"] = result.numpy()
            calls[name] = {"options": options, "scored": scored}
    for name, value in dict(input_ids=ids, attention_mask=mask, **arrays).items():
        np.save(out / f"{name}.npy", value)
    (out / "results.json").write_text(json.dumps({"eos": eos, "second": second, "calls": calls}, indent=1))


CASES = {"gpt2": case_gpt2}


def make_reference(root: Path, *cases: str) -> Path:
    return run_reference_script(__file__, root, cases)


if __name__ == "__main__":
    build_cases(sys.argv[1:], CASES)
