// rms_norm.h — RMSNorm over the last axis (Llama, Mistral, Qwen2): y = x * rsqrt(mean(x^2) + eps) * weight, fp32.
#pragma once
#include <cstdint>

namespace cpuformer {

// x, y: [rows, cols] (y may equal x); weight: [cols].
void rms_norm(const float* x, const float* weight, float* y, int64_t rows, int64_t cols, float eps);

}  // namespace cpuformer
