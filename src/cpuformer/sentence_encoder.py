"""SentenceEncoder: sentence-transformers folders (modules.json: Transformer -> Pooling -> Normalize) on cpuformer.

`encode` has sentence-transformers' semantics: texts are sorted by length (longest first) so each batch holds
similar lengths, embedded, and returned in the caller's order. Batches run packed (no padding at all), so
the sorting only matters for memory, not for wasted compute.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .io import CheckpointError, inside_folder, read_folder_json
from .layers import PackedBatch
from .models.base import Checkpoint
from .models.registry import AutoModel
from .progress import progress_bar
from .sentence_modules import PRECISIONS, SIMILARITY_FUNCTIONS, DenseModule, quantize_embeddings, similarity
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


def _pooling_modes(config: dict[str, Any]) -> tuple[str, ...]:
    if "pooling_mode" in config:  # sentence-transformers >= 5 writes one key: a name or a list of names
        mode = config["pooling_mode"]
        if not isinstance(mode, (str, list)):
            raise ValueError(f"pooling_mode must be a mode name or a list of them, got {mode!r}")
        modes = (mode,) if isinstance(mode, str) else tuple(mode)
    else:
        modes = tuple(m for k, m in _LEGACY_POOLING_KEYS.items() if config.get(k, False)) or ("mean",)
    unknown = [m for m in modes if not isinstance(m, str) or m not in POOLING_MODES]
    if unknown:
        raise ValueError(f"pooling mode {unknown[0]!r} is not supported; supported: {', '.join(POOLING_MODES)}")
    return modes


def pool(hidden: np.ndarray, batch: PackedBatch, modes: Sequence[str], skip: int = 0) -> np.ndarray:
    """Packed token states [total_tokens, dim] -> [B, dim * len(modes)], modes concatenated in order.

    skip: leading tokens of every sequence left out of the pooling (a prompt, with sentence-transformers'
    include_prompt=False), as its Pooling masks them: weightedmean keeps the weights of the tokens' positions,
    and a sequence with nothing left pools to zeros (max: -inf; cls: its first token)."""
    lengths = batch.lengths
    position = np.arange(hidden.shape[0]) - np.repeat(batch.cu_seqlens[:-1], lengths)  # in its sequence, from 0
    if skip:
        keep = position >= skip
        tokens, position, lengths = hidden[keep], position[keep], np.maximum(lengths - skip, 0)
    else:
        tokens = hidden
    filled = np.flatnonzero(lengths > 0)  # sequences with tokens to pool
    starts = (np.cumsum(lengths) - lengths)[filled]
    ends = starts + lengths[filled]
    counts = lengths[filled, None].astype(np.float32)
    sums = None
    parts = []
    for mode in modes:
        part = np.zeros((len(lengths), hidden.shape[1]), np.float32)
        if mode == "cls":
            part[:] = hidden[batch.cu_seqlens[:-1]]
            part[filled] = tokens[starts]
        elif mode == "lasttoken":
            part[filled] = tokens[ends - 1]
        elif mode == "max":
            part[:] = -np.inf
            if filled.size:
                part[filled] = np.maximum.reduceat(tokens, starts, axis=0)
        elif mode in ("mean", "mean_sqrt_len_tokens"):
            if sums is None and filled.size:
                sums = np.add.reduceat(tokens, starts, axis=0)
            if filled.size:
                part[filled] = sums / (counts if mode == "mean" else np.sqrt(counts))
        elif mode == "weightedmean":  # token i of a sequence (from 0) weighs i + 1
            if filled.size:
                weights = (position + 1).astype(np.float32)
                weighted = np.add.reduceat(tokens * weights[:, None], starts, axis=0)
                part[filled] = weighted / np.add.reduceat(weights, starts)[:, None]
        parts.append(part)
    return np.concatenate(parts, axis=1)


class SentenceEncoder:
    """Embeds sentences with a sentence-transformers model folder (default: all-MiniLM-L6-v2).

    What the folder says is honoured as sentence-transformers honours it: the truncation length
    (sentence_bert_config.json's max_seq_length, else tokenizer_config.json's model_max_length, capped at the
    model's positions), lower-casing, the pooling modes and include_prompt, Normalize, and the prompts of
    config_sentence_transformers.json (`default_prompt_name` applies unless a call names another prompt)."""

    def __init__(self, model, tokenizer: Tokenizer, pooling_modes: Sequence[str] = ("mean",),
                 normalize: bool = False, do_lower_case: bool = False, *, prompts: dict[str, str] | None = None,
                 default_prompt_name: str | None = None, include_prompt: bool = True,
                 dense: Sequence[DenseModule] = (), truncate_dim: int | None = None,
                 similarity_fn_name: str | None = None):
        """dense: the Dense modules after pooling, in order (then Normalize when `normalize`); truncate_dim: keep
        the first dims of every embedding; similarity_fn_name: what `similarity` computes (cosine by default)."""
        self.model = model
        self.dense = list(dense)
        self.truncate_dim = _check_truncate_dim(truncate_dim)
        if similarity_fn_name is not None and similarity_fn_name not in SIMILARITY_FUNCTIONS:
            raise ValueError(f"similarity_fn_name {similarity_fn_name!r} is not supported; supported: "
                             f"{', '.join(SIMILARITY_FUNCTIONS)}")
        self.similarity_fn_name = similarity_fn_name or "cosine"
        self.tokenizer = tokenizer
        self.pooling_modes = tuple(pooling_modes)
        self.normalize = normalize
        self.tokenizer.lowercase = do_lower_case
        self.prompts = dict(prompts or {})
        if default_prompt_name is not None and (not isinstance(default_prompt_name, str)
                                                or default_prompt_name not in self.prompts):
            raise ValueError(f"default prompt name {default_prompt_name!r} is not among the prompts "
                             f"{sorted(self.prompts)}")
        self.default_prompt_name = default_prompt_name
        self.include_prompt = include_prompt

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike | None = None, *, dtype: Any = "float32",
                        mmap: bool = False) -> "SentenceEncoder":
        """Load a sentence-transformers folder; None loads the default model (all-MiniLM-L6-v2). A plain
        Hugging Face folder without modules.json gets mean pooling, as sentence-transformers does. dtype: the
        linear weights' dtype; mmap: share the file's pages instead of owning the tables (see
        PretrainedModel.from_pretrained)."""
        if path is None:
            from .default_model import default_model_path

            path = default_model_path()
        root = Path(path)
        if not root.is_dir():
            raise FileNotFoundError(f"model folder {os.fspath(path)!r} does not exist")
        modules = read_folder_json(root, "modules.json", required=False)
        if modules is None:
            modules = [{"type": _TRANSFORMER, "path": ""}, {"type": _POOLING, "path": None}]
        if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
            raise ValueError(f"{root / 'modules.json'} must hold a list of module objects")
        transformer_dir, pooling, normalize, dense = None, {}, False, []
        for module in modules:
            kind, sub = str(module.get("type", "")), _module_folder(root, module.get("path"))
            if kind.endswith(".Transformer"):
                transformer_dir = sub
            elif kind.endswith(".Pooling"):
                pooling = _optional_json(sub, "config.json") if sub != root else {}
            elif kind.endswith(".Dense"):
                if normalize:
                    raise ValueError(f"{root / 'modules.json'}: a Dense module after Normalize is not supported")
                dense.append(DenseModule.from_folder(sub, dtype=dtype))
            elif kind.endswith(".Normalize"):
                normalize = True
            else:
                raise ValueError(f"{root / 'modules.json'}: module type {kind!r} is not supported by SentenceEncoder "
                                 "(supported: Transformer, Pooling, Dense, Normalize)")
        if transformer_dir is None:
            raise ValueError(f"{root / 'modules.json'} has no Transformer module")
        checkpoint = Checkpoint.open(transformer_dir)
        model = AutoModel.from_checkpoint(checkpoint, dtype=dtype, mmap=mmap)
        base = getattr(model, "encoder", model)  # a task checkpoint still embeds with its encoder
        st_config = _optional_json(transformer_dir, "sentence_bert_config.json")
        # sentence-transformers < 6 saves max_seq_length here; 6 saves it as the tokenizer's model_max_length
        max_seq_length = st_config.get("max_seq_length")
        if max_seq_length is not None and (not isinstance(max_seq_length, int) or isinstance(max_seq_length, bool)
                                           or max_seq_length < 2):
            raise ValueError(f"sentence_bert_config.json: max_seq_length must be an int >= 2, got {max_seq_length!r}")
        tokenizer = checkpoint.tokenizer(max_length=max_seq_length,
                                         max_positions=base.config.max_tokens)
        st_model_config = _optional_json(root, "config_sentence_transformers.json")
        prompts = st_model_config.get("prompts") or {}
        if not isinstance(prompts, dict) or not all(isinstance(v, (str, type(None))) for v in prompts.values()):
            raise ValueError("config_sentence_transformers.json: prompts must map prompt names to strings")
        return cls(base, tokenizer, _pooling_modes(pooling) if pooling else ("mean",), normalize,
                   bool(st_config.get("do_lower_case", False)),
                   prompts={k: v or "" for k, v in prompts.items()},
                   default_prompt_name=st_model_config.get("default_prompt_name"),
                   include_prompt=bool(pooling.get("include_prompt", True)), dense=dense,
                   truncate_dim=st_model_config.get("truncate_dim"),
                   similarity_fn_name=st_model_config.get("similarity_fn_name"))

    @property
    def max_seq_length(self) -> int:
        return self.tokenizer.max_length

    @property
    def embedding_dimension(self) -> int:
        full = self.dense[-1].out_features if self.dense else self.model.config.hidden_size * len(self.pooling_modes)
        return min(full, self.truncate_dim) if self.truncate_dim else full

    def similarity(self, a: Any, b: Any) -> np.ndarray:
        """[len(a), len(b)] similarities with the folder's similarity_fn_name (cosine unless it names another)."""
        return similarity(a, b, self.similarity_fn_name)

    def resolve_prompt(self, prompt_name: str | None = None, prompt: str | None = None) -> str:
        """The text put before every sentence: `prompt`, else the prompt named `prompt_name`, else the default
        prompt (none unless the folder names one), as sentence-transformers resolves them."""
        if prompt is not None:
            if not isinstance(prompt, str):
                raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
            return prompt
        if prompt_name is not None:
            if prompt_name not in self.prompts:
                raise ValueError(f"prompt name {prompt_name!r} is not among this model's prompts "
                                 f"{sorted(self.prompts)}")
            return self.prompts[prompt_name]
        return self.prompts.get(self.default_prompt_name, "") if self.default_prompt_name else ""

    def _embed_batch(self, texts: Sequence[str], skip: int) -> np.ndarray:
        return self.embed_tokens(*self.tokenizer.encode_packed(texts), skip=skip)

    def embed_tokens(self, ids: np.ndarray, token_type_ids: np.ndarray, lengths: np.ndarray, *,
                     skip: int = 0) -> np.ndarray:
        """One packed batch of token ids ([total_tokens] each, as Tokenizer.encode_packed gives them; lengths
        [B]) -> the folder's embeddings [B, dim] (pooling, Dense and Normalize modules; not truncate_dim or
        normalize_embeddings). skip: leading prompt tokens left out of the pooling
        (see `pool`). The server batches requests it has tokenized itself through this."""
        batch = PackedBatch.from_lengths(lengths)
        hidden = self.model.forward_packed(ids, token_type_ids, batch)
        x = pool(hidden, batch, self.pooling_modes, skip)
        for dense in self.dense:
            x = dense(x)
        if self.normalize:  # the Normalize module: before truncate_dim, as in sentence-transformers
            x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        return x

    def encode(
        self,
        sentences: str | Sequence[str],
        batch_size: int = 32,
        normalize_embeddings: bool = False,
        show_progress_bar: bool = False,
        convert_to_numpy: bool = True,
        *,
        prompt_name: str | None = None,
        prompt: str | None = None,
        precision: str = "float32",
        truncate_dim: int | None = None,
    ) -> np.ndarray | list[np.ndarray]:
        """[N, dim] float32 embeddings (a single string gives [dim]), in sentence-transformers' order: the
        folder's modules (Dense, Normalize), then truncation to truncate_dim (default: the folder's), then
        normalize_embeddings, then `precision` ("int8" / "uint8": 256 buckets per dimension between its min and
        max over these embeddings; "binary" / "ubinary": signs packed into bits; see quantize_embeddings).
        convert_to_numpy=False returns a list of [dim] arrays. prompt / prompt_name: text put before every
        sentence (see `resolve_prompt`)."""
        single = isinstance(sentences, str)
        texts = [sentences] if single else list(sentences)
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
        if bad is not None:
            raise TypeError(f"sentences must be strings; item {bad} is {type(texts[bad]).__name__}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
        truncate_dim = _check_truncate_dim(truncate_dim) or self.truncate_dim
        prefix = self.resolve_prompt(prompt_name, prompt)
        skip = self.tokenizer.prompt_length(prefix) if prefix and not self.include_prompt else 0
        full_dim = self.dense[-1].out_features if self.dense else self.model.config.hidden_size * len(
            self.pooling_modes)
        dim = min(full_dim, truncate_dim) if truncate_dim else full_dim
        out = np.empty((len(texts), dim), np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        with progress_bar((len(texts) + batch_size - 1) // batch_size, desc="Batches", unit="batch",
                          enabled=show_progress_bar and bool(texts)) as progress:
            for start in range(0, len(texts), batch_size):
                idx = order[start:start + batch_size]
                out[idx] = self._embed_batch([prefix + texts[i] for i in idx], skip)[:, :dim]
                progress.update()
        if normalize_embeddings:
            # as torch.nn.functional.normalize: x / max(||x||, 1e-12)
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        if precision != "float32" and len(texts):
            out = quantize_embeddings(out, precision)
        if single:
            return out[0]
        return out if convert_to_numpy else list(out)

    def encode_query(self, sentences: str | Sequence[str], **kwargs: Any):
        """`encode` with the model's "query" prompt when it has one and the call names no other."""
        return self._encode_role("query", sentences, kwargs)

    def encode_document(self, sentences: str | Sequence[str], **kwargs: Any):
        """`encode` with the model's "document" prompt when it has one and the call names no other."""
        return self._encode_role("document", sentences, kwargs)

    def _encode_role(self, role: str, sentences, kwargs: dict[str, Any]):
        if kwargs.get("prompt") is None and kwargs.get("prompt_name") is None and role in self.prompts:
            kwargs["prompt_name"] = role
        return self.encode(sentences, **kwargs)


def _check_truncate_dim(value: Any) -> int | None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise ValueError(f"truncate_dim must be a positive int or None, got {value!r}")
    return value


def _module_folder(root: Path, sub: Any) -> Path:
    """A module's folder inside the model folder; a path that leaves it (absolute, '..', a symlink out) is a
    CheckpointError (a ValueError) naming modules.json."""
    if sub in (None, ""):
        return root
    return inside_folder(root, sub, root / "modules.json", "module path")


def _optional_json(folder: Path, name: str) -> dict[str, Any]:
    value = read_folder_json(folder, name, required=False)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CheckpointError(f"{folder / name} must hold a JSON object, got {type(value).__name__}")
    return value
