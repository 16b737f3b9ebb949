// gemm.h — C = act(A * W^T + bias) + residual with W pre-packed, parallel over tiles of C.
#pragma once
#include <cstdint>

#include "kernels/kernel_table.h"
#include "ops/packed_matrix.h"

namespace cpuformer {

// a: [m, k] rows lda apart; c: [m, n] rows ldc apart (must not overlap a); residual: [m, n] rows ldr apart,
// or null. Runs on the kernels `b` was packed for.
void gemm_packed(const float* a, int64_t m, int64_t lda, const PackedMatrix& b, float* c, int64_t ldc,
                 kernels::Activation activation = kernels::Activation::none, const float* residual = nullptr,
                 int64_t ldr = 0);

}  // namespace cpuformer
