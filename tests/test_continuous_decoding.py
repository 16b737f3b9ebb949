"""ContinuousDecoder: sequences that join and leave a running batch get the tokens `generate` gives each alone."""
from __future__ import annotations

import numpy as np
import pytest

from cpuformer.continuous_decoding import ContinuousDecoder
from cpuformer.models import GPT2LMHeadModel
from test_generation import train_tokenizer, write_tiny_gpt2


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_gpt2_rows")
    write_tiny_gpt2(folder, train_tokenizer(folder))
    return GPT2LMHeadModel.from_pretrained(folder)


def test_sequences_joining_and_leaving_equal_generate_alone(model):
    rng = np.random.default_rng(0)
    prompts = [rng.integers(1, model.vocab_size, n) for n in (7, 3, 12, 5)]
    options = [dict(max_new_tokens=20, eos_token_id=None), dict(max_new_tokens=6, eos_token_id=None),
               dict(max_new_tokens=15, do_sample=True, top_p=0.9, temperature=0.8, seed=3, eos_token_id=None),
               dict(max_new_tokens=9, repetition_penalty=1.3, eos_token_id=None)]
    decoder = ContinuousDecoder(model, max_sequences=3)
    config = [model.generation_config.replace(**o) for o in options]
    started, waiting = [], list(range(len(prompts)))
    steps = 0
    while waiting or decoder.running:
        # one newcomer between steps while there is room: the others keep decoding meanwhile
        if waiting and decoder.has_room and steps % 2 == 0:
            i = waiting.pop(0)
            ids, cfg = decoder.check(prompts[i], config[i])
            started.append((i, decoder.start(ids, cfg)))
        decoder.step()
        for _, seq in started:
            if seq.finish_reason and seq in decoder.running:
                decoder.release(seq)
        steps += 1
    assert len(started) == 4 and decoder.has_room
    for i, seq in started:
        alone = model.generate(prompts[i][None], **options[i])[0, len(prompts[i]):]
        np.testing.assert_array_equal(seq.tokens, alone, err_msg=f"prompt {i}")
        assert seq.finish_reason == "length"


def test_eos_finishes_a_sequence_and_release_frees_its_row(model):
    prompt = np.array([5, 9, 2])
    free_run = model.generate(prompt[None], max_new_tokens=8, eos_token_id=None)[0, 3:]
    eos = int(free_run[4])
    decoder = ContinuousDecoder(model, max_sequences=1)
    seq = decoder.start(*decoder.check(prompt, model.generation_config.replace(max_new_tokens=8,
                                                                                eos_token_id=eos)))
    assert not decoder.has_room
    while seq.finish_reason is None:
        decoder.step()
    first = list(free_run).index(eos)
    assert seq.tokens == list(free_run[:first + 1]) and seq.finish_reason == "stop"
    assert decoder.step() == []  # a finished sequence no longer steps
    decoder.release(seq)
    assert decoder.has_room and decoder.running == []
    again = decoder.start(*decoder.check(prompt, model.generation_config.replace(max_new_tokens=2)))
    assert again.row == seq.row


def test_cancelled_sequences_and_zero_new_tokens(model):
    decoder = ContinuousDecoder(model, max_sequences=2)
    cfg = model.generation_config.replace(max_new_tokens=5, eos_token_id=None)
    seq = decoder.start(*decoder.check([1, 2], cfg))
    decoder.release(seq)
    assert seq.finish_reason == "cancelled" and decoder.running == []
    nothing = decoder.start(*decoder.check([1, 2], cfg.replace(max_new_tokens=0)))
    assert nothing.tokens == [] and nothing.finish_reason == "length" and decoder.running == []


@pytest.mark.parametrize("prompt, options, message", [
    ([[1, 2]], {}, r"a prompt must be a 1-D list of token ids, got shape \(1, 2\)"),
    ([1, 10_000], {}, "input_ids"),
    ([1, 2], dict(max_new_tokens=47), "exceeds the model's n_positions=48"),
    ([1, 2], dict(temperature=-1.0, do_sample=True), "temperature must be a finite number > 0"),
])
def test_bad_prompts_and_options_are_named(model, prompt, options, message):
    decoder = ContinuousDecoder(model, max_sequences=1)
    with pytest.raises(ValueError, match=message):
        decoder.check(prompt, model.generation_config.replace(**options))


def test_max_sequences_must_be_positive(model):
    with pytest.raises(ValueError, match="max_sequences must be an int >= 1, got 0"):
        ContinuousDecoder(model, 0)
