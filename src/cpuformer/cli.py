"""`cpuformer` command line: `cpuformer embed TEXT...` / `--file PATH`, `cpuformer serve`, `cpuformer generate`,
`cpuformer chat` and `cpuformer info`."""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from typing import Callable, Iterator, Sequence

from .io.npy_rows import NpyRowWriter
from .io.text_lines import DEFAULT_MAX_LINE_BYTES, TextLine, batched, read_lines
from .generate_cli import add_generate_parsers, chat_main, generate_main
from .models.base import SUPPORTED_DTYPES
from .serve.cli import add_serve_parser, serve_main

__all__ = ["main"]

_BATCHES_PER_BLOCK = 16  # --file input is read and embedded this many batches at a time


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cpuformer", description="Fast CPU inference for transformer models.")
    commands = parser.add_subparsers(dest="command", required=True)

    embed = commands.add_parser(
        "embed", help="embed sentences with a sentence-transformers model (default: all-MiniLM-L6-v2)",
        description="Embed sentences. Output: one JSON object per line ({\"text\", \"embedding\"}) on stdout, "
                    "or an [N, dim] float32 .npy file with --output.")
    embed.add_argument("texts", nargs="*", metavar="TEXT", help="sentences to embed")
    embed.add_argument("--file", metavar="PATH", help="read sentences from PATH, one per line ('-' for stdin; "
                                                      "UTF-8), streamed in blocks; every line is embedded, so row i is "
                                                      "line i (a line past 1 MiB is cut there, with a warning)")
    embed.add_argument("--model", metavar="PATH", help="sentence-transformers or Hugging Face BERT folder")
    embed.add_argument("--normalize", action="store_true", help="L2-normalize the embeddings")
    embed.add_argument("--dtype", default="float32", choices=SUPPORTED_DTYPES,
                       help="dtype of the linear weights (default float32)")
    embed.add_argument("--batch-size", type=int, default=32, metavar="N", help="sentences per batch (default 32)")
    embed.add_argument("--output", metavar="X.npy", help="write a .npy array instead of JSON lines")
    embed.add_argument("--no-progress", action="store_true", help="no progress line for --file")

    commands.add_parser("info", help="show version, CPU, ISA and threads (cpuformer.show_config())")
    add_serve_parser(commands)
    add_generate_parsers(commands)
    return parser


def _open_lines(path: str) -> tuple[Iterator[TextLine], Callable[[], None]]:
    """The lines of PATH ('-': stdin) read in bounded memory, and how to close the file."""
    if path == "-":
        return read_lines(sys.stdin.buffer, source="stdin"), lambda: None
    f = open(path, "rb")  # noqa: SIM115 - closed by the caller
    return read_lines(f, source=path), f.close


class _LineProgress:
    """Sentences embedded so far, on one stderr line (the total is unknown while streaming)."""

    def __init__(self, enabled: bool):
        self.enabled, self.done, self.start = enabled, 0, time.perf_counter()

    def advance(self, n: int) -> None:
        if self.enabled:
            self.done += n
            rate = self.done / max(time.perf_counter() - self.start, 1e-9)
            print(f"\rEmbedded {self.done} sentences ({rate:.1f}/s)", end="", file=sys.stderr, flush=True)

    def finish(self) -> None:
        if self.enabled and self.done:
            print(file=sys.stderr)


def _embed(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.file and args.texts:
        raise ValueError("give sentences either as arguments or with --file, not both")
    if args.output and not args.output.endswith(".npy"):
        raise ValueError(f"--output must name a .npy file, got {args.output!r}")
    close = lambda: None  # noqa: E731
    if args.file:
        lines, close = _open_lines(args.file)
    else:
        lines = (TextLine(i + 1, text, False) for i, text in enumerate(args.texts))
    try:
        # Sentences go through in blocks (bounded memory whatever the input's size); within a block encode()
        # sorts by length, as for one call.
        blocks = batched(lines, args.batch_size * _BATCHES_PER_BLOCK)
        first = next(blocks, None)
        if first is None:
            raise ValueError("nothing to embed: pass sentences as arguments or --file PATH")

        from .sentence_encoder import SentenceEncoder

        encoder = SentenceEncoder.from_pretrained(args.model, dtype=args.dtype)
        progress = _LineProgress(bool(args.file) and not args.no_progress)
        writer = NpyRowWriter(args.output, encoder.embedding_dimension) if args.output else None
        try:
            for block in itertools.chain([first], blocks):
                for line in block:
                    if line.cut:
                        print(f"cpuformer: warning: line {line.number} is longer than {DEFAULT_MAX_LINE_BYTES} bytes; "
                              "embedding its beginning", file=sys.stderr)
                texts = [line.text for line in block]
                embeddings = encoder.encode(texts, batch_size=args.batch_size, normalize_embeddings=args.normalize)
                if writer is not None:
                    writer.append(embeddings)
                else:
                    sys.stdout.write("".join(json.dumps({"text": t, "embedding": [float(v) for v in vector]}) + "\n"
                                             for t, vector in zip(texts, embeddings)))
                progress.advance(len(texts))
        except BaseException:
            if writer is not None:
                writer.discard()
            raise
        finally:
            progress.finish()
        if writer is not None:
            writer.close()
            print(f"wrote {writer.rows} x {writer.dim} embeddings to {args.output}", file=sys.stderr)
    finally:
        close()
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
        print(f"cpuformer: error: {' '.join(str(exc).splitlines())}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
