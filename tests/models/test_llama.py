"""Llama-family parity with transformers (reference made in a subprocess by make_llama_reference.py) for llama
(GQA, untied), llama3 rope scaling (tied, head_dim from config), qwen2 (q/k/v biases, sharded safetensors) and
mistral (linear rope scaling): logits, greedy generate alone and on a left-padded batch; weight dtypes; loading,
config and input errors."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from cpuformer.io import CheckpointError
from cpuformer.models import AutoModel, LlamaConfig, LlamaForCausalLM, LlamaModel
from reference import TOLERANCE, assert_close
from make_llama_reference import NEW_TOKENS, PROMPT_LENGTHS, SIZES, make_reference

ATOL = TOLERANCE["model_vs_transformers"][1]
CASES = ("llama", "llama3", "qwen2", "mistral")


@pytest.fixture(scope="session")
def ref(tmp_path_factory) -> Path:
    return make_reference(tmp_path_factory.mktemp("llama_reference"), *CASES)


_models: dict[str, LlamaForCausalLM] = {}


@pytest.fixture(params=CASES)
def case(request, ref):
    """(model, reference folder) for every configuration; each model is loaded once per session."""
    if request.param not in _models:
        _models[request.param] = LlamaForCausalLM.from_pretrained(ref / request.param)
    return _models[request.param], ref / request.param


def load(folder: Path, name: str) -> np.ndarray:
    return np.load(folder / f"{name}.npy")


def prompts(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    return load(folder, "input_ids"), load(folder, "attention_mask")


# --- parity ------------------------------------------------------------------------------------------------
def test_logits_match_transformers(case):
    model, folder = case
    ids, _ = prompts(folder)
    logits = model(ids[:1])
    assert logits.dtype == np.float32 and logits.shape == (1, ids.shape[1], SIZES["vocab_size"])
    assert np.abs(logits - load(folder, "logits_row0")).max() <= ATOL


def test_left_padded_logits_use_per_row_positions(case):
    model, folder = case
    ids, mask = prompts(folder)
    logits, real = model(ids, mask), mask.astype(bool)
    assert np.abs(logits[real] - load(folder, "logits_padded")[real]).max() <= ATOL
    assert not logits[~real].any(), "padding positions are zeros"
    n = PROMPT_LENGTHS[2]  # alone vs inside the batch: other GEMM blockings; these logits reach |4| (scale 4)
    assert_close(model(ids[2:3, -n:])[0], logits[2, -n:], "model_paths", scale=4.0)


def test_greedy_generate_matches_transformers(case):
    model, folder = case
    ids, _ = prompts(folder)
    out = model.generate(ids[:1], NEW_TOKENS, eos_token_id=None)  # the reference never stops early
    assert out.dtype == np.int64 and out.shape == (1, ids.shape[1] + NEW_TOKENS)
    np.testing.assert_array_equal(out, load(folder, "row0"))


def test_batched_left_padded_generate_matches_transformers(case):
    model, folder = case
    ids, mask = prompts(folder)
    np.testing.assert_array_equal(model.generate(ids, NEW_TOKENS, attention_mask=mask, eos_token_id=None),
                                  load(folder, "batched"))


def test_parity_holds_on_every_isa(ref, isa):
    model = LlamaForCausalLM.from_pretrained(ref / "llama3")  # packed for the active ISA
    ids, mask = prompts(ref / "llama3")
    real = mask.astype(bool)
    assert np.abs(model(ids, mask)[real] - load(ref / "llama3", "logits_padded")[real]).max() <= ATOL
    np.testing.assert_array_equal(model.generate(ids, NEW_TOKENS, attention_mask=mask, eos_token_id=None),
                                  load(ref / "llama3", "batched"))


def test_sampling_and_streaming_run_on_the_shared_generation_code(ref):
    model = _models.get("llama") or LlamaForCausalLM.from_pretrained(ref / "llama")
    ids, mask = prompts(ref / "llama")
    a = model.generate(ids, 8, attention_mask=mask, do_sample=True, temperature=0.8, top_p=0.9, seed=5)
    b = model.generate(ids, 8, attention_mask=mask, do_sample=True, temperature=0.8, top_p=0.9, seed=5)
    np.testing.assert_array_equal(a, b)
    streamed = np.stack(list(model.stream(ids, 8, attention_mask=mask, eos_token_id=None)), axis=1)
    np.testing.assert_array_equal(streamed, load(ref / "llama", "batched")[:, ids.shape[1]:ids.shape[1] + 8])


def test_continuous_decoding_rows_equal_transformers(ref):
    """The server's ContinuousDecoder (GQA cache rows advancing independently) gives transformers' greedy ids."""
    from cpuformer.continuous_decoding import ContinuousDecoder

    model = _models.get("qwen2") or LlamaForCausalLM.from_pretrained(ref / "qwen2")
    ids, mask = prompts(ref / "qwen2")
    expected = load(ref / "qwen2", "batched")[:, ids.shape[1]:]
    decoder = ContinuousDecoder(model, max_sequences=3, max_len=96)
    config = model.generation_config.replace(max_new_tokens=NEW_TOKENS, eos_token_id=None)
    started = []
    for i, n in enumerate(PROMPT_LENGTHS):  # join one at a time, while the others decode
        started.append(decoder.start(*decoder.check(ids[i, -n:], config)))
        decoder.step()
    while decoder.step():
        pass
    for i, seq in enumerate(started):
        np.testing.assert_array_equal(seq.tokens, expected[i], err_msg=f"prompt {i}")


# --- structure and loading ---------------------------------------------------------------------------------
def test_packed_projections_gqa_cache_and_tied_heads(case):
    model, folder = case
    layer = model.model.layers[0]
    d = model.config.head_dim
    assert layer.self_attn.qkv.out_features == (6 + 2 * 2) * d  # Q | K | V: one GEMM, KV heads not repeated
    assert layer.gate_up_proj.out_features == 2 * 200  # gate | up: one GEMM
    cache = model.new_kv_cache(2, 16)
    assert (cache.num_heads, cache.num_kv_heads, cache.head_dim) == (6, 2, d)
    tied = folder.name in ("llama3", "qwen2")
    assert tied == (model.lm_head.weight.shape == model.model.embed_tokens.table.shape
                    and np.array_equal(model.lm_head.weight[:5], model.model.embed_tokens.table[:5]))


def test_config_fields_per_family(ref):
    cfg = {name: LlamaConfig.from_dict(json.loads((ref / name / "config.json").read_text())) for name in CASES}
    assert cfg["llama3"].head_dim == 24 and cfg["llama"].head_dim == 16
    assert cfg["llama3"].rope.rope_type == "llama3" and cfg["mistral"].rope.rope_type == "linear"
    assert cfg["qwen2"].qkv_bias and not cfg["qwen2"].o_bias and not cfg["llama"].qkv_bias
    assert (ref / "qwen2" / "model.safetensors.index.json").is_file()  # the qwen2 case loads from shards
    assert cfg["mistral"].sliding_window == 4096 and cfg["mistral"].max_positions == 256


@pytest.mark.parametrize("dtype,bound", [("int8", 0.08), ("bf16", 0.03)])
def test_weight_dtypes_stay_close_to_float32(case, dtype, bound):
    """Weight-only int8 / bf16: every linear (and the head) packed in that dtype; max |logit diff| within 8% /
    3% of the float32 logit range. Measured on these random-init models (weights std 0.2; SwiGLU multiplies two
    quantized projections, so errors grow faster than in GPT-2's GELU MLP): int8 2.6% (llama), 5.3% (llama3),
    4.4% (qwen2), 4.3% (mistral); bf16 0.6%, 1.7%, 1.4%, 1.0%."""
    model, folder = case
    low = LlamaForCausalLM.from_pretrained(folder, dtype=dtype)
    assert low.lm_head.dtype == dtype and low.model.layers[0].self_attn.qkv.dtype == dtype
    assert low.model.layers[0].gate_up_proj.dtype == dtype
    ids = prompts(folder)[0][:1]
    a, b = model(ids), low(ids)
    assert np.abs(a - b).max() <= bound * (a.max() - a.min())


def test_llama_model_returns_final_hidden_states(ref):
    model = _models.get("llama") or LlamaForCausalLM.from_pretrained(ref / "llama")
    base = LlamaModel.from_pretrained(ref / "llama")  # a CausalLM checkpoint: lm_head skipped
    ids, mask = prompts(ref / "llama")
    hidden = base(ids, mask)
    assert hidden.shape == ids.shape + (96,)
    real = mask.astype(bool)
    assert_close(model.lm_head(hidden[real]), model(ids, mask)[real], "model_paths")


@pytest.mark.parametrize("name, cls", [("llama", LlamaForCausalLM), ("qwen2", LlamaForCausalLM),
                                       ("mistral", LlamaForCausalLM)])
def test_auto_model_picks_the_family(ref, name, cls):
    assert type(AutoModel.from_pretrained(ref / name)) is cls


def copy_case(src: Path, dst: Path, edit_config) -> Path:
    shutil.copytree(src, dst)
    config = json.loads((dst / "config.json").read_text())
    edit_config(config)
    (dst / "config.json").write_text(json.dumps(config))
    return dst


def test_older_rope_theta_and_rope_scaling_keys_give_the_same_model(ref, tmp_path):
    """Configs written before transformers 5 spell RoPE as rope_theta + rope_scaling {"type": ...}."""
    def old_style(config):
        params = config.pop("rope_parameters")
        config["rope_theta"] = params.pop("rope_theta")
        params["type"] = params.pop("rope_type")
        config["rope_scaling"] = params

    folder = copy_case(ref / "llama3", tmp_path / "old", old_style)
    ids, _ = prompts(folder)
    assert np.abs(LlamaForCausalLM.from_pretrained(folder)(ids[:1]) - load(folder, "logits_row0")).max() <= ATOL


def test_longer_than_the_sliding_window_is_refused(ref, tmp_path):
    folder = copy_case(ref / "mistral", tmp_path / "window", lambda c: c.update(sliding_window=16))
    model = LlamaForCausalLM.from_pretrained(folder)
    ids, mask = prompts(folder)
    with pytest.raises(ValueError, match="sequence length 20 exceeds the model's maximum of 16 positions"):
        model(ids, mask)
    with pytest.raises(ValueError, match="16"):
        model.generate(ids[2:, -5:], 20)


def test_missing_weights_are_named(ref, tmp_path):
    from cpuformer.io import load_safetensors, save_safetensors

    dst = tmp_path / "missing"
    dst.mkdir()
    shutil.copy(ref / "llama" / "config.json", dst / "config.json")
    tensors = {k: np.array(v) for k, v in load_safetensors(ref / "llama" / "model.safetensors").items()}
    tensors.pop("model.layers.1.mlp.up_proj.weight")
    save_safetensors(dst / "model.safetensors", tensors)
    with pytest.raises(CheckpointError, match=r"'layers\.1\.mlp\.up_proj\.weight' not found"):
        LlamaForCausalLM.from_pretrained(dst)


def config_dict(**overrides):
    base = dict(model_type="llama", vocab_size=50, hidden_size=16, intermediate_size=20, num_hidden_layers=1,
                num_attention_heads=4, num_key_value_heads=2)
    base.update(overrides)
    return base


@pytest.mark.parametrize("overrides, message", [
    (dict(num_key_value_heads=3), "num_key_value_heads must be a positive int dividing num_attention_heads=4, got 3"),
    (dict(hidden_act="gelu"), "hidden_act 'gelu' is not supported"),
    (dict(head_dim=5), "head_dim must be an even int >= 2, got 5"),
    (dict(hidden_size=18), "hidden_size 18 is not divisible by num_attention_heads 4"),
    (dict(rope_scaling={"type": "yarn", "factor": 2.0}), "rope type 'yarn' is not supported"),
    (dict(rope_scaling={"type": "linear"}), "rope type 'linear' needs a positive number 'factor', got None"),
    (dict(rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 1.0}),
     "high_freq_factor != low_freq_factor"),
    (dict(vocab_size=0), "config vocab_size must be a positive int, got 0"),
])
def test_bad_config_is_rejected(overrides, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        LlamaConfig.from_dict(config_dict(**overrides))


def test_config_defaults_and_eos_lists():
    cfg = LlamaConfig.from_dict(config_dict(eos_token_id=[70, 7, 8, 7]))
    assert cfg.num_key_value_heads == 2 and cfg.head_dim == 4 and cfg.rope.theta == 10000.0
    assert cfg.eos_token_ids == (7, 8) and cfg.eos_token_id == 7  # the ids inside the vocabulary, each once
    assert LlamaConfig.from_dict(config_dict(num_key_value_heads=None)).num_key_value_heads == 4


def test_bad_inputs_name_the_problem(ref):
    model = _models.get("llama") or LlamaForCausalLM.from_pretrained(ref / "llama")
    with pytest.raises(ValueError, match="input_ids"):
        model(np.array([[1, 500]]))
    with pytest.raises(ValueError, match="exceeds the model's maximum of 256 positions"):
        model(np.ones((1, 257), np.int64))
