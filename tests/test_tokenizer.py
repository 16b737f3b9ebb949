"""cpuformer/tokenizer.py against the `tokenizers` library encoding one text at a time: padding, pairs,
truncation, packing, decoding with space clean-up, lowercase, loading from a folder, and every error."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

tokenizers = pytest.importorskip("tokenizers")

import cpuformer.tokenizer as tokenizer_module  # noqa: E402
from cpuformer.tokenizer import Tokenizer, _longest_first  # noqa: E402
from helpers import HealthCheck, given, run_in_threads, settings, st  # noqa: E402
from rss_probe import run_measuring_peak_rss  # noqa: E402

WORDS = "the a cat dog sat on mat it is was not hello world quick brown fox".split()
TEXTS = ["the cat sat on the mat.", "hello!", "is it? it's not the dog, the fox was quick and brown.", "",
         "zebra # qux"]
PAIRS = ["the dog.", "world", "a", "hello world", "cat"]


def build_wordpiece(folder: Path, lowercase: bool = True) -> Path:
    """A BERT-style WordPiece tokenizer.json over a tiny vocabulary; [PAD] is deliberately not id 0."""
    from tokenizers import decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece

    specials = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    tokens = specials + WORDS + letters + ["##" + c for c in letters] + list(".,!?'")
    vocab = {t: i for i, t in enumerate(dict.fromkeys(tokens))}
    tok = tokenizers.Tokenizer(WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    tok.decoder = decoders.WordPiece(cleanup=False)  # leaves "hello , world !": the wrapper's clean-up is tested
    tok.add_special_tokens(specials)  # so decoding can skip them
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    return folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return build_wordpiece(tmp_path_factory.mktemp("wordpiece"))


def raw(folder: Path, max_length: int | None = None):
    """The library's own tokenizer, encoding one text at a time: the reference."""
    tok = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.no_padding()  # a saved tokenizer.json may pad (MiniLM pads to 128); the wrapper pads itself
    if max_length is not None:
        tok.enable_truncation(max_length)
    return tok


def assert_matches_one_at_a_time(enc, reference_encodings, pad_id):
    longest = max((len(e.ids) for e in reference_encodings), default=0)
    assert enc.input_ids.shape == enc.attention_mask.shape == enc.token_type_ids.shape == (len(reference_encodings),
                                                                                          longest)
    assert enc.input_ids.dtype == enc.attention_mask.dtype == enc.token_type_ids.dtype == np.int64
    for i, e in enumerate(reference_encodings):
        n = len(e.ids)
        np.testing.assert_array_equal(enc.input_ids[i, :n], e.ids)
        np.testing.assert_array_equal(enc.token_type_ids[i, :n], e.type_ids)
        np.testing.assert_array_equal(enc.attention_mask[i], np.arange(longest) < n)
        assert (enc.input_ids[i, n:] == pad_id).all() and not enc.token_type_ids[i, n:].any()


def test_encode_batch_equals_encoding_each_text(folder):
    tok = Tokenizer.from_pretrained(folder)
    enc = tok.encode_batch(TEXTS)
    assert tok.pad_token_id == raw(folder).token_to_id("[PAD]") == 3
    assert_matches_one_at_a_time(enc, [raw(folder, 512).encode(t) for t in TEXTS], tok.pad_token_id)
    assert enc["input_ids"] is enc.input_ids
    assert tok.token_to_id("[UNK]") in enc.input_ids[4]  # "#" is not in the vocabulary


def test_pairs_put_token_type_1_on_the_second_text(folder):
    tok = Tokenizer.from_pretrained(folder)
    enc = tok.encode_batch(TEXTS, PAIRS)
    reference = [raw(folder, 512).encode(t, p) for t, p in zip(TEXTS, PAIRS)]
    assert_matches_one_at_a_time(enc, reference, tok.pad_token_id)
    sep = tok.token_to_id("[SEP]")
    for i, e in enumerate(reference):  # type 1 runs from after the first [SEP] to the end of the sequence
        first_sep = e.ids.index(sep)
        np.testing.assert_array_equal(enc.token_type_ids[i, :len(e.ids)], np.arange(len(e.ids)) > first_sep)


