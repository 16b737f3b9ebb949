"""Beam search and the generation options on GPT-2, against transformers' generate (reference made in a subprocess
by make_beam_search_reference.py): identical ids for a left-padded batch of 3 prompts, scores within tolerance."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cpuformer.models import GPT2LMHeadModel
from make_beam_search_reference import GENERATE_CALLS, SCORED_CALLS, make_reference
from reference import TOLERANCE

ATOL = TOLERANCE["model_vs_transformers"][1]


@pytest.fixture(scope="module")
def ref(tmp_path_factory) -> Path:
    return make_reference(tmp_path_factory.mktemp("beam_reference"), "gpt2") / "gpt2"


@pytest.fixture(scope="module")
def model(ref):
    return GPT2LMHeadModel.from_pretrained(ref)


def call(ref: Path, name: str) -> dict:
    return json.loads((ref / "results.json").read_text())["calls"][name]["options"]


def prompts(ref: Path):
    return np.load(ref / "input_ids.npy"), np.load(ref / "attention_mask.npy")


@pytest.mark.parametrize("name", sorted(GENERATE_CALLS))
def test_generate_matches_transformers(model, ref, name):
    ids, mask = prompts(ref)
    options = call(ref, name)
    eos = options.pop("eos_token_id", None)
    if isinstance(eos, list):  # transformers' list of eos ids: the first is eos, the others stop ids
        options.update(eos_token_id=eos[0], stop_token_ids=eos[1:])
    out = model.generate(ids, attention_mask=mask, **options)
    np.testing.assert_array_equal(out, np.load(ref / f"{name}.sequences.npy"))


@pytest.mark.parametrize("name", SCORED_CALLS)
def test_scores_match_transformers(model, ref, name):
    ids, mask = prompts(ref)
    out = model.generate(ids, attention_mask=mask, return_dict_in_generate=True, output_scores=True,
                         **call(ref, name))
    want = np.load(ref / f"{name}.scores.npy")
    assert out.scores.shape == want.shape
    finite = np.isfinite(want)
    np.testing.assert_array_equal(np.isfinite(out.scores), finite)
    assert np.abs(out.scores[finite] - want[finite]).max() <= ATOL
    path = ref / f"{name}.sequences_scores.npy"
    if path.exists():
        assert np.abs(out.sequences_scores - np.load(path)).max() <= ATOL


def test_model_eos_and_pad_come_from_the_checkpoint(model, ref):
    saved = json.loads((ref / "results.json").read_text())
    assert model.generation_config.eos_token_id == saved["eos"] and model.generation_config.pad_token_id == 7


def test_one_beam_is_greedy_search(model, ref):
    ids, mask = prompts(ref)
    np.testing.assert_array_equal(model.generate(ids, 10, attention_mask=mask, num_beams=1),
                                  model.generate(ids, 10, attention_mask=mask))


def test_beam_search_never_scores_below_greedy(model, ref):
    """With length_penalty 0 and no eos, the best beam's summed log-probability is at least greedy's (beam search
    keeps greedy's path among its candidates at every step)."""
    ids, mask = prompts(ref)
    greedy = model.generate(ids, 12, attention_mask=mask, eos_token_id=None, output_scores=True,
                            return_dict_in_generate=True)
    beams = model.generate(ids, 12, attention_mask=mask, eos_token_id=None, num_beams=4, length_penalty=0.0,
                           output_scores=True, return_dict_in_generate=True)
    assert (beams.sequences_scores >= greedy.token_logprobs.sum(axis=1) - 1e-4).all()
    np.testing.assert_allclose(beams.token_logprobs.sum(axis=1), beams.sequences_scores, rtol=1e-5, atol=1e-4)
