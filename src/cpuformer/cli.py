"""`cpuformer` command line: `cpuformer embed TEXT...` / `--file PATH`, `cpuformer serve`, `cpuformer generate`,
`cpuformer chat` and `cpuformer info`."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from .generate_cli import add_generate_parsers, chat_main, generate_main
from .models.base import SUPPORTED_DTYPES
from .serve.cli import add_serve_parser, serve_main

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cpuformer", description="Fast CPU inference for transformer models.")
    commands = parser.add_subparsers(dest="command", required=True)

    embed = commands.add_parser(
        "embed", help="embed sentences with a sentence-transformers model (default: all-MiniLM-L6-v2)",
        description="Embed sentences. Output: one JSON object per line ({\"text\", \"embedding\"}) on stdout, "
                    "or an [N, dim] float32 .npy file with --output.")
    embed.add_argument("texts", nargs="*", metavar="TEXT", help="sentences to embed")
    embed.add_argument("--file", metavar="PATH", help="read sentences from PATH, one per line ('-' for stdin); "
                                                      "every line is embedded, so row i is line i")
    embed.add_argument("--model", metavar="PATH", help="sentence-transformers or Hugging Face BERT folder")
    embed.add_argument("--normalize", action="store_true", help="L2-normalize the embeddings")
    embed.add_argument("--dtype", default="float32", choices=SUPPORTED_DTYPES,
                       help="dtype of the linear weights (default float32)")
    embed.add_argument("--batch-size", type=int, default=32, metavar="N", help="sentences per batch (default 32)")
    embed.add_argument("--output", metavar="X.npy", help="write a .npy array instead of JSON lines")
    embed.add_argument("--no-progress", action="store_true", help="no progress bar for --file")

    commands.add_parser("info", help="show version, CPU, ISA and threads (cpuformer.show_config())")
    add_serve_parser(commands)
    add_generate_parsers(commands)
    return parser


def _read_lines(path: str) -> list[str]:
    if path == "-":
        text = sys.stdin.read()
    else:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    lines = text.split("\n")
    if lines and lines[-1] == "":  # the newline ending the last line does not start another sentence
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def _embed(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.file and args.texts:
        raise ValueError("give sentences either as arguments or with --file, not both")
    texts = _read_lines(args.file) if args.file else list(args.texts)
    if not texts:
        raise ValueError("nothing to embed: pass sentences as arguments or --file PATH")
    if args.output and not args.output.endswith(".npy"):
        raise ValueError(f"--output must name a .npy file, got {args.output!r}")

    from .sentence_encoder import SentenceEncoder

    encoder = SentenceEncoder.from_pretrained(args.model, dtype=args.dtype)
    embeddings = encoder.encode(texts, batch_size=args.batch_size, normalize_embeddings=args.normalize,
                                show_progress_bar=bool(args.file) and not args.no_progress)
    if args.output:
        import numpy as np

        np.save(args.output, embeddings)
        print(f"wrote {embeddings.shape[0]} x {embeddings.shape[1]} embeddings to {args.output}", file=sys.stderr)
    else:
        out = sys.stdout
        for text, vector in zip(texts, embeddings):
            out.write(json.dumps({"text": text, "embedding": [float(v) for v in vector]}) + "\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "info":
            from ._config import show_config

            show_config()
            return 0
        if args.command == "serve":
            return serve_main(args)
        if args.command == "generate":
            return generate_main(args)
        if args.command == "chat":
            return chat_main(args)
        return _embed(args)
    except (ValueError, OSError, RuntimeError) as exc:  # bad input, missing files or model: a message, not a traceback
        print(f"cpuformer: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