@pytest.mark.parametrize("max_length", [2, 3, 5, 8])
def test_truncation_keeps_special_tokens_and_is_per_call(folder, max_length):
    tok = Tokenizer.from_pretrained(folder, max_length=max_length)
    enc = tok.encode_batch(TEXTS)
    assert_matches_one_at_a_time(enc, [raw(folder, max_length).encode(t) for t in TEXTS], tok.pad_token_id)
    lengths = enc.attention_mask.sum(axis=1)
    assert lengths.max() <= max_length
    last = enc.input_ids[np.arange(len(TEXTS)), lengths - 1]
    assert (enc.input_ids[:, 0] == tok.token_to_id("[CLS]")).all() and (last == tok.token_to_id("[SEP]")).all()
    if max_length >= 3:  # a pair has 3 special tokens; max_length 2 is test_pairs_with_max_length_2
        pairs = tok.encode_batch(TEXTS, PAIRS)
        assert pairs.attention_mask.sum(axis=1).max() <= max_length
    # A per-call max_length applies to that call only.
    longer = tok.encode_batch(TEXTS, max_length=64)
    assert_matches_one_at_a_time(longer, [raw(folder, 64).encode(t) for t in TEXTS], tok.pad_token_id)
    np.testing.assert_array_equal(tok.encode_batch(TEXTS).input_ids, enc.input_ids)


def test_pairs_shorter_than_their_special_tokens_are_refused(folder):
    # max_length=2 fits [CLS] [SEP] but a pair needs 3 special tokens, and `tokenizers` then did not truncate at all
    tok = Tokenizer.from_pretrained(folder, max_length=2)
    with pytest.raises(ValueError, match="max_length 2 is shorter than the 3 special tokens each text pair gets"):
        tok.encode_batch(TEXTS, PAIRS)
    assert tok.encode_batch(TEXTS).attention_mask.sum(axis=1).max() <= 2
    tok.max_length = 3
    assert tok.encode_batch(TEXTS, PAIRS).attention_mask.sum(axis=1).max() <= 3


def test_encode_packed_is_the_padded_batch_without_padding(folder):
    tok = Tokenizer.from_pretrained(folder, max_length=9)
    padded = tok.encode_batch(TEXTS)
    ids, types, lengths = tok.encode_packed(TEXTS)
    assert ids.dtype == types.dtype == lengths.dtype == np.int64
    real = padded.attention_mask.astype(bool)
    np.testing.assert_array_equal(lengths, real.sum(axis=1))
    np.testing.assert_array_equal(ids, padded.input_ids[real])
    np.testing.assert_array_equal(types, padded.token_type_ids[real])
    ids, types, lengths = tok.encode_packed(TEXTS, max_length=4)
    assert lengths.max() == 4 and len(ids) == len(types) == lengths.sum()


def test_empty_batch(folder):
    tok = Tokenizer.from_pretrained(folder)
    assert tok.encode_batch([]).input_ids.shape == (0, 0)
    ids, types, lengths = tok.encode_packed([])
    assert ids.shape == types.shape == lengths.shape == (0,)


@pytest.mark.parametrize("text", ["the cat sat on the mat.", "hello, world! it's not a dog?",
                                  "the fox's mat, isn't it? we're, i'm, you've."])
def test_decode_cleans_up_spaces_before_punctuation(folder, text):
    tok = Tokenizer.from_pretrained(folder)
    ids = tok.encode_batch([text]).input_ids[0]
    spaced = raw(folder).decode(ids.tolist())  # WordPiece puts a space before every punctuation mark
    assert spaced != text and spaced.replace(" ", "") == text.replace(" ", "")
    assert tok.decode(ids) == text  # the clean-up gives back the text for these
    assert Tokenizer(raw(folder), 512, clean_up_spaces=False).decode(ids) == spaced


