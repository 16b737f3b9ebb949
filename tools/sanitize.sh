#!/usr/bin/env bash
# ASan + UBSan job: builds the extension with -fsanitize=address,undefined into build/sanitize and runs the op and
# layer tests against it (tests/ops and tests/nn by default; pass other pytest paths to choose).
# The sanitized _core is staged with a copy of src/cpuformer in build/sanitize/python, so the developer build in
# src/cpuformer and an installed cpuformer are left alone. python itself is not instrumented, so libasan is
# preloaded, with libstdc++ (else ASan's __cxa_throw interceptor finds no real __cxa_throw and the first C++
# exception aborts); leak checking is off (CPython keeps its allocations until exit by design).
# usage: tools/sanitize.sh [pytest paths...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build/sanitize"
start=$(date +%s)
python3 -m pybind11 --cmakedir >/dev/null 2>&1 && command -v cmake >/dev/null && command -v ninja >/dev/null \
  || { echo "sanitize.sh needs pybind11, cmake and ninja: pip install pybind11 cmake ninja" >&2; exit 2; }
(
  exec 9>/tmp/cpuformer-build.lock
  flock 9
  if [ ! -f "$build/build.ninja" ]; then
    # -g1: line tables only, enough for symbolized sanitizer reports, and cheaper to build than full -g
    cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCPUFORMER_SANITIZE=ON \
      -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" \
      -Dpybind11_DIR="$(python3 -m pybind11 --cmakedir)" -DSKBUILD_PROJECT_VERSION=0.1.0.dev0 >/dev/null
  fi
  cmake --build "$build" -j"$(nproc)"
)
built=$(date +%s)
stage="$build/python"
rm -rf "$stage"
mkdir -p "$stage"
cp -r "$root/src/cpuformer" "$stage/"
rm -f "$stage"/cpuformer/_core*.so
cp "$build"/_core*.so "$stage/cpuformer/"

cd "$root"
[ $# -gt 0 ] || set -- tests/ops tests/nn
status=0
LD_PRELOAD="$(g++ -print-file-name=libasan.so) $(g++ -print-file-name=libstdc++.so)" \
ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
PYTHONPATH="$stage${PYTHONPATH:+:$PYTHONPATH}" \
  python -m pytest -q -p no:cacheprovider "$@" || status=$?
end=$(date +%s)
echo "sanitize.sh: build $((built - start)) s, tests $((end - built)) s, exit $status"
exit $status
