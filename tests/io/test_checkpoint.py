"""Tests for cpuformer/io/checkpoint.py: config and weight-file discovery in Hugging Face folders,
and the WeightStore contract (take / strip_prefix / ignore / assert_all_used) with its messages."""

import json
import re

import numpy as np
import pytest

from cpuformer.io import BFLOAT16, CheckpointError, WeightStore, find_weight_files, read_config, save_safetensors


def gpt2_like(n_layer=2, d=8):
    """Keys and shapes of a small GPT2LMHeadModel checkpoint, including the buffers GPT-2 saves."""
    rng = np.random.default_rng(0)
    t = {"transformer.wte.weight": (50, d), "transformer.wpe.weight": (16, d),
         "transformer.ln_f.weight": (d,), "transformer.ln_f.bias": (d,)}
    for i in range(n_layer):
        p = f"transformer.h.{i}."
        t |= {p + "attn.c_attn.weight": (d, 3 * d), p + "attn.c_attn.bias": (3 * d,),
              p + "attn.bias": (1, 1, 16, 16), p + "attn.masked_bias": ()}
    return {k: rng.standard_normal(s).astype(np.float32) for k, s in t.items()}


def write_index(folder, weight_map):
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))


def sharded(folder, tensors, n_shards=2):
    names = sorted(tensors)
    weight_map = {}
    for i in range(n_shards):
        shard = f"model-{i + 1:05d}-of-{n_shards:05d}.safetensors"
        part = {n: tensors[n] for n in names[i::n_shards]}
        save_safetensors(folder / shard, part)
        weight_map |= {n: shard for n in part}
    write_index(folder, weight_map)
    return folder


# ---------------------------------------------------------------- read_config


def test_read_config(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "gpt2", "n_layer": 2}')
    assert read_config(tmp_path) == {"model_type": "gpt2", "n_layer": 2}


@pytest.mark.parametrize(
    "text, message",
    [
        (None, "no config.json in '.*'; a Hugging Face-format folder needs one"),
        ('{"n_layer": 2,}', r"config\.json is not valid JSON: .*line 1 column 15"),
        ("[1, 2]", r"config\.json must hold a JSON object, got list"),
        (b"\xff{}", r"config\.json is not valid UTF-8"),
    ],
)
def test_read_config_errors(tmp_path, text, message):
    if isinstance(text, bytes):
        (tmp_path / "config.json").write_bytes(text)
    elif text is not None:
        (tmp_path / "config.json").write_text(text)
    with pytest.raises(CheckpointError, match=message):
        read_config(tmp_path)


def test_missing_folder(tmp_path):
    for call in (read_config, find_weight_files, WeightStore):
        with pytest.raises(CheckpointError, match="checkpoint folder '.*nowhere' does not exist or is not a folder"):
            call(tmp_path / "nowhere")


# ---------------------------------------------------------------- find_weight_files


def test_single_file(tmp_path):
    save_safetensors(tmp_path / "model.safetensors", {"a": np.zeros(2, np.float32)})
    assert find_weight_files(tmp_path) == [tmp_path / "model.safetensors"]


def test_sharded_index_lists_each_shard_once_in_order(tmp_path):
    sharded(tmp_path, gpt2_like(), n_shards=3)
    assert [p.name for p in find_weight_files(tmp_path)] == [
        "model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors"]


def test_single_file_wins_over_index_like_transformers(tmp_path):
    sharded(tmp_path, gpt2_like())
    save_safetensors(tmp_path / "model.safetensors", {"a": np.zeros(2, np.float32)})
    assert find_weight_files(tmp_path) == [tmp_path / "model.safetensors"]


@pytest.mark.parametrize("bins", [["pytorch_model.bin"], ["pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin"]])
def test_pytorch_pickles_only(tmp_path, bins):
    for name in bins:
        (tmp_path / name).write_bytes(b"\x80\x02 not really a pickle")
    with pytest.raises(CheckpointError) as info:
        find_weight_files(tmp_path)
    message = str(info.value)
    assert f"has only PyTorch weights ({', '.join(bins)})" in message
    assert "does not load PyTorch pickles" in message
    assert "save_pretrained(out_folder, safe_serialization=True)" in message


