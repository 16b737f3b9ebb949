// llama_kernels.h — the row kernels of Llama-family decoders: RMSNorm, rotary embeddings (rotate-half), and the
// SwiGLU gate silu(gate) * up. Callers parallelise over rows.
#pragma once
#include "kernels/kernel_table.h"

namespace cpuformer::kernels::CPUFORMER_KERNEL_ISA {

void rms_norm_row(const float* x, const float* weight, float* y, int64_t n, float eps);
void rope_rotate_half(float* x, const float* cos, const float* sin, int64_t half);
void silu_mul_row(const float* gate, const float* up, float* y, int64_t n);

}  // namespace cpuformer::kernels::CPUFORMER_KERNEL_ISA
