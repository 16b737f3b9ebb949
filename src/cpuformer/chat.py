"""Chat on a generative model: the folder's chat template rendered with jinja2 as transformers'
`apply_chat_template(messages, add_generation_prompt=True)` renders it, then generation through the model's usual
`stream` (no second decoding loop), stopping at any of several end ids (the template's end-of-turn token and every
eos id of config.json / generation_config.json).

The template comes from tokenizer_config.json's `chat_template` (a string, or a list of named templates: the one
named "default") or from a `chat_template.jinja` file beside it (transformers 5 saves it there). It is compiled in
jinja2's immutable sandbox with trim_blocks and lstrip_blocks, the loopcontrols extension, `raise_exception`,
`strftime_now` and a `tojson` filter that does not escape HTML, as transformers does; the special tokens of
tokenizer_config.json (bos_token, eos_token, ...) are template variables.
"""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from .generation import GenerationConfig, IncrementalDecoder

__all__ = ["ChatMixin", "ChatTemplate"]

_SPECIAL_TOKENS = ("bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token")


def _token_text(value: Any) -> str | None:
    """A special token as tokenizer_config.json writes it: a str or an AddedToken dict {"content": ...}."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and isinstance(value.get("content"), str):
        return value["content"]
    return None


def _compile(source: str):
    try:
        import jinja2
        from jinja2 import nodes
        from jinja2.ext import Extension
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError:
        raise ImportError("chat templates need jinja2: pip install jinja2") from None

    class GenerationBlock(Extension):
        """`{% generation %}...{% endgeneration %}` (transformers marks assistant text with it): renders its body."""

        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

        def _render(self, caller):
            return caller()

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[GenerationBlock, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    try:
        return env.from_string(source)
    except jinja2.exceptions.TemplateSyntaxError as exc:
        raise ValueError(f"the chat template is not valid jinja2: {exc}") from None


class ChatTemplate:
    """A compiled chat template and the special tokens it sees. `render(messages)` -> the prompt text."""

    def __init__(self, source: str, special_tokens: Mapping[str, str] | None = None):
        if not isinstance(source, str) or not source:
            raise ValueError("a chat template must be a non-empty str")
        self.source = source
        self.special_tokens = dict(special_tokens or {})
        self._template = _compile(source)

    @classmethod
    def from_folder(cls, folder: str | Path) -> "ChatTemplate | None":
        """The folder's chat template (tokenizer_config.json or chat_template.jinja), or None if it has none."""
        folder = Path(folder)
        config: dict[str, Any] = {}
        path = folder / "tokenizer_config.json"
        if path.is_file():
            config = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(config, dict):
                raise ValueError(f"{path} must hold a JSON object, got {type(config).__name__}")
        source = config.get("chat_template")
        if isinstance(source, list):  # [{"name": ..., "template": ...}]: the default one
            named = {t.get("name"): t.get("template") for t in source if isinstance(t, Mapping)}
            source = named.get("default")
        jinja_file = folder / "chat_template.jinja"
        if source is None and jinja_file.is_file():
            source = jinja_file.read_text(encoding="utf-8")
        if source is None:
            return None
        specials = {name: text for name in _SPECIAL_TOKENS if (text := _token_text(config.get(name))) is not None}
        return cls(source, specials)

    def render(self, messages: Sequence[Mapping[str, Any]], *, add_generation_prompt: bool = True,
               **variables: Any) -> str:
        """messages: [{"role": ..., "content": ...}, ...] -> the prompt, as apply_chat_template(tokenize=False)."""
        if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
            raise TypeError(f"messages must be a list of dicts with 'role' and 'content', got {type(messages).__name__}")
        for i, m in enumerate(messages):
            if not isinstance(m, Mapping) or not isinstance(m.get("role"), str):
                raise ValueError(f"messages[{i}] must be a dict with a str 'role' (and 'content'), got {m!r}")
        context = {**self.special_tokens, **variables}
        return self._template.render(messages=[dict(m) for m in messages],
                                     add_generation_prompt=add_generation_prompt, **context)


