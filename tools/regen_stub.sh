#!/usr/bin/env bash
# Regenerates src/cpuformer/_core.pyi from the built extension (pip install pybind11-stubgen first).
# tests/test_stub.py fails when the stub and the extension disagree on the public names.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(mktemp -d)
PYTHONPATH="$root/src" pybind11-stubgen cpuformer._core -o "$out"
cp "$out/cpuformer/_core.pyi" "$root/src/cpuformer/_core.pyi"
echo "wrote src/cpuformer/_core.pyi"
