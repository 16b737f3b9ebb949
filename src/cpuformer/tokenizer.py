"""A thin wrapper over the `tokenizers` package: load a folder's tokenizer.json, encode batches with truncation,
and hand back numpy arrays (padded [B, T] for model calls, or flat packed ids for the padding-free path).

Thread safety: a `tokenizers` object must not be reconfigured while another thread encodes with it (it raises
"Already borrowed"), so each truncation setting gets its own copy, configured once and never changed again.
Long texts: a text is cut before tokenizing to a prefix that provably gives the same truncated tokens
(`_cut_for_truncation`), so a 10 MB text costs what its first few hundred tokens cost.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .io.checkpoint import MAX_JSON_BYTES, read_json
from .io.errors import CheckpointError
from .io.paths import inside_folder, open_regular_file

__all__ = ["BatchEncoding", "Tokenizer"]

# The same spacing cleanup transformers applies after decoding when clean_up_tokenization_spaces is set.
_CLEANUP = [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
            (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")]

# Texts up to this many characters per token of the truncation budget are tokenized whole; longer ones are first
# tokenized in growing prefixes (see _cut_for_truncation). Real text averages 3-6 characters per token.
_CUT_CHARS_PER_TOKEN = 16
_MAX_CONFIGURED = 8  # truncation settings kept configured (each a copy of the tokenizer)


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
        self._tok = tokenizer  # never reconfigured after this: no truncation, no padding
        self._tok.no_padding()  # we pad (or pack) ourselves
        self._tok.no_truncation()
        self._configured: dict[tuple, Any] = {}  # truncation options -> a copy configured with them
        self._configure_lock = threading.Lock()
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

        folder = Path(folder)
        path = folder / "tokenizer.json"
        if not path.exists() and not path.is_symlink():
            raise FileNotFoundError(
                f"no tokenizer.json in {os.fspath(folder)!r}; save one with "
                "AutoTokenizer.from_pretrained(name).save_pretrained(folder) (a fast tokenizer)"
            )
        inside_folder(folder, "tokenizer.json", folder, "tokenizer file")
        config = {}
        config_path = folder / "tokenizer_config.json"
        if config_path.exists() or config_path.is_symlink():
            inside_folder(folder, "tokenizer_config.json", folder, "tokenizer file")
            config = read_json(config_path)
            if not isinstance(config, dict):
                raise CheckpointError(f"{config_path} must hold a JSON object, got {type(config).__name__}")
        rust = _read_tokenizer_json(path, _RustTokenizer)
        if max_length is None:
            max_length = config.get("model_max_length")
            # transformers writes a huge sentinel (1e30) for "no limit"
            if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length > 1_000_000:
                max_length = max_positions or 512
        if max_positions is not None:
            max_length = min(max_length, max_positions)
        if clean_up_spaces is None:
            clean_up_spaces = bool(config.get("clean_up_tokenization_spaces", True))
        return cls(rust, max_length, clean_up_spaces=clean_up_spaces)

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size()

    def token_to_id(self, token: str) -> int | None:
        return self._tok.token_to_id(token)

    def id_to_token(self, idx: int) -> str | None:
        return self._tok.id_to_token(int(idx))

    def __getstate__(self) -> dict[str, Any]:  # copy.deepcopy / pickle: the configured copies are rebuilt
        state = dict(self.__dict__)
        del state["_configured"], state["_configure_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._configured, self._configure_lock = {}, threading.Lock()

    def _truncating(self, max_length: int, **options: Any):
        """The `tokenizers` object that truncates to max_length with `options`: a copy configured once, shared
        read-only by every thread from then on."""
        key = (max_length, tuple(sorted(options.items())))
        tok = self._configured.get(key)
        if tok is None:
            with self._configure_lock:
                tok = self._configured.get(key)
                if tok is None:
                    tok = self._tok.from_str(self._tok.to_str())
                    tok.no_padding()
                    tok.enable_truncation(max_length, **options)
                    if len(self._configured) >= _MAX_CONFIGURED:  # a caller still using an evicted copy keeps it
                        self._configured.pop(next(iter(self._configured)))
                    self._configured[key] = tok
        return tok

    def _safe_tokens(self, prefix: str) -> int:
        """How many leading tokens of `prefix` are the leading tokens of any text that starts with it. Tokens
        come from pre-tokens (words) tokenized one by one, and cutting a text can only change its last pre-token
        (normalizers and pre-tokenizers look at a character's neighbours, never far ahead); so the tokens of all
        words but the prefix's last two are safe."""
        words = self._tok.encode(prefix, add_special_tokens=False).word_ids
        last = max((w for w in words if w is not None), default=-1)
        return next((i for i, w in enumerate(words) if w is not None and w >= last - 1), len(words))

    def _cut_for_truncation(self, text: str, budget: int) -> tuple[str, int | None]:
        """(`text` or a prefix of it whose first `budget` tokens are the text's, that prefix's safe token count
        or None when not cut). Prefixes double in length, so the work is bounded by twice the prefix that holds
        enough tokens (the whole text only when it has too few words, e.g. one very long word)."""
        length = max(budget, 4) * _CUT_CHARS_PER_TOKEN
        while length < len(text):
            safe = self._safe_tokens(text[:length])
            if safe >= budget:
                return text[:length], safe
            length *= 2
        return text, None

    def _cut_pair(self, first: str, second: str, budget: int) -> tuple[str, str]:
        """Both texts of a pair, cut where that cannot change the truncated pair. `tokenizers`' longest_first
        truncation takes tokens from the longer text first; when both keep more than budget / 2, an even budget
        splits evenly whatever their lengths, an odd one gives its extra token to the longer text (the second on
        a tie). So with an odd budget a text is cut only when the other is whole and known to be shorter."""
        cut_first, safe_first = self._cut_for_truncation(first, budget)
        cut_second, safe_second = self._cut_for_truncation(second, budget)
        if budget % 2 == 0 or (safe_first is None and safe_second is None):
            return cut_first, cut_second
        if safe_first is not None and safe_second is None:
            shorter = len(self._tok.encode(second, add_special_tokens=False).ids)
            return (cut_first if safe_first > shorter else first), second
        if safe_second is not None and safe_first is None:
            shorter = len(self._tok.encode(first, add_special_tokens=False).ids)
            return first, (cut_second if safe_second > shorter else second)
        return first, second  # both long: which is longer decides the odd token, so both are tokenized whole

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
        if pairs is not None:
            pairs = list(pairs)
            if len(pairs) != len(texts):
                raise ValueError(f"got {len(texts)} texts but {len(pairs)} text pairs")
            if not all(isinstance(t, str) for t in pairs):
                raise TypeError("every text pair must be a str")
        # A text keeps at most limit - specials tokens, so a prefix holding that many unchanged tokens truncates
        # exactly like the text (pairs: see _cut_pair).
        budget = limit - specials
        if pairs is None:
            inputs = [self._cut_for_truncation(t, budget)[0] for t in texts]
        else:
            inputs = [self._cut_pair(t, p, budget) for t, p in zip(texts, pairs)]
        return _call_encode(self._truncating(limit).encode_batch, inputs)

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
        # No cutting here: the windows past the first cover the whole text.
        try:
            tok = self._truncating(limit, stride=stride, strategy=strategy)
            inputs = list(texts) if text_pairs is None else list(zip(texts, text_pairs))
            return _call_encode(tok.encode_batch, inputs)
        except (ValueError, TypeError):
            raise
        except Exception as exc:  # tokenizers raises its own Exception type for impossible truncations
            raise ValueError(f"cannot split the text into windows of {limit} tokens with stride {stride}: {exc}") \
                from None

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


def _call_encode(encode_batch, inputs: list):
    """encode_batch(inputs); a text `tokenizers` cannot take (a lone surrogate, as from bytes decoded with
    surrogateescape) is a ValueError naming the item, not the library's TypeError."""
    try:
        return encode_batch(inputs)
    except TypeError:
        for i, item in enumerate(inputs):
            for text in (item,) if isinstance(item, str) else item:
                try:
                    text.encode("utf-8")
                except UnicodeEncodeError as exc:
                    raise ValueError(f"text {i} is not valid Unicode (character {exc.object[exc.start]!r} at "
                                     f"index {exc.start}: a lone surrogate, e.g. from bytes that were not UTF-8)") \
                        from None
        raise


def _read_tokenizer_json(path: Path, rust_class):
    """`tokenizers.Tokenizer.from_file`, refusing non-regular and oversized files first; a file the library
    cannot read is a CheckpointError naming it (the library raises a bare Exception)."""
    fd = open_regular_file(path, "tokenizer file")
    try:
        size = os.fstat(fd).st_size
    finally:
        os.close(fd)
    if size > MAX_JSON_BYTES:
        raise CheckpointError(f"{path} is {size} bytes; tokenizer.json is limited to {MAX_JSON_BYTES} bytes")
    try:
        return rust_class.from_file(os.fspath(path))
    except Exception as exc:  # noqa: BLE001 - tokenizers' errors are plain Exceptions
        raise CheckpointError(f"{path} is not a tokenizer.json the tokenizers library can read: {exc}") from None
