"""Full sentence-transformers folders on every encoder architecture (pooling modes, Dense, Normalize, prompts,
truncate_dim, similarity_fn_name) against sentence-transformers, and quantize_embeddings / similarity
(sentence_modules.py) on the reference's own embeddings."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cpuformer import SentenceEncoder
from cpuformer.sentence_modules import quantize_embeddings, similarity
from reference import assert_close
from make_encoder_reference import ST_SETUPS, TEXTS, make_reference


@pytest.fixture(scope="session")
def st_ref(tmp_path_factory) -> Path:
    return make_reference(tmp_path_factory.mktemp("st_folders_reference"), "st_folders") / "st_folders"


def load(folder: Path, name: str) -> np.ndarray:
    return np.load(folder / f"{name}.npy")


@pytest.mark.parametrize("arch", list(ST_SETUPS))
def test_encode_matches_sentence_transformers(st_ref, arch):
    folder = st_ref / arch
    enc = SentenceEncoder.from_pretrained(folder)
    mode, dense, normalize, sim, truncate = ST_SETUPS[arch]
    assert enc.pooling_modes == (mode,) and len(enc.dense) == len(dense) and enc.normalize == normalize
    assert enc.similarity_fn_name == sim and enc.truncate_dim == truncate
    emb = enc.encode(TEXTS, batch_size=3)
    assert emb.shape == load(folder, "embeddings").shape == (len(TEXTS), enc.embedding_dimension)
    assert_close(emb, load(folder, "embeddings"), "model_vs_transformers")
    query = enc.encode(TEXTS[:2], prompt_name="query")
    assert_close(query, load(folder, "query"), "model_vs_transformers")
    assert_close(enc.similarity(query, emb), load(folder, "similarity"), "model_vs_transformers",
                 scale=max(1.0, float(np.abs(load(folder, "similarity")).max())))
    assert_close(enc.encode(TEXTS, truncate_dim=8), load(folder, "truncated8"), "model_vs_transformers")
    assert_close(enc.encode(TEXTS, normalize_embeddings=True), load(folder, "normalized"), "model_vs_transformers")


@pytest.mark.parametrize("precision", ["int8", "uint8", "binary", "ubinary"])
@pytest.mark.parametrize("arch", list(ST_SETUPS))
def test_quantized_embeddings_match_sentence_transformers(st_ref, arch, precision):
    folder = st_ref / arch
    want = load(folder, precision)
    got = quantize_embeddings(load(folder, "embeddings"), precision)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    enc = SentenceEncoder.from_pretrained(folder)
    np.testing.assert_array_equal(enc.encode(TEXTS, precision=precision),
                                  quantize_embeddings(enc.encode(TEXTS), precision))


def test_similarity_functions():
    a = np.array([[3.0, 4.0], [1.0, 0.0]], np.float32)
    b = np.array([[0.0, 2.0]], np.float32)
    np.testing.assert_allclose(similarity(a, b), [[0.8], [0.0]], atol=1e-7)
    np.testing.assert_allclose(similarity(a, b, "dot"), [[8.0], [0.0]])
    np.testing.assert_allclose(similarity(a, b, "euclidean"), [[-np.sqrt(13)], [-np.sqrt(5)]], rtol=1e-6)
    np.testing.assert_allclose(similarity(a, b, "manhattan"), [[-5.0], [-3.0]])
    assert similarity(a[0], b[0]).shape == (1, 1)
    with pytest.raises(ValueError, match="similarity function must be one of cosine, dot, euclidean, manhattan"):
        similarity(a, b, "angle")
    with pytest.raises(ValueError, match="embeddings of one dim"):
        similarity(a, np.zeros((1, 3)))


def test_precision_and_truncate_dim_errors(st_ref):
    enc = SentenceEncoder.from_pretrained(st_ref / "distilbert")
    with pytest.raises(ValueError, match="precision must be one of float32, int8, uint8, binary, ubinary; got 'int4'"):
        enc.encode(TEXTS, precision="int4")
    with pytest.raises(ValueError, match="truncate_dim must be a positive int or None, got 0"):
        enc.encode(TEXTS, truncate_dim=0)
    with pytest.raises(ValueError, match="cannot compute int8 quantization ranges from a single embedding"):
        enc.encode(TEXTS[:1], precision="int8")


def test_unsupported_module_and_dense_activation_are_named(st_ref, tmp_path):
    import shutil

    folder = shutil.copytree(st_ref / "roberta", tmp_path / "roberta")
    modules = json.loads((folder / "modules.json").read_text())
    dense_config = next(folder / m["path"] / "config.json" for m in modules if m["type"].endswith(".Dense"))
    original = dense_config.read_text()
    config = json.loads(original)
    config["activation_function"] = "torch.nn.modules.activation.Softplus"
    dense_config.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="Dense activation_function 'torch.nn.modules.activation.Softplus' is not "
                                         "supported"):
        SentenceEncoder.from_pretrained(folder)
    dense_config.write_text(original)
    modules.append({"idx": 9, "name": "9", "path": "", "type": "sentence_transformers.models.LayerNorm"})
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ValueError, match="module type 'sentence_transformers.models.LayerNorm' is not supported"):
        SentenceEncoder.from_pretrained(folder)


# ---- issue 16: a model folder reads only its own files ---------------------------------------------------------

@pytest.fixture
def st_copy(tmp_path, default_model_folder) -> Path:
    """all-MiniLM-L6-v2 copied inside tmp_path/outer/model, so '..' has somewhere to lead."""
    import shutil

    return Path(shutil.copytree(default_model_folder, tmp_path / "outer" / "model"))


def write_modules(folder: Path, transformer_path: str, pooling_path: str = "1_Pooling") -> None:
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": transformer_path, "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": pooling_path, "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]))


@pytest.mark.parametrize("path", ["..", "../..", "/", "../model/../..", "1_Pooling/../../model2"])
def test_module_paths_leaving_the_folder_are_refused(st_copy, path):
    import shutil

    shutil.copytree(st_copy, st_copy.parent / "model2")  # a loadable model outside the folder
    write_modules(st_copy, path)
    with pytest.raises(ValueError, match=f"modules.json: module path '{path}' leads outside the model folder"):
        SentenceEncoder.from_pretrained(st_copy)


def test_symlinks_leaving_the_folder_are_refused(st_copy):
    import shutil

    outside = Path(shutil.copytree(st_copy, st_copy.parent / "elsewhere"))
    (st_copy / "linked").symlink_to(outside, target_is_directory=True)
    write_modules(st_copy, "linked")
    with pytest.raises(ValueError, match="module path 'linked' leads outside the model folder"):
        SentenceEncoder.from_pretrained(st_copy)
    write_modules(st_copy, "")
    (st_copy / "1_Pooling" / "config.json").unlink()
    (st_copy / "1_Pooling" / "config.json").symlink_to(outside / "1_Pooling" / "config.json")
    with pytest.raises(ValueError, match="file 'config.json' leads outside the model folder"):
        SentenceEncoder.from_pretrained(st_copy)
    (st_copy / "1_Pooling" / "config.json").unlink()
    (st_copy / "1_Pooling" / "config.json").write_bytes((outside / "1_Pooling" / "config.json").read_bytes())
    (st_copy / "sentence_bert_config.json").unlink()
    (st_copy / "sentence_bert_config.json").symlink_to(outside / "sentence_bert_config.json")
    with pytest.raises(ValueError, match="file 'sentence_bert_config.json' leads outside the model folder"):
        SentenceEncoder.from_pretrained(st_copy)


def test_a_subfolder_module_inside_the_folder_still_loads(st_copy, default_model_folder):
    import shutil

    sub = st_copy / "0_Transformer"
    sub.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "sentence_bert_config.json"):
        shutil.move(st_copy / name, sub / name)
    write_modules(st_copy, "0_Transformer/../0_Transformer")
    want = SentenceEncoder.from_pretrained(default_model_folder).encode(["a cat"])
    np.testing.assert_array_equal(SentenceEncoder.from_pretrained(st_copy).encode(["a cat"]), want)


@pytest.mark.parametrize("config, message", [
    ({"in_features": True, "out_features": 4}, "needs positive integer in_features and out_features, got True and 4"),
    ({"in_features": "8", "out_features": 4}, "needs positive integer in_features"),
    ({"in_features": 8, "out_features": 4, "bias": "yes"}, "bias must be true or false, got 'yes'"),
    ({"in_features": 8, "out_features": 4, "activation_function": ["x"]}, "Dense activation_function"),
])
def test_bad_dense_config_is_named(tmp_path, config, message):
    from cpuformer.sentence_modules import DenseModule

    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=message):
        DenseModule.from_folder(tmp_path)