def test_decode_skips_special_tokens_unless_asked(folder):
    tok = Tokenizer.from_pretrained(folder)
    ids = tok.encode_batch(["hello world"]).input_ids[0]
    assert tok.decode(ids) == "hello world"
    assert tok.decode(ids, skip_special_tokens=False) == "[CLS] hello world [SEP]"
    assert tok.decode(np.array([tok.token_to_id("hello")], np.int32)) == "hello"  # numpy ints are accepted


def test_lowercase_option_for_a_case_sensitive_tokenizer(tmp_path, folder):
    cased = build_wordpiece(tmp_path / "cased", lowercase=False)
    lowered = Tokenizer(raw(cased), 64, lowercase=True)
    as_is = Tokenizer(raw(cased), 64)
    mixed = ["The CAT sat", "Hello World"]
    expected = as_is.encode_batch([t.lower() for t in mixed])
    np.testing.assert_array_equal(lowered.encode_batch(mixed).input_ids, expected.input_ids)
    unk = as_is.token_to_id("[UNK]")
    assert (as_is.encode_batch(mixed).input_ids == unk).any() and not (expected.input_ids == unk).any()


def test_vocabulary_and_mask_token(folder):
    tok = Tokenizer.from_pretrained(folder)
    vocab = raw(folder).get_vocab()
    assert tok.vocab_size == len(vocab)
    for token, idx in vocab.items():
        assert tok.token_to_id(token) == idx and tok.id_to_token(np.int64(idx)) == token
    assert tok.token_to_id("zebra") is None
    assert (tok.mask_token, tok.mask_token_id) == ("[MASK]", vocab["[MASK]"])


def test_from_pretrained_reads_max_length_and_clean_up_from_tokenizer_config(tmp_path):
    folder = build_wordpiece(tmp_path)
    assert Tokenizer.from_pretrained(folder).max_length == 512  # no tokenizer_config.json
    config = folder / "tokenizer_config.json"
    config.write_text(json.dumps({"model_max_length": 6, "clean_up_tokenization_spaces": False}))
    tok = Tokenizer.from_pretrained(folder)
    assert tok.max_length == 6 and tok.encode_batch(TEXTS).input_ids.shape[1] == 6
    assert tok.decode(tok.encode_batch(["hello!"]).input_ids[0]) == "hello !"
    assert Tokenizer.from_pretrained(folder, max_length=20).max_length == 20
    config.write_text(json.dumps({"model_max_length": int(1e30)}))  # transformers' "no limit"
    assert Tokenizer.from_pretrained(folder).max_length == 512


def test_default_model_tokenizer_matches_its_tokenizer_json(default_model_folder):
    tok = Tokenizer.from_pretrained(default_model_folder)
    config = json.loads((default_model_folder / "tokenizer_config.json").read_text())
    assert tok.max_length == config["model_max_length"]
    texts = ["This framework generates embeddings.", "ÜNÏCÖDÉ and UPPER case", "A" * 3000]
    enc = tok.encode_batch(texts)
    assert_matches_one_at_a_time(enc, [raw(default_model_folder, tok.max_length).encode(t) for t in texts],
                                 tok.pad_token_id)
    assert tok.decode(enc.input_ids[0]) == "this framework generates embeddings."


# ---- errors ------------------------------------------------------------------------------------------------

def test_bad_texts(folder):
    tok = Tokenizer.from_pretrained(folder)
    with pytest.raises(TypeError, match="texts must be a list of strings; wrap a single string in a list"):
        tok.encode_batch("hello")
    with pytest.raises(TypeError, match="texts must be a list of strings"):
        tok.encode_packed("hello")
    with pytest.raises(TypeError, match="every text must be a str"):
        tok.encode_batch(["hello", 3])
    with pytest.raises(ValueError, match="got 2 texts but 1 text pairs"):
        tok.encode_batch(["a", "b"], ["c"])


@pytest.mark.parametrize("max_length", [1, 0, -5, 2.5, "8", None])
def test_bad_max_length(folder, max_length):
    with pytest.raises(ValueError, match=rf"max_length must be an int >= 2 \(room for \[CLS\] and \[SEP\]\), got "
                                         rf"{max_length!r}"):
        Tokenizer(raw(folder), max_length)


