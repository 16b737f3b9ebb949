"""Generation on a tiny random GPT-2 written with numpy (no torch needed): sampling settings, seeds, streaming,
eos handling, text in and out with a byte-level BPE tokenizer trained here, and every argument error."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cpuformer.generation import GenerationConfig, IncrementalDecoder, Sampler
from cpuformer.io import save_safetensors
from cpuformer.models import GPT2LMHeadModel
from reference import assert_close

TEXT = ("The quick brown fox jumps over the lazy dog. Caf\u00e9 cr\u00e8me, na\u00efve fa\u00e7ade, \u20ac 12, "
        "\u65e5\u672c\u8a9e \U0001F600. ") * 20
N_POSITIONS = 48


def train_tokenizer(folder: Path) -> int:
    """A byte-level BPE (GPT-2 style) trained on TEXT, with <|endoftext|> as its only special token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([TEXT], trainer)
    tok.save(str(folder / "tokenizer.json"))
    return tok.get_vocab_size()


def write_tiny_gpt2(folder: Path, vocab: int, seed: int = 0, n_embd: int = 32, n_head: int = 4, n_layer: int = 2):
    rng = np.random.default_rng(seed)
    w = lambda *shape: rng.normal(0, 0.3, shape).astype(np.float32)  # noqa: E731 - large init: peaked logits
    t = {"transformer.wte.weight": w(vocab, n_embd), "transformer.wpe.weight": w(N_POSITIONS, n_embd),
         "transformer.ln_f.weight": 1 + w(n_embd), "transformer.ln_f.bias": w(n_embd)}
    for i in range(n_layer):
        p = f"transformer.h.{i}."
        for ln in ("ln_1", "ln_2"):
            t[p + ln + ".weight"], t[p + ln + ".bias"] = 1 + w(n_embd), w(n_embd)
        for name, (k, n) in {"attn.c_attn": (n_embd, 3 * n_embd), "attn.c_proj": (n_embd, n_embd),
                             "mlp.c_fc": (n_embd, 4 * n_embd), "mlp.c_proj": (4 * n_embd, n_embd)}.items():
            t[p + name + ".weight"], t[p + name + ".bias"] = w(k, n), w(n)
    save_safetensors(folder / "model.safetensors", t)
    config = dict(architectures=["GPT2LMHeadModel"], model_type="gpt2", vocab_size=vocab, n_positions=N_POSITIONS,
                  n_embd=n_embd, n_layer=n_layer, n_head=n_head, eos_token_id=0, bos_token_id=0)
    (folder / "config.json").write_text(json.dumps(config))


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_gpt2")
    write_tiny_gpt2(folder, train_tokenizer(folder))
    return GPT2LMHeadModel.from_pretrained(folder)


@pytest.fixture(scope="module")
def bare(tmp_path_factory):
    """The same kind of model without a tokenizer.json."""
    folder = tmp_path_factory.mktemp("tiny_gpt2_bare")
    write_tiny_gpt2(folder, 100, seed=3)
    return GPT2LMHeadModel.from_pretrained(folder)


def batch():
    ids = np.array([[5, 6, 7, 8, 9, 10], [0, 0, 0, 11, 12, 13]])
    return ids, (ids != 0).astype(np.int64) | np.array([[1], [0]])


# --- greedy, sampling, seeds ------------------------------------------------------------------------------
def test_prefill_logits_equal_the_forward_pass_and_the_head_sees_one_row_per_sequence(model):
    ids, mask = batch()
    calls = []
    head = model.lm_head

    class Spy:  # records what the head is asked to project
        def __call__(self, x, **kw):
            calls.append(x.shape)
            return head(x, **kw)

    model.lm_head = Spy()
    try:
        session = model.start_decoding(ids, mask, ids.shape[1] + 2)
        logits = session.prefill().copy()
        session.step(logits.argmax(axis=1))
    finally:
        model.lm_head = head
    assert calls == [(2, 32), (2, 32)], "prefill projects only the last position of each row"
    assert_close(logits, model(ids, mask)[:, -1], "model_paths")


