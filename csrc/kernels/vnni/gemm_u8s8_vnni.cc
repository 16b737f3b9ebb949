// gemm_u8s8_vnni.cc — the VNNI levels (avx2_vnni, avx512_vnni): the base ISA's kernel table with the int8 compute
// kernel on vpdpbusd. Compiled twice by CMakeLists.txt, with CPUFORMER_KERNEL_ISA the level's name,
// CPUFORMER_KERNEL_ISA_<BASE> picking the vectors, CPUFORMER_KERNEL_BASE the base table's namespace and
// CPUFORMER_KERNEL_VNNI the dot product. Nothing else differs, so the rest of the table is the base's own.
#include "kernels/gemm_u8s8_tile.h"

#define CPUFORMER_VNNI_STRINGIFY_INNER(x) #x
#define CPUFORMER_VNNI_STRINGIFY(x) CPUFORMER_VNNI_STRINGIFY_INNER(x)

namespace cpuformer::kernels::CPUFORMER_KERNEL_ISA {

const KernelTable& kernel_table() {
  static const KernelTable table = [] {
    KernelTable t = CPUFORMER_KERNEL_BASE::kernel_table();
    t.isa_name = CPUFORMER_VNNI_STRINGIFY(CPUFORMER_KERNEL_ISA);
    t.u8s8_mr = kU8S8MR;
    t.u8s8_nibbles = kU8S8Nibbles;
    t.u8s8_by_default = true;
    t.u8s8_min_rows = 1;
    t.gemm_ukernel_u8s8 = &gemm_ukernel_u8s8;
    return t;
  }();
  return table;
}

}  // namespace cpuformer::kernels::CPUFORMER_KERNEL_ISA
