"""The one loading template every architecture uses (nanoGPT's from_pretrained, CTranslate2's model readers).

`Model.from_pretrained(folder)` opens the folder once (`Checkpoint`: config.json parsed once, weights opened once,
tokenizer.json parsed only when text is first given), checks that config.json describes a model the class
implements (`model_type`), builds the model from its validated config and the weights, and fails if any weight
was left unused. Subclasses declare what differs:

    config_class     a dataclass with `from_dict(raw)` that validates the architecture's fields
    model_types      the config.json `model_type` values the class implements (anything else is a ValueError)
    base_prefix      the prefix task checkpoints put on the base model's weights ("bert.", "transformer.")
    buffers          glob patterns of weights checkpoints carry but the model recomputes (position ids, masks)
    is_base_model    True for the bare encoder/decoder: weights outside `base_prefix` belong to task heads it
                     does not use and are skipped (the one rule for task heads; a task model skips nothing)
    unused_heads     {architecture: patterns} heads a task class does not use for one checkpoint architecture
    tokenizer_options(config)  how the lazily loaded tokenizer is set up (max length, decoding clean-up)
    on_loaded(checkpoint)      what else a class takes from the folder (generation_config.json for generators)
"""
from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from ..generation import GenerationConfig
from ..io import WeightStore, read_config, read_folder_json
from ..dtypes import SUPPORTED_DTYPES, check_dtype
from ..tokenizer import Tokenizer

__all__ = ["Checkpoint", "PretrainedModel", "SUPPORTED_DTYPES", "check_dtype", "config_bool", "config_positive_float",
           "config_sizes", "config_token_id"]


def config_bool(config: Mapping[str, Any], key: str, default: bool) -> bool:
    """A JSON true / false field (absent or null: `default`); a string such as "no" is a ValueError, not True."""
    value = config.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ValueError(f"config {key} must be true or false, got {value!r}")
    return value


def config_positive_float(config: Mapping[str, Any], key: str, default: float) -> float:
    """A finite number > 0 (layer norm epsilons): Infinity, NaN, 0, negatives, strings and booleans are refused."""
    value = config.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"config {key} must be a finite number > 0, got {value!r}")
    return float(value)


def config_token_id(config: Mapping[str, Any], key: str, vocab_size: int) -> int | None:
    """A token id in [0, vocab_size), or None when absent or null; a list (several eos ids) gives its first.
    An id outside the vocabulary is a ValueError: dropping it would silently change when generation stops."""
    value = config.get(key)
    if isinstance(value, list):
        if not value:
            return None
        for item in value:
            config_token_id({key: item}, key, vocab_size)
        value = value[0]
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < vocab_size:
        raise ValueError(f"config {key} must be a token id in [0, vocab_size={vocab_size}) or null, got {value!r}")
    return value


