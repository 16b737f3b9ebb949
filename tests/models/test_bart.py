"""BART / mBART parity with transformers (reference made in a subprocess by make_bart_reference.py): encoder states,
logits, greedy and beam-search generate (with length_penalty, early_stopping, no_repeat_ngram_size,
num_return_sequences, min lengths, forced / suppressed / bad tokens) and their scores; loading and input errors."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from cpuformer.io import CheckpointError, load_safetensors, save_safetensors
from cpuformer.models import AutoModel, BartForConditionalGeneration, BartModel
from make_bart_reference import GENERATE_CALLS, NEW_TOKENS, SOURCE_LENGTHS, make_reference
from reference import TOLERANCE

ATOL = TOLERANCE["model_vs_transformers"][1]


@pytest.fixture(scope="session")
def ref(tmp_path_factory) -> Path:
    return make_reference(tmp_path_factory.mktemp("bart_reference"), "bart", "mbart")


@pytest.fixture(scope="session")
def models(ref):
    return {name: BartForConditionalGeneration.from_pretrained(ref / name) for name in ("bart", "mbart")}


@pytest.fixture(params=["bart", "mbart"])
def case(request, ref, models):
    return models[request.param], ref / request.param


def load(folder: Path, name: str) -> np.ndarray:
    return np.load(folder / f"{name}.npy")


def inputs(folder: Path):
    return load(folder, "input_ids"), load(folder, "attention_mask")


# --- parity ------------------------------------------------------------------------------------------------
def test_encoder_states_match_transformers(case):
    model, folder = case
    ids, mask = inputs(folder)
    states = model.model.encode(ids, mask)
    real = mask.astype(bool)
    assert states.shape == ids.shape + (72,)
    assert np.abs(states[real] - load(folder, "encoder_hidden")[real]).max() <= ATOL
    assert not states[~real].any(), "padding positions are zeros"


def test_logits_match_transformers(case):
    model, folder = case
    ids, mask = inputs(folder)
    logits = model(ids, mask, load(folder, "decoder_input_ids"))
    assert logits.dtype == np.float32 and logits.shape == (3, 7, 311)
    assert np.abs(logits - load(folder, "logits")).max() <= ATOL


def test_base_model_gives_decoder_and_encoder_states(case, ref):
    model, folder = case
    base = BartModel.from_pretrained(folder)  # a ForConditionalGeneration checkpoint: the head is skipped
    ids, mask = inputs(folder)
    out = base(ids, mask, decoder_input_ids=load(folder, "decoder_input_ids"))
    assert out.last_hidden_state.shape == (3, 7, 72)
    logits = model.head(out.last_hidden_state.reshape(21, 72)).reshape(3, 7, -1)
    assert np.abs(logits - load(folder, "logits")).max() <= ATOL
    real = mask.astype(bool)
    assert np.abs(out.encoder_last_hidden_state[real] - load(folder, "encoder_hidden")[real]).max() <= ATOL


@pytest.mark.parametrize("name", sorted(GENERATE_CALLS))
def test_generate_matches_transformers(case, name):
    """Greedy and beam search over the right-padded batch of 3 sources (lengths 11, 7, 3): identical ids (and
    shapes: rows end at different steps and are padded with pad_token_id as transformers does)."""
    model, folder = case
    ids, mask = inputs(folder)
    calls = json.loads((folder / "results.json").read_text())
    out = model.generate(ids, attention_mask=mask, **calls[name]["options"])
    np.testing.assert_array_equal(out, load(folder, f"{name}.sequences"))


@pytest.mark.parametrize("name", ["greedy", "beam4", "beam4_lp2_ngram2_ret3", "greedy_options"])
def test_scores_match_transformers(case, name):
    """output_scores: every step's processed scores (the same tokens -inf), and beam search's sequences_scores."""
    model, folder = case
    ids, mask = inputs(folder)
    options = json.loads((folder / "results.json").read_text())[name]["options"]
    out = model.generate(ids, attention_mask=mask, return_dict_in_generate=True, output_scores=True, **options)
    want = load(folder, f"{name}.scores")
    assert out.scores.shape == want.shape
    finite = np.isfinite(want)
    np.testing.assert_array_equal(np.isfinite(out.scores), finite)
    assert np.abs(out.scores[finite] - want[finite]).max() <= ATOL
    if (folder / f"{name}.sequences_scores.npy").exists():
        assert np.abs(out.sequences_scores - load(folder, f"{name}.sequences_scores")).max() <= ATOL


def test_token_logprobs_add_up_to_the_beam_scores(models, ref):
    """Each returned beam's token log-probabilities (read along its path) sum to its score times its length **
    length_penalty: the two are computed independently (per step vs. the running sums)."""
    model = models["bart"]
    ids, mask = inputs(ref / "bart")
    out = model.generate(ids, attention_mask=mask, num_beams=4, num_return_sequences=2, length_penalty=2.0,
                         return_dict_in_generate=True, output_scores=True, max_new_tokens=NEW_TOKENS)
    pad = model.generation_config.pad_token_id
    lengths = (out.sequences[:, 1:] != pad).sum(axis=1)
    np.testing.assert_allclose(out.token_logprobs.sum(axis=1), out.sequences_scores * lengths ** 2.0, rtol=1e-4)


def test_greedy_token_logprobs_are_log_softmax_of_the_scores(models, ref):
    model = models["bart"]
    ids, mask = inputs(ref / "bart")
    out = model.generate(ids, attention_mask=mask, return_dict_in_generate=True, output_scores=True,
                         max_new_tokens=6)
    s = out.scores.astype(np.float64)
    expected = s - np.log(np.exp(s - s.max(-1, keepdims=True)).sum(-1, keepdims=True)) - s.max(-1, keepdims=True)
    new = out.sequences[:, 1:]
    picked = np.take_along_axis(expected, new[:, :, None], axis=2)[..., 0]
    ended_before = np.cumsum(new == model.generation_config.eos_token_id, axis=1) - (new == 2) > 0
    assert ended_before.any() and not ended_before.all()  # row 0 ends early: its later steps count 0
    np.testing.assert_allclose(out.token_logprobs, np.where(ended_before, 0, picked), atol=1e-5)


def test_each_source_alone_gives_its_rows_of_the_batch(models, ref):
    """Beam search on a batch equals beam search on each source alone (no padding leaks between rows)."""
    model = models["mbart"]
    ids, mask = inputs(ref / "mbart")
    batched = model.generate(ids, attention_mask=mask, num_beams=4, max_new_tokens=12)
    for i, n in enumerate(SOURCE_LENGTHS):
        alone = model.generate(ids[i:i + 1, :n], num_beams=4, max_new_tokens=12)
        np.testing.assert_array_equal(alone[0], batched[i, :alone.shape[1]])


def test_cross_attention_memory_is_computed_once_per_call(models, ref, monkeypatch):
    model = models["bart"]
    ids, mask = inputs(ref / "bart")
    calls = []
    original = BartModel.cross_attention_memory

    def counting(self, *args):
        calls.append(1)
        return original(self, *args)

    monkeypatch.setattr(BartModel, "cross_attention_memory", counting)
    model.generate(ids, attention_mask=mask, num_beams=3, max_new_tokens=10)
    assert len(calls) == 1


def test_sampling_returns_several_sequences_per_source(models, ref):
    model = models["bart"]
    ids, mask = inputs(ref / "bart")
    a = model.generate(ids, attention_mask=mask, do_sample=True, seed=3, num_return_sequences=4, max_new_tokens=8,
                       top_k=20)
    b = model.generate(ids, attention_mask=mask, do_sample=True, seed=3, num_return_sequences=4, max_new_tokens=8,
                       top_k=20)
    assert a.shape[0] == 12 and np.array_equal(a, b)
    assert len({tuple(r) for r in a[:4]}) > 1, "samples of one source differ"


@pytest.mark.parametrize("dtype, bound", [("bf16", 0.04), ("int8", 0.08)])
def test_weight_dtypes_stay_close_to_float32(ref, models, dtype, bound):
    """Weight-only bf16 / int8: max |logit diff| within `bound` of the float32 logit range (measured on the random
    init_std=0.3 model: bf16 2.3%, int8 5.0%; its large random weights are int8's worst case)."""
    folder = ref / "bart"
    low = BartForConditionalGeneration.from_pretrained(folder, dtype=dtype)
    assert low.lm_head.dtype == dtype and low.model.encoder.layers[0].fc1.dtype == dtype
    ids, mask = inputs(folder)
    a = models["bart"](ids, mask, load(folder, "decoder_input_ids"))
    b = low(ids, mask, load(folder, "decoder_input_ids"))
    assert np.abs(a - b).max() <= bound * (a.max() - a.min())


# --- structure and loading ---------------------------------------------------------------------------------
def test_auto_model_and_structure(ref, models):
    assert isinstance(AutoModel.from_pretrained(ref / "mbart"), BartForConditionalGeneration)
    bart, mbart = models["bart"], models["mbart"]
    assert not bart.config.pre_norm and mbart.config.pre_norm
    assert bart.model.encoder.layer_norm is None and mbart.model.decoder.layer_norm is not None
    assert bart.config.embed_scale == pytest.approx(np.sqrt(72)) and mbart.config.embed_scale == 1.0
    # tied: the token table reads the packed head's rows
    np.testing.assert_array_equal(bart.model.shared.table[:3], bart.lm_head.weight[:3])
    assert bart.generation_config.decoder_start_token_id == 2 and bart.generation_config.forced_eos_token_id == 2


def copy_checkpoint(src: Path, dst: Path, edit) -> Path:
    dst.mkdir()
    for name in ("config.json", "generation_config.json"):
        shutil.copy(src / name, dst / name)
    tensors = {k: np.array(v) for k, v in load_safetensors(src / "model.safetensors").items()}
    edit(tensors)
    save_safetensors(dst / "model.safetensors", tensors)
    return dst


def test_old_checkpoints_with_copies_of_the_shared_table_load(ref, models, tmp_path):
    def edit(t):
        for name in ("model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight", "lm_head.weight"):
            t[name] = t["model.shared.weight"].copy()

    model = BartForConditionalGeneration.from_pretrained(copy_checkpoint(ref / "bart", tmp_path / "old", edit))
    ids, mask = inputs(ref / "bart")
    dec = load(ref / "bart", "decoder_input_ids")
    np.testing.assert_array_equal(model(ids, mask, dec), models["bart"](ids, mask, dec))


def test_unused_and_missing_weights_are_named(ref, tmp_path):
    def extra(t):
        t["model.decoder.layers.0.extra.weight"] = np.zeros(3, np.float32)

    with pytest.raises(CheckpointError, match=r"not used by the model: model\.decoder\.layers\.0\.extra\.weight"):
        BartForConditionalGeneration.from_pretrained(copy_checkpoint(ref / "bart", tmp_path / "extra", extra))
    with pytest.raises(CheckpointError, match=r"decoder\.layers\.1\.encoder_attn\.k_proj\.weight' not found"):
        BartForConditionalGeneration.from_pretrained(copy_checkpoint(
            ref / "bart", tmp_path / "missing", lambda t: t.pop("model.decoder.layers.1.encoder_attn.k_proj.weight")))


@pytest.mark.parametrize("change, message", [
    (dict(d_model=70), "d_model 70 is not divisible by encoder_attention_heads 4"),
    (dict(activation_function="swish"), "hidden_act 'swish' is not supported"),
    (dict(decoder_layers=-1), "config decoder_layers must be a positive int, got -1"),
])
def test_bad_config_is_rejected(ref, change, message):
    from cpuformer.models import BartConfig

    config = json.loads((ref / "bart" / "config.json").read_text())
    config.update(change)
    with pytest.raises(ValueError, match=message):
        BartConfig.from_dict(config)


# --- input errors ------------------------------------------------------------------------------------------
def test_bad_inputs_are_rejected(models):
    model = models["bart"]
    ids = np.array([[5, 6, 2]])
    with pytest.raises(ValueError, match="decoder_input_ids is required"):
        model(ids)
    with pytest.raises(ValueError, match=r"decoder_input_ids has 2 rows; input_ids has 1"):
        model(ids, decoder_input_ids=np.array([[2], [2]]))
    with pytest.raises(ValueError, match="decoder_input_ids: input_ids must be an integer array"):
        model(ids, decoder_input_ids=np.array([[2.0]]))
    with pytest.raises(ValueError, match=r"input_ids holds 311, outside \[0, 311\)"):
        model.generate(np.array([[5, 311]]))
    with pytest.raises(ValueError, match="input length 65 exceeds max_position_embeddings=64"):
        model.generate(np.full((1, 65), 5))
    with pytest.raises(ValueError, match="max_new_tokens 64 exceeds max_position_embeddings=64"):
        model.generate(ids, max_new_tokens=64)
    with pytest.raises(ValueError, match=r"num_return_sequences \(5\) must be <= num_beams \(4\)"):
        model.generate(ids, num_beams=4, num_return_sequences=5)
    with pytest.raises(ValueError, match="beam search .* cannot stream"):
        model.stream(ids, num_beams=2)


def test_continuous_batching_refuses_an_encoder_decoder(models):
    from cpuformer.continuous_decoding import ContinuousDecoder

    with pytest.raises(ValueError, match="BartForConditionalGeneration is an encoder-decoder"):
        ContinuousDecoder(models["bart"], 2)


def test_torch_never_loads_in_the_test_process(ref):
    import sys

    assert "torch" not in sys.modules, "the transformers reference must run in its own process"