def test_no_weights(tmp_path):
    with pytest.raises(CheckpointError, match=r"no model\.safetensors or model\.safetensors\.index\.json in .*$"):
        find_weight_files(tmp_path)
    save_safetensors(tmp_path / "adapter.safetensors", {})
    with pytest.raises(CheckpointError, match=r"found adapter\.safetensors but no index to say which are model shards"):
        find_weight_files(tmp_path)


@pytest.mark.parametrize(
    "index, message",
    [
        ({"metadata": {}}, "has no 'weight_map' object of tensor name -> shard file name"),
        ([1], "has no 'weight_map' object"),
        ({"weight_map": {"a": 3}}, "has no 'weight_map' object"),
        ({"weight_map": {"a": "../model.safetensors"}}, r"shard name '\.\./model\.safetensors' must be a plain file name"),
        ({"weight_map": {"a": "/etc/passwd"}}, "shard name '/etc/passwd' must be a plain file name"),
        ({"weight_map": {"a": "gone.safetensors"}}, r"names shards that are not in the folder: gone\.safetensors"),
    ],
)
def test_bad_index(tmp_path, index, message):
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match=message):
        find_weight_files(tmp_path)


# ---------------------------------------------------------------- WeightStore from folders


def test_store_from_sharded_folder_sees_every_weight(tmp_path):
    tensors = gpt2_like()
    store = WeightStore(sharded(tmp_path, tensors, n_shards=3))
    assert sorted(store.keys()) == sorted(tensors) and len(store) == len(tensors)
    for name, want in tensors.items():
        np.testing.assert_array_equal(store.take(name, want.shape), want)
    store.assert_all_used()


def test_index_disagreeing_with_shards(tmp_path):
    sharded(tmp_path, gpt2_like())
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    actual = index["weight_map"]["transformer.wte.weight"]
    claimed = next(s for s in index["weight_map"].values() if s != actual)
    index["weight_map"]["transformer.wte.weight"] = claimed
    index["weight_map"]["transformer.extra"] = "model-00001-of-00002.safetensors"
    write_index(tmp_path, index["weight_map"])
    with pytest.raises(CheckpointError) as info:
        WeightStore(tmp_path)
    assert "disagrees with the shards for 2 weights" in str(info.value)
    assert "transformer.extra (index: model-00001-of-00002.safetensors, found: nowhere)" in str(info.value)
    assert f"transformer.wte.weight (index: {claimed}, found: {actual})" in str(info.value)


def test_weight_in_two_shards(tmp_path):
    save_safetensors(tmp_path / "a.safetensors", {"w": np.zeros(2, np.float32)})
    save_safetensors(tmp_path / "b.safetensors", {"w": np.ones(2, np.float32)})
    write_index(tmp_path, {"w": "a.safetensors", "v": "b.safetensors"})
    with pytest.raises(CheckpointError, match=r"weight 'w' appears in both a\.safetensors and b\.safetensors"):
        WeightStore(tmp_path)


def test_corrupt_weight_file_is_a_checkpoint_error_naming_file_and_problem(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"\x03\0\0\0\0\0\0\0[1]")
    with pytest.raises(CheckpointError, match=r"model\.safetensors: header must be a JSON object of tensor name -> entry, got list"):
        WeightStore(tmp_path)


def test_weights_are_owned_unless_packed_or_mmap(tmp_path):
    # Owned by default: the model never reads the file after loading. packed=True (the caller copies into its
    # own layout) and a store opened for mmap hand out the read-only view of the mapped file instead.
    save_safetensors(tmp_path / "model.safetensors", {"w": np.ones((4, 4), np.float32)})
    store = WeightStore(tmp_path)
    owned = store.take("w", (4, 4))
    assert owned.flags.owndata and owned.flags.c_contiguous
    for view in (store.take("w", (4, 4), packed=True), _mmap_store(tmp_path).take("w", (4, 4))):
        assert not view.flags.owndata and not view.flags.writeable and view.flags.c_contiguous