def test_each_decode_step_matches_a_full_forward(model):
    ids, mask = batch()
    out = model.generate(ids, 10, attention_mask=mask, eos_token_id=None)
    full_mask = np.concatenate([mask, np.ones((2, 10), np.int64)], axis=1)
    logits = model(out, full_mask)  # logits at position t predict token t + 1
    np.testing.assert_array_equal(logits[:, ids.shape[1] - 1:-1].argmax(axis=-1), out[:, ids.shape[1]:])


def test_seeded_sampling_is_reproducible_and_seeds_differ(model):
    ids, mask = batch()
    args = dict(do_sample=True, temperature=1.5, attention_mask=mask, eos_token_id=None)
    a = model.generate(ids, 20, seed=1, **args)
    np.testing.assert_array_equal(a, model.generate(ids, 20, seed=1, **args))
    assert not np.array_equal(a, model.generate(ids, 20, seed=2, **args))
    np.testing.assert_array_equal(a[:, :ids.shape[1]], ids)


def test_top_k_1_sampling_equals_greedy(model):
    ids, mask = batch()
    greedy = model.generate(ids, 20, attention_mask=mask)
    sampled = model.generate(ids, 20, do_sample=True, top_k=1, temperature=0.7, seed=5, attention_mask=mask)
    np.testing.assert_array_equal(sampled, greedy)
    tiny_nucleus = model.generate(ids, 20, do_sample=True, top_p=1e-6, seed=5, attention_mask=mask)
    np.testing.assert_array_equal(tiny_nucleus, greedy)


def test_stream_yields_the_ids_generate_returns(model):
    ids, mask = batch()
    for args in (dict(), dict(do_sample=True, top_k=20, top_p=0.9, repetition_penalty=1.2, seed=4)):
        steps = list(model.stream(ids, 12, attention_mask=mask, **args))
        assert len(steps) == 12 and all(s.shape == (2,) and s.dtype == np.int64 for s in steps)
        np.testing.assert_array_equal(np.stack(steps, axis=1),
                                      model.generate(ids, 12, attention_mask=mask, **args)[:, ids.shape[1]:])


def test_decode_buffers_are_reused_but_never_shared(model):
    ids, mask = batch()
    expected = model.generate(ids, 6, attention_mask=mask)[:, ids.shape[1]:]
    kept = model.decode_states.kept
    assert kept is not None and kept.cache.batch == 2, "the KV cache is kept for the next call"
    first = model.stream(ids, 6, attention_mask=mask)
    steps = [next(first)]  # takes the kept buffers
    assert model.decode_states.kept is None
    second = np.stack(list(model.stream(ids, 6, attention_mask=mask)), axis=1)  # runs in between: its own
    steps += list(first)
    np.testing.assert_array_equal(second, expected)
    np.testing.assert_array_equal(np.stack(steps, axis=1), expected)
    early = model.stream(ids, 6, attention_mask=mask)
    next(early)
    early.close()  # stopping a stream early hands the buffers back too
    assert model.decode_states.kept is not None
    model.generate(ids[:1], 3)  # another batch size: fresh buffers, kept instead
    assert model.decode_states.kept.cache.batch == 1


def test_generate_from_several_threads_gives_each_its_own_answer(model):
    from concurrent.futures import ThreadPoolExecutor

    ids, mask = batch()
    seeds = list(range(8))
    expected = [model.generate(ids, 8, do_sample=True, seed=s, attention_mask=mask) for s in seeds]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda s: model.generate(ids, 8, do_sample=True, seed=s, attention_mask=mask), seeds))
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g, e)


def test_eos_stops_generation_and_pads_finished_rows(model):
    ids, mask = batch()
    greedy = model.generate(ids, 20, attention_mask=mask, eos_token_id=None)[:, ids.shape[1]:]
    eos = int(greedy[0, 2])  # row 0 emits it at step 2 (at the latest)
    first = [int(np.flatnonzero(r == eos)[0]) if (r == eos).any() else None for r in greedy]
    out = model.generate(ids, 20, attention_mask=mask, eos_token_id=eos, pad_token_id=1)[:, ids.shape[1]:]
    for row, stop in zip(out, first):
        if stop is not None:
            assert row[stop] == eos and (row[stop + 1:] == 1).all()
    if all(f is not None for f in first):
        assert out.shape[1] == max(first) + 1, "stops once every row has finished"
    else:
        assert out.shape[1] == 20
    padded_with_eos = model.generate(ids[:1], 20, eos_token_id=eos)[0, ids.shape[1]:]
    assert padded_with_eos[-1] == eos and padded_with_eos.shape[0] == first[0] + 1


