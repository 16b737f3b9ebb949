"""A thin wrapper over the `tokenizers` package: load a folder's tokenizer.json, encode batches with truncation,
and hand back numpy arrays (padded [B, T] for model calls, or flat packed ids for the padding-free path)."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["BatchEncoding", "Tokenizer"]

# The same spacing cleanup transformers applies after decoding when clean_up_tokenization_spaces is set.
_CLEANUP = [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
            (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")]


@dataclass
class BatchEncoding:
    """input_ids, attention_mask, token_type_ids: int64 [B, T], right-padded to the longest sequence."""

    input_ids: np.ndarray
    attention_mask: np.ndarray
    token_type_ids: np.ndarray

    def __getitem__(self, key: str) -> np.ndarray:  # enc["input_ids"], as transformers users expect
        return getattr(self, key)


class Tokenizer:
    """Batch encoding with truncation to `max_length` tokens (special tokens included)."""

    def __init__(self, tokenizer, max_length: int, *, lowercase: bool = False, clean_up_spaces: bool = True):
        if not isinstance(max_length, int) or max_length < 2:
            raise ValueError(f"max_length must be an int >= 2 (room for [CLS] and [SEP]), got {max_length!r}")
        self._tok = tokenizer
        self._tok.no_padding()  # we pad (or pack) ourselves
        self.max_length = max_length
        self.lowercase = lowercase
        self.clean_up_spaces = clean_up_spaces
        self.pad_token_id = self._first_id("[PAD]", "<pad>") or 0
        self.mask_token = next((t for t in ("[MASK]", "<mask>") if self._tok.token_to_id(t) is not None), None)
        self.mask_token_id = self._tok.token_to_id(self.mask_token) if self.mask_token else None
        self.cls_token_id = self._first_id("[CLS]", "<s>")
        self.unk_token_id = self._first_id("[UNK]", "<unk>")

    def _first_id(self, *tokens: str) -> int | None:
        for token in tokens:
            idx = self._tok.token_to_id(token)
            if idx is not None:
                return idx
        return None

    @classmethod
    def from_pretrained(
        cls,
        folder: str | os.PathLike,
        max_length: int | None = None,
        *,
        max_positions: int | None = None,
        clean_up_spaces: bool | None = None,
    ) -> "Tokenizer":
        """Load `folder/tokenizer.json`. max_length (the truncation length) defaults to tokenizer_config.json's
        model_max_length, as transformers and sentence-transformers read it, else to max_positions, else 512;
        it is always capped at max_positions (the model's position limit). clean_up_spaces defaults to
        tokenizer_config.json's clean_up_tokenization_spaces (True when absent)."""
        from tokenizers import Tokenizer as _RustTokenizer  # imported lazily: only models with text need it

        path = Path(folder) / "tokenizer.json"
        if not path.is_file():
            raise FileNotFoundError(
                f"no tokenizer.json in {os.fspath(folder)!r}; save one with "
                "AutoTokenizer.from_pretrained(name).save_pretrained(folder) (a fast tokenizer)"
            )
        config = {}
        config_path = Path(folder) / "tokenizer_config.json"
        if config_path.is_file():
            with open(config_path, encoding="utf-8") as f:
                config = json.load(f)
            if not isinstance(config, dict):
                raise ValueError(f"{config_path} must hold a JSON object, got {type(config).__name__}")
        if max_length is None:
            max_length = config.get("model_max_length")
            # transformers writes a huge sentinel (1e30) for "no limit"
            if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length > 1_000_000:
                max_length = max_positions or 512
        if max_positions is not None:
            max_length = min(max_length, max_positions)
        if clean_up_spaces is None:
            clean_up_spaces = bool(config.get("clean_up_tokenization_spaces", True))
        return cls(_RustTokenizer.from_file(os.fspath(path)), max_length, clean_up_spaces=clean_up_spaces)

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size()

    def token_to_id(self, token: str) -> int | None:
        return self._tok.token_to_id(token)

    def id_to_token(self, idx: int) -> str | None:
        return self._tok.id_to_token(int(idx))

    def _encode(self, texts: Sequence[str], pairs: Sequence[str] | None, max_length: int | None):
        if isinstance(texts, str):
            raise TypeError("texts must be a list of strings; wrap a single string in a list")
        texts = list(texts)
        if not all(isinstance(t, str) for t in texts):
            raise TypeError("every text must be a str")
        if self.lowercase:
            texts = [t.lower() for t in texts]
        limit = self.max_length if max_length is None else max_length
        specials = self._tok.num_special_tokens_to_add(pairs is not None)
        if limit < specials:  # `tokenizers` would then skip truncation altogether and return everything
            raise ValueError(f"max_length {limit} is shorter than the {specials} special tokens each "
                             f"{'text pair' if pairs is not None else 'text'} gets; use max_length >= {specials}")
        self._tok.enable_truncation(limit)
        if pairs is None:
            return self._tok.encode_batch(texts)
        pairs = list(pairs)
        if len(pairs) != len(texts):
            raise ValueError(f"got {len(texts)} texts but {len(pairs)} text pairs")
        return self._tok.encode_batch(list(zip(texts, pairs)))

    def encode_batch(
        self, texts: Sequence[str], text_pairs: Sequence[str] | None = None, max_length: int | None = None
    ) -> BatchEncoding:
        """Padded numpy arrays for a batch of texts (or text pairs, with token type 1 on the second)."""
        encodings = self._encode(texts, text_pairs, max_length)
        longest = max((len(e.ids) for e in encodings), default=0)
        shape = (len(encodings), longest)
        ids = np.full(shape, self.pad_token_id, np.int64)
        mask = np.zeros(shape, np.int64)
        types = np.zeros(shape, np.int64)
        for i, e in enumerate(encodings):
            n = len(e.ids)
            ids[i, :n], mask[i, :n], types[i, :n] = e.ids, 1, e.type_ids
        return BatchEncoding(ids, mask, types)

    def encode_packed(
        self, texts: Sequence[str], max_length: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Without padding: (ids [total_tokens], token_type_ids [total_tokens], lengths [B]) as int64."""
        encodings = self._encode(texts, None, max_length)
        lengths = np.fromiter((len(e.ids) for e in encodings), np.int64, len(encodings))
        ids = np.fromiter((i for e in encodings for i in e.ids), np.int64, int(lengths.sum()))
        types = np.fromiter((i for e in encodings for i in e.type_ids), np.int64, int(lengths.sum()))
        return ids, types, lengths

    def encode_text(self, text: str, *, add_special_tokens: bool = True) -> np.ndarray:
        """One text's ids (int64 [n]), never truncated. add_special_tokens=False encodes a rendered chat template
        as transformers' apply_chat_template does (the template writes its own bos)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        self._tok.no_truncation()
        return np.asarray(self._tok.encode(text, add_special_tokens=add_special_tokens).ids, np.int64)

    def encode_with_offsets(self, texts: Sequence[str], text_pairs: Sequence[str] | None = None, *,
                            max_length: int | None = None, stride: int = 0, strategy: str = "longest_first"):
        """The `tokenizers` Encoding of each text (or pair), with character offsets, sequence ids, word ids and
        the special-tokens mask. With stride > 0, what truncation cuts off comes back as further windows that
        overlap by `stride` tokens (encoding.overflowing; strategy "only_second" keeps the first text whole).
        ValueError when the tokenizer cannot split so (the first text leaves no room for the stride)."""
        texts = [t.lower() for t in texts] if self.lowercase else list(texts)  # lower() keeps offsets for most text
        limit = self.max_length if max_length is None else max_length
        try:
            self._tok.enable_truncation(limit, stride=stride, strategy=strategy)
            if text_pairs is None:
                return self._tok.encode_batch(list(texts))
            return self._tok.encode_batch(list(zip(texts, text_pairs)))
        except Exception as exc:  # tokenizers raises its own Exception type for impossible truncations
            raise ValueError(f"cannot split the text into windows of {limit} tokens with stride {stride}: {exc}") \
                from None
        finally:
            self._tok.enable_truncation(self.max_length)

    @property
    def continuing_subword_prefix(self) -> str | None:
        """"##" for WordPiece models (a token that continues a word is marked); None for BPE / Unigram."""
        return getattr(self._tok.model, "continuing_subword_prefix", None) or None

    def tokens_to_string(self, tokens: Sequence[str]) -> str:
        """Tokens joined back into text by the tokenizer's decoder ("hello", "##s" -> "hellos")."""
        decoder = self._tok.decoder
        return decoder.decode(list(tokens)) if decoder is not None else " ".join(tokens)

    def prompt_length(self, prompt: str) -> int:
        """How many leading tokens a prompt puts before a text: its encoding's length without the trailing
        special token ([SEP], </s>), as sentence-transformers counts it for include_prompt=False."""
        (encoding,) = self._encode([prompt], None, None)
        n = len(encoding.ids)
        return n - 1 if n and encoding.special_tokens_mask[-1] else n

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        text = self._tok.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)
        if self.clean_up_spaces:
            for before, after in _CLEANUP:
                text = text.replace(before, after)
        return text