def _mmap_store(folder):
    store = WeightStore(folder)
    store.mmap = True
    return store


# ---------------------------------------------------------------- take


def test_take_converts_half_and_double_to_contiguous_float32():
    bits = np.array([[0x3F80, 0x4000], [0xC040, 0x0000]], dtype="<u2")
    store = WeightStore({
        "h": np.array([1.5, -2.0], np.float16),
        "b": bits.view(BFLOAT16),
        "d": np.array([0.1], np.float64),
        "t": np.arange(6, dtype=np.float32).reshape(2, 3).T,
    })
    for name in ("h", "b", "d", "t"):
        out = store.take(name)
        assert out.dtype == np.float32 and out.flags.c_contiguous and out.flags.aligned, name
    np.testing.assert_array_equal(store.take("b"), [[1.0, 2.0], [-3.0, 0.0]])
    np.testing.assert_array_equal(store.take("h"), [1.5, -2.0])
    assert store.take("d")[0] == np.float32(0.1)
    np.testing.assert_array_equal(store.take("t"), np.arange(6).reshape(2, 3).T)
    assert store.take("d", dtype=np.float64)[0] == 0.1  # not squeezed through float32


def test_take_integer_weights():
    store = WeightStore({"position_ids": np.arange(8, dtype=np.int64)[None], "w": np.zeros(2, np.float32)})
    np.testing.assert_array_equal(store.take("position_ids", (1, 8), dtype=np.int64), [np.arange(8)])
    with pytest.raises(CheckpointError, match="weight 'position_ids' is stored as int64; refusing to take it as float32"):
        store.take("position_ids")
    with pytest.raises(CheckpointError, match="weight 'w' is stored as float32; refusing to take it as int32"):
        store.take("w", dtype=np.int32)


@pytest.mark.parametrize(
    "expected, message",
    [
        ((3, 8), r"expected shape \(3, 8\), checkpoint has \(8, 24\)"),
        ((8,), r"expected shape \(8,\), checkpoint has \(8, 24\)"),
        ((8, 24, 1), r"expected shape \(8, 24, 1\), checkpoint has \(8, 24\)"),
        ((None, 25), r"expected shape \(\*, 25\), checkpoint has \(8, 24\)"),
    ],
)
def test_take_shape_mismatch_names_key_and_both_shapes(expected, message):
    store = WeightStore(gpt2_like())
    with pytest.raises(CheckpointError, match=r"^weight 'transformer\.h\.0\.attn\.c_attn\.weight': " + message):
        store.take("transformer.h.0.attn.c_attn.weight", expected)
    assert "transformer.h.0.attn.c_attn.weight" in store.unused()  # a failed take uses nothing


def test_take_shape_wildcards_and_scalars():
    store = WeightStore(gpt2_like())
    assert store.take("transformer.wte.weight", (None, 8)).shape == (50, 8)
    assert store.take("transformer.h.0.attn.masked_bias", ()).shape == ()


def test_missing_key_suggests_close_matches():
    store = WeightStore(gpt2_like())
    with pytest.raises(CheckpointError) as info:
        store.take("transformer.h.0.attn.c_attn.weigth")
    message = str(info.value)
    assert message.startswith("weight 'transformer.h.0.attn.c_attn.weigth' not found in checkpoint <dict>; close matches: ")
    assert message.split("close matches: ")[1].split(", ")[0] == "transformer.h.0.attn.c_attn.weight"


def test_missing_key_without_close_match(tmp_path):
    save_safetensors(tmp_path / "model.safetensors", gpt2_like())
    with pytest.raises(CheckpointError, match=rf"weight 'lm_head\.weight' not found in checkpoint {re.escape(str(tmp_path))}; "
                                              r"no close match among 12 keys"):
        WeightStore(tmp_path).take("lm_head.weight")


