"""BERT parity with transformers (reference made in a subprocess by make_bert_reference.py), packing, loading
and input errors."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from cpuformer import ops
from cpuformer.io import CheckpointError, load_safetensors, save_safetensors
from cpuformer.layers import PackedBatch, fused_activation
from cpuformer.models import AutoModel, BertForMaskedLM, BertForSequenceClassification, BertModel, register_model
from helpers import HealthCheck, given, settings, st
from reference import TOLERANCE, assert_close
from make_bert_reference import CLS_PAIRS, CLS_TEXTS, MLM_TEXTS, make_reference

ATOL = TOLERANCE["model_vs_transformers"][1]


@pytest.fixture(scope="session")
def ref(tmp_path_factory) -> Path:
    return make_reference(tmp_path_factory.mktemp("bert_reference"), "base", "odd_mlm", "odd_cls")


def load(folder: Path, name: str) -> np.ndarray:
    return np.load(folder / f"{name}.npy")


def inputs(folder: Path, prefix: str = ""):
    return tuple(load(folder, prefix + n) for n in ("input_ids", "attention_mask", "token_type_ids"))


@pytest.fixture(scope="session")
def base_model(ref):
    return BertModel.from_pretrained(ref / "base")


@pytest.fixture(scope="session")
def mlm_model(ref):
    return BertForMaskedLM.from_pretrained(ref / "odd_mlm")


@pytest.fixture(scope="session")
def cls_model(ref):
    return BertForSequenceClassification.from_pretrained(ref / "odd_cls")


def max_diff_on_tokens(ours, theirs, mask):
    real = mask.astype(bool)
    return float(np.abs(ours[real] - theirs[real]).max())


# --- parity ------------------------------------------------------------------------------------------------
def test_bert_base_hidden_states_and_pooler_match_transformers(ref, base_model):
    folder = ref / "base"
    ids, mask, types = inputs(folder)
    out = base_model(ids, mask, types)
    assert out.last_hidden_state.shape == (3, 16, 768)
    assert max_diff_on_tokens(out.last_hidden_state, load(folder, "last_hidden_state"), mask) <= ATOL
    assert np.abs(out.pooler_output - load(folder, "pooler_output")).max() <= ATOL
    assert not out.last_hidden_state[~mask.astype(bool)].any(), "padding positions are zeros"


def test_qkv_is_one_fused_projection(base_model):
    layer = base_model.encoder_layers[0]
    assert layer.attention.qkv.out_features == 3 * 768 and layer.attention.qkv.in_features == 768
    assert len(base_model.encoder_layers) == 12


def test_masked_lm_logits_match_transformers_on_every_isa(ref, isa):
    folder = ref / "odd_mlm"
    model = BertForMaskedLM.from_pretrained(folder)  # packed for the active ISA
    ids, mask, types = inputs(folder)
    out = model(ids, mask, types)
    assert max_diff_on_tokens(out.logits, load(folder, "logits"), mask) <= ATOL
    assert max_diff_on_tokens(out.last_hidden_state, load(folder, "last_hidden_state"), mask) <= ATOL


def test_fill_mask_matches_transformers_pipeline(ref, mlm_model):
    expected = json.loads((ref / "odd_mlm" / "fill_mask.json").read_text())
    for text, want in zip(MLM_TEXTS, expected):
        got = mlm_model.fill_mask(text, top_k=5)
        flat_got = got if isinstance(got[0], dict) else [p for preds in got for p in preds]
        flat_want = want if isinstance(want[0], dict) else [p for preds in want for p in preds]
        assert [(p["token"], p["token_str"], p["sequence"]) for p in flat_got] == \
               [(p["token"], p["token_str"], p["sequence"]) for p in flat_want]
        assert_close([p["score"] for p in flat_got], [p["score"] for p in flat_want], "model_paths_unit")
    batched, alone = mlm_model.fill_mask(MLM_TEXTS[:2], top_k=2)[1], mlm_model.fill_mask(MLM_TEXTS[1], top_k=2)
    assert [p["token"] for p in batched] == [p["token"] for p in alone]
    assert_close([p["score"] for p in batched], [p["score"] for p in alone], "model_paths_unit")


def test_classification_logits_match_transformers(ref, cls_model):
    folder = ref / "odd_cls"
    assert np.abs(cls_model(*inputs(folder)).logits - load(folder, "logits")).max() <= ATOL
    assert np.abs(cls_model(*inputs(folder, "pair_")).logits - load(folder, "pair_logits")).max() <= ATOL


def test_predict_names_labels_with_softmax_scores(ref, cls_model):
    logits = load(ref / "odd_cls", "logits").astype(np.float64)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    names = ["negative", "neutral", "positive"]
    got = cls_model.predict(CLS_TEXTS)
    assert [g["label"] for g in got] == [names[i] for i in probs.argmax(axis=1)]
    assert_close([g["score"] for g in got], probs.max(axis=1), "model_paths")
    one = cls_model.predict(CLS_TEXTS[0])
    assert one["label"] == got[0]["label"] and abs(one["score"] - got[0]["score"]) <= TOLERANCE["model_paths"][1]
    pair_logits = load(ref / "odd_cls", "pair_logits")
    assert [g["label"] for g in cls_model.predict(CLS_TEXTS, CLS_PAIRS)] == [names[i] for i in
                                                                             pair_logits.argmax(axis=1)]


def test_tokenizer_matches_transformers(ref, mlm_model, cls_model):
    enc = mlm_model.tokenizer.encode_batch(MLM_TEXTS)
    for got, want in zip((enc.input_ids, enc.attention_mask, enc.token_type_ids), inputs(ref / "odd_mlm")):
        np.testing.assert_array_equal(got, want)
    enc = cls_model.tokenizer.encode_batch(CLS_TEXTS, CLS_PAIRS)
    for got, want in zip((enc.input_ids, enc.attention_mask, enc.token_type_ids), inputs(ref / "odd_cls", "pair_")):
        np.testing.assert_array_equal(got, want)


def test_bare_encoder_loads_from_a_task_checkpoint(ref, mlm_model):
    folder = ref / "odd_mlm"
    encoder = BertModel.from_pretrained(folder)  # "bert." stripped, "cls.*" head skipped
    assert encoder.pooler is None
    ids, mask, types = inputs(folder)
    np.testing.assert_array_equal(encoder(ids, mask, types).last_hidden_state,
                                  mlm_model(ids, mask, types).last_hidden_state)
    assert encoder(ids, mask, types).pooler_output is None


def test_automodel_picks_the_registered_class(ref):
    assert isinstance(AutoModel.from_pretrained(ref / "odd_cls"), BertForSequenceClassification)
    assert isinstance(AutoModel.from_pretrained(ref / "base"), BertModel)


# --- packing -------------------------------------------------------------------------------------------------
def test_mixed_length_batch_equals_one_by_one(ref, base_model):
    ids, mask, types = inputs(ref / "base")
    batched = base_model(ids, mask, types)
    for b in range(ids.shape[0]):
        n = int(mask[b].sum())
        alone = base_model(ids[b:b + 1, :n], None, types[b:b + 1, :n])
        assert_close(batched.last_hidden_state[b, :n], alone.last_hidden_state[0], "model_paths")
        assert_close(batched.pooler_output[b], alone.pooler_output[0], "model_paths")


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lengths=st.lists(st.integers(1, 20), min_size=1, max_size=5), seed=st.integers(0, 2**16))
def test_any_mix_of_lengths_equals_one_by_one(mlm_model, lengths, seed):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 30522, (len(lengths), max(lengths)))
    mask = (np.arange(max(lengths)) < np.array(lengths)[:, None]).astype(np.int64)
    batched = mlm_model.bert(ids, mask).last_hidden_state
    for b, n in enumerate(lengths):
        alone = mlm_model.bert(ids[b:b + 1, :n]).last_hidden_state[0]
        assert_close(batched[b, :n], alone, "model_paths")
        assert not batched[b, n:].any()


def test_packed_batch_layout():
    batch = PackedBatch.from_mask(np.array([[1, 1, 1], [1, 0, 0], [1, 1, 0]]))
    np.testing.assert_array_equal(batch.cu_seqlens, [0, 3, 4, 6])
    np.testing.assert_array_equal(batch.cols, [0, 1, 2, 0, 0, 1])
    packed = np.arange(6, dtype=np.float32)[:, None]
    np.testing.assert_array_equal(batch.scatter(packed)[..., 0], [[0, 1, 2], [3, 0, 0], [4, 5, 0]])
    same = PackedBatch.from_lengths([3, 1, 2])
    np.testing.assert_array_equal(same.cols, batch.cols)
    np.testing.assert_array_equal(same.cu_seqlens, batch.cu_seqlens)


def test_hidden_act_maps_to_fused_epilogue():
    assert fused_activation("gelu") == "gelu"
    assert fused_activation("gelu_new") == "gelu_tanh"
    assert fused_activation("relu") == "relu"
    with pytest.raises(ValueError, match="hidden_act 'swish' is not supported; supported: gelu"):
        fused_activation("swish")


# --- input errors ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(input_ids=np.array([[2, 999999]])), r"input_ids holds 999999, outside \[0, 30522\) \(vocab_size=30522\)"),
        (dict(input_ids=np.array([[2, -1]])), r"input_ids holds -1, outside \[0, 30522\)"),
        (dict(input_ids=np.ones((1, 65), np.int64)), "sequence length 65 exceeds max_position_embeddings=64"),
        (dict(input_ids=np.zeros((0, 4), np.int64)), r"empty batch: input_ids has shape \(0, 4\)"),
        (dict(input_ids=np.zeros((2, 0), np.int64)), r"empty batch: input_ids has shape \(2, 0\)"),
        (dict(input_ids=np.ones((1, 4), np.float32)), "input_ids must be an integer array, got dtype float32"),
        (dict(input_ids=np.ones(4, np.int64)), r"input_ids must have shape \(batch, seq_len\), got \(4,\); use ids\[None\]"),
        (dict(input_ids=np.ones((1, 2, 4), np.int64)), r"input_ids must have shape \(batch, seq_len\), got \(1, 2, 4\)"),
        (dict(input_ids=np.ones((2, 4), np.int64), attention_mask=np.ones((2, 3), np.int64)),
         r"attention_mask must have the shape of input_ids \(2, 4\), got \(2, 3\)"),
        (dict(input_ids=np.ones((1, 4), np.int64), attention_mask=np.array([[1, 2, 1, 0]])),
         "attention_mask must hold only 0 \\(padding\\) and 1 \\(token\\)"),
        (dict(input_ids=np.ones((2, 4), np.int64), attention_mask=np.array([[1, 1, 0, 0], [0, 0, 0, 0]])),
         r"sequence 1 has no tokens \(its attention_mask row is all 0\)"),
        (dict(input_ids=np.ones((1, 4), np.int64), token_type_ids=np.full((1, 4), 2)),
         r"token_type_ids holds 2, outside \[0, 2\) \(type_vocab_size=2\)"),
        (dict(input_ids=np.ones((1, 4), np.int64), token_type_ids=np.zeros((1, 4), np.float64)),
         "token_type_ids must be an integer array, got dtype float64"),
    ],
)
def test_bad_inputs_raise_clear_errors(mlm_model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        mlm_model(**kwargs)


def test_boolean_attention_mask_is_accepted(mlm_model, ref):
    ids, mask, types = inputs(ref / "odd_mlm")
    np.testing.assert_array_equal(mlm_model(ids, mask.astype(bool), types).logits, mlm_model(ids, mask, types).logits)


def test_fill_mask_errors(mlm_model):
    with pytest.raises(ValueError, match=r"no mask token \(\[MASK\]\) found in text 1: 'no mask here'"):
        mlm_model.fill_mask(["a [MASK] b", "no mask here"])
    with pytest.raises(ValueError, match="top_k must be a positive int, got 0"):
        mlm_model.fill_mask("a [MASK]", top_k=0)
    with pytest.raises(ValueError, match="fill_mask needs at least one text"):
        mlm_model.fill_mask([])


def test_text_methods_need_a_tokenizer(ref, tmp_path):
    folder = copy_checkpoint(ref / "odd_cls", tmp_path)
    (folder / "tokenizer.json").unlink()
    model = BertForSequenceClassification.from_pretrained(folder)
    with pytest.raises(ValueError, match="loaded without a tokenizer.json, so it cannot take text"):
        model.predict("hello")


# --- loading errors ----------------------------------------------------------------------------------------------
def copy_checkpoint(src: Path, dst: Path) -> Path:
    folder = dst / src.name
    folder.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(src / name, folder / name)
    return folder


def rewrite_weights(folder: Path, edit) -> None:
    tensors = {k: np.array(v) for k, v in load_safetensors(folder / "model.safetensors").items()}
    edit(tensors)
    save_safetensors(folder / "model.safetensors", tensors)


def rewrite_config(folder: Path, **changes) -> None:
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


def test_missing_weight_is_named(ref, tmp_path):
    folder = copy_checkpoint(ref / "odd_cls", tmp_path)
    rewrite_weights(folder, lambda t: t.pop("bert.encoder.layer.1.attention.self.key.weight"))
    with pytest.raises(CheckpointError, match="weight 'encoder.layer.1.attention.self.key.weight' not found"):
        BertForSequenceClassification.from_pretrained(folder)


def test_unused_weight_is_named(ref, tmp_path):
    folder = copy_checkpoint(ref / "odd_cls", tmp_path)
    rewrite_weights(folder, lambda t: t.update({"bert.encoder.layer.9.extra": np.zeros(3, np.float32)}))
    with pytest.raises(CheckpointError, match="1 weights in checkpoint .* were not used by the model: "
                                              "bert.encoder.layer.9.extra"):
        BertForSequenceClassification.from_pretrained(folder)


def test_misshapen_weight_is_named(ref, tmp_path):
    folder = copy_checkpoint(ref / "odd_cls", tmp_path)
    rewrite_weights(folder, lambda t: t.update({"bert.encoder.layer.0.output.dense.weight": np.zeros((96, 100),
                                                                                                    np.float32)}))
    with pytest.raises(CheckpointError, match=r"'encoder.layer.0.output.dense.weight' \(checkpoint key "
                                              r"'bert.encoder.layer.0.output.dense.weight'\): expected shape "
                                              r"\(96, 200\), checkpoint has \(96, 100\)"):
        BertForSequenceClassification.from_pretrained(folder)


def test_pytorch_only_checkpoint_says_how_to_convert(ref, tmp_path):
    folder = copy_checkpoint(ref / "odd_cls", tmp_path)
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="has only PyTorch weights .*save_pretrained"):
        AutoModel.from_pretrained(folder)


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(hidden_act="swish"), "hidden_act 'swish' is not supported"),
        (dict(position_embedding_type="relative_key"), "position_embedding_type 'relative_key' is not supported"),
        (dict(num_attention_heads=5), "hidden_size 96 is not divisible by num_attention_heads 5"),
        (dict(hidden_size=-1), "config hidden_size must be a positive int, got -1"),
        (dict(architectures=["GPTNeoXForCausalLM"]), "architecture 'GPTNeoXForCausalLM' is not supported by "
                                                     "cpuformer; supported: .*BertModel"),
        (dict(architectures=None, model_type="t5"), "has no 'architectures' list and model_type 't5' is not one "
                                                    "cpuformer knows \\(bart, bert, distilbert, electra, gpt2, llama, "
                                                    "mbart, mistral, mpnet, qwen2, roberta"),
    ],
)
def test_bad_configs_raise_clear_errors(ref, tmp_path, changes, message):
    folder = copy_checkpoint(ref / "odd_cls", tmp_path)
    rewrite_config(folder, **changes)
    with pytest.raises(ValueError, match=message):
        AutoModel.from_pretrained(folder)


def test_config_missing_keys_are_named(ref, tmp_path):
    folder = copy_checkpoint(ref / "odd_cls", tmp_path)
    config = json.loads((folder / "config.json").read_text())
    del config["intermediate_size"]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="config.json lacks intermediate_size"):
        BertModel.from_pretrained(folder)


def test_register_model_refuses_a_second_owner():
    with pytest.raises(ValueError, match="architecture 'BertModel' is already registered to BertModel"):
        register_model("BertModel")(type("Other", (), {}))


def test_attention_op_is_the_cpp_kernel():
    # The model layer has no numpy attention fallback: it runs the C++ varlen kernel.
    assert type(ops.multi_head_attention_varlen).__name__ == "builtin_function_or_method"


def test_torch_never_loads_in_the_test_process(ref):
    assert "torch" not in sys.modules


# --- the class must implement the folder's architecture ----------------------------------------------------
@pytest.fixture(scope="session")
def relatives_ref(tmp_path_factory) -> Path:
    return make_reference(tmp_path_factory.mktemp("bert_relatives"), "relatives", "qa")


@pytest.mark.parametrize("folder, model_type", [("roberta", "roberta"), ("xlm-roberta", "xlm-roberta"),
                                                ("distilbert", "distilbert")])
@pytest.mark.parametrize("cls", [BertModel, BertForMaskedLM, BertForSequenceClassification])
def test_bert_classes_refuse_a_relatives_folder(relatives_ref, folder, model_type, cls):
    # RoBERTa's weights have BERT's names and shapes: without this check it loaded and ran with wrong positions.
    with pytest.raises(ValueError, match=rf"describes a '{model_type}' model \(architecture \w+\); {cls.__name__} "
                                         r"implements model_type 'bert'\. Supported architectures: .*BertModel"):
        cls.from_pretrained(relatives_ref / "relatives" / folder)


@pytest.mark.parametrize("folder, cls_name", [("roberta", "RobertaModel"), ("xlm-roberta", "XLMRobertaModel"),
                                              ("distilbert", "DistilBertModel")])
def test_automodel_loads_a_relatives_folder_with_its_own_class(relatives_ref, folder, cls_name):
    assert type(AutoModel.from_pretrained(relatives_ref / "relatives" / folder)).__name__ == cls_name


def test_gpt2_class_refuses_a_bert_folder(ref):
    from cpuformer.models import GPT2LMHeadModel

    with pytest.raises(ValueError, match="describes a 'bert' model .*GPT2LMHeadModel implements model_type 'gpt2'"):
        GPT2LMHeadModel.from_pretrained(ref / "odd_cls")


def test_bare_encoder_skips_any_task_head_by_one_rule(relatives_ref):
    # BertForQuestionAnswering's qa_outputs.* failed to load while classifier.* was skipped: heads outside
    # "bert." are all skipped, whatever their name.
    folder = relatives_ref / "qa"
    encoder = BertModel.from_pretrained(folder)
    ids, mask, types = inputs(folder)
    got = encoder(ids, mask, types)
    assert max_diff_on_tokens(got.last_hidden_state, load(folder, "last_hidden_state"), mask) <= ATOL
    assert got.pooler_output is None  # the QA checkpoint has no pooler (transformers initialises a random one)
    with pytest.raises(CheckpointError, match="weight 'pooler.dense.weight' not found"):
        BertForSequenceClassification.from_pretrained(folder)  # a task model still needs what its head reads


def test_a_task_model_still_names_weights_it_does_not_use(ref, tmp_path):
    folder = copy_checkpoint(ref / "odd_cls", tmp_path)
    rewrite_weights(folder, lambda t: t.update({"qa_outputs.weight": np.zeros((2, 96), np.float32)}))
    with pytest.raises(CheckpointError, match="were not used by the model: qa_outputs.weight"):
        BertForSequenceClassification.from_pretrained(folder)
    BertModel.from_pretrained(folder)  # the bare encoder: a head, skipped


# --- one loading template ------------------------------------------------------------------------------------
def count_reads(monkeypatch):
    """Counts how often each file name is parsed as JSON or as a tokenizer."""
    import tokenizers

    from cpuformer.io import checkpoint

    counts: dict[str, int] = {}
    real_json, real_tok = checkpoint.read_json, tokenizers.Tokenizer.from_file

    def read_json(path):
        counts[Path(path).name] = counts.get(Path(path).name, 0) + 1
        return real_json(path)

    def from_file(path):
        counts[Path(path).name] = counts.get(Path(path).name, 0) + 1
        return real_tok(path)

    monkeypatch.setattr(checkpoint, "read_json", read_json)
    monkeypatch.setattr(tokenizers.Tokenizer, "from_file", staticmethod(from_file))
    return counts


def test_automodel_reads_config_once_and_the_tokenizer_when_text_comes(ref, monkeypatch):
    counts = count_reads(monkeypatch)
    model = AutoModel.from_pretrained(ref / "odd_mlm")
    assert isinstance(model, BertForMaskedLM) and counts == {"config.json": 1}
    model.fill_mask("The capital of France is [MASK].")
    model.fill_mask("Paris is a [MASK] city.")
    assert counts == {"config.json": 1, "tokenizer.json": 1}


def test_dtype_argument_names_the_supported_ones(ref):
    assert isinstance(BertModel.from_pretrained(ref / "base", dtype=np.float32), BertModel)
    assert BertModel.from_pretrained(ref / "base", dtype="bfloat16").encoder_layers[0].output.dtype == "bf16"
    with pytest.raises(ValueError, match="dtype 'int4' is not supported; supported: float32, bf16, int8"):
        AutoModel.from_pretrained(ref / "base", dtype="int4")


@pytest.mark.parametrize("dtype,bound", [("int8", 0.08), ("bf16", 0.02)])
def test_weight_dtypes_pack_every_linear_and_stay_close(ref, dtype, bound):
    """Weight-only int8 / bf16: every linear (fused QKV, attention output, FFN, pooler, MLM transform and tied
    decoder) is packed in that dtype and gives exactly what float32 gives on the rounded weights (ops tests cover
    that); here logits stay within 8% (int8) / 2% (bf16) of the float32 logit range. Measured on the dev Xeon:
    6.4% / 1.0% (initializer_range 0.2 and eps 1e-7 make this random-init model amplify weight error; the tied
    word embeddings are read from the int8 decoder, which doubled it from 3.0%: on a GPT-2-small-shaped model
    the same change moved the logit error from 0.90% to 0.97% of the range)."""
    folder = ref / "odd_mlm"
    fp32, low = BertForMaskedLM.from_pretrained(folder), BertForMaskedLM.from_pretrained(folder, dtype=dtype)
    layer = low.bert.encoder_layers[0]
    linears = [layer.attention.qkv, layer.attention.out, layer.intermediate, layer.output, low.transform,
               low.decoder]
    assert [lin.dtype for lin in linears] == [dtype] * len(linears)
    assert low.bert.embeddings.word_embeddings.head is low.decoder  # tied: one copy, in the decoder's dtype
    ids, mask, types = inputs(folder)
    a, b = fp32(ids, mask, types).logits, low(ids, mask, types).logits
    real = mask.astype(bool)
    assert np.abs(a[real] - b[real]).max() <= bound * (a[real].max() - a[real].min())


def test_model_owns_its_weights_unless_mmap(ref, tmp_path):
    """After loading, rewriting model.safetensors in place (same size, zeros) changes nothing: every array the
    model uses is its own. With mmap=True the embedding tables are views of the file, so the rewrite shows up
    (the documented risk of sharing pages between processes)."""
    folder = tmp_path / "copy"
    shutil.copytree(ref / "base", folder)
    ids, mask, types = inputs(ref / "base")
    owned, mapped = BertModel.from_pretrained(folder), BertModel.from_pretrained(folder, mmap=True)
    before = owned(ids, mask, types).last_hidden_state
    np.testing.assert_array_equal(mapped(ids, mask, types).last_hidden_state, before)
    path = folder / "model.safetensors"
    header = 8 + int.from_bytes(path.read_bytes()[:8], "little")
    with open(path, "r+b") as f:  # keep the header, zero every weight byte
        f.seek(header)
        f.write(bytes(path.stat().st_size - header))
    np.testing.assert_array_equal(owned(ids, mask, types).last_hidden_state, before)
    assert not np.array_equal(mapped(ids, mask, types).last_hidden_state, before)