def test_missing_tokenizer_json_names_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=rf"no tokenizer.json in '{tmp_path}'; save one with "
                                                r"AutoTokenizer.from_pretrained\(name\).save_pretrained\(folder\)"):
        Tokenizer.from_pretrained(tmp_path)


# ---- long texts are cut before tokenizing, to a prefix that gives the same tokens (issue 16) ----------------------

def build_byte_level_bpe(folder: Path) -> Path:
    """A GPT-2-style byte-level BPE (its pre-tokenizer keeps whitespace runs, `\\s+(?!\\S)`), trained on WORDS."""
    from tokenizers import decoders, models, pre_tokenizers, trainers

    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([" ".join(WORDS)] * 20 + TEXTS, trainer)
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    return folder


def build_unigram(folder: Path) -> Path:
    """A SentencePiece-style Unigram with Metaspace pre-tokenization and an NFKC normalizer, with </s> after each text."""
    from tokenizers import models, normalizers, pre_tokenizers, processors, trainers

    tok = tokenizers.Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=120, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>")
    tok.train_from_iterator([" ".join(WORDS)] * 20 + TEXTS, trainer)
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B:1 </s>:1",
                                                       special_tokens=[("</s>", tok.token_to_id("</s>"))])
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    return folder


@pytest.fixture(scope="module")
def three_tokenizers(tmp_path_factory, folder):
    root = tmp_path_factory.mktemp("kinds")
    return {"wordpiece": folder, "byte_level_bpe": build_byte_level_bpe(root / "bpe"),
            "unigram": build_unigram(root / "unigram")}


# Pieces a long text is made of: words, runs of spaces and newlines, punctuation, characters the normalizers drop
# (NUL, control), accents NFKC / BertNormalizer fold, CJK (split per character), a word longer than WordPiece's 100
# characters (one [UNK]), a literal special token.
PIECES = WORDS + [" ", " ", "  ", "\n", "\t", "   \n  ", ".", ",", "?!", "\x00", "\x00" * 50, "\x07", "é", "ﬁ", "e\u0301",
                  "猫猫", "[MASK]", "<|endoftext|>", "x" * 150, "quick" * 30]


def _long_text(rng: np.random.Generator, n_pieces: int) -> str:
    return "".join(PIECES[i] + (" " if rng.random() < 0.6 else "") for i in rng.integers(0, len(PIECES), n_pieces))


@pytest.mark.parametrize("kind", ["wordpiece", "byte_level_bpe", "unigram"])
@pytest.mark.parametrize("max_length", [4, 9, 20])  # token budgets odd and even for each kind (specials: 3, 0, 2)
def test_long_texts_give_the_tokens_of_the_uncut_text(three_tokenizers, kind, max_length):
    folder = three_tokenizers[kind]
    rng = np.random.default_rng(max_length)
    texts = [_long_text(rng, n) for n in rng.integers(40, 900, 60)] + [" " * 5000 + "the cat", "\x00" * 3000 + "dog",
                                                                        "x" * 5000, "the " * 2000]
    tok = Tokenizer.from_pretrained(folder, max_length=max_length)
    budget = max_length - tok._tok.num_special_tokens_to_add(False)
    cut = sum(len(tok._cut_for_truncation(t, budget)[0]) < len(t) for t in texts)
    assert cut >= len(texts) // 2  # the cutting path really runs
    reference = raw(folder, max_length)
    assert_matches_one_at_a_time(tok.encode_batch(texts), [reference.encode(t) for t in texts], tok.pad_token_id)
    # Pairs against the library's untruncated pair encoding cut by longest_first's counts (_longest_first, itself
    # checked against the library's truncation in test_longest_first_counts_are_the_librarys): the library's own
    # truncation keeps every overflow window of both texts (their product: 190 s for these pairs at budget 2).
    longest = 40
    firsts = [_long_text(rng, n) for n in rng.integers(1, longest, 24)]
    seconds = [_long_text(rng, n) for n in rng.integers(1, longest, 24)]
    pair_budget = max_length - tok._tok.num_special_tokens_to_add(True)
    for a, b in zip(firsts, seconds):
        for pair in ((a, b), (b, a), (a, a)):
            assert_pair_matches(tok.encode_batch([pair[0]], [pair[1]]), raw(folder).encode(*pair), pair_budget)


