"""CrossEncoder (cross_encoder.py) against sentence-transformers' CrossEncoder on every encoder architecture:
scores of Hugging Face folders and of folders saved by sentence-transformers, rank order, NLI-style 3-label
models, and argument errors."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cpuformer import CrossEncoder
from reference import assert_close
from make_encoder_reference import ARCHS, RERANK_DOCS, RERANK_QUERY, make_reference


@pytest.fixture(scope="session")
def ce_ref(tmp_path_factory) -> Path:
    return make_reference(tmp_path_factory.mktemp("cross_encoder_reference"), "cross_encoder") / "cross_encoder"


PAIRS = [(RERANK_QUERY, d) for d in RERANK_DOCS]


@pytest.mark.parametrize("saved_by", ["hf", "st"])
@pytest.mark.parametrize("labels", [1, 3])
@pytest.mark.parametrize("arch", ARCHS)
def test_predict_matches_sentence_transformers(ce_ref, arch, labels, saved_by):
    folder = ce_ref / f"{arch}_{labels}"
    ce = CrossEncoder.from_pretrained(folder / saved_by)
    assert ce.activation_name.endswith("Sigmoid" if labels == 1 else "Identity")
    scores = ce.predict(PAIRS, batch_size=2)
    assert scores.shape == ((5,) if labels == 1 else (5, 3))
    assert_close(scores, np.load(folder / "scores.npy"), "model_vs_transformers")
    assert_close(ce.predict(PAIRS, apply_softmax=True), np.load(folder / "softmax_scores.npy"),
                 "model_vs_transformers")
    one = ce.predict(PAIRS[1])
    assert np.shape(one) == (() if labels == 1 else (3,))
    assert_close(one, scores[1], "model_paths")


@pytest.mark.parametrize("arch", ARCHS)
def test_rank_matches_sentence_transformers(ce_ref, arch):
    folder = ce_ref / f"{arch}_1"
    want = json.loads((folder / "rank.json").read_text())
    got = CrossEncoder.from_pretrained(folder / "st").rank(RERANK_QUERY, RERANK_DOCS, top_k=3, return_documents=True)
    assert [r["corpus_id"] for r in got] == [r["corpus_id"] for r in want]
    assert [r["text"] for r in got] == [RERANK_DOCS[r["corpus_id"]] for r in want]
    assert_close([r["score"] for r in got], [r["score"] for r in want], "model_vs_transformers")


def test_errors(ce_ref, tmp_path):
    ce3 = CrossEncoder.from_pretrained(ce_ref / "roberta_3" / "hf")
    with pytest.raises(ValueError, match="rank\\(\\) only works for models with num_labels=1"):
        ce3.rank("q", ["d"])
    ce = CrossEncoder.from_pretrained(ce_ref / "roberta_1" / "hf")
    with pytest.raises(TypeError, match="pairs must be \\(str, str\\) pairs; item 0 is 'abc'"):
        ce.predict(["abc", "def", "ghi"])
    with pytest.raises(ValueError, match="top_k must be a positive int or None, got 0"):
        ce.rank("q", ["d"], top_k=0)
    assert ce.rank("q", []) == []
    config = json.loads((ce_ref / "roberta_1" / "st" / "config_sentence_transformers.json").read_text())
    with pytest.raises(ValueError, match="activation_fn 'my.Activation' is not supported"):
        CrossEncoder(ce.model, config.get("x", "my.Activation"))
    from cpuformer.models import RobertaModel

    with pytest.raises(TypeError, match="needs a sequence classification model, got RobertaModel"):
        CrossEncoder(RobertaModel.from_pretrained(ce_ref / "roberta_1" / "hf"))
