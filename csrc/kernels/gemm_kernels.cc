// gemm_kernels.cc — C tile (m x n, m <= MR, n <= NR) = A rows (m x k, lda) * packed fp32 B panel (k x NR).
// A through its strides (rows in place, or an MR-row panel gemm.cc packed; one broadcast per row and k), B from
// its packed panel (NR contiguous floats per k). The tile body is gemm_ukernel_tile.h, shared with int8 and bf16
// weights.
#include "kernels/gemm_kernels.h"

#include "kernels/gemm_ukernel_tile.h"

namespace cpuformer::kernels::CPUFORMER_KERNEL_ISA {

void gemm_ukernel(int m, int n, int64_t k, const float* a, int64_t rs_a, int64_t cs_a, const float* b_panel,
                  float* c, int64_t ldc, bool accumulate, const GemmEpilogue* epilogue) {
  kRowsTable<PanelF32>[m - 1](n, k, a, rs_a, cs_a, PanelF32{b_panel}, c, ldc, accumulate, epilogue);
}

}  // namespace cpuformer::kernels::CPUFORMER_KERNEL_ISA
