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
# A prefix this long (characters) without enough safe tokens holds a very long pre-token (see _cut_for_truncation);
# 64K characters cost ~10 MB to tokenize.
_LONG_WORD_CHARS = 1 << 16
_SETTLED_MARGIN = 32  # tokens two prefixes must agree on past the budget (see _settled_tokens)
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
        return _safe_count(self._tok.encode(prefix, add_special_tokens=False).word_ids)

    def _cut_for_truncation(self, text: str, budget: int, *, rewrite: bool = True) -> tuple[str, int | None]:
        """(a text whose first `budget` tokens are `text`'s, its safe token count or None when not cut): a
        prefix of `text`, or with `rewrite` (ids only, not offsets) `text` with over-long WordPiece words
        shortened. Prefixes double in length, so the work is bounded by twice the prefix that holds enough
        tokens. Past _LONG_WORD_CHARS a prefix without enough safe tokens holds a very long pre-token (no
        whitespace / punctuation: 'a' * 10**7, CJK under a byte-level or Metaspace pre-tokenizer); then a
        WordPiece word past max_input_chars_per_word (one [UNK] however long) is shortened
        (_shorten_unknown_word), and other models take the word's first tokens from two prefixes that agree on
        them (_settled_tokens), so no text is ever tokenized whole because of one long word."""
        length = max(budget, 4) * _CUT_CHARS_PER_TOKEN
        while length < len(text):
            prefix = text[:length]
            encoding = self._tok.encode(prefix, add_special_tokens=False)
            safe = _safe_count(encoding.word_ids)
            if safe >= budget:
                return prefix, safe
            if length >= _LONG_WORD_CHARS:
                shorter = self._shorten_unknown_word(text, length, encoding) if rewrite else None
                if shorter is not None:
                    text = shorter
                    continue
                settled = self._settled_tokens(text, length, encoding, budget)
                if settled is not None:
                    return prefix, settled
            length *= 2
        return text, None

    def _shorten_unknown_word(self, text: str, length: int, encoding) -> str | None:
        """WordPiece turns a word of more than max_input_chars_per_word (normalized) characters into one [UNK]
        whatever it holds. When the prefix text[:length] ends inside such a word, returns `text` with that word
        cut to a few hundred characters (still [UNK]) and the rest of the text after it; None otherwise. The
        word's end is found by tokenizing 64K-character windows (bounded memory, linear time)."""
        model = self._tok.model
        limit = getattr(model, "max_input_chars_per_word", None)
        if type(model).__name__ != "WordPiece" or not isinstance(limit, int) or not encoding.ids:
            return None
        word = encoding.word_ids[-1]
        first = next(i for i, w in enumerate(encoding.word_ids) if w == word)
        start, end = encoding.offsets[first][0], encoding.offsets[-1][1]
        if word is None or first != len(encoding.ids) - 1 or encoding.ids[-1] != self.unk_token_id:
            return None  # the prefix does not end with one [UNK] word (its end: a dropped mark, or the cut)
        # The shortest head of the word (doubling) that is itself too long for WordPiece after normalization.
        normalizer = self._tok.normalizer
        keep = limit + 1
        while True:
            head = text[start:start + keep]
            chars = len(normalizer.normalize_str(head)) if normalizer is not None else len(head)
            if chars > limit:
                break
            keep *= 2
            if start + keep > end - 8:
                return None
        # Where the word ends in the whole text: before the first token of another word in a window that starts
        # inside it (what separates the two words is kept).
        at = end - 8
        while at < len(text):
            window = self._tok.encode(text[at:at + _LONG_WORD_CHARS], add_special_tokens=False)
            words = window.word_ids
            nxt = next((i for i, w in enumerate(words) if w != words[0]), None) if words else None
            if nxt is not None:
                return text[:start + keep] + text[at + window.offsets[nxt - 1][1]:]
            at += _LONG_WORD_CHARS - 8
        return text[:start + keep]

    def _settled_tokens(self, text: str, length: int, encoding, budget: int) -> int | None:
        """How many leading tokens text[:length] and text[:2 * length] share (same ids and offsets) beyond a
        margin of _SETTLED_MARGIN, when that reaches budget; None otherwise (or when 2 * length is the whole
        text, which the caller then tokenizes). BPE merges and Unigram's best path settle within a few tokens
        of where a word is cut on real vocabularies; not proven for adversarial merge tables (docs/ARCHITECTURE)."""
        if 2 * length >= len(text):
            return None
        longer = self._tok.encode(text[:2 * length], add_special_tokens=False)
        ids, offsets = encoding.ids, encoding.offsets
        common = 0
        for a, b, oa, ob in zip(ids, longer.ids, offsets, longer.offsets):
            if a != b or oa != ob:
                break
            common += 1
        common -= _SETTLED_MARGIN
        return common if common >= budget else None

    def _cut_pair(self, first: str, second: str, budget: int, *, rewrite: bool = True) -> tuple[str, str]:
        """Both texts of a pair, cut where that cannot change the truncated pair. `tokenizers`' longest_first
        truncation takes tokens from the longer text first; when both keep more than budget / 2, an even budget
        splits evenly whatever their lengths, an odd one gives its extra token to the longer text (the second on
        a tie). So with an odd budget a text is cut only when the other is whole and known to be shorter."""
        cut_first, safe_first = self._cut_for_truncation(first, budget, rewrite=rewrite)
        cut_second, safe_second = self._cut_for_truncation(second, budget, rewrite=rewrite)
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
        return self._encode_truncated(inputs, budget)

    def _encode_truncated(self, inputs: list, budget: int) -> list:
        """Each text (or pair) encoded without special tokens, truncated to `budget` tokens as `tokenizers`'
        longest_first truncation does, then given its special tokens by the post-processor: the library's own
        truncation also builds every overflow window (for a pair, every window of one text times every window of
        the other), which nothing here uses. Ids, type ids and the special-tokens mask are the library's; offsets
        are not (a ByteLevel post-processor trims them on each of its two runs), so encode_with_offsets does not
        use this."""
        # A second text is encoded as the pair of an empty text, so it gets the pair's type id (1) as in the
        # library's own pair encoding (which a post-processor without a template keeps).
        flat = [t if isinstance(t, str) else ("", t[1]) for item in inputs
                for t in ((item,) if isinstance(item, str) else (item[0], item))]
        encoded = _call_encode(lambda _: self._tok.encode_batch(flat, add_special_tokens=False), inputs)
        out, at = [], 0
        for item in inputs:
            if isinstance(item, str):
                first, second = encoded[at], None
                _keep_first(first, budget)
                at += 1
            else:
                first, second = encoded[at], encoded[at + 1]
                keep_first, keep_second = _longest_first(len(first.ids), len(second.ids), budget)
                _keep_first(first, keep_first)
                _keep_first(second, keep_second)
                at += 2
            out.append(self._tok.post_process(first, second, add_special_tokens=True))
        return out

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
        return np.asarray(self._tok.encode(text, add_special_tokens=add_special_tokens).ids, np.int64)

    def encode_with_offsets(self, texts: Sequence[str], text_pairs: Sequence[str] | None = None, *,
                            max_length: int | None = None, stride: int = 0, strategy: str = "longest_first",
                            return_overflowing: bool = True):
        """The `tokenizers` Encoding of each text (or pair), with character offsets, sequence ids, word ids and
        the special-tokens mask. With stride > 0, what truncation cuts off comes back as further windows that
        overlap by `stride` tokens (encoding.overflowing; strategy "only_second" keeps the first text whole).
        ValueError when the tokenizer cannot split so (the first text leaves no room for the stride).
        return_overflowing=False (longest_first, stride 0): only the first window is wanted, so long texts are cut
        before tokenizing (as encode_batch does; offsets are unchanged) and encoding.overflowing covers only the
        cut text (do not read it)."""
        texts = [t.lower() for t in texts] if self.lowercase else list(texts)  # lower() keeps offsets for most text
        limit = self.max_length if max_length is None else max_length
        if not return_overflowing:
            if stride or strategy != "longest_first":
                raise ValueError("return_overflowing=False takes stride=0 and strategy='longest_first' (the "
                                 f"windows are what stride and strategy shape); got stride={stride}, "
                                 f"strategy={strategy!r}")
            specials = self._tok.num_special_tokens_to_add(text_pairs is not None)
            if limit < specials:
                raise ValueError(f"max_length {limit} is shorter than the {specials} special tokens each text gets")
            budget = limit - specials
            if text_pairs is None:  # prefixes only (rewrite=False): offsets must point into the caller's text
                inputs = [self._cut_for_truncation(t, budget, rewrite=False)[0] for t in texts]
            else:
                inputs = [self._cut_pair(t, p, budget, rewrite=False) for t, p in zip(texts, text_pairs)]
            # The library's truncation here, not _encode_truncated: a ByteLevel / RoBERTa post-processor trims
            # offsets each time it runs, and _encode_truncated runs it twice (ids are unaffected, offsets not).
            # Its windows cover only the cut texts (a pair whose texts both exceed an odd budget is not cut).
            return _call_encode(self._truncating(limit).encode_batch, inputs)
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


