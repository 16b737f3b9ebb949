"""What the completion endpoint needs from a decoder model: prompts as token ids, the OpenAI options mapped onto a
GenerationConfig (validated as `generate` validates them), and the continuous-batching engine. HTTP-free."""
from __future__ import annotations

import asyncio
import copy
import threading
from typing import Any, Sequence

import numpy as np

from ..continuous_decoding import ContinuousDecoder
from ..generation import GenerationConfig
from .generation_engine import GenerationEngine
from .metrics import Metrics
from .options import ServeOptions

__all__ = ["CompletionService", "PromptTooLong"]

_NO_LIMIT = 2**31 - 1


class PromptTooLong(ValueError):
    pass


class CompletionService:
    kind = "completions"

    def __init__(self, model, name: str, options: ServeOptions, metrics: Metrics):
        if model.tokenizer is None:
            raise ValueError("the model folder has no tokenizer.json; `cpuformer serve` needs one to return text")
        self.model, self.name = model, name
        self.metrics = metrics
        self.tokenizer = model.tokenizer  # decodes, on the engine thread only
        # Prompts are encoded with a copy under a lock: `tokenizers` objects refuse being reconfigured (Tokenizer
        # sets its truncation per call) while another thread is inside them ("Already borrowed").
        self._prompt_tokenizer = copy.deepcopy(model.tokenizer)
        self._prompt_lock = threading.Lock()
        self.max_positions = model.max_positions
        self.decoder = ContinuousDecoder(model, options.max_sequences)
        self.engine = GenerationEngine(self.decoder, self.tokenizer, max_queue=options.max_queue, metrics=metrics)

    def start(self) -> None:
        self.engine.start()

    def stop(self) -> None:
        self.engine.stop()

    def _encode(self, texts: Sequence[str]) -> list[np.ndarray]:
        with self._prompt_lock:
            return self._encode_locked(texts)

    def _encode_locked(self, texts: Sequence[str]) -> list[np.ndarray]:
        ids, _, lengths = self._prompt_tokenizer.encode_packed(list(texts), max_length=_NO_LIMIT)
        starts = np.concatenate([[0], np.cumsum(lengths)])
        return [ids[starts[i]:starts[i + 1]] for i in range(len(texts))]

    async def prompts(self, prompt: Any) -> list[np.ndarray]:
        """The token ids of each prompt: a string, a list of strings, a list of ids or a list of id lists."""
        if isinstance(prompt, str):
            prompt = [prompt]
        if not prompt:
            raise ValueError("prompt must not be empty")
        if isinstance(prompt[0], int):
            prompt = [prompt]
        if isinstance(prompt[0], str):
            # Inline only when small and the lock is free: waiting for it would stall the event loop.
            if sum(map(len, prompt)) <= 4096 and self._prompt_lock.acquire(blocking=False):
                try:
                    encoded = self._encode_locked(prompt)
                finally:
                    self._prompt_lock.release()
            else:
                encoded = await asyncio.to_thread(self._encode, prompt)
        else:
            bad = next((t for p in prompt for t in p if not 0 <= t < self.model.vocab_size), None)
            if bad is not None:
                raise ValueError(f"token id {bad} is outside the vocabulary [0, {self.model.vocab_size})")
            encoded = [np.asarray(p, np.int64) for p in prompt]
        for i, ids in enumerate(encoded):
            if ids.size == 0:
                raise ValueError(f"prompt {i} has no tokens; give at least one token of text")
        return encoded

    # --- chat (/v1/chat/completions) -----------------------------------------------------------------------
    @property
    def has_chat_template(self) -> bool:
        return getattr(self.model, "chat_template", None) is not None

    async def chat_prompt(self, messages: Sequence[dict]) -> np.ndarray:
        """The messages rendered with the model's chat template and tokenized as transformers' apply_chat_template
        does (no added special tokens). ValueError when the model has no template or the template refuses them."""
        if not self.has_chat_template:
            raise ValueError("this model has no chat template (tokenizer_config.json 'chat_template'); use "
                             "/v1/completions")
        text = self.model.apply_chat_template(messages)
        return await asyncio.to_thread(self._encode_chat, text)

    def _encode_chat(self, text: str) -> np.ndarray:
        with self._prompt_lock:
            ids = self._prompt_tokenizer.encode_text(text, add_special_tokens=False)
        if ids.size == 0:
            raise ValueError("the chat template rendered an empty prompt")
        return ids

    def chat_stop_ids(self) -> tuple[int, ...]:
        """The ids a reply ends at, the template's eos_token (the end-of-turn token) first, then the model's eos ids
        (what `model.chat` stops at)."""
        with self._prompt_lock:  # the engine thread uses self.tokenizer; model.chat's look-up uses the model's
            stops = self.model._chat_stops(None)
            eos_text = self.model.chat_template.special_tokens.get("eos_token")
            first = self._prompt_tokenizer.token_to_id(eos_text) if eos_text is not None else None
        return ((first,) if first in stops else ()) + tuple(sorted(i for i in stops if i != first))

    def config(self, *, max_tokens: int, temperature: float, top_p: float, seed: int | None) -> GenerationConfig:
        """OpenAI's options over the model's defaults: temperature 0 is greedy, otherwise sampling."""
        sample = temperature > 0
        options: dict[str, Any] = dict(max_new_tokens=max_tokens, do_sample=sample, seed=seed)
        if sample:
            options.update(temperature=temperature, top_p=top_p)
        return self.model.generation_config.replace(**options)

    def check(self, index: int, ids: np.ndarray, config: GenerationConfig) -> tuple[np.ndarray, GenerationConfig]:
        total = len(ids) + config.max_new_tokens
        if total > self.max_positions:
            raise PromptTooLong(
                f"this model's maximum context length is {self.max_positions} tokens; prompt {index} has "
                f"{len(ids)} tokens and max_tokens is {config.max_new_tokens} ({total} in all). Shorten the "
                "prompt or lower max_tokens")
        try:
            return self.decoder.check(ids, config)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"prompt {index}: {exc}") from None