def test_generation_can_fill_every_position(model):
    ids, mask = batch()
    out = model.generate(ids, N_POSITIONS - ids.shape[1], attention_mask=mask, eos_token_id=None)
    assert out.shape == (2, N_POSITIONS)
    np.testing.assert_array_equal(model.generate(ids, 0, attention_mask=mask), ids)
    assert list(model.stream(ids, 0)) == []


# --- the sampler on hand-made logits ------------------------------------------------------------------------
def draw(config: GenerationConfig, logits: np.ndarray, n: int) -> np.ndarray:
    sampler = Sampler(config, 1, logits.shape[0])
    return np.concatenate([sampler(logits[None]) for _ in range(n)])


def test_sampling_follows_the_softmax_with_temperature():
    logits = np.log(np.array([0.5, 0.3, 0.2], np.float32))
    counts = np.bincount(draw(GenerationConfig(do_sample=True, seed=0), logits, 20000), minlength=3) / 20000
    assert_close(counts, [0.5, 0.3, 0.2], "sampling_frequency")
    hot = np.array([0.5, 0.3, 0.2]) ** 0.5
    counts = np.bincount(draw(GenerationConfig(do_sample=True, temperature=2.0, seed=0), logits, 20000),
                         minlength=3) / 20000
    assert_close(counts, hot / hot.sum(), "sampling_frequency")


def test_top_k_and_top_p_keep_only_the_best_tokens():
    probs = np.array([0.05, 0.4, 0.02, 0.3, 0.2, 0.03])
    logits = np.log(probs).astype(np.float32)
    assert set(draw(GenerationConfig(do_sample=True, top_k=2, seed=0), logits, 500)) == {1, 3}
    assert set(draw(GenerationConfig(do_sample=True, top_p=0.75, seed=0), logits, 500)) == {1, 3, 4}  # .4+.3 < .75
    assert set(draw(GenerationConfig(do_sample=True, top_p=0.7, seed=0), logits, 500)) == {1, 3}  # .4 + .3 >= .7
    assert set(draw(GenerationConfig(do_sample=True, top_k=3, top_p=0.5, seed=0), logits, 500)) == {1, 3}


def test_top_p_over_a_flat_vocabulary_sorts_everything():
    # 1000 near-equal tokens: the 256 best cannot hold 90% of the mass, so the full-sort path runs.
    logits = np.random.default_rng(0).normal(0, 1e-3, 1000).astype(np.float32)
    picks = draw(GenerationConfig(do_sample=True, top_p=0.9, seed=0), logits, 3000)
    allowed = set(np.argsort(-logits.astype(np.float64))[:900])
    assert set(picks) <= allowed and len(set(picks)) > 600


def test_repetition_penalty_divides_positive_and_multiplies_negative_logits():
    logits = np.array([[2.0, 1.9, -1.0, -1.1]], np.float32)
    sampler = Sampler(GenerationConfig(repetition_penalty=1.2), 1, 4)
    assert sampler(logits)[0] == 0
    sampler.observe(np.array([0]))
    assert sampler(logits)[0] == 1  # 2.0 / 1.2 < 1.9
    only_negative = np.array([[-1.0, -1.1]], np.float32)
    sampler = Sampler(GenerationConfig(repetition_penalty=1.2), 1, 2)
    sampler.observe(np.array([[0, 1]]), mask=np.array([[1, 0]]))  # masked tokens are not seen
    assert sampler(only_negative)[0] == 1  # -1.0 * 1.2 < -1.1


