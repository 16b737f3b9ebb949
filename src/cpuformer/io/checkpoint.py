"""Hugging Face-format checkpoint folders: config.json, weight files, and a WeightStore that a
model's loader pulls weights from by name.

The loader contract (nanoGPT's from_pretrained): every weight the model needs is `take`n with
its expected shape, then `assert_all_used()` fails if the checkpoint held weights nobody took.
Missing, misshapen and leftover weights are all CheckpointErrors that name the keys.
"""

from __future__ import annotations

import difflib
import fnmatch
import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from .errors import CheckpointError
from .paths import check_regular_file, inside_folder, open_regular_file
from .safetensors import BFLOAT16, SafetensorsError, load_safetensors, to_float32

__all__ = ["CheckpointError", "WeightStore", "find_weight_files", "read_config", "read_folder_json", "read_json"]

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
_UNUSED_LISTED = 20
# Config-type JSON files (config.json, an index, modules.json, ...) past this size are refused before reading:
# the largest real ones (shard indexes of very large models) are a few MB.
MAX_JSON_BYTES = 100 * 1024 * 1024

_CONVERT_HINT = (
    "cpuformer does not load PyTorch pickles (unpickling can run arbitrary code). Convert once with "
    "transformers: AutoModel.from_pretrained(folder).save_pretrained(out_folder, safe_serialization=True)"
)


def _folder(folder: str | os.PathLike) -> Path:
    path = Path(folder)
    if not path.is_dir():
        raise CheckpointError(f"checkpoint folder {os.fspath(folder)!r} does not exist or is not a folder")
    return path


