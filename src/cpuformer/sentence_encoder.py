"""SentenceEncoder: sentence-transformers folders (modules.json: Transformer -> Pooling -> Normalize) on cpuformer.

`encode` has sentence-transformers' semantics: texts are sorted by length (longest first) so each batch holds
similar lengths, embedded, and returned in the caller's order. Batches run packed (no padding at all), so
the sorting only matters for memory, not for wasted compute.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .layers import PackedBatch
from .models.registry import AutoModel
from .tokenizer import Tokenizer

__all__ = ["POOLING_MODES", "SentenceEncoder"]

# sentence-transformers' legacy pooling_mode_* keys, in the order it concatenates them.
_LEGACY_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
POOLING_MODES = tuple(_LEGACY_POOLING_KEYS.values())
_TRANSFORMER = "sentence_transformers.models.Transformer"
_POOLING = "sentence_transformers.models.Pooling"
_NORMALIZE = "sentence_transformers.models.Normalize"


def _read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _pooling_modes(config: dict[str, Any]) -> tuple[str, ...]:
    if "pooling_mode" in config:  # sentence-transformers >= 5 writes one key: a name or a list of names
        mode = config["pooling_mode"]
        modes = (mode,) if isinstance(mode, str) else tuple(mode)
    else:
        modes = tuple(m for k, m in _LEGACY_POOLING_KEYS.items() if config.get(k, False)) or ("mean",)
    unknown = [m for m in modes if m not in POOLING_MODES]
    if unknown:
        raise ValueError(f"pooling mode {unknown[0]!r} is not supported; supported: {', '.join(POOLING_MODES)}")
    return modes


def pool(hidden: np.ndarray, batch: PackedBatch, modes: Sequence[str]) -> np.ndarray:
    """Packed token states [total_tokens, dim] -> [B, dim * len(modes)], modes concatenated in order."""
    starts, ends = batch.cu_seqlens[:-1], batch.cu_seqlens[1:]
    lengths = (ends - starts)[:, None].astype(np.float32)
    sums = None
    parts = []
    for mode in modes:
        if mode == "cls":
            parts.append(hidden[starts])
        elif mode == "lasttoken":
            parts.append(hidden[ends - 1])
        elif mode == "max":
            parts.append(np.maximum.reduceat(hidden, starts, axis=0))
        elif mode in ("mean", "mean_sqrt_len_tokens"):
            if sums is None:
                sums = np.add.reduceat(hidden, starts, axis=0)
            parts.append(sums / (lengths if mode == "mean" else np.sqrt(lengths)))
        elif mode == "weightedmean":  # token i of a sequence (from 0) weighs i + 1
            weights = (np.arange(hidden.shape[0]) - np.repeat(starts, ends - starts) + 1).astype(np.float32)
            weighted = np.add.reduceat(hidden * weights[:, None], starts, axis=0)
            parts.append(weighted / (lengths * (lengths + 1) / 2))
    return np.concatenate(parts, axis=1).astype(np.float32, copy=False)


class _Progress:
    """A one-line progress bar on stderr (sentence-transformers uses tqdm; we keep no extra dependency)."""

    def __init__(self, total: int, enabled: bool, label: str = "Batches", stream=None):
        self.total, self.enabled, self.label, self.done = total, enabled and total > 0, label, 0
        self.stream = stream or sys.stderr
        self.start = time.perf_counter()

    def advance(self, n: int = 1) -> None:
        if not self.enabled:
            return
        self.done += n
        width = 30
        filled = width * self.done // self.total
        rate = self.done / max(time.perf_counter() - self.start, 1e-9)
        end = "\n" if self.done >= self.total else ""
        self.stream.write(f"\r{self.label}: {self.done}/{self.total} [{'#' * filled}{'.' * (width - filled)}] "
                          f"{rate:.1f}/s{end}")
        self.stream.flush()


class SentenceEncoder:
    """Embeds sentences with a sentence-transformers model folder (default: all-MiniLM-L6-v2)."""

    def __init__(self, model, tokenizer: Tokenizer, pooling_modes: Sequence[str] = ("mean",),
                 normalize: bool = False, do_lower_case: bool = False):
        self.model = model
        self.tokenizer = tokenizer
        self.pooling_modes = tuple(pooling_modes)
        self.normalize = normalize
        self.tokenizer.lowercase = do_lower_case

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike | None = None) -> "SentenceEncoder":
        """Load a sentence-transformers folder; None loads the default model (all-MiniLM-L6-v2). A plain
        Hugging Face folder without modules.json gets mean pooling, as sentence-transformers does."""
        if path is None:
            from .default_model import default_model_path

            path = default_model_path()
        root = Path(path)
        if not root.is_dir():
            raise FileNotFoundError(f"model folder {os.fspath(path)!r} does not exist")
        modules = _read_json(root / "modules.json") if (root / "modules.json").is_file() else [
            {"type": _TRANSFORMER, "path": ""}, {"type": _POOLING, "path": None}]
        transformer_dir, modes, normalize = None, ("mean",), False
        for module in modules:
            kind, sub = module.get("type", ""), module.get("path") or ""
            if kind.endswith(".Transformer"):
                transformer_dir = root / sub
            elif kind.endswith(".Pooling"):
                config_path = root / sub / "config.json"
                modes = _pooling_modes(_read_json(config_path)) if sub and config_path.is_file() else ("mean",)
            elif kind.endswith(".Normalize"):
                normalize = True
            else:
                raise ValueError(f"{root / 'modules.json'}: module type {kind!r} is not supported by SentenceEncoder "
                                 "(supported: Transformer, Pooling, Normalize)")
        if transformer_dir is None:
            raise ValueError(f"{root / 'modules.json'} has no Transformer module")
        model = AutoModel.from_pretrained(transformer_dir)
        base = getattr(model, "bert", model)  # a task checkpoint still embeds with its encoder
        st_config_path = transformer_dir / "sentence_bert_config.json"
        st_config = _read_json(st_config_path) if st_config_path.is_file() else {}
        max_positions = base.config.max_position_embeddings
        max_seq_length = min(int(st_config.get("max_seq_length") or max_positions), max_positions)
        tokenizer = Tokenizer.from_pretrained(transformer_dir, max_length=max_seq_length)
        return cls(base, tokenizer, modes, normalize, bool(st_config.get("do_lower_case", False)))

    @property
    def max_seq_length(self) -> int:
        return self.tokenizer.max_length

    @property
    def embedding_dimension(self) -> int:
        return self.model.config.hidden_size * len(self.pooling_modes)

    def _embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        ids, types, lengths = self.tokenizer.encode_packed(texts)
        batch = PackedBatch.from_lengths(lengths)
        hidden = self.model.forward_packed(ids, types, batch)
        return pool(hidden, batch, self.pooling_modes)

    def encode(
        self,
        sentences: str | Sequence[str],
        batch_size: int = 32,
        normalize_embeddings: bool = False,
        show_progress_bar: bool = False,
        convert_to_numpy: bool = True,
    ) -> np.ndarray | list[np.ndarray]:
        """[N, dim] float32 embeddings (a single string gives [dim]); normalized to unit length when asked or
        when the folder has a Normalize module. convert_to_numpy=False returns a list of [dim] arrays."""
        single = isinstance(sentences, str)
        texts = [sentences] if single else list(sentences)
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
        if bad is not None:
            raise TypeError(f"sentences must be strings; item {bad} is {type(texts[bad]).__name__}")
        out = np.empty((len(texts), self.embedding_dimension), np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        progress = _Progress((len(texts) + batch_size - 1) // batch_size, show_progress_bar)
        for start in range(0, len(texts), batch_size):
            idx = order[start:start + batch_size]
            out[idx] = self._embed_batch([texts[i] for i in idx])
            progress.advance()
        if normalize_embeddings or self.normalize:
            # as torch.nn.functional.normalize: x / max(||x||, 1e-12)
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        if single:
            return out[0]
        return out if convert_to_numpy else list(out)
