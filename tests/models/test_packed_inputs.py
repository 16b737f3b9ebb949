"""The public packed forwards (BertModel.forward_packed and the encoders built on it, GPT2Model.forward_packed and
forward) check ids, token types and positions as the padded entry points do (issue 16: a token type of -1 read
the table's last row)."""
from __future__ import annotations

import numpy as np
import pytest

from cpuformer.layers import PackedBatch
from cpuformer.models import AutoModel
from tiny_models import POSITIONS, VOCAB, tiny_bert, tiny_gpt2


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return AutoModel.from_pretrained(tiny_bert(tmp_path_factory.mktemp("bert")))


@pytest.fixture(scope="module")
def roberta(tmp_path_factory):
    folder = tiny_bert(tmp_path_factory.mktemp("roberta"), model_type="roberta", architectures=["RobertaModel"],
                       pad_token_id=1, max_position_embeddings=POSITIONS + 2)
    return AutoModel.from_pretrained(folder)


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    return AutoModel.from_pretrained(tiny_gpt2(tmp_path_factory.mktemp("gpt2"))).transformer


@pytest.mark.parametrize("name", ["bert", "roberta"])
def test_encoder_forward_packed_equals_the_padded_forward(request, name):
    model = request.getfixturevalue(name)
    ids = np.array([[3, 4, 5, 6], [7, 8, 0, 0]])
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0]])
    types = np.array([[0, 0, 1, 1], [0, 1, 0, 0]])
    batch = PackedBatch.from_mask(mask)
    packed = model.forward_packed(batch.gather(ids), batch.gather(types), batch)
    np.testing.assert_array_equal(batch.scatter(packed), model(ids, mask, types).last_hidden_state)


@pytest.mark.parametrize("name", ["bert", "roberta"])
@pytest.mark.parametrize("ids, types, lengths, message", [
    ([1, 2, 3], [0, -1, 0], [3], r"token_type_ids holds -1, outside \[0, 2\) \(type_vocab_size=2\)"),
    ([1, 2, 3], [0, 2, 0], [3], r"token_type_ids holds 2, outside \[0, 2\)"),
    ([1, VOCAB, 3], [0, 0, 0], [3], rf"input_ids holds {VOCAB}, outside \[0, {VOCAB}\) \(vocab_size={VOCAB}\)"),
    ([1, -2, 3], [0, 0, 0], [3], r"input_ids holds -2"),
    ([1.0, 2.0, 3.0], [0, 0, 0], [3], "input_ids must be an integer array, got dtype float64"),
    ([1, 2], [0, 0], [3], r"input_ids must have shape \(3,\) \(the batch's total tokens\), got \(2,\)"),
    ([1, 2, 3], [0, 0], [3], r"token_type_ids must have shape \(3,\)"),
    ([1] * (POSITIONS + 1), [0] * (POSITIONS + 1), [POSITIONS + 1], f"sequence length {POSITIONS + 1} exceeds"),
])
def test_encoder_forward_packed_checks_its_inputs(request, name, ids, types, lengths, message):
    model = request.getfixturevalue(name)
    with pytest.raises(ValueError, match=message):
        model.forward_packed(np.array(ids), np.array(types), PackedBatch.from_lengths(lengths))


@pytest.mark.parametrize("ids, lengths, message", [
    ([1, -1, 3], [3], r"input_ids holds -1, outside \[0, 30\)"),
    ([1, 2, VOCAB], [3], rf"input_ids holds {VOCAB}"),
    ([[1, 2, 3]], [3], r"input_ids must have shape \(3,\)"),
    ([1] * (POSITIONS + 1), [POSITIONS + 1], f"sequence length {POSITIONS + 1} exceeds n_positions={POSITIONS}"),
])
def test_gpt2_forward_packed_checks_its_inputs(gpt2, ids, lengths, message):
    with pytest.raises(ValueError, match=message):
        gpt2.forward_packed(np.array(ids), PackedBatch.from_lengths(lengths))


def test_gpt2_forward_checks_positions(gpt2):
    from cpuformer.layers import Workspace

    batch = PackedBatch.from_lengths([3])
    ids = np.array([1, 2, 3])
    want = gpt2.forward(ids, np.array([0, 1, 2]), batch, Workspace()).copy()
    np.testing.assert_array_equal(gpt2.forward_packed(ids, batch), want)
    with pytest.raises(ValueError, match=r"positions holds -1, outside \[0, 16\) \(n_positions=16\)"):
        gpt2.forward(ids, np.array([0, -1, 2]), batch, Workspace())
    with pytest.raises(ValueError, match=r"positions holds 16"):
        gpt2.forward(ids, np.array([0, 1, 16]), batch, Workspace())


# ---- config.json fields of the wrong kind (issue 16) -------------------------------------------------------------

@pytest.mark.parametrize("overrides, message", [
    (dict(num_attention_heads=True), "config num_attention_heads must be a positive int, got True"),
    (dict(layer_norm_eps=float("inf")), "config layer_norm_eps must be a finite number > 0, got inf"),
    (dict(layer_norm_eps=-1e-12), "config layer_norm_eps must be a finite number > 0, got -1e-12"),
    (dict(layer_norm_eps=True), "config layer_norm_eps must be a finite number > 0, got True"),
    (dict(hidden_act=None), "config hidden_act must be an activation name, got None"),
    (dict(problem_type="ranking"), "config problem_type must be one of regression, single_label_classification"),
    (dict(id2label={"a": "x"}), "config id2label keys must be integers"),
])
def test_bad_encoder_config_names_the_file_and_field(tmp_path, overrides, message):
    import json

    folder = tiny_bert(tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    config.update(overrides)
    (folder / "config.json").write_text(json.dumps(config, allow_nan=True))
    with pytest.raises(ValueError, match=f"{folder / 'config.json'}: {message}"):
        AutoModel.from_pretrained(folder)
