"""BERT encoders from Hugging Face checkpoints: BertModel and its task heads (masked LM / fill_mask, sequence
classification, question answering, token classification).

Attribute and weight names mirror the checkpoint (embeddings.word_embeddings, encoder.layer.N.attention.self.query,
...). Every forward pass runs on the packed real tokens of the batch ([total_tokens, hidden], no padding), with
varlen attention over `cu_seqlens`; outputs are scattered back to [B, T, ...] at the end. RoBERTa and ELECTRA
keep BERT's layer names and build on BertModel (models/roberta.py, models/electra.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..array_pool import pooled
from ..io import WeightStore
from ..inputs import (check_attention_mask, check_id_range, check_input_ids, check_int_array, check_packed_ids,
                      check_packed_lengths)
from ..layers import (Embedding, LayerNorm, PackedBatch, SelfAttention, Workspace, fused_activation, pack_linear,
                      TiedEmbedding, take_fused_linear, take_linear)
from .base import PretrainedModel, config_positive_float, config_sizes
from .heads import (FirstTokenClassifier, MaskedLMModel, MaskedLMOutput, SequenceClassificationModel,
                    SequenceClassifierOutput)
from .question_answering import QuestionAnsweringModel
from .registry import register_model
from .token_classification import TokenClassificationModel

__all__ = [
    "BertConfig",
    "BertForMaskedLM",
    "BertForQuestionAnswering",
    "BertForSequenceClassification",
    "BertForTokenClassification",
    "BertModel",
    "BertOutput",
    "MaskedLMOutput",
    "SequenceClassifierOutput",
]


@dataclass(frozen=True)
class BertConfig:
    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    hidden_act: str
    max_position_embeddings: int
    type_vocab_size: int
    layer_norm_eps: float
    # for sequence classification: label names by class index, and how logits become scores
    id2label: dict[int, str] = field(default_factory=dict, compare=False, hash=False)
    problem_type: str | None = None
    # ELECTRA: embeddings narrower than the hidden size, projected up (None: embeddings are hidden_size wide)
    embedding_size: int | None = None
    pad_token_id: int = 0
    # RoBERTa: positions start at pad_token_id + 1, so that many position embeddings are never used by tokens
    position_offset: int = 0
    # DistilBERT: a fixed sinusoidal position table (computed when the checkpoint does not store it)
    sinusoidal_positions: bool = False

    @classmethod
    def from_dict(cls, config: dict[str, Any], family: str = "BERT", **extra: Any) -> "BertConfig":
        sizes = config_sizes(config, family, ["vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                                              "intermediate_size", "max_position_embeddings", "type_vocab_size"],
                             may_be_zero=["num_hidden_layers", "type_vocab_size"], divisible=("hidden_size", "num_attention_heads"))
        position_type = config.get("position_embedding_type", "absolute")
        if position_type != "absolute":
            raise ValueError(f"position_embedding_type {position_type!r} is not supported; only 'absolute'")
        hidden_act = config.get("hidden_act", "gelu")
        if not isinstance(hidden_act, str):
            raise ValueError(f"config hidden_act must be an activation name, got {hidden_act!r}")
        fused_activation(hidden_act)  # fails early with the list of supported names
        id2label = config.get("id2label") or {}
        if not isinstance(id2label, dict):
            raise ValueError(f"config id2label must be an object of index -> label, got {id2label!r}")
        try:
            labels = {int(k): str(v) for k, v in id2label.items()}
        except (ValueError, TypeError):
            raise ValueError(f"config id2label keys must be integers, got {list(id2label)!r}") from None
        pad = config.get("pad_token_id", 0)
        if pad is None:
            pad = 0
        if not isinstance(pad, int) or isinstance(pad, bool) or not 0 <= pad < sizes["vocab_size"]:
            raise ValueError(f"config pad_token_id must be an int in [0, vocab_size), got {pad!r}")
        return cls(**sizes, hidden_act=hidden_act,
                   layer_norm_eps=config_positive_float(config, "layer_norm_eps", 1e-12), id2label=labels,
                   problem_type=_problem_type(config), pad_token_id=pad, **extra)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def max_tokens(self) -> int:
        """The longest sequence the position embeddings cover (RoBERTa: minus its offset)."""
        return self.max_position_embeddings - self.position_offset

    @property
    def embedding_width(self) -> int:
        return self.embedding_size or self.hidden_size


_PROBLEM_TYPES = ("regression", "single_label_classification", "multi_label_classification")


def _problem_type(config: dict[str, Any]) -> str | None:
    value = config.get("problem_type")
    if value is not None and value not in _PROBLEM_TYPES:
        raise ValueError(f"config problem_type must be one of {', '.join(_PROBLEM_TYPES)} or null, got {value!r}")
    return value


@dataclass
class BertOutput:
    last_hidden_state: np.ndarray  # [B, T, hidden]; zeros at padding positions
    pooler_output: np.ndarray | None  # [B, hidden], or None when the checkpoint has no pooler


class BertPretrainedModel(PretrainedModel):
    """What every BERT class shares in loading: its config, weight names and tokenizer set-up."""

    config_class = BertConfig
    model_types = ("bert",)
    base_prefix = "bert."
    buffers = ("*position_ids",)  # checkpoints carry them; the model recomputes them

    @classmethod
    def tokenizer_options(cls, config: BertConfig) -> dict[str, Any]:
        return {"max_positions": config.max_tokens}


class BertEmbeddings:
    """word + absolute position (+ token type) embeddings, then layer norm. Width: config.embedding_width.
    type_vocab_size 0 (DistilBERT) means the checkpoint has no token type table."""

    def __init__(self, store: WeightStore, config: BertConfig, prefix: str = "embeddings",
                 position_table: np.ndarray | None = None):
        """position_table: used when the checkpoint stores none (DistilBERT's sinusoidal option)."""
        e = config.embedding_width
        self.word_embeddings = Embedding.from_store(store, f"{prefix}.word_embeddings.weight", config.vocab_size, e)
        self.position_embeddings = (Embedding(position_table) if position_table is not None else Embedding.from_store(
            store, f"{prefix}.position_embeddings.weight", config.max_position_embeddings, e))
        self.token_type_embeddings = (Embedding.from_store(
            store, f"{prefix}.token_type_embeddings.weight", config.type_vocab_size, e)
            if config.type_vocab_size else None)
        self.LayerNorm = LayerNorm.from_store(store, f"{prefix}.LayerNorm", e, config.layer_norm_eps)

    def __call__(self, ids: np.ndarray, token_types: np.ndarray, positions: np.ndarray) -> np.ndarray:
        x = self.word_embeddings(ids)
        x += self.position_embeddings.table[positions]
        if self.token_type_embeddings is not None:
            x += self.token_type_embeddings.table[token_types]
        return self.LayerNorm(x)


# Where each weight of a post-LN encoder layer sits in BERT's checkpoints (RoBERTa and ELECTRA use the same).
BERT_LAYER_NAMES = {
    "query": "attention.self.query", "key": "attention.self.key", "value": "attention.self.value",
    "attention_out": "attention.output.dense", "attention_norm": "attention.output.LayerNorm",
    "intermediate": "intermediate.dense", "output": "output.dense", "output_norm": "output.LayerNorm",
}


class BertLayer:
    """Post-LN block: LN(x + attn(x)), then LN(h + W2 act(W1 h)); residual adds fused into the GEMM stores.
    `names` maps each weight to its name under `prefix` (DistilBERT names them differently)."""

    def __init__(self, store: WeightStore, config: BertConfig, prefix: str, names: dict[str, str] = BERT_LAYER_NAMES,
                 input_norm: LayerNorm | None = None):
        """input_norm: the LayerNorm whose output is this layer's input (the previous layer's output_norm), when
        known: int8 weights of the QKV projection are smoothed by it (layers.smooth_factors), as the intermediate
        projection's are by attention_norm."""
        h, i = config.hidden_size, config.intermediate_size
        w = {role: f"{prefix}.{name}" for role, name in names.items()}
        qkv = take_fused_linear(store, [w["query"], w["key"], w["value"]], h, h, input_norm=input_norm)
        out = take_linear(store, w["attention_out"], h, h)
        self.attention = SelfAttention(qkv, out, config.num_attention_heads)
        self.attention_norm = LayerNorm.from_store(store, w["attention_norm"], h, config.layer_norm_eps)
        self.intermediate = take_linear(store, w["intermediate"], h, i, activation=fused_activation(config.hidden_act),
                                        input_norm=self.attention_norm)
        self.output = take_linear(store, w["output"], i, h)
        self.output_norm = LayerNorm.from_store(store, w["output_norm"], h, config.layer_norm_eps)

    def __call__(self, x: np.ndarray, batch: PackedBatch, ws: Workspace,
                 relative_bias: np.ndarray | None = None) -> np.ndarray:
        n = x.shape[0]
        h = self.attention_norm(self.attention(x, batch, residual=x, workspace=ws, relative_bias=relative_bias))
        inner = self.intermediate(h, out=ws.get("ffn", (n, self.intermediate.out_features)))
        return self.output_norm(self.output(inner, residual=h, out=ws.get("ffn_out", h.shape)))


@register_model("BertModel")
class BertModel(BertPretrainedModel):
    """The BERT encoder. `model(input_ids, attention_mask=None, token_type_ids=None)` -> BertOutput.

    `BertModel.from_pretrained(folder)` also loads the encoder of a task checkpoint (BertForMaskedLM,
    BertForQuestionAnswering, ...): its `bert.` prefix is stripped and the task head skipped, as transformers does."""

    is_base_model = True
    layer_prefix = "encoder.layer"
    layer_names = BERT_LAYER_NAMES

    def __init__(self, config: BertConfig, store: WeightStore, *, pooler: bool | None = None):
        """Takes every encoder weight from `store` (already prefix-stripped); pooler=None loads it if present."""
        self.config = config
        self.embeddings = self.build_embeddings(config, store)
        # Layer 0 reads the embeddings' LayerNorm output unless a subclass transforms it (ELECTRA's projection).
        norm = getattr(self.embeddings, "LayerNorm", None) if type(self).embed is BertModel.embed else None
        self.encoder_layers = []
        for n in range(config.num_hidden_layers):
            self.encoder_layers.append(BertLayer(store, config, f"{self.layer_prefix}.{n}", self.layer_names, norm))
            norm = self.encoder_layers[-1].output_norm
        if pooler is None:
            pooler = store.has("pooler.dense.weight")
        self.pooler = take_linear(store, "pooler.dense", config.hidden_size, config.hidden_size) if pooler else None

    def build_embeddings(self, config: BertConfig, store: WeightStore) -> BertEmbeddings:
        return BertEmbeddings(store, config)

    # --- inputs -------------------------------------------------------------------------------------------
    def prepare_inputs(self, input_ids, attention_mask=None, token_type_ids=None):
        """Validate the padded inputs and lay the real tokens out packed: (PackedBatch, ids, token types)."""
        cfg = self.config
        ids = check_input_ids(input_ids)
        t = ids.shape[1]
        if t > cfg.max_tokens:
            offset = (f" minus the {cfg.position_offset} positions reserved below the first token"
                      if cfg.position_offset else "")
            raise ValueError(
                f"sequence length {t} exceeds max_position_embeddings={cfg.max_position_embeddings}{offset}; "
                "truncate the input (the tokenizer does this with max_length)"
            )
        mask = check_attention_mask(attention_mask, ids.shape)
        types = (np.zeros(ids.shape, np.int64) if token_type_ids is None
                 else check_int_array(token_type_ids, "token_type_ids", ids.shape))
        batch = PackedBatch.from_mask(mask)
        flat_ids, flat_types = batch.gather(ids), batch.gather(types)
        check_id_range(flat_ids, cfg.vocab_size, "input_ids", f"vocab_size={cfg.vocab_size}")
        if cfg.type_vocab_size:
            check_id_range(flat_types, cfg.type_vocab_size, "token_type_ids",
                           f"type_vocab_size={cfg.type_vocab_size}")
        # else: no token type table (DistilBERT); tokenizers still mark the second text of a pair, ignored
        return batch, flat_ids, flat_types

    # --- forward ------------------------------------------------------------------------------------------
    @pooled
    def forward_packed(self, ids: np.ndarray, token_types: np.ndarray, batch: PackedBatch) -> np.ndarray:
        """Packed ids / token types [total_tokens] -> hidden states [total_tokens, hidden]. Positions are the
        tokens' columns in the padded batch (batch.cols), as in transformers. Ids, token types and sequence lengths
        are checked against the model's tables (ValueError), as the padded entry point checks them."""
        cfg = self.config
        check_packed_lengths(batch.cu_seqlens, cfg.max_tokens, f"the model's {cfg.max_tokens} positions")
        ids = check_packed_ids(ids, "input_ids", batch.total_tokens, cfg.vocab_size, f"vocab_size={cfg.vocab_size}")
        if cfg.type_vocab_size:
            token_types = check_packed_ids(token_types, "token_type_ids", batch.total_tokens, cfg.type_vocab_size,
                                           f"type_vocab_size={cfg.type_vocab_size}")
        x = self.embed(ids, token_types, batch)
        ws = Workspace()
        bias = self.relative_bias(batch)
        for layer in self.encoder_layers:
            x = layer(x, batch, ws, bias)
        return x

    def relative_bias(self, batch: PackedBatch) -> np.ndarray | None:
        """The attention bias by relative position shared by every layer (MPNet), or None (BERT)."""
        return None

    def positions(self, ids: np.ndarray, batch: PackedBatch) -> np.ndarray:
        """Position ids of the packed tokens: their columns in the padded batch (BERT)."""
        return batch.cols

    def embed(self, ids: np.ndarray, token_types: np.ndarray, batch: PackedBatch) -> np.ndarray:
        """The embedding layer's output [total_tokens, hidden] (ELECTRA adds its projection)."""
        return self.embeddings(ids, token_types, self.positions(ids, batch))

    def pool(self, hidden: np.ndarray, batch: PackedBatch) -> np.ndarray | None:
        """tanh(dense(first token)) per sequence, or None without a pooler."""
        if self.pooler is None:
            return None
        return np.tanh(self.pooler(np.ascontiguousarray(batch.first_tokens(hidden))))

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None) -> BertOutput:
        batch, ids, types = self.prepare_inputs(input_ids, attention_mask, token_type_ids)
        hidden = self.forward_packed(ids, types, batch)
        return BertOutput(batch.scatter(hidden), self.pool(hidden, batch))