def test_nan_and_inf_logits_greedy_picks_as_torch_argmax_sampling_refuses():
    """Issue 16 (NaN in, NaN out): greedy takes the first NaN, as torch.argmax does; sampling raises, as
    torch.multinomial does, instead of drawing an arbitrary token from NaN probabilities."""
    logits = np.array([[1.0, np.nan, 3.0, np.nan], [1.0, 2.0, -np.inf, 0.0]], np.float32)
    np.testing.assert_array_equal(Sampler(GenerationConfig(), 2, 4)(logits), [1, 1])
    for config in (GenerationConfig(do_sample=True, seed=0), GenerationConfig(do_sample=True, top_k=2, seed=0),
                   GenerationConfig(do_sample=True, top_p=0.5, seed=0)):
        with pytest.raises(ValueError, match=r"cannot sample row 0: its scores hold NaN"):
            Sampler(config, 2, 4)(logits)
        with pytest.raises(ValueError, match=r"cannot sample row 1: its scores hold \+inf"):
            Sampler(config, 2, 4)(np.array([[0, 1, 2, 3], [0, np.inf, 0, 0]], np.float32))
        with pytest.raises(ValueError, match=r"cannot sample row 0: its scores hold no finite value"):
            Sampler(config, 1, 2)(np.full((1, 2), -np.inf, np.float32))
        assert Sampler(config, 1, 4)(logits[1:])[0] in (0, 1, 3)  # -inf is a masked token, not an error


# --- text -------------------------------------------------------------------------------------------------
def test_generate_text_and_stream_text_agree(model):
    tok = model.tokenizer
    text = model.generate_text("The quick brown", 15, eos_token_id=None)
    ids = tok.encode_packed(["The quick brown"])[0]
    out = model.generate(ids[None], 15, eos_token_id=None)
    assert text == tok.decode(out[0, len(ids):])
    assert "".join(model.stream_text("The quick brown", 15, eos_token_id=None)) == text
    prompts = ["Caf\u00e9 cr\u00e8me", "The lazy dog. \u65e5\u672c"]
    texts = model.generate_text(prompts, 12, do_sample=True, seed=3)
    steps = list(model.stream_text(prompts, 12, do_sample=True, seed=3))
    assert all(isinstance(s, list) and len(s) == 2 for s in steps)
    assert ["".join(s[i] for s in steps) for i in range(2)] == texts


def test_text_stops_at_the_model_eos(model, monkeypatch):
    assert model.eos_token_id == 0 and model.tokenizer.id_to_token(0) == "<|endoftext|>"
    prompt = "The quick brown"
    ids = model.tokenizer.encode_packed([prompt])[0]
    free = model.generate(ids[None], 30, eos_token_id=None)[0, len(ids):]
    stop = int(free[4])
    monkeypatch.setattr(model, "generation_config", model.generation_config.replace(eos_token_id=stop))
    cut = int(np.flatnonzero(free == stop)[0])
    expected = model.tokenizer.decode(free[:cut + 1])
    assert model.generate_text(prompt, 30) == expected
    assert "".join(model.stream_text(prompt, 30)) == expected
    assert model.generate_text(prompt, 30, eos_token_id=None) == model.tokenizer.decode(free)


def test_incremental_decoding_never_splits_a_character(model):
    from tokenizers.pre_tokenizers import ByteLevel

    tok = model.tokenizer
    word = "\u20ac \U0001F600 \u65e5"
    # One token per byte, the worst case: each byte's symbol in the byte-level alphabet.
    symbols = "".join(piece for piece, _ in ByteLevel(add_prefix_space=False).pre_tokenize_str(word))
    single_bytes = [tok.token_to_id(c) for c in symbols]
    assert len(single_bytes) == len(word.encode()) and None not in single_bytes
    decoder = IncrementalDecoder(tok)
    pieces = [decoder.push(t) for t in single_bytes]
    assert "".join(pieces) + decoder.flush() == word
    assert not any("\ufffd" in p for p in pieces)
    assert pieces[:3] == ["", "", "\u20ac"]  # the euro sign's three bytes come out together
    half = IncrementalDecoder(tok)
    assert [half.push(t) for t in single_bytes[:2]] == ["", ""]
    assert half.flush() == "\ufffd"  # an unfinished character at the end decodes as transformers would


