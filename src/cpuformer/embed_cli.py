"""`cpuformer embed`: TEXT... or --file (JSON lines on stdout or one .npy), and --input FILE --output OUT, the
chunked, resumable job of embed_job.py (locally, or on a Ray cluster with --ray ADDRESS)."""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from typing import Callable, Iterator

from .embed_job import DEFAULT_CHUNK_SIZE, EmbedJob, EmbedJobInterrupted, run_embed_job
from .io.npy_rows import NpyRowWriter
from .io.text_lines import DEFAULT_MAX_LINE_BYTES, TextLine, batched, read_lines
from .models.base import SUPPORTED_DTYPES
from .progress import progress_bar

__all__ = ["add_embed_parser", "embed_main"]

_BATCHES_PER_BLOCK = 16  # --file input is read and embedded this many batches at a time


def add_embed_parser(commands) -> None:
    embed = commands.add_parser(
        "embed", help="embed sentences with a sentence-transformers model (default: all-MiniLM-L6-v2)",
        description="Embed sentences. Output: one JSON object per line ({\"text\", \"embedding\"}) on stdout, "
                    "or an [N, dim] float32 .npy file with --output. For big files: --input FILE --output OUT "
                    "(.txt/.jsonl/.parquet in; .npy/.jsonl/.parquet out) runs in chunks and can --resume.")
    embed.add_argument("texts", nargs="*", metavar="TEXT", help="sentences to embed")
    embed.add_argument("--file", metavar="PATH", help="read sentences from PATH, one per line ('-' for stdin; "
                                                      "UTF-8), streamed in blocks; every line is embedded, so row i is "
                                                      "line i (a line past 1 MiB is cut there, with a warning)")
    embed.add_argument("--input", metavar="FILE", help="embed FILE in chunks into --output: .txt (one text per "
                                                       "line), .jsonl or .parquet (the text in --column)")
    embed.add_argument("--column", metavar="NAME", help="the text field of .jsonl / .parquet rows (default: text)")
    embed.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE, metavar="N",
                       help=f"texts per chunk for --input: read, sorted by length, embedded and written together "
                            f"(default {DEFAULT_CHUNK_SIZE})")
    embed.add_argument("--resume", action="store_true", help="--input: keep the chunks an interrupted run of the "
                                                             "same job wrote (in OUT.parts) and do the rest")
    embed.add_argument("--ray", metavar="ADDRESS", help="--input: run on the Ray cluster at ADDRESS ('auto': the "
                                                        "one this machine is in); needs cpuformer[ray]")
    embed.add_argument("--ray-actors", type=int, metavar="N", help="--ray: actors (default: the cluster's CPUs / "
                                                                    "--ray-cpus-per-actor)")
    embed.add_argument("--ray-cpus-per-actor", type=int, default=1, metavar="N",
                       help="--ray: CPUs, and so cpuformer threads, per actor (default 1)")
    embed.add_argument("--model", metavar="PATH", help="sentence-transformers or Hugging Face BERT folder")
    embed.add_argument("--normalize", action="store_true", help="L2-normalize the embeddings")
    embed.add_argument("--dtype", default="float32", choices=SUPPORTED_DTYPES,
                       help="dtype of the linear weights (default float32)")
    embed.add_argument("--batch-size", type=int, default=32, metavar="N", help="sentences per batch (default 32)")
    embed.add_argument("--output", metavar="OUT", help="write OUT.npy instead of JSON lines (--input: also "
                                                       ".jsonl or .parquet)")
    shown = embed.add_mutually_exclusive_group()
    shown.add_argument("--progress", dest="progress", action="store_const", const=True, default=None,
                       help="show the progress bar on stderr even when it is not a terminal")
    shown.add_argument("--no-progress", dest="progress", action="store_const", const=False,
                       help="no progress bar (default: one on a terminal only)")


def _open_lines(path: str) -> tuple[Iterator[TextLine], Callable[[], None]]:
    """The lines of PATH ('-': stdin) read in bounded memory, and how to close the file."""
    if path == "-":
        return read_lines(sys.stdin.buffer, source="stdin"), lambda: None
    f = open(path, "rb")  # noqa: SIM115 - closed by the caller
    return read_lines(f, source=path), f.close


def _embed_input(args: argparse.Namespace) -> int:
    """--input FILE --output OUT: the chunked job, local or on Ray."""
    from .io.text_sources import INPUT_FORMATS, TextSource, file_format, open_text_source

    if args.texts or args.file:
        raise ValueError("give sentences as arguments, --file or --input, one of them")
    if not args.output:
        raise ValueError("--input needs --output OUT (.npy, .jsonl or .parquet)")
    if args.ray is None and (args.ray_actors is not None or args.ray_cpus_per_actor != 1):
        raise ValueError("--ray-actors and --ray-cpus-per-actor apply to --ray runs only")
    if args.ray is not None and "://" in args.input:  # a cluster URI: the nodes read it, we cannot check it here
        source = TextSource(args.input, file_format(args.input, INPUT_FORMATS, "--input"), args.column or "text")
    else:
        source = open_text_source(args.input, args.column)
    job = EmbedJob(source, args.output, model=args.model, dtype=args.dtype, normalize=args.normalize,
                   batch_size=args.batch_size, chunk_size=args.chunk_size)
    if args.ray is not None:
        if args.resume:
            raise ValueError("--resume applies to local runs; a --ray run starts again (Ray retries failed blocks)")
        from .integrations.ray_job import run_ray_embed_job

        rows = run_ray_embed_job(job, args.ray, actors=args.ray_actors, cpus_per_actor=args.ray_cpus_per_actor,
                                 progress=args.progress)
    else:
        try:
            rows = run_embed_job(job, resume=args.resume, progress=args.progress)
        except EmbedJobInterrupted as exc:
            print(f"cpuformer: {exc}", file=sys.stderr)
            return 130
    print(f"wrote {rows} embeddings to {args.output}", file=sys.stderr)
    return 0


def embed_main(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.input:
        return _embed_input(args)
    if args.resume or args.ray is not None:
        raise ValueError("--resume and --ray apply to --input FILE --output OUT")
    if args.file and args.texts:
        raise ValueError("give sentences either as arguments or with --file, not both")
    if args.output and not args.output.endswith(".npy"):
        raise ValueError(f"--output must name a .npy file, got {args.output!r} (.jsonl / .parquet: use --input)")
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
        writer = NpyRowWriter(args.output, encoder.embedding_dimension) if args.output else None
        try:
            with progress_bar(None, desc="Embedded", unit=" sentences",
                              enabled=bool(args.file) and args.progress) as progress:
                for block in itertools.chain([first], blocks):
                    for line in block:
                        if line.cut:
                            print(f"cpuformer: warning: line {line.number} is longer than {DEFAULT_MAX_LINE_BYTES} "
                                  "bytes; embedding its beginning", file=sys.stderr)
                    texts = [line.text for line in block]
                    embeddings = encoder.encode(texts, batch_size=args.batch_size,
                                                normalize_embeddings=args.normalize)
                    if writer is not None:
                        writer.append(embeddings)
                    else:
                        sys.stdout.write("".join(json.dumps({"text": t, "embedding": [float(v) for v in vector]})
                                                 + "\n" for t, vector in zip(texts, embeddings)))
                    progress.update(len(texts))
        except BaseException:
            if writer is not None:
                writer.discard()
            raise
        if writer is not None:
            writer.close()
            print(f"wrote {writer.rows} x {writer.dim} embeddings to {args.output}", file=sys.stderr)
    finally:
        close()
    return 0
