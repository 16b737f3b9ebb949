// elementwise.h — row-wise ops on contiguous float32 data: activation, layer norm, softmax.
#pragma once
#include <cstdint>
#include <string>

#include "kernels/kernel_table.h"

namespace cpuformer {

// Parses the canonical names "none" | "gelu" | "gelu_tanh" | "relu" (no aliases: Hugging Face names such as
// gelu_new are mapped in Python, cpuformer.layers.fused_activation); std::invalid_argument listing exactly these.
kernels::Activation parse_activation(const std::string& name);

void activation(const float* x, float* y, int64_t n, kernels::Activation act);
// x, y: [rows, cols]; gamma, beta: [cols].
void layer_norm(const float* x, const float* gamma, const float* beta, float* y, int64_t rows, int64_t cols,
                float eps);
// Softmax over the last axis of x: [rows, cols]. A row of all -inf gives zeros.
void softmax(const float* x, float* y, int64_t rows, int64_t cols);

}  // namespace cpuformer