def test_text_needs_a_tokenizer_and_tokens(bare, model):
    with pytest.raises(ValueError, match="loaded without a tokenizer.json"):
        bare.generate_text("hi", 3)
    with pytest.raises(ValueError, match="prompt 1 encodes to no tokens"):
        model.generate_text(["hi", ""], 3)
    with pytest.raises(ValueError, match="empty batch: no prompts given"):
        model.generate_text([], 3)
    with pytest.raises(TypeError, match="prompts must be a str or a list of str"):
        model.stream_text([1, 2], 3)
    with pytest.raises(ValueError, match="exceeds the model's n_positions=48"):
        model.generate_text("The quick brown fox " * 20, 3)


# --- argument errors ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, message", [
    (dict(do_sample=True, temperature=0.0), "temperature must be a finite number > 0 when sampling, got 0.0"),
    (dict(do_sample=True, temperature=-1.0), "temperature must be a finite number > 0"),
    (dict(temperature=float("nan")), "temperature must be a finite number"),
    (dict(top_p=0.0), r"top_p must be in \(0, 1\]"),
    (dict(top_p=1.5), r"top_p must be in \(0, 1\] \(1 = no nucleus filter\), got 1.5"),
    (dict(top_k=-1), "top_k must be an int >= 0"),
    (dict(top_k=2.5), "top_k must be an int >= 0"),
    (dict(repetition_penalty=0.0), "repetition_penalty must be a finite number > 0"),
    (dict(seed=-3), "seed must be None or an int >= 0, got -3"),
    (dict(do_sample="yes"), "do_sample must be True or False"),
    (dict(max_new_tokens=-1), "max_new_tokens must be an int >= 0, got -1"),
    (dict(max_new_tokens=43), r"prompt length 6 \+ max_new_tokens 43 = 49 exceeds the model's n_positions=48"),
    (dict(eos_token_id=100), r"eos_token_id must be None or an int in \[0, 100\), got 100"),
    (dict(pad_token_id=-1), "pad_token_id must be None or an int >= 0, got -1"),
    (dict(pad_token_id=100), r"pad_token_id must be None or an int in \[0, 100\), got 100"),
    (dict(num_beams=0), "num_beams must be an int >= 1, got 0"),
    (dict(num_beams=2, num_return_sequences=3), r"num_return_sequences \(3\) must be <= num_beams \(2\)"),
    (dict(num_return_sequences=2), "num_return_sequences > 1 needs do_sample=True or num_beams > 1"),
    (dict(num_beams=2, do_sample=True), "beam sampling.* is not supported"),
    (dict(early_stopping="sometimes"), "early_stopping must be True, False or 'never', got 'sometimes'"),
    (dict(length_penalty=float("inf")), "length_penalty must be a finite number"),
    (dict(no_repeat_ngram_size=-1), r"no_repeat_ngram_size must be an int >= 0 \(0 = off\), got -1"),
    (dict(min_new_tokens=1.5), "min_new_tokens must be an int >= 0"),
    (dict(forced_bos_token_id=100), r"forced_bos_token_id must be None or an int in \[0, 100\), got 100"),
    (dict(suppress_tokens=[1, 100]), r"suppress_tokens holds 100, outside the vocabulary \[0, 100\)"),
    (dict(suppress_tokens=5), "suppress_tokens must be a list of token ids"),
    (dict(bad_words_ids=[]), "bad_words_ids must be a non-empty list of lists of token ids"),
    (dict(bad_words_ids=[[1], []]), "bad_words_ids entries must not be empty"),
    (dict(bad_words_ids=[[1, -2]]), "each bad_words_ids entry must be a list of token ids"),
    (dict(stop_token_ids=[3, 100]), r"stop_token_ids holds 100, outside the vocabulary"),
    (dict(stop=[""]), "stop must be a string or a list of non-empty strings"),
    (dict(output_scores="yes"), "output_scores must be True or False"),
])
def test_bad_generation_arguments_are_rejected(bare, kwargs, message):
    ids = np.ones((1, 6), np.int64)
    kwargs = dict(dict(max_new_tokens=3), **kwargs)
    with pytest.raises(ValueError, match=message):
        bare.generate(ids, **kwargs)
    with pytest.raises(ValueError, match=message):
        bare.stream(ids, **kwargs)  # raises at the call, before the first next()


def test_greedy_ignores_temperature():
    GenerationConfig(do_sample=False, temperature=0.0)  # as transformers: only sampling uses it