def assert_pair_matches(enc, full, budget):
    """enc (one pair) against the library's untruncated encoding `full` cut as longest_first truncation cuts."""
    seq = np.array([-1 if s is None else s for s in full.sequence_ids])
    keep = _longest_first(int((seq == 0).sum()), int((seq == 1).sum()), budget)
    kept = (seq == -1) | ((seq == 0) & (np.cumsum(seq == 0) <= keep[0])) | ((seq == 1) & (np.cumsum(seq == 1) <= keep[1]))
    np.testing.assert_array_equal(enc.input_ids[0], np.array(full.ids)[kept])
    np.testing.assert_array_equal(enc.token_type_ids[0], np.array(full.type_ids)[kept])


def test_longest_first_counts_are_the_librarys():
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    tok = tokenizers.Tokenizer(WordLevel({"[UNK]": 0, "a": 1, "b": 2}, unk_token="[UNK]"))
    tok.pre_tokenizer = Whitespace()
    for budget in range(0, 12):
        tok.enable_truncation(budget) if budget else tok.no_truncation()
        for a in range(14):
            for b in range(14):
                if not budget:
                    assert _longest_first(a, b, 0) == (0, 0)
                    continue
                ids = tok.encode(" ".join("a" * a), " ".join("b" * b), add_special_tokens=False).ids
                assert _longest_first(a, b, budget) == (ids.count(1), ids.count(2)), (a, b, budget)


@pytest.mark.parametrize("kind", ["wordpiece", "byte_level_bpe", "unigram"])
def test_pairs_of_long_texts_with_a_small_budget_are_bounded(three_tokenizers, kind):
    """Issue 16 follow-up: an odd budget with both texts long tokenizes both whole (which is longer decides the
    odd token), and the library's truncation then built every window of one times every window of the other:
    2 x 3000 words at max_length 6 did not finish in minutes (CrossEncoder.predict reached it)."""
    folder = three_tokenizers[kind]
    tok = Tokenizer.from_pretrained(folder, max_length=6)
    first, second = "the cat sat. " * 1000, "a dog, " * 1500
    start = time.perf_counter()
    enc = tok.encode_batch([first, second], [second, first])
    assert time.perf_counter() - start < 20
    budget = 6 - tok._tok.num_special_tokens_to_add(True)
    assert_pair_matches(_row(enc, 0), raw(folder).encode(first, second), budget)
    assert_pair_matches(_row(enc, 1), raw(folder).encode(second, first), budget)


def _row(enc, i):
    from cpuformer.tokenizer import BatchEncoding

    n = int(enc.attention_mask[i].sum())
    return BatchEncoding(enc.input_ids[i:i + 1, :n], enc.attention_mask[i:i + 1, :n], enc.token_type_ids[i:i + 1, :n])


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(pieces=st.lists(st.sampled_from(PIECES + ["", "a", "b "]), min_size=0, max_size=400),
       max_length=st.integers(2, 12), kind=st.sampled_from(["wordpiece", "byte_level_bpe", "unigram"]))
def test_cutting_never_changes_the_tokens(three_tokenizers, pieces, max_length, kind):
    folder = three_tokenizers[kind]
    text = "".join(pieces)
    tok = _cached_tokenizer(folder, max_length)
    np.testing.assert_array_equal(tok.encode_packed([text])[0], raw(folder, max_length).encode(text).ids)


_TOKENIZERS: dict = {}


def _cached_tokenizer(folder: Path, max_length: int) -> Tokenizer:
    key = (folder, max_length)
    if key not in _TOKENIZERS:
        _TOKENIZERS[key] = Tokenizer.from_pretrained(folder, max_length=max_length)
    return _TOKENIZERS[key]


