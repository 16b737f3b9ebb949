#!/usr/bin/env bash
# Checks that the AVX2/AVX-512 kernel objects export no weak (COMDAT) symbol outside their own namespace:
# such a symbol could be picked by the linker for generic code and crash a CPU without that ISA.
# Allowed outside the namespace: toolchain-made data that holds no code, so cannot carry an ISA:
# DW.ref.__gxx_personality_v0 (the unwinder's pointer to the C++ personality routine, which -fsanitize builds
# emit in every object with cleanups) and the sanitizers' own __asan_* / __ubsan_* / __odr_asan* symbols.
# usage: tools/check_isa_symbols.sh [build dir]   (default build/dev)
set -euo pipefail
build=${1:-build/dev}
toolchain_data='^DW\.ref\.__gxx_personality_v0$|^__(asan|ubsan|odr_asan)'
bad=$(for obj in "$build"/CMakeFiles/cpuformer_kernels_avx2.dir/csrc/kernels/*.o \
                 "$build"/CMakeFiles/cpuformer_kernels_avx512.dir/csrc/kernels/*.o \
                 "$build"/CMakeFiles/cpuformer_kernels_avx2_vnni.dir/csrc/kernels/vnni/*.o \
                 "$build"/CMakeFiles/cpuformer_kernels_avx512_vnni.dir/csrc/kernels/vnni/*.o \
                 "$build"/CMakeFiles/cpuformer_kernels_avx512_bf16.dir/csrc/kernels/bf16/*.o; do
  nm -C "$obj" | grep -E ' [WVu] ' | grep -vE 'cpuformer::kernels::avx(2|512)(_vnni|_bf16)?::' \
    | awk -v ok="$toolchain_data" '{ name = $0; sub(/^[0-9a-f]* *[WVu] /, "", name); if (name !~ ok) print }' \
    | sed "s|^|$(basename "$obj"): |" || true
done)
if [ -n "$bad" ]; then
  echo "ISA-specific objects leak shared weak symbols:"; echo "$bad"; exit 1
fi
echo "ok: no weak symbols outside cpuformer::kernels::avx2 / avx512 / avx2_vnni / avx512_vnni / avx512_bf16"