def _safe_count(word_ids) -> int:
    """Tokens before the last two words (Tokenizer._safe_tokens)."""
    last = max((w for w in word_ids if w is not None), default=-1)
    return next((i for i, w in enumerate(word_ids) if w is not None and w >= last - 1), len(word_ids))


def _longest_first(first: int, second: int, budget: int) -> tuple[int, int]:
    """Token counts `tokenizers`' longest_first truncation keeps of a pair of `first` and `second` tokens (checked
    against the library for every pair of lengths up to 13 and budgets up to 11): the longer text loses tokens
    first; when both keep more than budget / 2 they split it, the odd token to the longer (the second on a tie)."""
    if first + second <= budget:
        return first, second
    short, long_ = (second, first) if first > second else (first, second)
    keep_long = short if short > budget else max(short, budget - short)
    keep_short = short
    if keep_short + keep_long > budget:
        keep_short = budget // 2
        keep_long = keep_short + budget % 2
    if first > second:
        return min(first, keep_long), min(second, keep_short)
    return min(first, keep_short), min(second, keep_long)


def _keep_first(encoding, n: int) -> None:
    """encoding.truncate(n) keeping at most one (one-token) overflow window: Encoding.truncate replaces the
    overflow with windows of what it cuts off, and a pair's post-processing pairs every window of one text with
    every window of the other (the product that made small budgets blow up)."""
    if len(encoding.ids) > n:
        if len(encoding.ids) > n + 1:
            encoding.truncate(n + 1)
        encoding.truncate(n)


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
