// gemm_int8_kernels.cc — weight-only int8: C tile (m x n, m <= MR, n <= NR) = scale[NR] * (A rows (m x k) fp32 *
// packed int8 B panel (k x NR bytes)). Each k step loads one NR-byte row of B, sign-extends it to int32 and
// converts to float in registers (AVX2: vpmovsxbd + vcvtdq2ps per 8; AVX-512: per 16), then the same FMAs as fp32.
// The per-column scale multiplies the accumulators in the store, before C (+=), bias, activation and residual.
#include "kernels/gemm_kernels.h"

#include "kernels/gemm_ukernel_tile.h"

namespace cpuformer::kernels::CPUFORMER_KERNEL_ISA {

void gemm_ukernel_f32s8(int m, int n, int64_t k, const float* a, int64_t rs_a, int64_t cs_a, const int8_t* b_panel,
                        const float* scale, float* c, int64_t ldc, bool accumulate, const GemmEpilogue* epilogue) {
  kRowsTable<int8_t>[m - 1](n, k, a, rs_a, cs_a, b_panel, scale, c, ldc, accumulate, epilogue);
}

}  // namespace cpuformer::kernels::CPUFORMER_KERNEL_ISA