@pytest.mark.parametrize("ids, mask, message", [
    (np.ones((1, 3), np.float32), None, "input_ids must be an integer array, got dtype float32"),
    (np.ones(3, np.int64), None, r"use ids\[None\] for one sequence"),
    (np.ones((0, 3), np.int64), None, r"empty batch: input_ids has shape \(0, 3\)"),
    (np.ones((1, 0), np.int64), None, r"empty batch: input_ids has shape \(1, 0\)"),
    (np.array([[1, 100]]), None, r"input_ids holds 100, outside \[0, 100\) \(vocab_size=100\)"),
    (np.array([[1, 2], [3, 4]]), np.ones((2, 3)),
     r"attention_mask must have the shape of input_ids \(2, 2\), got \(2, 3\)"),
    (np.array([[1, 2], [3, 4]]), np.array([[1, 1], [1, 0]]), "attention_mask row 1 is not left-padded"),
    (np.array([[1, 2], [3, 4]]), np.array([[1, 1], [0, 0]]), "sequence 1 has no tokens"),
    (np.array([[1, 2]]), np.array([[1, 3]]), "attention_mask must hold only 0"),
    (np.array([[1, 2]]), np.array([["a", "b"]]), "attention_mask must be an integer array"),
])
def test_bad_prompts_are_rejected(bare, ids, mask, message):
    with pytest.raises(ValueError, match=message):
        bare.generate(ids, 2, attention_mask=mask)


def test_ids_under_left_padding_may_be_anything(bare):
    ids = np.array([[-7, 500, 3, 4]])
    out = bare.generate(ids, 5, attention_mask=np.array([[0, 0, 1, 1]]))
    np.testing.assert_array_equal(out[:, :4], ids)
    np.testing.assert_array_equal(out[0, 4:], bare.generate(ids[:, 2:], 5)[0, 2:])


# --- one GenerationConfig ---------------------------------------------------------------------------------
def test_generate_stops_at_the_model_eos_by_default_and_none_never_stops(model, monkeypatch):
    ids, mask = batch()
    free = model.generate(ids, 20, attention_mask=mask, eos_token_id=None)[:, ids.shape[1]:]
    stop = int(free[0, 3])
    first = int(np.flatnonzero(free[0] == stop)[0])
    monkeypatch.setattr(model, "generation_config", model.generation_config.replace(eos_token_id=stop))
    assert model.eos_token_id == stop
    default = model.generate(ids, 20, attention_mask=mask)[:, ids.shape[1]:]
    np.testing.assert_array_equal(default, model.generate(ids, 20, attention_mask=mask, eos_token_id=stop)
                                  [:, ids.shape[1]:])
    np.testing.assert_array_equal(default[0, :first + 1], free[0, :first + 1])
    assert (default[0, first + 1:] == stop).all(), "a finished row is padded with the eos"
    np.testing.assert_array_equal(model.generate(ids, 20, attention_mask=mask, eos_token_id=None)[:, ids.shape[1]:],
                                  free)


def test_a_generation_config_object_equals_the_same_options_as_keywords(model):
    ids, mask = batch()
    options = dict(max_new_tokens=9, do_sample=True, top_k=7, temperature=0.8, seed=11, eos_token_id=None)
    by_keywords = model.generate(ids, attention_mask=mask, **options)
    config = GenerationConfig(**options)
    np.testing.assert_array_equal(model.generate(ids, attention_mask=mask, generation_config=config), by_keywords)
    # keywords override the config's fields
    np.testing.assert_array_equal(
        model.generate(ids, 9, attention_mask=mask, generation_config=config.replace(seed=0), seed=11), by_keywords)
    assert by_keywords.shape == (2, ids.shape[1] + 9)


def test_unknown_options_and_wrong_config_types_are_named(model):
    ids, _ = batch()
    with pytest.raises(TypeError, match="unknown generation option 'num_beam'; options: max_new_tokens, do_sample"):
        model.generate(ids, 3, num_beam=2)
    with pytest.raises(TypeError, match="generation_config must be a GenerationConfig, got dict"):
        model.generate(ids, 3, generation_config={"do_sample": True})