class BertTaskModel(BertPretrainedModel):
    """Where BERT's task heads find their encoder (`self.bert`, weights under "bert.")."""

    encoder_attr = "bert"
    base_model_class = BertModel


@register_model("BertForMaskedLM", "BertForPreTraining")
class BertForMaskedLM(BertTaskModel, MaskedLMModel):
    """BERT + MLM head: transform (dense, act, LN) then a decoder tied to the word embeddings, plus a bias."""

    unused_heads = {"BertForPreTraining": ("cls.seq_relationship.*",)}  # next-sentence head: not masked LM

    def __init__(self, config: BertConfig, store: WeightStore):
        h, v = config.hidden_size, config.vocab_size
        self.build_encoder(config, store)
        self.transform = take_linear(store, "cls.predictions.transform.dense", h, h,
                                     activation=fused_activation(config.hidden_act))
        self.transform_norm = LayerNorm.from_store(store, "cls.predictions.transform.LayerNorm", h,
                                                   config.layer_norm_eps)
        # Tied checkpoints store the decoder weight only as the word embeddings (and its bias once).
        tied = not store.has("cls.predictions.decoder.weight")
        decoder_weight = (self.bert.embeddings.word_embeddings.table if tied
                          else store.take("cls.predictions.decoder.weight", (v, h), packed=True))
        names = [n for n in ("cls.predictions.bias", "cls.predictions.decoder.bias") if store.has(n)]
        bias = [store.take(n, (v,), packed=True) for n in names or ["cls.predictions.bias"]][-1]  # missing -> named error
        self.decoder = pack_linear(store, decoder_weight, bias)
        if tied:  # one copy of the matrix: the word embeddings now read their rows from the packed decoder
            self.bert.embeddings.word_embeddings = TiedEmbedding(self.decoder)

    def head(self, hidden: np.ndarray) -> np.ndarray:
        """[n, hidden] -> vocabulary logits [n, vocab]."""
        return self.decoder(self.transform_norm(self.transform(hidden)))


@register_model("BertForSequenceClassification")
class BertForSequenceClassification(BertTaskModel, SequenceClassificationModel):
    """BERT + pooler + classifier: logits = classifier(pooler_output); `predict(texts)` names the labels."""

    def build_encoder(self, config: BertConfig, store: WeightStore, **options: Any):
        return super().build_encoder(config, store, pooler=False)  # the pooler is the head's dense layer

    def build_head(self, config: BertConfig, store: WeightStore) -> FirstTokenClassifier:
        return FirstTokenClassifier.from_store(store, "pooler.dense", "classifier", config.hidden_size, "tanh")

    @property
    def classifier(self):
        return self.classifier_head.out


@register_model("BertForQuestionAnswering")
class BertForQuestionAnswering(BertTaskModel, QuestionAnsweringModel):
    """BERT + qa_outputs (start / end logits per token); `answer(question, context)`."""


@register_model("BertForTokenClassification")
class BertForTokenClassification(BertTaskModel, TokenClassificationModel):
    """BERT + classifier per token; `predict(text, aggregation=...)` gives entities with character offsets."""