def test_has_and_contains():
    store = WeightStore({"a": np.zeros(1, np.float32)})
    assert store.has("a") and "a" in store and not store.has("b") and "b" not in store


# ---------------------------------------------------------------- strip_prefix, ignore, assert_all_used


def test_strip_prefix_for_task_checkpoint():
    store = WeightStore({"bert.embeddings.word_embeddings.weight": np.zeros((4, 2), np.float32),
                         "bert.pooler.dense.bias": np.zeros(2, np.float32),
                         "cls.predictions.bias": np.zeros(4, np.float32)})
    assert store.strip_prefix(["roberta.", "bert."]) == ["bert."]
    assert sorted(store.keys()) == ["cls.predictions.bias", "embeddings.word_embeddings.weight", "pooler.dense.bias"]
    with pytest.raises(CheckpointError, match=r"weight 'pooler\.dense\.bias' \(checkpoint key 'bert\.pooler\.dense\.bias'\): "
                                              r"expected shape \(3,\)"):
        store.take("pooler.dense.bias", (3,))
    store.take("embeddings.word_embeddings.weight", (4, 2))
    # Leftovers are reported under their names in the file, which is what a user can grep for.
    assert store.unused() == ["bert.pooler.dense.bias", "cls.predictions.bias"]


def test_strip_prefix_is_a_no_op_for_base_checkpoints():
    store = WeightStore({"embeddings.word_embeddings.weight": np.zeros(1, np.float32)})
    assert store.strip_prefix("bert.") == []
    assert store.keys() == ["embeddings.word_embeddings.weight"]


def test_strip_prefix_keeps_used_marks():
    store = WeightStore(gpt2_like(n_layer=1))
    store.take("transformer.wte.weight")
    store.strip_prefix("transformer.")
    assert "wte.weight" not in store.unused() and "transformer.wte.weight" not in store.unused()


def test_strip_prefix_collision():
    store = WeightStore({"transformer.wte.weight": np.zeros(1, np.float32), "wte.weight": np.zeros(1, np.float32)})
    with pytest.raises(CheckpointError, match=r"stripping prefix 'transformer\.' makes '(transformer\.)?wte\.weight' "
                                              r"collide with '(transformer\.)?wte\.weight'"):
        store.strip_prefix("transformer.")


def test_gpt2_buffers_ignored_but_real_weights_still_reported():
    store = WeightStore(gpt2_like(n_layer=2))
    store.strip_prefix("transformer.")
    store.ignore("*.attn.bias", "*.attn.masked_bias")
    for name in ("wte.weight", "wpe.weight", "ln_f.weight", "ln_f.bias", "h.0.attn.c_attn.weight", "h.1.attn.c_attn.weight",
                 "h.1.attn.c_attn.bias"):
        store.take(name)
    # "*.attn.bias" must not swallow "h.0.attn.c_attn.bias".
    with pytest.raises(CheckpointError, match=r"^1 weights in checkpoint <dict> were not used by the model: "
                                              r"transformer\.h\.0\.attn\.c_attn\.bias$"):
        store.assert_all_used()
    store.take("h.0.attn.c_attn.bias")
    store.assert_all_used()


def test_ignore_matches_checkpoint_names_too():
    store = WeightStore({"bert.embeddings.position_ids": np.arange(4)[None]})
    store.strip_prefix("bert.")
    store.ignore("bert.*position_ids")
    store.assert_all_used()


def test_unused_error_lists_first_20_and_counts_the_rest():
    store = WeightStore({f"w{i:02d}": np.zeros(1, np.float32) for i in range(27)})
    store.take("w00")
    store.take("w00")  # taking twice is fine: tied embeddings do it
    with pytest.raises(CheckpointError) as info:
        store.assert_all_used()
    message = str(info.value)
    listed = ", ".join(f"w{i:02d}" for i in range(1, 21))
    assert message == f"26 weights in checkpoint <dict> were not used by the model: {listed} (and 6 more)"


