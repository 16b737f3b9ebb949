// lstm_kernels.h — the fused LSTM cell update (gate nonlinearities + state update) for the ISA being compiled.
#pragma once
#include <cstdint>

#include "kernels/simd.h"

namespace cpuformer::kernels::CPUFORMER_KERNEL_ISA {

// gates: pre-activations of n units for i, f, g, o (torch's order) at gates + {0, 1, 2, 3} * gate_stride;
// c: [n] cell state, updated in place to f*c + i*g; h: [n] = o * tanh(c_new). i, f, o use sigmoid, g tanh.
void lstm_gates(const float* gates, int64_t gate_stride, float* c, float* h, int64_t n);

}  // namespace cpuformer::kernels::CPUFORMER_KERNEL_ISA
