#!/usr/bin/env bash
# Incremental developer build: compiles the extension into build/dev and drops _core*.so into src/cpuformer,
# so `PYTHONPATH=src pytest` runs against the working tree. A lock keeps concurrent builds from colliding.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
exec 9>/tmp/cpuformer-build.lock
flock 9
if [ ! -f "$root/build/dev/build.ninja" ]; then
  cmake -S "$root" -B "$root/build/dev" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -Dpybind11_DIR="$(python3 -m pybind11 --cmakedir)" -DSKBUILD_PROJECT_VERSION=0.1.0.dev0 >/dev/null
fi
cmake --build "$root/build/dev" -j2
# Copy then rename: a test run still holding the old module keeps its inode instead of crashing.
for so in "$root"/build/dev/_core*.so; do
  cp "$so" "$root/src/cpuformer/.$(basename "$so").tmp"
  mv -f "$root/src/cpuformer/.$(basename "$so").tmp" "$root/src/cpuformer/$(basename "$so")"
done
