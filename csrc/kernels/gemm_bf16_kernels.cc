// gemm_bf16_kernels.cc — weight-only bf16: C tile (m x n, m <= MR, n <= NR) = A rows (m x k) fp32 * packed bf16
// B panel (k x NR, 2 bytes per entry, interleaved by 2 k: packed_matrix.h's k2 layout). Each k step widens one
// NR-wide row of B to float in registers (one half of each 32-bit pair lane moved to the top: exact), then the same
// FMAs as fp32 (gemm_ukernel_tile.h). Half the weight bytes of fp32 and no rounding beyond the pack-time one; the
// same panels feed bf16 compute (bf16/gemm_bf16_compute.cc) on AVX512_BF16.
#include "kernels/gemm_kernels.h"

#include "kernels/gemm_ukernel_tile.h"

namespace cpuformer::kernels::CPUFORMER_KERNEL_ISA {

void gemm_ukernel_f32bf16(int m, int n, int64_t k, const float* a, int64_t rs_a, int64_t cs_a,
                          const uint16_t* b_panel, float* c, int64_t ldc, bool accumulate,
                          const GemmEpilogue* epilogue) {
  kRowsTable<PanelBF16>[m - 1](n, k, a, rs_a, cs_a, PanelBF16{b_panel}, c, ldc, accumulate, epilogue);
}

void gemm_widen_bf16(const uint16_t* b_panel, int64_t k, float* out) {
  const PanelBF16 b{b_panel};
  for (int64_t p = 0; p < k; ++p)
    for (int v = 0; v < kVecsPerRow; ++v) b.row(p, v).store(out + p * kGemmNR + v * kW);
}

}  // namespace cpuformer::kernels::CPUFORMER_KERNEL_ISA
