"""`cpuformer` command line: `cpuformer embed TEXT...` / `--file PATH`, `cpuformer serve`, `cpuformer generate`,
`cpuformer chat` and `cpuformer info`."""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from .embed_cli import add_embed_parser, embed_main
from .generate_cli import add_generate_parsers, chat_main, generate_main
from .serve.cli import add_serve_parser, serve_main

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cpuformer", description="Fast CPU inference for transformer models.")
    commands = parser.add_subparsers(dest="command", required=True)

    add_embed_parser(commands)
    commands.add_parser("info", help="show version, CPU, ISA and threads (cpuformer.show_config())")
    add_serve_parser(commands)
    add_generate_parsers(commands)
    return parser


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
        return embed_main(args)
    except (ValueError, OSError, RuntimeError) as exc:  # bad input, missing files or model: a message, not a traceback
        print(f"cpuformer: error: {' '.join(str(exc).splitlines())}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
