// elementwise_kernels.h — row-wise kernels: activations, layer norm, softmax, and small vector helpers.
#pragma once
#include "kernels/kernel_table.h"

namespace cpuformer::kernels::CPUFORMER_KERNEL_ISA {

void activation(const float* x, float* y, int64_t n, Activation act);
void layer_norm_row(const float* x, const float* gamma, const float* beta, float* y, int64_t n, float eps);
void softmax_row(const float* x, float* y, int64_t n);
void add_inplace(float* y, const float* x, int64_t n);
void scale_inplace(float* y, float s, int64_t n);
float dot(const float* a, const float* b, int64_t n);
void axpy(float* y, float s, const float* x, int64_t n);
int64_t select_greater_or_nan(const float* x, int64_t n, float threshold, int64_t* indices);

}  // namespace cpuformer::kernels::CPUFORMER_KERNEL_ISA
