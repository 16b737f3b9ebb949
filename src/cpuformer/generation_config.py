"""GenerationConfig: every generation option, validated once when the config is made (and on `replace`), and
read from a folder's generation_config.json. The decoding loops live in generation.py and beam_search.py; the
score rules in logits_processors.py."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["GenerationConfig"]


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


@dataclass(frozen=True)
class GenerationConfig:
    """Every generation option, validated when the config is made (`replace` validates again).

    Greedy (do_sample=False) ignores temperature, top_k and top_p, as transformers does; repetition_penalty
    applies in both modes. eos_token_id=None never stops early; with an eos, a row that produced it is filled
    with pad_token_id (default: the eos) and generation stops when every row has. A model's own config
    (`model.generation_config`) carries its eos and the folder's generation_config.json; call options override it.
    Token ids are checked against the vocabulary by `check_token_ids` (the config does not know the model)."""

    max_new_tokens: int = 20
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    seed: int | None = None
    eos_token_id: int | None = None
    pad_token_id: int | None = None
    # ids that end a row like eos (transformers' eos_token_id=[eos, ...]: eos_token_id=eos, stop_token_ids=[...])
    stop_token_ids: tuple[int, ...] = ()
    # stop strings (text functions only): a row ends once its text holds one; the text ends before it
    stop: tuple[str, ...] = ()
    # beam search (num_beams > 1): transformers' semantics, see cpuformer.beam_search
    num_beams: int = 1
    length_penalty: float = 1.0
    early_stopping: bool | str = False
    num_return_sequences: int = 1
    # constraints on the scores, applied in transformers' order (cpuformer.logits_processors)
    no_repeat_ngram_size: int = 0
    min_length: int = 0
    min_new_tokens: int = 0
    forced_bos_token_id: int | None = None
    forced_eos_token_id: int | None = None
    suppress_tokens: tuple[int, ...] | None = None
    bad_words_ids: tuple[tuple[int, ...], ...] | None = None
    # encoder-decoder models: the first decoder token
    decoder_start_token_id: int | None = None
    # generate() returns a GenerateOutput (sequences, scores, sequences_scores, token_logprobs) instead of ids
    return_dict_in_generate: bool = False
    output_scores: bool = False

    def __post_init__(self):
        _normalize_sequences(self)
        if not _is_int(self.max_new_tokens) or self.max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be an int >= 0, got {self.max_new_tokens!r}")
        if not isinstance(self.do_sample, (bool, np.bool_)):
            raise ValueError(f"do_sample must be True or False, got {self.do_sample!r}")
        if not _is_number(self.temperature) or not np.isfinite(self.temperature) or (
                self.do_sample and self.temperature <= 0):
            raise ValueError(f"temperature must be a finite number > 0 when sampling, got {self.temperature!r}; "
                             "use do_sample=False for greedy decoding")
        if not _is_int(self.top_k) or self.top_k < 0:
            raise ValueError(f"top_k must be an int >= 0 (0 = no top-k filter), got {self.top_k!r}")
        if not _is_number(self.top_p) or not (0.0 < self.top_p <= 1.0):
            raise ValueError(f"top_p must be in (0, 1] (1 = no nucleus filter), got {self.top_p!r}")
        if (not _is_number(self.repetition_penalty) or not np.isfinite(self.repetition_penalty)
                or self.repetition_penalty <= 0):
            raise ValueError(f"repetition_penalty must be a finite number > 0 (1 = none), got "
                             f"{self.repetition_penalty!r}")
        if self.seed is not None and (not _is_int(self.seed) or self.seed < 0):
            raise ValueError(f"seed must be None or an int >= 0, got {self.seed!r}")
        for name in _TOKEN_FIELDS:
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or value < 0):
                raise ValueError(f"{name} must be None or an int >= 0, got {value!r}")
        for name in ("num_beams", "num_return_sequences"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        for name in ("no_repeat_ngram_size", "min_length", "min_new_tokens"):
            value = getattr(self, name)
            if not _is_int(value) or value < 0:
                raise ValueError(f"{name} must be an int >= 0 (0 = off), got {value!r}")
        if not _is_number(self.length_penalty) or not np.isfinite(self.length_penalty):
            raise ValueError(f"length_penalty must be a finite number, got {self.length_penalty!r}")
        if not (isinstance(self.early_stopping, (bool, np.bool_)) or self.early_stopping == "never"):
            raise ValueError(f"early_stopping must be True, False or 'never', got {self.early_stopping!r}")
        if self.num_beams > 1 and self.num_return_sequences > self.num_beams:
            raise ValueError(f"num_return_sequences ({self.num_return_sequences}) must be <= num_beams "
                             f"({self.num_beams}): beam search returns its best beams")
        if self.num_beams == 1 and not self.do_sample and self.num_return_sequences > 1:
            raise ValueError("num_return_sequences > 1 needs do_sample=True or num_beams > 1 (greedy search gives "
                             "one answer per prompt)")
        if self.num_beams > 1 and self.do_sample:
            raise ValueError("beam search with do_sample=True (beam sampling) is not supported; use num_beams=1 "
                             "to sample or do_sample=False for beam search")
        for name in ("return_dict_in_generate", "output_scores"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")

    @property
    def stop_ids(self) -> tuple[int, ...]:
        """Every id that ends a row: eos first, then stop_token_ids."""
        ids = () if self.eos_token_id is None else (self.eos_token_id,)
        return ids + tuple(i for i in self.stop_token_ids if i not in ids)

    def replace(self, **options: Any) -> "GenerationConfig":
        """A copy with `options` changed; an unknown option is a TypeError naming the known ones."""
        unknown = sorted(set(options) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            known = ", ".join(f.name for f in dataclasses.fields(self))
            raise TypeError(f"unknown generation option {unknown[0]!r}; options: {known}")
        return dataclasses.replace(self, **options) if options else self

    def check_token_ids(self, vocab_size: int) -> None:
        """Every token id option must be a token of the model's vocabulary."""
        for name in _TOKEN_FIELDS:
            value = getattr(self, name)
            if value is not None and value >= vocab_size:
                raise ValueError(f"{name} must be None or an int in [0, {vocab_size}), got {value!r}")
        lists = {"stop_token_ids": [self.stop_token_ids], "suppress_tokens": [self.suppress_tokens or ()],
                 "bad_words_ids": list(self.bad_words_ids or ())}
        for name, groups in lists.items():
            bad = [i for group in groups for i in group if i >= vocab_size]
            if bad:
                raise ValueError(f"{name} holds {bad[0]}, outside the vocabulary [0, {vocab_size})")

    @property
    def pad_or_eos(self) -> int | None:
        return self.eos_token_id if self.pad_token_id is None else self.pad_token_id

    @classmethod
    def from_file(cls, path: str | Path, defaults: "GenerationConfig", vocab_size: int) -> "GenerationConfig":
        """`defaults` updated with the options we implement from a generation_config.json (others ignored).
        Token ids outside the vocabulary are ignored, as GPT2Config does with its eos (small test vocabularies
        keep GPT-2's 50256)."""
        try:
            with open(path, encoding="utf-8") as f:
                saved = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path} is not valid JSON: {exc}") from None
        if not isinstance(saved, dict):
            raise ValueError(f"{path} must hold a JSON object, got {type(saved).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        options = {k: v for k, v in saved.items() if k in names and v is not None}
        try:
            return defaults.replace(**_saved_options(options, vocab_size, str(path)))
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None


def _saved_options(options: dict[str, Any], vocab_size: int, where: str) -> dict[str, Any]:
    """Saved generation settings as GenerationConfig options: eos lists become eos + stop_token_ids; token ids
    outside the vocabulary are dropped (small test vocabularies keep GPT-2's 50256)."""
    options = dict(options)
    for name in _TOKEN_FIELDS:
        value = options.get(name)
        if isinstance(value, list):
            if name == "eos_token_id" and len(value) > 1:
                options["stop_token_ids"] = [v for v in value[1:] if _is_int(v) and 0 <= v < vocab_size]
            value = value[0] if value else None
        if _is_int(value) and not 0 <= value < vocab_size:
            value = None
        if name in options:
            options[name] = value
    if options.get("early_stopping") not in (None, True, False, "never"):
        raise ValueError(f"{where}: early_stopping must be true, false or \"never\"")
    return options


_TOKEN_FIELDS = ("eos_token_id", "pad_token_id", "forced_bos_token_id", "forced_eos_token_id",
                 "decoder_start_token_id")


def _id_tuple(value: Any, name: str) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ValueError(f"{name} must be a list of token ids (ints >= 0), got {value!r}")
    ids = tuple(value)
    if not all(_is_int(i) and i >= 0 for i in ids):
        raise ValueError(f"{name} must be a list of token ids (ints >= 0), got {list(ids)!r}")
    return tuple(int(i) for i in ids)


def _normalize_sequences(config: "GenerationConfig") -> None:
    """Lists given for the tuple fields become tuples (the config stays hashable and immutable); bad ones raise."""
    set_ = lambda name, value: object.__setattr__(config, name, value)  # noqa: E731 - frozen dataclass
    set_("stop_token_ids", _id_tuple(config.stop_token_ids, "stop_token_ids"))
    if config.suppress_tokens is not None:
        set_("suppress_tokens", _id_tuple(config.suppress_tokens, "suppress_tokens"))
    if config.bad_words_ids is not None:
        words = config.bad_words_ids
        if isinstance(words, (str, bytes)) or not hasattr(words, "__iter__") or not list(words):
            raise ValueError(f"bad_words_ids must be a non-empty list of lists of token ids, got {words!r}")
        set_("bad_words_ids", tuple(_id_tuple(w, "each bad_words_ids entry") for w in words))
        if any(not w for w in config.bad_words_ids):
            raise ValueError("bad_words_ids entries must not be empty")
    stop = config.stop
    if isinstance(stop, str):
        stop = (stop,)
    if not hasattr(stop, "__iter__") or not all(isinstance(s, str) and s for s in stop):
        raise ValueError(f"stop must be a string or a list of non-empty strings, got {config.stop!r}")
    set_("stop", tuple(stop))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