def config_sizes(config: Mapping[str, Any], family: str, keys: Sequence[str], *, may_be_zero: Sequence[str] = (),
                 divisible: tuple[str, str] | None = None) -> dict[str, int]:
    """The size fields a config_class needs, checked: present, ints >= 1 (>= 0 for `may_be_zero`), and
    `divisible` = (hidden, heads) dividing evenly. ValueErrors name the field and what it holds."""
    missing = [k for k in keys if k not in config]
    if missing:
        raise ValueError(f"config.json lacks {', '.join(missing)} (needed for a {family} model)")
    for key in keys:
        value = config[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < (0 if key in may_be_zero else 1):
            raise ValueError(f"config {key} must be a positive int, got {value!r}")
    if divisible is not None:
        hidden, heads = divisible
        if config[hidden] % config[heads]:
            raise ValueError(f"{hidden} {config[hidden]} is not divisible by {heads} {config[heads]}")
    return {k: config[k] for k in keys}


@dataclass
class Checkpoint:
    """A Hugging Face model folder, opened once: its parsed config.json and (on demand) its weights."""

    folder: Path
    config: dict[str, Any]

    @classmethod
    def open(cls, path: str | os.PathLike) -> "Checkpoint":
        return cls(Path(path), read_config(path))

    @property
    def model_type(self) -> str | None:
        value = self.config.get("model_type")
        return value if isinstance(value, str) else None

    @property
    def architecture(self) -> str | None:
        archs = self.config.get("architectures")
        return archs[0] if isinstance(archs, list) and archs and isinstance(archs[0], str) else None

    def weights(self) -> WeightStore:
        return WeightStore(self.folder)

    def has_tokenizer(self) -> bool:
        return (self.folder / "tokenizer.json").is_file()

    def tokenizer(self, **options: Any) -> Tokenizer:
        return Tokenizer.from_pretrained(self.folder, **options)

    def generation_config(self, defaults: GenerationConfig, vocab_size: int) -> GenerationConfig:
        """`defaults` updated from the folder's generation_config.json, if it has one."""
        if read_folder_json(self.folder, "generation_config.json", required=False) is None:  # checks it first
            return defaults
        return GenerationConfig.from_file(self.folder / "generation_config.json", defaults, vocab_size)


_NOT_LOADED = object()


class PretrainedModel:
    """Base of every model class: the loading template and the lazily loaded tokenizer."""

    config_class: ClassVar[type]
    model_types: ClassVar[tuple[str, ...]] = ()
    base_prefix: ClassVar[str] = ""
    buffers: ClassVar[tuple[str, ...]] = ()
    is_base_model: ClassVar[bool] = False
    unused_heads: ClassVar[Mapping[str, tuple[str, ...]]] = {}

    # --- loading ------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, *, dtype: Any = "float32", mmap: bool = False):
        """Load a Hugging Face folder (config.json, model.safetensors or an index of shards, tokenizer.json if
        present). dtype: how the linear layers keep their weights ("float32", "bf16" or "int8": weight-only, see
        ops.PackedLinear); embeddings, layer norms, attention and activations stay float32.
        mmap: by default the model owns every array it uses and never reads the file after loading. mmap=True
        keeps the float32 embedding and layer-norm tables as read-only views of the mapped file, so worker
        processes loading the same file share those pages; the file must then not change while the model lives
        (truncating it crashes the process with SIGBUS, rewriting it changes the answers)."""
        return cls.from_checkpoint(Checkpoint.open(path), dtype=dtype, mmap=mmap)

    @classmethod
    def from_checkpoint(cls, checkpoint: Checkpoint, *, dtype: Any = "float32", mmap: bool = False):
        dtype = check_dtype(dtype)
        cls.check_model_type(checkpoint)
        try:
            config = cls.config_class.from_dict(checkpoint.config)
        except ValueError as exc:  # name the file: a folder of subfolders (sentence-transformers) has several
            raise ValueError(f"{checkpoint.folder / 'config.json'}: {exc}") from None
        store = checkpoint.weights()
        store.linear_dtype = dtype
        store.mmap = bool(mmap)
        stripped = store.strip_prefix(cls.base_prefix) if cls.base_prefix else []
        store.ignore(*cls.buffers)
        if cls.is_base_model and stripped:
            store.ignore_outside(cls.base_prefix)  # a task checkpoint: its heads are not part of the base model
        store.ignore(*cls.unused_heads.get(checkpoint.architecture or "", ()))
        model = cls(config, store)
        store.assert_all_used()
        model.on_loaded(checkpoint)
        return model

    @classmethod
    def check_model_type(cls, checkpoint: Checkpoint) -> None:
        """ValueError unless config.json's model_type is one this class implements. A folder of a close
        relative (RoBERTa for BERT) would otherwise load and give wrong numbers."""
        got = checkpoint.config.get("model_type")
        if got is None:  # configs written before transformers recorded model_type: the weights must match
            return
        if got not in cls.model_types:
            arch = f" (architecture {checkpoint.architecture})" if checkpoint.architecture else ""
            raise ValueError(
                f"{checkpoint.folder / 'config.json'} describes a {got!r} model{arch}; {cls.__name__} implements "
                f"model_type {', '.join(repr(t) for t in cls.model_types)}. Supported architectures: "
                f"{', '.join(_registered())}")

    # --- tokenizer ----------------------------------------------------------------------------------------
    @classmethod
    def tokenizer_options(cls, config: Any) -> dict[str, Any]:
        """Keyword arguments of Tokenizer.from_pretrained for this architecture."""
        return {}

    def on_loaded(self, checkpoint: Checkpoint) -> None:
        """After the weights: what else the model takes from its folder. Here the tokenizer, whose tokenizer.json
        is parsed the first time text is given."""
        self._tokenizer_source = checkpoint if checkpoint is not None and checkpoint.has_tokenizer() else None
        self._tokenizer = _NOT_LOADED if self._tokenizer_source is not None else None
        self._tokenizer_lock = threading.Lock()

    @property
    def tokenizer(self) -> Tokenizer | None:
        """The folder's tokenizer.json (parsed on first use), or None when the folder has none."""
        tok = getattr(self, "_tokenizer", None)
        if tok is _NOT_LOADED:
            with self._tokenizer_lock:
                if self._tokenizer is _NOT_LOADED:
                    self._tokenizer = self._tokenizer_source.tokenizer(**self.tokenizer_options(self.config))
                tok = self._tokenizer
        return tok

    @tokenizer.setter
    def tokenizer(self, value: Tokenizer | None) -> None:
        self._tokenizer = value

    def require_tokenizer(self) -> Tokenizer:
        """The tokenizer, or a ValueError saying the folder had none (for the methods that take text)."""
        tok = self.tokenizer
        if tok is None:
            raise ValueError("this model was loaded without a tokenizer.json, so it cannot take text")
        return tok


def _registered() -> list[str]:
    from .registry import registered_architectures  # imported here: the registry imports Checkpoint from us

    return registered_architectures()
