"""Reference outputs for the BART / mBART tests, made with torch / transformers.

Run as a subprocess (torch and cpuformer never share a process): `python make_bart_reference.py OUT CASE...`.
Each case writes OUT/CASE/: a random-initialised ...ForConditionalGeneration saved with save_pretrained
(safetensors), the inputs, encoder states, logits and generate() outputs as .npy (results.json lists the generate
calls: their options and which arrays hold their outputs).

Cases: bart (d_model 72, 4 heads (head_dim 18), 2 + 2 layers, vocab 311, ffn 100 / 136, scale_embedding, a random
final_logits_bias that makes eos likely enough for beams to finish at different steps), mbart (the same sizes,
pre-LN layers with final layer norms, scale_embedding off).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from torch_reference import build_cases, run_reference_script

SOURCE_LENGTHS = (11, 7, 3)  # the encoder batch: right-padded to 11
NEW_TOKENS = 24
EOS_MARGIN = 0.4  # eos's final_logits_bias is raised to this much above its smallest gap to the best token

# name -> generate() options (besides input_ids, attention_mask, max_new_tokens), shared by both cases.
GENERATE_CALLS = {
    "greedy": dict(num_beams=1),
    "beam4": dict(num_beams=4),
    "beam4_lp2_ngram2_ret3": dict(num_beams=4, length_penalty=2.0, no_repeat_ngram_size=2, num_return_sequences=3),
    "beam4_early_true_lp05": dict(num_beams=4, early_stopping=True, length_penalty=0.5),
    "beam4_never_ret4": dict(num_beams=4, early_stopping="never", num_return_sequences=4),
    "beam3_min_new_8_forced_bos": dict(num_beams=3, min_new_tokens=8, forced_bos_token_id=0),
    "beam4_min_length_10_suppress": dict(num_beams=4, min_length=10, suppress_tokens=[5, 6, 7, 8]),
    "greedy_options": dict(num_beams=1, min_new_tokens=8, suppress_tokens=[5, 6, 7], bad_words_ids=[[10], [11, 12]],
                           no_repeat_ngram_size=2, forced_bos_token_id=0),
    "greedy_no_forced_eos": dict(num_beams=1, forced_eos_token_id=None, repetition_penalty=1.5),
    "beam4_bad_words": dict(num_beams=4, bad_words_ids=[[20], [21, 22, 23]], max_new_tokens=12),
}
# Calls whose scores are compared too (return_dict_in_generate=True, output_scores=True).
SCORED_CALLS = ("greedy", "beam4", "beam4_lp2_ngram2_ret3", "greedy_options")


def save(folder: Path, **arrays) -> None:
    for name, value in arrays.items():
        np.save(folder / f"{name}.npy", np.asarray(value))


def right_padded(rng, lengths, vocab_size, pad_id, eos_id):
    """Encoder inputs as a tokenizer gives them: random tokens (none special), eos last, pad after."""
    b, t = len(lengths), max(lengths)
    ids = np.full((b, t), pad_id, np.int64)
    mask = np.zeros((b, t), np.int64)
    for i, n in enumerate(lengths):
        ids[i, :n - 1] = rng.integers(4, vocab_size, n - 1)
        ids[i, n - 1] = eos_id
        mask[i, :n] = 1
    return ids, mask


def write_case(model, out: Path, seed: int) -> None:
    import torch

    config = model.config
    rng = np.random.default_rng(seed)
    ids, mask = right_padded(rng, SOURCE_LENGTHS, config.vocab_size, config.pad_token_id, config.eos_token_id)
    tid, tmask = torch.from_numpy(ids), torch.from_numpy(mask)
    with torch.no_grad():
        # Random models repeat one token forever and rarely pick eos; raising eos until it just wins somewhere makes
        # beams end at different steps (row 0 early, the others at max length).
        eos = config.eos_token_id
        model.final_logits_bias.copy_(torch.randn(model.final_logits_bias.shape,
                                                  generator=torch.Generator().manual_seed(seed)) * 0.5)
        probe = model.generate(tid, attention_mask=tmask, max_new_tokens=NEW_TOKENS, forced_eos_token_id=None,
                               return_dict_in_generate=True, output_scores=True)
        scores = torch.stack(probe.scores, 1)
        gap = (scores.max(-1).values - scores[:, :, eos]).min()
        model.final_logits_bias[0, eos] += gap + EOS_MARGIN
    model.save_pretrained(out, safe_serialization=True)
    decoder_ids = np.concatenate([np.full((len(ids), 1), config.decoder_start_token_id),
                                  rng.integers(3, config.vocab_size, (len(ids), 6))], axis=1)
    arrays, calls = {}, {}
    with torch.no_grad():
        arrays["encoder_hidden"] = model.get_encoder()(input_ids=tid, attention_mask=tmask).last_hidden_state.numpy()
        arrays["logits"] = model(input_ids=tid, attention_mask=tmask,
                                 decoder_input_ids=torch.from_numpy(decoder_ids)).logits.numpy()
        for name, options in GENERATE_CALLS.items():
            options = dict(options)
            options.setdefault("max_new_tokens", NEW_TOKENS)
            scored = name in SCORED_CALLS
            result = model.generate(tid, attention_mask=tmask, do_sample=False, return_dict_in_generate=scored,
                                    output_scores=scored, **options)
            if scored:
                arrays[f"{name}.sequences"] = result.sequences.numpy()
                arrays[f"{name}.scores"] = torch.stack(result.scores, 1).numpy()  # [rows, steps, vocab]
                if getattr(result, "sequences_scores", None) is not None:
                    arrays[f"{name}.sequences_scores"] = result.sequences_scores.numpy()
            else:
                arrays[f"{name}.sequences"] = result.numpy()
            calls[name] = {"options": options, "scored": scored}
    save(out, input_ids=ids, attention_mask=mask, decoder_input_ids=decoder_ids, **arrays)
    (out / "results.json").write_text(json.dumps(calls, indent=1))


def sizes(**extra):
    return dict(vocab_size=311, d_model=72, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                decoder_attention_heads=4, encoder_ffn_dim=100, decoder_ffn_dim=136, max_position_embeddings=64,
                init_std=0.3, decoder_start_token_id=2, **extra)


def case_bart(out: Path) -> None:
    import torch
    from transformers import BartConfig, BartForConditionalGeneration

    torch.manual_seed(0)
    model = BartForConditionalGeneration(BartConfig(**sizes(scale_embedding=True))).eval()
    write_case(model, out, seed=20)


def case_mbart(out: Path) -> None:
    import torch
    from transformers import MBartConfig, MBartForConditionalGeneration

    torch.manual_seed(1)
    model = MBartForConditionalGeneration(MBartConfig(**sizes(scale_embedding=False, activation_function="relu"))).eval()
    write_case(model, out, seed=21)


CASES = {"bart": case_bart, "mbart": case_mbart}


def make_reference(root: Path, *cases: str) -> Path:
    """For the tests: build the cases in a separate process (torch never loads in the caller); returns root."""
    return run_reference_script(__file__, root, cases)


if __name__ == "__main__":
    build_cases(sys.argv[1:], CASES)