def test_a_long_text_costs_what_its_first_tokens_cost(default_model_folder):
    """10 MB of text truncated to 256 tokens: before, the whole text was tokenized (+1.48 GB, 10 s)."""
    code = f"""
from cpuformer.tokenizer import Tokenizer
tok = Tokenizer.from_pretrained({str(default_model_folder)!r}, max_length=256)
short = 'the quick brown fox jumps over the lazy dog ' * 50
tok.encode_packed([short])
before = peak_rss_mb()
ids = tok.encode_packed([short * 5000])[0]   # 11 MB
assert len(ids) == 256, len(ids)
print(peak_rss_mb() - before)
"""
    grown = float(run_measuring_peak_rss(code))
    assert grown < 100, f"peak RSS grew by {grown:.0f} MB tokenizing a 11 MB text"


def _no_boundary_texts(rng):
    """Texts past two _LONG_WORD_CHARS prefixes (4096 in these tests) whose long runs have no whitespace or
    punctuation to cut at."""
    n = 20_000
    cjk = "".join(map(chr, rng.integers(0x4E00, 0x9FA5, n)))
    return {
        "letters": "a" * n,
        "letters then words": "a" * n + " the cat sat on the mat. " * 20,
        "words then letters": "the cat sat " + "quick" * (n // 5),
        "two runs": "x" * n + " " + "y" * n + " dog " * 30,
        "cjk": cjk,
        "combining marks": "e\u0301" * (n // 2),
        "marks between runs": "e\u0301" * (n // 4) + " a" + "\u00e9" * (n // 2) + " hello world" * 20,
        "spaces": " " * n + "the cat",
        "digits": "7" * n,
    }


@pytest.mark.parametrize("kind", ["wordpiece", "byte_level_bpe", "unigram"])
@pytest.mark.parametrize("max_length", [9, 40])
def test_texts_without_word_boundaries_give_the_tokens_of_the_uncut_text(three_tokenizers, kind, max_length,
                                                                         monkeypatch):
    """Issue 16 item 5 in the Python API: a text with (almost) no word boundaries was tokenized whole; now it is
    cut too (WordPiece: an over-long word is one [UNK] and is shortened; others: the word's first tokens from two
    prefixes that agree) and the tokens are still those of the whole text, for single texts and pairs."""
    monkeypatch.setattr(tokenizer_module, "_LONG_WORD_CHARS", 4096)  # the same paths on 20K-character texts
    folder = three_tokenizers[kind]
    texts = _no_boundary_texts(np.random.default_rng(5))
    tok = Tokenizer.from_pretrained(folder, max_length=max_length)
    budget = max_length - tok._tok.num_special_tokens_to_add(False)
    full = raw(folder, max_length)
    for name, text in texts.items():
        cut = tok._cut_for_truncation(text, budget)[0]
        # really cut; not: spaces (no tokens at all), and runs of characters this toy Unigram does not know (CJK,
        # é, digits), whose fused <unk> is one token for the whole run (a limitation: still tokenized whole)
        head = full.encode(text[:200], add_special_tokens=False).ids  # "▁" then one fused <unk>
        fused_unk = kind == "unigram" and len(head) <= 2 and tok.unk_token_id in head
        uncut = name == "spaces" or fused_unk
        assert len(cut) < len(text) or uncut, (kind, name)
        assert_matches_one_at_a_time(tok.encode_batch([text]), [full.encode(text)], tok.pad_token_id)
    pair_budget = max_length - tok._tok.num_special_tokens_to_add(True)
    names = list(texts)
    for a, b in zip(names, names[1:] + names[:1]):
        for pair in ((texts[a], texts[b]), (texts[a][:50], texts[b])):
            assert_pair_matches(tok.encode_batch([pair[0]], [pair[1]]), raw(folder).encode(*pair), pair_budget)


@pytest.mark.parametrize("kind", ["default", "byte_level_bpe"])
def test_a_10_mb_text_without_spaces_costs_what_its_first_tokens_cost(default_model_folder, three_tokenizers, kind):
    """'a' * 10**7 truncated to 256 tokens: before, the whole text was tokenized (all-MiniLM-L6-v2: +1.3 GB, 3 s)."""
    folder = default_model_folder if kind == "default" else three_tokenizers[kind]
    code = f"""
import time
from cpuformer.tokenizer import Tokenizer
tok = Tokenizer.from_pretrained({str(folder)!r}, max_length=256)
tok.encode_packed(['a' * 1000])
before = peak_rss_mb()
start = time.perf_counter()
ids = tok.encode_packed(['a' * 10_000_000])[0]
print(peak_rss_mb() - before, time.perf_counter() - start)
"""
    grown, seconds = map(float, run_measuring_peak_rss(code).split())
    assert grown < 100, f"peak RSS grew by {grown:.0f} MB tokenizing a 10 MB text without spaces"


# ---- thread safety and errors --------------------------------------------------------------------------------

def test_threads_encoding_at_different_lengths_get_the_single_threaded_results(folder):
    """Before issue 16 every call reconfigured truncation on the one shared `tokenizers` object: threads raised
    "Already borrowed" or got another thread's truncation."""
    tok = Tokenizer.from_pretrained(folder)
    rng = np.random.default_rng(3)
    work = [([_long_text(rng, int(n)) for n in rng.integers(5, 60, 16)], length) for length in (5, 9, 17, 40)]
    expected = [tok.encode_packed(texts, max_length=length) for texts, length in work]

    def encode_many(texts, length):
        return [tok.encode_packed(texts, max_length=length) for _ in range(150)]

    for (want_ids, _, want_lengths), got in zip(expected, run_in_threads(encode_many, work)):
        for ids, _, lengths in got:
            np.testing.assert_array_equal(lengths, want_lengths)
            np.testing.assert_array_equal(ids, want_ids)


def test_a_copy_encodes_like_the_original(folder):
    import copy

    tok = Tokenizer.from_pretrained(folder, max_length=7)
    tok.encode_batch(TEXTS)
    twin = copy.deepcopy(tok)
    np.testing.assert_array_equal(twin.encode_batch(TEXTS).input_ids, tok.encode_batch(TEXTS).input_ids)


def test_text_that_is_not_unicode_is_a_value_error(folder):
    tok = Tokenizer.from_pretrained(folder)
    bad = b"hello \xff world".decode("utf-8", "surrogateescape")
    with pytest.raises(ValueError, match=r"text 1 is not valid Unicode \(character '\\udcff' at index 6"):
        tok.encode_batch(["fine", bad])


@pytest.mark.parametrize("content, message", [
    ('{"model": {"type": "WordPiece"}}', "is not a tokenizer.json the tokenizers library can read: missing field"),
    ("[" * 100000, "is not a tokenizer.json the tokenizers library can read"),
    ("not json", "is not a tokenizer.json the tokenizers library can read"),
])
def test_bad_tokenizer_json_is_a_value_error_naming_the_file(tmp_path, content, message):
    (tmp_path / "tokenizer.json").write_text(content)
    with pytest.raises(ValueError, match=f"{tmp_path / 'tokenizer.json'} {message}"):
        Tokenizer.from_pretrained(tmp_path)


def test_tokenizer_files_outside_the_folder_are_refused(tmp_path, folder):
    model = tmp_path / "model"
    model.mkdir()
    (model / "tokenizer.json").symlink_to(folder / "tokenizer.json")
    with pytest.raises(ValueError, match="tokenizer file 'tokenizer.json' leads outside the model folder"):
        Tokenizer.from_pretrained(model)
    (model / "tokenizer.json").unlink()
    (model / "tokenizer.json").write_bytes((folder / "tokenizer.json").read_bytes())
    (tmp_path / "elsewhere.json").write_text("{}")
    (model / "tokenizer_config.json").symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(ValueError, match="tokenizer file 'tokenizer_config.json' leads outside the model folder"):
        Tokenizer.from_pretrained(model)


def test_a_fifo_tokenizer_json_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "tokenizer.json")
    with pytest.raises(ValueError, match="tokenizer file .* is not a regular file"):
        Tokenizer.from_pretrained(tmp_path)