def test_generation_config_json_sets_the_model_defaults(tmp_path):
    write_tiny_gpt2(tmp_path, 100, seed=3)
    (tmp_path / "generation_config.json").write_text(json.dumps(
        {"eos_token_id": [7, 9], "pad_token_id": 5000, "max_new_tokens": 4, "do_sample": True, "top_k": 3,
         "bos_token_id": 0, "transformers_version": "5.0"}))
    model = GPT2LMHeadModel.from_pretrained(tmp_path)
    cfg = model.generation_config
    assert (cfg.eos_token_id, cfg.max_new_tokens, cfg.do_sample, cfg.top_k) == (7, 4, True, 3)
    assert cfg.pad_token_id is None  # outside the 100-token vocabulary: ignored, as the config's eos would be
    out = model.generate(np.ones((1, 3), np.int64), seed=0)
    assert out.shape[1] <= 3 + 4
    (tmp_path / "generation_config.json").write_text(json.dumps({"top_p": 2.0}))
    with pytest.raises(ValueError, match=r"generation_config.json: top_p must be in \(0, 1\]"):
        GPT2LMHeadModel.from_pretrained(tmp_path)


def test_prompt_is_validated_once_per_call(model, monkeypatch):
    import cpuformer.generation as generation

    calls = []
    real = generation.check_prompt
    monkeypatch.setattr(generation, "check_prompt", lambda *a: calls.append(1) or real(*a))
    ids, mask = batch()
    model.generate(ids, 3, attention_mask=mask)
    list(model.stream(ids, 3, attention_mask=mask))
    model.generate_text("The quick", 3)
    assert len(calls) == 3


# --- generation options (transformers parity of each is in tests/test_beam_search.py) ----------------------
def test_stop_token_ids_end_rows_like_eos(bare):
    ids, mask = batch()
    free = bare.generate(ids, 12, attention_mask=mask, eos_token_id=None)
    a, b = int(free[0, 8]), int(free[1, 9])  # tokens the rows produce at their 3rd / 4th step
    out = bare.generate(ids, 12, attention_mask=mask, eos_token_id=a, stop_token_ids=[b], pad_token_id=99)
    for row in range(2):
        new = free[row, 6:]
        end = min(np.flatnonzero(np.isin(new, [a, b]))) + 1
        np.testing.assert_array_equal(out[row, 6:6 + end], new[:end])
        assert (out[row, 6 + end:] == 99).all()


def test_sampling_returns_num_return_sequences_rows_per_prompt(bare):
    ids, mask = batch()
    out = bare.generate(ids, 10, attention_mask=mask, do_sample=True, seed=5, num_return_sequences=3)
    assert out.shape == (6, 16)
    np.testing.assert_array_equal(out[:3, :6], np.repeat(ids[:1], 3, axis=0))
    np.testing.assert_array_equal(out, bare.generate(ids, 10, attention_mask=mask, do_sample=True, seed=5,
                                                     num_return_sequences=3))
    assert len({tuple(r) for r in out[:3]}) > 1, "the samples of one prompt differ"


def test_scores_of_sampling_are_the_warped_distribution(bare):
    """output_scores when sampling: temperature applied, -inf outside top_k, and the picked token is always
    one of the kept ones; token_logprobs is its log-probability there."""
    ids, mask = batch()
    out = bare.generate(ids, 6, attention_mask=mask, do_sample=True, seed=2, top_k=5, temperature=0.7,
                        return_dict_in_generate=True, output_scores=True, eos_token_id=None)
    assert out.scores.shape == (2, 6, 100) and out.sequences_scores is None
    assert (np.isfinite(out.scores).sum(axis=2) == 5).all()
    new = out.sequences[:, 6:]
    picked = np.take_along_axis(out.scores, new[:, :, None], axis=2)[..., 0]
    assert np.isfinite(picked).all()
    s = out.scores.astype(np.float64)
    top = s.max(axis=2, keepdims=True)
    expected = picked - top[..., 0] - np.log(np.exp(s - top).sum(axis=2))
    np.testing.assert_allclose(out.token_logprobs, expected, atol=1e-5)
    # the kept scores are the logits / temperature of the model's own forward pass
    first = bare(ids, mask)[:, -1] / 0.7
    kept = np.isfinite(out.scores[:, 0])
    np.testing.assert_allclose(out.scores[:, 0][kept], first[kept], atol=1e-4)