class ChatMixin:
    """`chat(messages, ...)` / `stream_chat(messages, ...)` for a GenerationMixin model loaded with a tokenizer.
    The class provides `chat_template` (a ChatTemplate or None) and `stop_token_ids` (the ids a reply ends at)."""

    chat_template: ChatTemplate | None = None
    stop_token_ids: tuple[int, ...] = ()

    def load_chat(self, folder: Path, config: Mapping[str, Any]) -> None:
        """Take the folder's chat template and every eos id (config.json, generation_config.json and the template's
        eos_token) that lies inside the vocabulary."""
        self.chat_template = ChatTemplate.from_folder(folder)
        ids: list[Any] = []
        for source in (config, _read_json(folder / "generation_config.json")):
            value = source.get("eos_token_id")
            ids += value if isinstance(value, list) else [value]
        stops = []
        for i in ids:
            if isinstance(i, int) and not isinstance(i, bool) and 0 <= i < self.vocab_size and i not in stops:
                stops.append(i)
        self._eos_text = self.chat_template.special_tokens.get("eos_token") if self.chat_template else None
        self.stop_token_ids = tuple(stops)

    def apply_chat_template(self, messages: Sequence[Mapping[str, Any]], *, add_generation_prompt: bool = True,
                            **variables: Any) -> str:
        if self.chat_template is None:
            raise ValueError("this model's folder has no chat template (tokenizer_config.json 'chat_template' or "
                             "chat_template.jinja)")
        return self.chat_template.render(messages, add_generation_prompt=add_generation_prompt, **variables)

    def _chat_stops(self, stop_token_ids: Sequence[int] | None) -> set[int]:
        if stop_token_ids is not None:
            stops = {int(i) for i in stop_token_ids}
        else:
            stops = set(self.stop_token_ids)
            eos_text = getattr(self, "_eos_text", None)
            if eos_text is not None and (idx := self.require_tokenizer().token_to_id(eos_text)) is not None:
                stops.add(idx)
        bad = [i for i in stops if not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"stop_token_ids must be in [0, {self.vocab_size}), got {bad[0]}")
        return stops

    def stream_chat(self, messages: Sequence[Mapping[str, Any]], max_new_tokens: int | None = None, *,
                    stop_token_ids: Sequence[int] | None = None, generation_config: GenerationConfig | None = None,
                    **options: Any) -> Iterator[str]:
        """Streams the assistant's reply as text pieces. The reply ends before the first of `stop_token_ids`
        (default: the model's eos ids and the template's eos_token) or after max_new_tokens. Other options as
        `generate` (eos_token_id is replaced by the stop ids)."""
        tokenizer = self.require_tokenizer()
        prompt = self.apply_chat_template(messages)
        ids = tokenizer.encode_text(prompt, add_special_tokens=False)  # the template writes bos itself
        if ids.size == 0:
            raise ValueError("the chat template rendered an empty prompt")
        stops = self._chat_stops(stop_token_ids)
        options.pop("eos_token_id", None)
        # the stops are ours: the reply ends before the first of them, which is never decoded into the text
        steps = self.stream(ids[None], max_new_tokens, generation_config=generation_config, eos_token_id=None,
                            stop_token_ids=(), **options)
        return self._chat_pieces(steps, stops, IncrementalDecoder(tokenizer))

    @staticmethod
    def _chat_pieces(steps: Iterator[np.ndarray], stops: set[int], decoder: IncrementalDecoder) -> Iterator[str]:
        try:
            for tokens in steps:
                token = int(tokens[0])
                if token in stops:
                    break
                piece = decoder.push(token)
                if piece:
                    yield piece
        finally:
            steps.close()  # frees the decode state when the reply stops early
        tail = decoder.flush()
        if tail:
            yield tail

    def chat(self, messages: Sequence[Mapping[str, Any]], max_new_tokens: int | None = None, **options: Any) -> str:
        """The assistant's reply to `messages` (str). Options as `stream_chat`."""
        return "".join(self.stream_chat(messages, max_new_tokens, **options))


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}
