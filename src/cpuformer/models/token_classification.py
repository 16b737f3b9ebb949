"""Token classification (NER, POS) on any encoder: `...ForTokenClassification.predict(text, aggregation=...)`.

The head is one linear `classifier` [num_labels, hidden] per token. `predict` follows transformers'
token-classification pipeline: softmax per token, special tokens dropped, then
- "none": one entity per token {"entity", "score", "index", "word", "start", "end"};
- "simple": adjacent tokens of the same tag (B-X then I-X ...) grouped into {"entity_group", "score" (mean),
  "word", "start", "end"};
- "first" / "max" / "average": tokens first merged into words (a WordPiece "##" token continues its word; for
  tokenizers without such a marker, a token not preceded by a space does), each word labelled by its first
  token / its most confident token / its mean scores, then grouped as "simple" does.
Entities labelled "O" (ignore_labels) are left out. start / end are character offsets into the text.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..io import WeightStore
from ..layers import take_linear
from .heads import EncoderTaskModel, label_names, softmax

__all__ = ["AGGREGATIONS", "TokenClassificationModel", "TokenClassifierOutput"]

AGGREGATIONS = ("none", "simple", "first", "max", "average")


@dataclass
class TokenClassifierOutput:
    logits: np.ndarray  # [B, T, num_labels]; zeros at padding positions
    last_hidden_state: np.ndarray


class TokenClassificationModel(EncoderTaskModel):
    """Encoder + per-token classifier. `model(ids, mask, types).logits`; `predict(text, aggregation)`."""

    def __init__(self, config: Any, store: WeightStore):
        self.build_encoder(config, store)
        h = config.hidden_size
        num_labels = store.take("classifier.weight", (None, h), packed=True).shape[0]
        self.classifier = take_linear(store, "classifier", h, num_labels)
        self.id2label = label_names(config, num_labels)

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None) -> TokenClassifierOutput:
        batch, _, hidden = self.encode(input_ids, attention_mask, token_type_ids)
        return TokenClassifierOutput(batch.scatter(self.classifier(hidden)), batch.scatter(hidden))

    def predict(self, text: str | Sequence[str], aggregation: str = "none",
                ignore_labels: Sequence[str] = ("O",)):
        """Entities of `text` (a list of dicts; a list of texts gives one list per text). See the module doc
        for what each aggregation returns."""
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {', '.join(AGGREGATIONS)}; got {aggregation!r}")
        tok = self.require_tokenizer()
        texts = self.text_list(text, "predict")
        encodings = tok.encode_with_offsets(texts, return_overflowing=False)  # the first window only
        longest = max(len(e.ids) for e in encodings)
        ids = np.full((len(texts), longest), tok.pad_token_id, np.int64)
        mask, types = np.zeros_like(ids), np.zeros_like(ids)
        for i, e in enumerate(encodings):
            ids[i, :len(e.ids)], types[i, :len(e.ids)], mask[i, :len(e.ids)] = e.ids, e.type_ids, 1
        logits = self(ids, mask, types).logits
        results = []
        for i, (sentence, e) in enumerate(zip(texts, encodings)):
            scores = softmax(logits[i, :len(e.ids)].astype(np.float64))
            tokens = self._tokens(sentence, e, scores, tok)
            if aggregation in ("none", "simple"):
                entities = [self._labelled(t, t["scores"]) for t in tokens]
            else:
                entities = [self._word(group, aggregation, tok) for group in _words(tokens)]
            if aggregation != "none":
                entities = _group(entities, tok)
            ignored = set(ignore_labels)
            results.append([x for x in entities if x.get("entity", x.get("entity_group")) not in ignored])
        return results[0] if isinstance(text, str) else results

    # --- the pipeline's steps -----------------------------------------------------------------------------
    @staticmethod
    def _tokens(sentence: str, encoding, scores: np.ndarray, tok) -> list[dict]:
        """Every non-special token with its scores, text, offsets and whether it continues the previous word."""
        word_aware = tok.continuing_subword_prefix is not None
        tokens = []
        for idx, (token_id, special) in enumerate(zip(encoding.ids, encoding.special_tokens_mask)):
            if special:
                continue
            start, end = encoding.offsets[idx]
            word, word_ref = encoding.tokens[idx], sentence[start:end]
            if word_aware:  # "##ing" is longer than the "ing" it covers
                is_subword = len(word) != len(word_ref)
            else:
                is_subword = start > 0 and " " not in sentence[start - 1:start + 1]
            if token_id == tok.unk_token_id:
                word, is_subword = word_ref, False
            tokens.append({"word": word, "scores": scores[idx], "start": start, "end": end, "index": idx,
                           "is_subword": is_subword})
        return tokens

    def _labelled(self, token: dict, scores: np.ndarray) -> dict:
        best = int(scores.argmax())
        return {"entity": self.id2label[best], "score": float(scores[best]), "index": token["index"],
                "word": token["word"], "start": token["start"], "end": token["end"]}

    def _word(self, group: list[dict], aggregation: str, tok) -> dict:
        if aggregation == "first":
            scores = group[0]["scores"]
        elif aggregation == "max":
            scores = max(group, key=lambda t: t["scores"].max())["scores"]
        else:
            scores = np.nanmean(np.stack([t["scores"] for t in group]), axis=0)
        best = int(scores.argmax())
        return {"entity": self.id2label[best], "score": float(scores[best]),
                "word": tok.tokens_to_string([t["word"] for t in group]),
                "start": group[0]["start"], "end": group[-1]["end"]}


def _words(tokens: list[dict]) -> list[list[dict]]:
    groups: list[list[dict]] = []
    for t in tokens:
        if groups and t["is_subword"]:
            groups[-1].append(t)
        else:
            groups.append([t])
    return groups


def _tag(label: str) -> tuple[str, str]:
    """("B" | "I", tag) of a B-X / I-X label; any other label continues as "I"."""
    if label.startswith("B-") or label.startswith("I-"):
        return label[0], label[2:]
    return "I", label


def _group(entities: list[dict], tok) -> list[dict]:
    """Adjacent entities of one tag (not starting a new B-) merged into entity groups."""
    runs: list[list[dict]] = []
    for entity in entities:
        bi, tag = _tag(entity["entity"])
        if runs and tag == _tag(runs[-1][-1]["entity"])[1] and bi != "B":
            runs[-1].append(entity)
        else:
            runs.append([entity])
    return [{"entity_group": run[0]["entity"].split("-", 1)[-1],
             "score": float(np.mean([e["score"] for e in run])),
             "word": tok.tokens_to_string([e["word"] for e in run]),
             "start": run[0]["start"], "end": run[-1]["end"]} for run in runs]
