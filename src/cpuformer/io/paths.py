"""Containment of model folders: every file a model folder makes us read lies inside that folder.

A folder comes from anywhere (a download, a git clone), so paths named in its config files (modules.json's module
paths, an index's shard names) and symlinks among its files must not lead elsewhere on disk. The one exception is
the Hugging Face cache layout, where every file of `models--org--name/snapshots/<revision>/` is a symlink into
`models--org--name/blobs/`: a snapshot's files may point into their own repository's blobs folder.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import CheckpointError

__all__ = ["check_regular_file", "inside_folder", "open_regular_file"]


def _hf_cache_blobs(folder: Path) -> Path | None:
    """`models--x/blobs` when the resolved `folder` is (inside) a Hugging Face cache snapshot, else None."""
    for parent in (folder, *folder.parents):
        if parent.parent.name == "snapshots":
            return parent.parent.parent / "blobs"
    return None


def inside_folder(root: str | os.PathLike, relative: str, source: str | os.PathLike, field: str) -> Path:
    """`root / relative`, refused with a CheckpointError naming `source` (the file that named the path) and `field`
    when it leaves `root`: an absolute path, '..' past the root, or a symlink that resolves outside it."""
    root = Path(root)
    if not isinstance(relative, str):
        raise CheckpointError(f"{os.fspath(source)}: {field} must be a string path, got {relative!r}")
    if "\x00" in relative:
        raise CheckpointError(f"{os.fspath(source)}: {field} {relative!r} holds a NUL character")
    path = root / relative
    real_root = root.resolve()
    real = path.resolve()
    if real == real_root or real_root in real.parents:
        return path
    blobs = _hf_cache_blobs(real_root)
    if blobs is not None and real.parent == blobs and not Path(relative).is_absolute() and ".." not in Path(
            relative).parts:
        return path  # a Hugging Face cache snapshot file: a symlink into its repository's blobs folder
    raise CheckpointError(f"{os.fspath(source)}: {field} {relative!r} leads outside the model folder "
                          f"{os.fspath(root)!r} (to {os.fspath(real)!r}); a model folder may only use its own files")


def check_regular_file(path: str | os.PathLike, what: str = "file", error: type[ValueError] = CheckpointError) -> None:
    """`error` unless `path` is a regular file (a FIFO or device would block or never end a read)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise error(f"cannot read {what} {os.fspath(path)!r}: {exc.strerror}") from None
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file"
        raise error(f"{what} {os.fspath(path)!r} is {kind}")


def open_regular_file(path: str | os.PathLike, what: str = "file", error: type[ValueError] = CheckpointError) -> int:
    """An O_RDONLY descriptor of `path`, refusing anything but a regular file without blocking (a FIFO opened
    for reading would wait for a writer forever). The caller closes it."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except IsADirectoryError:
        raise error(f"{what} {os.fspath(path)!r} is a folder") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file"
        raise error(f"{what} {os.fspath(path)!r} is {kind}")
    if hasattr(os, "O_NONBLOCK"):
        os.set_blocking(fd, True)
    return fd