def test_min_new_tokens_holds_back_eos_and_suppress_and_bad_words_ban_tokens(bare):
    ids = np.array([[5, 6, 7, 8, 9, 10]])
    free = bare.generate(ids, 10, eos_token_id=None)[0, 6:]
    eos = int(free[1])
    early = bare.generate(ids, 10, eos_token_id=eos)
    assert early.shape[1] < 16
    held = bare.generate(ids, 10, eos_token_id=eos, min_new_tokens=6, return_dict_in_generate=True,
                         output_scores=True)
    assert eos not in held.sequences[0, 6:11] and np.isneginf(held.scores[0, :5, eos]).all()
    banned = [int(t) for t in set(free.tolist())]
    out = bare.generate(ids, 10, eos_token_id=None, suppress_tokens=banned[:1], bad_words_ids=[[t] for t in banned[1:]])
    assert not set(out[0, 6:].tolist()) & set(banned)


def test_no_repeat_ngram_size_never_repeats_an_ngram(bare):
    ids = np.array([[5, 6, 7, 8, 9, 10]])
    for n in (1, 2, 3):
        row = bare.generate(ids, 30, eos_token_id=None, no_repeat_ngram_size=n)[0].tolist()
        grams = [tuple(row[i:i + n]) for i in range(len(row) - n + 1)]
        assert len(grams) == len(set(grams)), n


def test_continuous_decoding_applies_the_score_rules_like_generate(bare):
    from cpuformer.continuous_decoding import ContinuousDecoder

    config = bare.generation_config.replace(max_new_tokens=12, no_repeat_ngram_size=2, suppress_tokens=[3],
                                            repetition_penalty=1.3, eos_token_id=None)
    decoder = ContinuousDecoder(bare, 2, max_len=24)
    prompt = np.array([5, 6, 7, 8])
    seq = decoder.start(*decoder.check(prompt, config))
    while seq.finish_reason is None:
        decoder.step()
    np.testing.assert_array_equal(seq.tokens, bare.generate(prompt[None], generation_config=config)[0, 4:])
    with pytest.raises(ValueError, match="num_beams is not supported in continuous batching"):
        decoder.check(prompt, config.replace(num_beams=2))


def test_stop_strings_end_the_text_before_them(model):
    prompt = "The quick brown"
    free = model.generate_text(prompt, 30, eos_token_id=None)
    stop = free[6:9]
    assert stop and free.find(stop) == 6
    assert model.generate_text(prompt, 30, eos_token_id=None, stop=[stop, "\u65e5\u672c\u8a9e never"]) == free[:6]
    assert "".join(model.stream_text(prompt, 30, eos_token_id=None, stop=stop)) == free[:6]
    texts = model.generate_text([prompt, "Caf\u00e9"], 30, eos_token_id=None, stop=stop)
    assert texts[0] == free[:6]
    # beam search cuts its finished text the same way
    beams = model.generate_text(prompt, 20, eos_token_id=None, num_beams=3)
    cut = beams[3:6]
    assert model.generate_text(prompt, 20, eos_token_id=None, num_beams=3, stop=cut) == beams[:beams.find(cut)]


def test_generation_config_json_eos_lists_become_stop_ids(tmp_path):
    path = tmp_path / "generation_config.json"
    path.write_text(json.dumps({"eos_token_id": [3, 7, 500], "num_beams": 4, "early_stopping": "never",
                                "no_repeat_ngram_size": 3, "forced_bos_token_id": 0, "max_length": 50}))
    config = GenerationConfig.from_file(path, GenerationConfig(), vocab_size=100)
    assert (config.eos_token_id, config.stop_token_ids, config.stop_ids) == (3, (7,), (3, 7))
    assert (config.num_beams, config.early_stopping, config.no_repeat_ngram_size) == (4, "never", 3)
    path.write_text(json.dumps({"early_stopping": "soon"}))
    with pytest.raises(ValueError, match="early_stopping must be"):
        GenerationConfig.from_file(path, GenerationConfig(), vocab_size=100)