def read_json(path: str | os.PathLike) -> Any:
    """Parse a JSON file; bad JSON or UTF-8, JSON nested too deeply, a file past MAX_JSON_BYTES and anything but a
    regular file (a FIFO would block) are CheckpointErrors naming the file."""
    with open(open_regular_file(path, "JSON file"), "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > MAX_JSON_BYTES:
            raise CheckpointError(f"{os.fspath(path)} is {size} bytes; JSON files of a model folder are limited to "
                                  f"{MAX_JSON_BYTES} bytes")
        raw = f.read(MAX_JSON_BYTES + 1)
    try:
        return json.loads(raw.decode("utf-8"))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{os.fspath(path)} is not valid JSON: {exc}") from None
    except UnicodeDecodeError as exc:
        raise CheckpointError(f"{os.fspath(path)} is not valid UTF-8: {exc}") from None
    except RecursionError:
        raise CheckpointError(f"{os.fspath(path)}: JSON nested too deeply") from None


def read_folder_json(folder: str | os.PathLike, name: str, *, required: bool = True) -> Any:
    """`folder/name` parsed (read_json), refused when a symlink leads it outside the folder; None when it does
    not exist and not `required`."""
    path = Path(folder) / name
    if not path.exists() and not path.is_symlink():
        if required:
            raise CheckpointError(f"no {name} in {os.fspath(folder)!r}")
        return None
    inside_folder(folder, name, folder, "file")
    return read_json(path)


def read_config(folder: str | os.PathLike) -> dict[str, Any]:
    """Parse `folder/config.json` into a dict."""
    path = _folder(folder) / "config.json"
    if not path.exists() and not path.is_symlink():
        raise CheckpointError(f"no config.json in {os.fspath(folder)!r}; a Hugging Face-format folder needs one")
    inside_folder(path.parent, "config.json", path.parent, "config file")
    config = read_json(path)  # refuses a folder or FIFO by that name
    if not isinstance(config, dict):
        raise CheckpointError(f"{path} must hold a JSON object, got {type(config).__name__}")
    return config


def _read_weight_map(folder: Path) -> dict[str, str]:
    """tensor name -> shard file name, from model.safetensors.index.json."""
    path = folder / INDEX_FILE
    index = read_json(path)
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise CheckpointError(f"{path} has no 'weight_map' object of tensor name -> shard file name")
    for shard in sorted(set(weight_map.values())):
        # Shards live next to the index; a path here would let an index point anywhere on disk.
        if Path(shard).name != shard or shard in ("", ".", "..") or "\x00" in shard:
            raise CheckpointError(f"{path}: shard name {shard!r} must be a plain file name")
        inside_folder(folder, shard, path, "weight_map shard")  # and not a symlink out of the folder
    return weight_map


def find_weight_files(folder: str | os.PathLike) -> list[Path]:
    """The safetensors files holding the model's weights: model.safetensors, else the shards
    named by model.safetensors.index.json (sorted, each once)."""
    path = _folder(folder)
    for name in (SINGLE_FILE, INDEX_FILE):
        if (path / name).exists() or (path / name).is_symlink():
            inside_folder(path, name, path, "weight file")  # a symlink out of the folder is refused
            check_regular_file(path / name, "weight file")  # a folder or FIFO by that name is named as such
    # Same order as transformers: a single file wins over an index.
    if (path / SINGLE_FILE).is_file():
        return [path / SINGLE_FILE]
    if (path / INDEX_FILE).is_file():
        shards = sorted(set(_read_weight_map(path).values()))
        missing = [s for s in shards if not (path / s).is_file()]
        if missing:
            raise CheckpointError(f"{path / INDEX_FILE} names shards that are not in the folder: {', '.join(missing)}")
        return [path / s for s in shards]
    pickles = sorted(p.name for p in path.glob("*.bin"))
    if pickles:
        raise CheckpointError(f"{path} has only PyTorch weights ({', '.join(pickles)}). {_CONVERT_HINT}")
    others = sorted(p.name for p in path.glob("*.safetensors"))
    found = f"; found {', '.join(others)} but no index to say which are model shards" if others else ""
    raise CheckpointError(f"no {SINGLE_FILE} or {INDEX_FILE} in {path}{found}")


def _load_folder(folder: str | os.PathLike) -> dict[str, np.ndarray]:
    files = find_weight_files(folder)
    weight_map = _read_weight_map(Path(folder)) if files[0].name != SINGLE_FILE else None
    tensors: dict[str, np.ndarray] = {}
    owner: dict[str, str] = {}
    for file in files:
        try:
            shard = load_safetensors(file)
        except SafetensorsError as exc:
            raise CheckpointError(str(exc)) from exc
        for name, arr in shard.items():
            if name in tensors:
                raise CheckpointError(f"weight {name!r} appears in both {owner[name]} and {file.name}")
            tensors[name], owner[name] = arr, file.name
    if weight_map is not None:
        # The index is what tools trust; disagreeing with the shards means a broken upload.
        wrong = [n for n, shard in weight_map.items() if owner.get(n) != shard]
        if wrong:
            details = ", ".join(f"{n} (index: {weight_map[n]}, found: {owner.get(n, 'nowhere')})" for n in wrong[:5])
            raise CheckpointError(f"{INDEX_FILE} disagrees with the shards for {len(wrong)} weights: {details}")
    return tensors


def _describe(shape: Sequence[int | None]) -> str:
    return "(" + ", ".join("*" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


class WeightStore:
    """Named weights from a checkpoint folder or a {name: array} dict, with bookkeeping of which
    were taken so a loader can prove it used every weight exactly as shaped."""

    def __init__(self, source: str | os.PathLike | Mapping[str, np.ndarray]):
        if isinstance(source, Mapping):
            tensors, self.source = {n: np.asarray(a) for n, a in source.items()}, "<dict>"
        else:
            tensors, self.source = _load_folder(source), os.fspath(source)
        # current name -> (name in the checkpoint, array); names change only via strip_prefix.
        self._tensors: dict[str, tuple[str, np.ndarray]] = {n: (n, a) for n, a in tensors.items()}
        self._used: set[str] = set()
        self._ignored: list[str] = []
        self._ignored_outside: list[str] = []
        # The dtype the model packs its linear weights in ("float32", "bf16", "int8"); set by the loading template.
        self.linear_dtype = "float32"
        # True: take() may hand out read-only views of the mapped file (from_pretrained(..., mmap=True)).
        self.mmap = False

    def __len__(self) -> int:
        return len(self._tensors)

    def __contains__(self, name: object) -> bool:
        return name in self._tensors

    def keys(self) -> list[str]:
        return list(self._tensors)

    def has(self, name: str) -> bool:
        return name in self._tensors

    def strip_prefix(self, prefixes: str | Iterable[str]) -> list[str]:
        """Drop each prefix (e.g. "bert.", "transformer.") from the keys that carry it, so task
        checkpoints (BertForMaskedLM) and base checkpoints (BertModel) load by the same names.
        A prefix that no key carries is skipped. Returns the prefixes actually stripped."""
        if isinstance(prefixes, str):
            prefixes = [prefixes]
        stripped = []
        for prefix in prefixes:
            if not prefix or not any(n.startswith(prefix) for n in self._tensors):
                continue
            renamed: dict[str, tuple[str, np.ndarray]] = {}
            for name, entry in self._tensors.items():
                new = name[len(prefix):] if name.startswith(prefix) else name
                if new in renamed:
                    raise CheckpointError(
                        f"stripping prefix {prefix!r} makes {entry[0]!r} collide with {renamed[new][0]!r}"
                    )
                renamed[new] = entry
            self._tensors = renamed
            self._used = {u[len(prefix):] if u.startswith(prefix) else u for u in self._used}
            stripped.append(prefix)
        return stripped

    def ignore(self, *patterns: str) -> None:
        """Allow keys matching these glob patterns (e.g. "*.attn.masked_bias", "*position_ids") to
        stay unused: buffers that checkpoints carry but the model recomputes."""
        self._ignored.extend(patterns)

    def ignore_outside(self, prefix: str) -> None:
        """Allow every key whose checkpoint name does not start with `prefix` to stay unused: the task heads
        of a task checkpoint (cls.*, qa_outputs.*, lm_head.*) when a base model loads its `prefix` part."""
        self._ignored_outside.append(prefix)

    def _is_ignored(self, name: str) -> bool:
        original = self._tensors[name][0]
        if any(not original.startswith(prefix) for prefix in self._ignored_outside):
            return True
        return any(fnmatch.fnmatchcase(n, p) for p in self._ignored for n in (name, original))

    def _label(self, name: str) -> str:
        original = self._tensors[name][0]
        return f"weight {name!r}" + (f" (checkpoint key {original!r})" if original != name else "")

    def _missing(self, name: str) -> CheckpointError:
        close = difflib.get_close_matches(name, self._tensors, n=5, cutoff=0.6)
        hint = f"close matches: {', '.join(close)}" if close else f"no close match among {len(self._tensors)} keys"
        return CheckpointError(f"weight {name!r} not found in checkpoint {self.source}; {hint}")

    def take(
        self,
        name: str,
        shape: Sequence[int | None] | None = None,
        dtype: npt.DTypeLike = np.float32,
        *,
        packed: bool = False,
    ) -> np.ndarray:
        """Return weight `name` as a C-contiguous, aligned array of `dtype` and mark it used.

        `shape` (None entries match any size) is checked against the stored shape. Half types are
        widened. The result owns its memory, so a model never reads the file after loading (a truncated or
        rewritten file cannot crash it or change its answers), unless the store was opened with mmap=True, or
        `packed` says the caller copies the data into its own layout before loading ends (PackedLinear): then an
        aligned F32 weight is the read-only mmap view itself.
        Floats are never taken as integers or integers as floats: that would hide a quantized
        checkpoint or a wrong key behind plausible-looking numbers."""
        if name not in self._tensors:
            raise self._missing(name)
        arr = self._tensors[name][1]
        if shape is not None:
            shape = tuple(shape)
            if len(shape) != arr.ndim or any(e is not None and e != a for e, a in zip(shape, arr.shape)):
                raise CheckpointError(
                    f"{self._label(name)}: expected shape {_describe(shape)}, checkpoint has {_describe(arr.shape)}"
                )
        target = np.dtype(dtype)
        is_float = arr.dtype == BFLOAT16 or arr.dtype.kind == "f"
        if is_float != (target.kind == "f"):
            stored = "BF16" if arr.dtype == BFLOAT16 else str(arr.dtype)
            raise CheckpointError(f"{self._label(name)} is stored as {stored}; refusing to take it as {target}")
        if arr.dtype == BFLOAT16:
            arr = to_float32(arr)
        out = np.require(arr, dtype=target, requirements=["C_CONTIGUOUS", "ALIGNED"])
        if not (self.mmap or packed) and not out.flags.owndata:
            out = out.copy()
        self._used.add(name)
        return out

    def unused(self) -> list[str]:
        """Checkpoint names of the weights neither taken nor ignored, sorted."""
        return sorted(orig for n, (orig, _) in self._tensors.items() if n not in self._used and not self._is_ignored(n))

    def assert_all_used(self) -> None:
        """Raise CheckpointError listing weights that were neither taken nor ignored."""
        unused = self.unused()
        if unused:
            listed = ", ".join(unused[:_UNUSED_LISTED])
            more = f" (and {len(unused) - _UNUSED_LISTED} more)" if len(unused) > _UNUSED_LISTED else ""
            raise CheckpointError(
                f"{len(unused)} weights in checkpoint {self.source} were not used by the model: {listed}{more}"
            )
