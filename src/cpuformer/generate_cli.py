"""`cpuformer generate --model PATH "prompt"` (streams the continuation) and `cpuformer chat --model PATH`
(interactive: one user turn per line of stdin, the reply streamed with the folder's chat template)."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from .models.base import SUPPORTED_DTYPES

__all__ = ["add_generate_parsers", "chat_main", "generate_main"]


def _add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", metavar="PATH", required=True, help="Hugging Face folder of a generative model")
    parser.add_argument("--dtype", default="float32", choices=SUPPORTED_DTYPES,
                        help="dtype of the linear weights (default float32)")
    parser.add_argument("--max-new-tokens", type=int, default=256, metavar="N", help="at most N new tokens (256)")
    parser.add_argument("--do-sample", action="store_true", help="sample instead of greedy decoding")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-k", type=int, default=0)
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--repetition-penalty", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=None)


def add_generate_parsers(commands: Any) -> None:
    generate = commands.add_parser("generate", help="continue a prompt with a generative model (streamed)",
                                   description="Stream the continuation of PROMPT to stdout.")
    generate.add_argument("prompt", metavar="PROMPT")
    _add_options(generate)
    chat = commands.add_parser("chat", help="chat with a model that has a chat template (interactive, streamed)",
                               description="Each line of stdin is a user message; the reply is streamed to stdout. "
                                           "An empty line or /exit ends the chat.")
    chat.add_argument("--system", metavar="TEXT", help="a system message that opens the conversation")
    _add_options(chat)


def _options(args: argparse.Namespace) -> dict[str, Any]:
    return dict(do_sample=args.do_sample, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                repetition_penalty=args.repetition_penalty, seed=args.seed)


def _load(args: argparse.Namespace):
    from .generation import GenerationMixin
    from .models import AutoModel

    model = AutoModel.from_pretrained(args.model, dtype=args.dtype)
    if not isinstance(model, GenerationMixin):
        raise ValueError(f"{args.model} holds a {type(model).__name__}, which does not generate text")
    return model


def generate_main(args: argparse.Namespace) -> int:
    model = _load(args)
    for piece in model.stream_text(args.prompt, args.max_new_tokens, **_options(args)):
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0


def chat_main(args: argparse.Namespace) -> int:
    model = _load(args)
    if not hasattr(model, "stream_chat"):
        raise ValueError(f"{type(model).__name__} has no chat support")
    if model.chat_template is None:
        raise ValueError(f"{args.model} has no chat template (tokenizer_config.json 'chat_template')")
    messages = [{"role": "system", "content": args.system}] if args.system else []
    interactive = sys.stdin.isatty()
    while True:
        if interactive:
            sys.stdout.write("> ")
            sys.stdout.flush()
        line = sys.stdin.readline()
        text = line.rstrip("\n")
        if not line or not text.strip() or text.strip() == "/exit":
            return 0
        messages.append({"role": "user", "content": text})
        reply = []
        for piece in model.stream_chat(messages, args.max_new_tokens, **_options(args)):
            reply.append(piece)
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
        messages.append({"role": "assistant", "content": "".join(reply)})