# ---------------------------------------------------------------- issue 16: odd files and paths out of the folder


def test_deeply_nested_config_is_a_checkpoint_error(tmp_path):
    (tmp_path / "config.json").write_text('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(CheckpointError, match="config.json: JSON nested too deeply"):
        read_config(tmp_path)


def test_config_that_is_a_fifo_or_too_large_is_refused(tmp_path, monkeypatch):
    import os

    from cpuformer.io import checkpoint

    os.mkfifo(tmp_path / "config.json")
    with pytest.raises(CheckpointError, match="is not a regular file"):
        read_config(tmp_path)
    (tmp_path / "config.json").unlink()
    (tmp_path / "config.json").write_text('{"model_type": "gpt2", "n_layer": 2}')
    monkeypatch.setattr(checkpoint, "MAX_JSON_BYTES", 16)
    with pytest.raises(CheckpointError, match="config.json is 36 bytes; JSON files of a model folder are limited to 16"):
        read_config(tmp_path)


def test_a_folder_named_model_safetensors_is_named_as_such(tmp_path):
    (tmp_path / "model.safetensors").mkdir()
    with pytest.raises(CheckpointError, match="weight file .*model.safetensors' is a folder"):
        find_weight_files(tmp_path)


def test_symlinks_out_of_the_folder_are_refused(tmp_path):
    outside, model = tmp_path / "outside", tmp_path / "model"
    outside.mkdir(), model.mkdir()
    save_safetensors(outside / "model.safetensors", gpt2_like(1))
    (outside / "config.json").write_text("{}")
    (model / "model.safetensors").symlink_to(outside / "model.safetensors")
    with pytest.raises(CheckpointError, match="weight file 'model.safetensors' leads outside the model folder"):
        find_weight_files(model)
    (model / "config.json").symlink_to(outside / "config.json")
    with pytest.raises(CheckpointError, match="config file 'config.json' leads outside the model folder"):
        read_config(model)


def test_index_shard_symlinked_out_of_the_folder_is_refused(tmp_path):
    outside, model = tmp_path / "outside", tmp_path / "model"
    outside.mkdir(), model.mkdir()
    sharded(outside, gpt2_like(1))
    for f in outside.iterdir():
        (model / f.name).symlink_to(f) if f.suffix == ".safetensors" else (model / f.name).write_bytes(f.read_bytes())
    with pytest.raises(CheckpointError, match="weight_map shard 'model-00001-of-00002.safetensors' leads outside"):
        find_weight_files(model)


def test_hugging_face_cache_snapshots_may_link_into_their_blobs(tmp_path):
    """The hub cache keeps every file of snapshots/<rev>/ as a symlink to ../../blobs/<hash>: that is allowed,
    a link to another repository's blobs is not."""
    repo = tmp_path / "models--org--name"
    blobs, snapshot = repo / "blobs", repo / "snapshots" / "abc123"
    blobs.mkdir(parents=True), snapshot.mkdir(parents=True)
    tensors = gpt2_like(1)
    save_safetensors(blobs / "f00d", tensors)
    (blobs / "c0de").write_text('{"model_type": "gpt2"}')
    (snapshot / "model.safetensors").symlink_to("../../blobs/f00d")
    (snapshot / "config.json").symlink_to("../../blobs/c0de")
    assert read_config(snapshot) == {"model_type": "gpt2"}
    assert sorted(WeightStore(snapshot).keys()) == sorted(tensors)
    other = tmp_path / "models--evil--repo" / "blobs"
    other.mkdir(parents=True)
    (other / "c0de").write_text("{}")
    (snapshot / "config.json").unlink()
    (snapshot / "config.json").symlink_to(other / "c0de")
    with pytest.raises(CheckpointError, match="leads outside the model folder"):
        read_config(snapshot)
