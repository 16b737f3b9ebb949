"""Bounded, seeded fuzzing of what a model folder's JSON files configure (issue 16): config.json of every
architecture, modules.json and the sentence-transformers configs, tokenizer.json. Only ValueError and its subclasses
(CheckpointError, SafetensorsError) may come out: never a TypeError, KeyError, RecursionError or a hang."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cpuformer.models import AutoModel
from cpuformer.models.base import Checkpoint
from cpuformer.models.registry import _REGISTRY
from cpuformer.sentence_encoder import SentenceEncoder
from cpuformer.tokenizer import Tokenizer
from helpers import HealthCheck, given, settings, st
from tiny_models import bert_config, gpt2_config, tiny_bert, tiny_gpt2

FUZZ = settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))

SCALARS = (st.none() | st.booleans() | st.integers(-3, 40) | st.integers(-2**70, 2**70)
           | st.sampled_from([0.0, -1.0, 1e-12, float("inf"), float("nan"), 1e300]) | st.text(max_size=6)
           | st.sampled_from(["", "..", "../..", "/", "gelu", "relu", "absolute", "mean", "1_Pooling", "no", "0"]))
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.text(max_size=5), inner, max_size=3), max_leaves=8)

# a valid config.json per model_type, in config.json's own field names
VALID = {
    "bert": bert_config(),
    "roberta": bert_config(model_type="roberta", architectures=["RobertaModel"], pad_token_id=1),
    "electra": bert_config(model_type="electra", architectures=["ElectraModel"], embedding_size=4),
    "mpnet": bert_config(model_type="mpnet", architectures=["MPNetModel"]),
    "distilbert": dict(model_type="distilbert", architectures=["DistilBertModel"], vocab_size=30, dim=8, n_layers=1,
                       n_heads=2, hidden_dim=16, max_position_embeddings=16),
    "gpt2": gpt2_config(),
}


def mutate(data, config: dict) -> dict:
    config = json.loads(json.dumps(config))
    for _ in range(data.draw(st.integers(1, 4))):
        choice = data.draw(st.integers(0, 3))
        if choice == 0 and config:
            del config[data.draw(st.sampled_from(sorted(config)))]
        elif choice == 1:
            config[data.draw(st.text(max_size=8))] = data.draw(JSON_VALUES)
        elif config:
            config[data.draw(st.sampled_from(sorted(config)))] = data.draw(JSON_VALUES)
    return config


@FUZZ
@given(data=st.data(), model_type=st.sampled_from(sorted(VALID)))
def test_config_json_of_every_architecture(data, model_type):
    config = mutate(data, VALID[model_type])
    checkpoint = Checkpoint(Path("fuzz"), config)
    try:
        cls = AutoModel.model_class(checkpoint)
        cls.check_model_type(checkpoint)
    except ValueError:
        return
    for cls in {c for c in _REGISTRY.values() if model_type in c.model_types}:
        try:
            cls.config_class.from_dict(config)
        except ValueError:
            pass


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz_models")
    return {"bert": tiny_bert(root / "bert"), "gpt2": tiny_gpt2(root / "gpt2")}


@settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(data=st.data(), kind=st.sampled_from(["bert", "gpt2"]))
def test_config_json_through_loading(tmp_path_factory, models, data, kind):
    """The whole from_pretrained path on a folder whose config.json is mutated (as JSON, or as raw bytes)."""
    folder = tmp_path_factory.mktemp("load")
    shutil.copy(models[kind] / "model.safetensors", folder / "model.safetensors")
    config = mutate(data, json.loads((models[kind] / "config.json").read_text()))
    raw = json.dumps(config, allow_nan=True).encode()
    if data.draw(st.booleans()):
        at = data.draw(st.integers(0, len(raw)))
        raw = raw[:at] + data.draw(st.sampled_from([b"[" * 5000, b"\xff", b"}", b"", b'"', b"\x00"])) + raw[at:]
    (folder / "config.json").write_bytes(raw)
    try:
        AutoModel.from_pretrained(folder)
    except ValueError:
        pass


@pytest.fixture(scope="module")
def st_folder(tmp_path_factory, models):
    from test_tokenizer import build_wordpiece

    root = tmp_path_factory.mktemp("st") / "model"
    shutil.copytree(models["bert"], root / "0_Transformer")
    build_wordpiece(root / "0_Transformer")
    (root / "1_Pooling").mkdir()
    (root / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True}))
    return root


MODULE_TYPES = st.sampled_from([f"sentence_transformers.models.{t}" for t in
                                ("Transformer", "Pooling", "Normalize", "Dense", "LayerNorm")]) | JSON_VALUES
MODULE_PATHS = st.sampled_from(["0_Transformer", "1_Pooling", "", "..", "../..", "/", "0_Transformer/../..",
                                "missing", "1_Pooling/config.json", "\x00"]) | JSON_VALUES


@FUZZ
@given(data=st.data())
def test_sentence_transformers_configs(tmp_path_factory, st_folder, data):
    folder = tmp_path_factory.mktemp("st_case") / "model"
    shutil.copytree(st_folder, folder)
    modules = [{"idx": 0, "name": "0", "path": "0_Transformer", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    for _ in range(data.draw(st.integers(0, 3))):
        module = modules[data.draw(st.integers(0, len(modules) - 1))]
        module[data.draw(st.sampled_from(["path", "type", "idx"]))] = data.draw(MODULE_PATHS | MODULE_TYPES)
    if data.draw(st.booleans()):
        modules.append({"path": data.draw(MODULE_PATHS), "type": data.draw(MODULE_TYPES)})
    which = data.draw(st.sampled_from(["modules", "pooling", "sentence_bert", "st_model", "tokenizer_config"]))
    files = {"modules": folder / "modules.json", "pooling": folder / "1_Pooling" / "config.json",
             "sentence_bert": folder / "0_Transformer" / "sentence_bert_config.json",
             "st_model": folder / "config_sentence_transformers.json",
             "tokenizer_config": folder / "0_Transformer" / "tokenizer_config.json"}
    (folder / "modules.json").write_text(json.dumps(modules))
    if which != "modules":
        keys = {"pooling": ["pooling_mode", "pooling_mode_cls_token", "include_prompt"],
                "sentence_bert": ["max_seq_length", "do_lower_case"],
                "st_model": ["prompts", "default_prompt_name", "truncate_dim", "similarity_fn_name"],
                "tokenizer_config": ["model_max_length", "clean_up_tokenization_spaces"]}[which]
        value = data.draw(st.dictionaries(st.sampled_from(keys), JSON_VALUES, max_size=3) | JSON_VALUES)
        files[which].write_text(json.dumps(value, allow_nan=True))
    try:
        encoder = SentenceEncoder.from_pretrained(folder)
    except ValueError:
        return
    try:
        encoder.encode(["a cat sat on the mat"])
    except ValueError:
        pass


@pytest.fixture(scope="module")
def tokenizer_json(tmp_path_factory) -> dict:
    from test_tokenizer import build_wordpiece

    folder = build_wordpiece(tmp_path_factory.mktemp("wordpiece"))
    return json.loads((folder / "tokenizer.json").read_text())


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value[:3]):
            yield from _paths(v, prefix + (i,))


@FUZZ
@given(data=st.data())
def test_tokenizer_json(tmp_path_factory, tokenizer_json, data):
    config = json.loads(json.dumps(tokenizer_json))
    paths = [p for p in _paths(config) if p and not (len(p) >= 2 and p[:2] == ("model", "vocab"))]
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths))
        parent = config
        try:
            for key in path[:-1]:
                parent = parent[key]
            parent[path[-1]] = data.draw(JSON_VALUES)
        except (KeyError, IndexError, TypeError):
            pass  # an earlier mutation replaced a parent
    folder = tmp_path_factory.mktemp("tok")
    (folder / "tokenizer.json").write_text(json.dumps(config, allow_nan=True))
    try:
        tokenizer = Tokenizer.from_pretrained(folder)
    except ValueError:
        return
    try:
        tokenizer.encode_batch(["the cat sat", "hello world!"], ["a", "b"])
        tokenizer.decode([1, 2, 3])
    except ValueError:
        pass
