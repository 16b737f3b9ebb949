"""CrossEncoder: rerankers and pair classifiers (sentence-transformers' CrossEncoder) on any encoder architecture.

A cross-encoder is a `...ForSequenceClassification` checkpoint that reads a query and a document together.
sentence-transformers turns its logits into scores with an activation the folder names (config_sentence_transformers
.json's `activation_fn` since version 6, config.json's `sentence_transformers.activation_fn` in 4-5,
`sbert_ce_default_activation_function` before); without one, a single-logit model gets a sigmoid and a
multi-label model (NLI) the raw logits. `predict` and `rank` return what sentence-transformers returns.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .io import inside_folder, read_folder_json
from .models.base import Checkpoint
from .models.heads import SequenceClassificationModel, softmax
from .models.registry import AutoModel

__all__ = ["ACTIVATIONS", "CrossEncoder"]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


# The torch activations sentence-transformers stores by their import path, as numpy functions.
ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "torch.nn.modules.activation.Sigmoid": _sigmoid,
    "torch.nn.modules.linear.Identity": lambda x: x,
    "torch.nn.modules.activation.Tanh": np.tanh,
    "torch.nn.modules.activation.ReLU": lambda x: np.maximum(x, 0.0),
    "torch.nn.modules.activation.Softmax": softmax,
}


class CrossEncoder:
    """`CrossEncoder.from_pretrained(folder).predict([(query, doc), ...])` -> scores; `.rank(query, documents)`."""

    def __init__(self, model: SequenceClassificationModel, activation: str | None = None):
        if not isinstance(model, SequenceClassificationModel):
            raise TypeError(f"a CrossEncoder needs a sequence classification model, got {type(model).__name__}")
        self.model = model
        if activation is None:
            activation = ("torch.nn.modules.activation.Sigmoid" if model.num_labels == 1
                          else "torch.nn.modules.linear.Identity")
        if not isinstance(activation, str) or activation not in ACTIVATIONS:
            raise ValueError(f"activation_fn {activation!r} is not supported; supported: {', '.join(ACTIVATIONS)}")
        self.activation_name = activation
        self.activation = ACTIVATIONS[activation]

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, *, dtype: Any = "float32", mmap: bool = False) -> "CrossEncoder":
        """A Hugging Face ...ForSequenceClassification folder, or one saved by sentence-transformers'
        CrossEncoder (its Transformer module may sit in a subfolder named by modules.json). dtype, mmap: as
        PretrainedModel.from_pretrained."""
        root = Path(path)
        if not root.is_dir():
            raise FileNotFoundError(f"model folder {os.fspath(path)!r} does not exist")
        folder = root
        modules = read_folder_json(root, "modules.json", required=False)
        if modules is not None:
            sub = next((m.get("path") for m in modules if isinstance(m, dict)
                        and str(m.get("type", "")).endswith(".Transformer")), None) if isinstance(modules, list) else None
            if sub:
                folder = inside_folder(root, sub, root / "modules.json", "module path")
        checkpoint = Checkpoint.open(folder)
        model = AutoModel.from_checkpoint(checkpoint, dtype=dtype, mmap=mmap)
        if not isinstance(model, SequenceClassificationModel):
            raise ValueError(f"{folder / 'config.json'} holds a {type(model).__name__}; a CrossEncoder needs a "
                             "...ForSequenceClassification checkpoint")
        return cls(model, _activation_from_folder(root, checkpoint.config))

    @property
    def num_labels(self) -> int:
        return self.model.num_labels

    @property
    def tokenizer(self):
        return self.model.require_tokenizer()

    def predict(self, pairs: Sequence[Sequence[str]], batch_size: int = 32, *, apply_softmax: bool = False,
                convert_to_numpy: bool = True):
        """Scores of (query, document) pairs: float32 [N] for single-logit models, [N, num_labels] otherwise,
        after the folder's activation (and a softmax over labels with apply_softmax). One pair (a 2-tuple of
        strings) gives a scalar / [num_labels]. convert_to_numpy=False gives a list."""
        single = (isinstance(pairs, (tuple, list)) and len(pairs) == 2 and all(isinstance(p, str) for p in pairs))
        items = [pairs] if single else list(pairs)
        for i, pair in enumerate(items):
            if not isinstance(pair, (tuple, list)) or len(pair) != 2 or not all(isinstance(t, str) for t in pair):
                raise TypeError(f"pairs must be (str, str) pairs; item {i} is {pair!r}")
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        scores = np.empty((len(items), self.num_labels), np.float32)
        for start in range(0, len(items), batch_size):
            chunk = items[start:start + batch_size]
            logits = self.model.logits_for_texts([a for a, _ in chunk], [b for _, b in chunk])
            scores[start:start + len(chunk)] = self.activation(logits.astype(np.float64))
        if self.num_labels == 1:
            scores = scores[:, 0]
        elif apply_softmax:
            scores = softmax(scores.astype(np.float64)).astype(np.float32)
        if single:
            return scores[0]
        return scores if convert_to_numpy else list(scores)

    def rank(self, query: str, documents: Sequence[str], top_k: int | None = None, return_documents: bool = False,
             batch_size: int = 32) -> list[dict[str, Any]]:
        """Documents by score for the query, best first: [{"corpus_id", "score"(, "text")}], the top_k best."""
        if self.num_labels != 1:
            raise ValueError("CrossEncoder.rank() only works for models with num_labels=1; use predict() with pairs")
        if not isinstance(query, str):
            raise TypeError(f"query must be a str, got {type(query).__name__}")
        documents = list(documents)
        if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1):
            raise ValueError(f"top_k must be a positive int or None, got {top_k!r}")
        scores = self.predict([(query, d) for d in documents], batch_size) if documents else np.empty(0)
        results = [{"corpus_id": i, "score": float(s)} for i, s in enumerate(scores)]
        if return_documents:
            for r in results:
                r["text"] = documents[r["corpus_id"]]
        return sorted(results, key=lambda r: r["score"], reverse=True)[:top_k]


def _activation_from_folder(root: Path, config: dict[str, Any]) -> str | None:
    value = read_folder_json(root, "config_sentence_transformers.json", required=False)
    if isinstance(value, dict) and value.get("activation_fn"):
        return value["activation_fn"]
    nested = config.get("sentence_transformers")
    if isinstance(nested, dict) and nested.get("activation_fn"):
        return nested["activation_fn"]
    return config.get("sbert_ce_default_activation_function") or None
