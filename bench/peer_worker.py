"""Runs one peer engine (ONNX Runtime or CTranslate2) in a process of its own: `python peer_worker.py CMD ARGS_JSON`.

Never imported by the bench process: ORT, CTranslate2 and torch each bring an OpenMP/thread runtime, so a peer is
converted and timed here and its result printed as one line `PEER_RESULT {json}` (bench/peers.py parses it).
Commands: convert_bert_onnx, convert_bert_ct2, convert_gpt2_onnx, convert_gpt2_ct2, convert_bart_ct2, time_bert,
time_gpt2, time_bart.
Timed calls take the same inputs as ours (token ids, not text) and the thread count given in the arguments.
"""
from __future__ import annotations

import json
import os
import sys
import time

import numpy as np


def _emit(result) -> None:
    print("PEER_RESULT " + json.dumps(result), flush=True)


def _timed_rounds(fn, rounds: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


# ---------------------------------------------------------------- conversions (torch is only imported here)
def _onnx_export(module, args, path, input_names, output_names, dynamic_axes):
    import torch

    with torch.no_grad():
        torch.onnx.export(module, args, path, input_names=input_names, output_names=output_names,
                          dynamic_axes=dynamic_axes, opset_version=17, dynamo=False)


def _ort_optimize_and_quantize(exported, out, prefix, model_type, num_heads, hidden_size) -> dict:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers import optimizer

    opt = optimizer.optimize_model(exported, model_type=model_type, num_heads=num_heads, hidden_size=hidden_size,
                                   opt_level=1)  # fusions only; ORT applies its own level at session creation
    opt_path = os.path.join(out, f"{prefix}_opt.onnx")
    opt.save_model_to_file(opt_path)
    int8_path = os.path.join(out, f"{prefix}_int8.onnx")
    quantize_dynamic(opt_path, int8_path, per_channel=True, weight_type=QuantType.QInt8,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    ops = {}
    for node in onnx.load(opt_path).graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    return {"fp32": opt_path, "int8": int8_path,
            "fused": {k: v for k, v in ops.items() if k in ("Attention", "MultiHeadAttention", "SkipLayerNormalization",
                                                               "EmbedLayerNormalization", "FastGelu", "BiasGelu",
                                                               "Gelu", "LayerNormalization")}}


def convert_bert_onnx(model: str, out: str) -> dict:
    """Any encoder folder (BERT, RoBERTa, MPNet, ...) loaded with AutoModel; token_type_ids is an input only for
    architectures that take it. The optimizer's "bert" fusions apply to BERT's relatives with its layout."""
    import inspect

    import torch
    import transformers

    bert = transformers.AutoModel.from_pretrained(model, attn_implementation="eager").eval()
    with_types = "token_type_ids" in inspect.signature(bert.forward).parameters

    class LastHidden(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            extra = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
            return self.m(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state

    ids = torch.ones((2, 16), dtype=torch.int64) * 5
    exported = os.path.join(out, "bert_exported.onnx")
    axes = {0: "batch", 1: "seq"}
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if with_types else [])
    args = (ids, torch.ones_like(ids)) + ((torch.zeros_like(ids),) if with_types else ())
    _onnx_export(LastHidden(bert), args, exported, names, ["last_hidden_state"],
                 {**{n: axes for n in names}, "last_hidden_state": axes})
    c = bert.config
    return _ort_optimize_and_quantize(exported, out, "bert", "bert", c.num_attention_heads, c.hidden_size)


class _Ct2Converter:
    """TransformersConverter that converts the checkpoint as transformers 5 loads it: BERT configs no longer carry
    position_embedding_type (the CT2 4.8 loader asserts "absolute"), and the random GPT-2 has no tokenizer files
    (a stand-in vocabulary of 50257 names is enough: we feed token ids)."""

    @staticmethod
    def make(model: str):
        import ctranslate2

        class Converter(ctranslate2.converters.TransformersConverter):
            def load_model(self, model_class, model_name_or_path, **kwargs):
                loaded = model_class.from_pretrained(model_name_or_path, **kwargs)
                if not getattr(loaded.config, "position_embedding_type", None):
                    loaded.config.position_embedding_type = "absolute"
                return loaded

            def load_tokenizer(self, tokenizer_class, model_name_or_path, **kwargs):
                if os.path.exists(os.path.join(model_name_or_path, "tokenizer_config.json")):
                    return tokenizer_class.from_pretrained(model_name_or_path, **kwargs)
                return _IdVocabulary(json.load(open(os.path.join(model_name_or_path, "config.json")))["vocab_size"])

        return Converter(model)


class _IdVocabulary:
    def __init__(self, n: int):
        self.tokens = [f"<{i}>" for i in range(n - 1)] + ["<|endoftext|>"]
        self.bos_token = self.eos_token = self.unk_token = "<|endoftext|>"

    def get_vocab(self):
        return {t: i for i, t in enumerate(self.tokens)}


def convert_bert_ct2(model: str, out: str) -> dict:
    path = os.path.join(out, "bert_ct2")
    _Ct2Converter.make(model).convert(path, force=True)  # fp32; int8 is chosen at load (compute_type)
    return {"path": path}


def convert_gpt2_onnx(model: str, out: str) -> dict:
    """One graph for prefill and decode: (input_ids [B, T], attention_mask [B, P+T], position_ids [B, T],
    past_key_i / past_value_i [B, heads, P, head_dim] per layer) -> (logits of the last position [B, V],
    present_key_i / present_value_i [B, heads, P+T, head_dim]); P = 0 for the prefill."""
    import torch
    import transformers

    gpt2 = transformers.GPT2LMHeadModel.from_pretrained(model, attn_implementation="eager").eval()
    c = gpt2.config
    layers, heads, head_dim = c.n_layer, c.n_head, c.n_embd // c.n_head

    class WithPast(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, position_ids, *past):
            cache = transformers.DynamicCache()
            for i in range(layers):
                cache.update(past[2 * i], past[2 * i + 1], i)
            o = self.m(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                       past_key_values=cache, use_cache=True)
            presents = []
            for layer in o.past_key_values.layers:
                presents += [layer.keys, layer.values]
            return (o.logits[:, -1, :], *presents)

    past_names = [f"past_{kind}_{i}" for i in range(layers) for kind in ("key", "value")]
    present_names = [f"present_{kind}_{i}" for i in range(layers) for kind in ("key", "value")]
    b, t, p = 2, 3, 4
    example = (torch.ones((b, t), dtype=torch.int64), torch.ones((b, p + t), dtype=torch.int64),
               torch.arange(p, p + t).repeat(b, 1), *[torch.zeros((b, heads, p, head_dim))] * (2 * layers))
    axes = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "total"},
            "position_ids": {0: "batch", 1: "seq"}, "logits": {0: "batch"},
            **{n: {0: "batch", 2: "past"} for n in past_names}, **{n: {0: "batch", 2: "total"} for n in present_names}}
    exported = os.path.join(out, "gpt2_exported.onnx")
    _onnx_export(WithPast(gpt2), example, exported, ["input_ids", "attention_mask", "position_ids", *past_names],
                 ["logits", *present_names], axes)
    result = _ort_optimize_and_quantize(exported, out, "gpt2", "gpt2", heads, c.n_embd)
    result.update(layers=layers, heads=heads, head_dim=head_dim)
    return result


def convert_gpt2_ct2(model: str, out: str) -> dict:
    path = os.path.join(out, "gpt2_ct2")
    _Ct2Converter.make(model).convert(path, force=True)
    return {"path": path}


class _BartVocabulary:
    """A stand-in tokenizer for the random BART (no tokenizer files): fairseq's special tokens at ids 0-3 and a
    name per other id; CTranslate2 needs names, we feed ids."""

    def __init__(self, n: int):
        self.tokens = ["<s>", "<pad>", "</s>", "<unk>"] + [f"<{i}>" for i in range(4, n)]
        self.bos_token, self.eos_token, self.unk_token = "<s>", "</s>", "<unk>"

    def get_vocab(self):
        return {t: i for i, t in enumerate(self.tokens)}

    def convert_ids_to_tokens(self, i):
        return self.tokens[i]


def convert_bart_ct2(model: str, out: str) -> dict:
    import ctranslate2

    class Converter(ctranslate2.converters.TransformersConverter):
        def load_model(self, model_class, model_name_or_path, **kwargs):
            loaded = model_class.from_pretrained(model_name_or_path, **kwargs)
            if not hasattr(loaded.config, "normalize_before"):  # transformers 5 dropped it; BART is post-LN
                loaded.config.normalize_before = False
            return loaded

        def load_tokenizer(self, tokenizer_class, model_name_or_path, **kwargs):
            return _BartVocabulary(json.load(open(os.path.join(model_name_or_path, "config.json")))["vocab_size"])

    path = os.path.join(out, "bart_ct2")
    Converter(model).convert(path, force=True)  # fp32; int8 is chosen at load (compute_type)
    return {"path": path}


# ---------------------------------------------------------------- timing (no torch in these processes)
def time_bart(peer: str, dtype: str, model: str, inputs: str, new_tokens: int, threads: int, rounds: int = 3) -> dict:
    """inputs: npz with ids_b1, mask_b1, ids_b8, mask_b8 (right-padded sources, eos last). CTranslate2's Translator:
    greedy decoding of exactly new_tokens from the decoder start token (</s>), the generated ids for the parity
    check. (No ORT row: exporting BART's encoder + decoder-with-past is not written.)"""
    import ctranslate2

    data = np.load(inputs)
    tr = ctranslate2.Translator(model, device="cpu", compute_type="int8" if dtype == "int8" else "float32",
                                intra_threads=threads, inter_threads=1)
    names = _BartVocabulary(int(data["vocab_size"])).tokens
    result = {}
    for b in (1, 8):
        ids, mask = data[f"ids_b{b}"], data[f"mask_b{b}"]
        source = [[names[i] for i in row[: int(m.sum())]] for row, m in zip(ids, mask)]

        def run():
            return tr.translate_batch(source, beam_size=1, max_decoding_length=new_tokens,
                                      min_decoding_length=new_tokens, return_scores=False)

        out = run()
        result[f"generate_b{b}"] = {"times": _timed_rounds(run, rounds, 0),
                                    "ids": [[names.index(t) if not t.startswith("<") or t in names[:4]
                                             else int(t[1:-1]) for t in r.hypotheses[0]] for r in out]}
    return result

def _ort_session(path: str, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def time_bert(peer: str, dtype: str, model: str, inputs: str, cases: dict, threads: int) -> dict:
    """cases: {name: rounds}; inputs: npz with ids_<name>, mask_<name> (padded [B, T]). Returns per-case times and
    the mean-pooled embeddings of each case (for the accuracy check against our fp32)."""
    data = np.load(inputs)
    result = {}
    if peer == "ort":
        sess = _ort_session(model, threads)
    else:
        import ctranslate2

        enc = ctranslate2.Encoder(model, device="cpu", compute_type="int8" if dtype == "int8" else "float32",
                                  intra_threads=threads, inter_threads=1)
    for name, rounds in cases.items():
        ids, mask = data[f"ids_{name}"], data[f"mask_{name}"]
        m = mask[..., None].astype(np.float32)
        if peer == "ort":
            feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            feed = {i.name: feed[i.name] for i in sess.get_inputs()}  # RoBERTa / MPNet exports take no types

            def encode():
                hidden = sess.run(None, feed)[0]
                return (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        else:
            lists = [row[: n].tolist() for row, n in zip(ids, mask.sum(1))]

            def encode():
                hidden = np.array(enc.forward_batch(lists).last_hidden_state)
                return (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)

        emb = encode()
        result[name] = {"times": _timed_rounds(encode, rounds, 1), "embeddings": emb.tolist()}
    return result


def time_gpt2(peer: str, dtype: str, model: str, inputs: str, rounds: int, new_tokens: int, threads: int) -> dict:
    """inputs: npz with prompt_b1, prompt_b8. Both peers: prefill (generate one token) and greedy generate of exactly
    new_tokens at b1 and b8, with the generated ids for the parity check (ORT: its past key/values fed back)."""
    data = np.load(inputs)
    result = {}
    if peer == "ort":
        sess = _ort_session(model, threads)
        result["prefill"] = {"times": _timed_rounds(_ort_greedy(sess, data["prompt_b1"], 1), rounds, 1)}
        for b in (1, 8):
            run = _ort_greedy(sess, data[f"prompt_b{b}"], new_tokens)
            result[f"generate_b{b}"] = {"times": _timed_rounds(run, 3, 1), "ids": run().tolist()}
        return result
    import ctranslate2

    gen = ctranslate2.Generator(model, device="cpu", compute_type="int8" if dtype == "int8" else "float32",
                                intra_threads=threads, inter_threads=1)
    names = _IdVocabulary(gen.num_vocabulary if hasattr(gen, "num_vocabulary") else 50257).tokens

    def runner(prompt, n):
        tokens = [[names[i] for i in row] for row in prompt]
        return lambda: gen.generate_batch(tokens, max_length=n, min_length=n, sampling_topk=1, beam_size=1,
                                          include_prompt_in_result=False, end_token=[])

    result["prefill"] = {"times": _timed_rounds(runner(data["prompt_b1"], 1), rounds, 1)}
    for b in (1, 8):
        run = runner(data[f"prompt_b{b}"], new_tokens)
        out = run()
        result[f"generate_b{b}"] = {"times": _timed_rounds(run, 3, 0),
                                    "ids": [r.sequences_ids[0] for r in out]}
    return result


def _ort_greedy(sess, prompt, n: int):
    """Greedy decoding of exactly n tokens with ORT's past key/values fed back each step -> fn() -> ids [B, n]."""
    names = [i.name for i in sess.get_inputs()]
    past_names = [x for x in names if x.startswith("past_")]
    shape = sess.get_inputs()[names.index(past_names[0])].shape  # [batch, heads, past, head_dim]
    heads, head_dim = int(shape[1]), int(shape[3])
    batch, length = prompt.shape

    def run():
        feed = {"input_ids": prompt, "attention_mask": np.ones((batch, length), np.int64),
                "position_ids": np.tile(np.arange(length, dtype=np.int64), (batch, 1)),
                **{x: np.zeros((batch, heads, 0, head_dim), np.float32) for x in past_names}}
        tokens = []
        for _ in range(n):
            logits, *present = sess.run(None, feed)
            nxt = logits.argmax(-1).astype(np.int64)
            tokens.append(nxt)
            total = feed["attention_mask"].shape[1] + 1
            feed = {"input_ids": nxt[:, None], "attention_mask": np.ones((batch, total), np.int64),
                    "position_ids": np.full((batch, 1), total - 1, np.int64), **dict(zip(past_names, present))}
        return np.stack(tokens, axis=1)

    return run


COMMANDS = {f.__name__: f for f in (convert_bert_onnx, convert_bert_ct2, convert_gpt2_onnx, convert_gpt2_ct2,
                                    convert_bart_ct2, time_bert, time_gpt2, time_bart)}

if __name__ == "__main__":
    _emit(COMMANDS[sys.argv[1]](**json.loads(sys.argv[2])))
