// gemm_int8_kernels.cc — weight-only int8: C tile (m x n, m <= MR, n <= NR) = A rows (m x k) fp32 * B, where
// B = packed int8 panel (k x NR bytes) * scale per (group of K, column). Each k step loads one NR-byte row of B,
// sign-extends and converts it to float in registers (AVX2: vpmovsxbd + vcvtdq2ps per 8; AVX-512: per 16) and
// multiplies by its group's column scales, then the same FMAs as fp32 (gemm_ukernel_tile.h).
#include "kernels/gemm_kernels.h"

#include "kernels/gemm_ukernel_tile.h"

namespace cpuformer::kernels::CPUFORMER_KERNEL_ISA {

void gemm_ukernel_f32s8(int m, int n, int64_t k, const float* a, int64_t rs_a, int64_t cs_a, const int8_t* b_panel,
                        const float* scale, int64_t group, float* c, int64_t ldc, bool accumulate,
                        const GemmEpilogue* epilogue) {
  kRowsTable<PanelS8>[m - 1](n, k, a, rs_a, cs_a, PanelS8{b_panel, scale, group, {}}, c, ldc, accumulate, epilogue);
}

void gemm_widen_s8(const int8_t* b_panel, const float* scale, int64_t group, int64_t k, float* out) {
  PanelS8 b{b_panel, scale, group, {}};
  for (int64_t g0 = 0; g0 < k; g0 += group) {
    b.begin_group(g0 / group);
    for (int64_t p = g0; p < std::min(k, g0 + group); ++p)
      for (int v = 0; v < kVecsPerRow; ++v) b.row(p, v).store(out + p * kGemmNR + v * kW);
  }
}

}  // namespace cpuformer::kernels::CPUFORMER_KERNEL_ISA
