// lstm_kernels.h — the fused LSTM / GRU / RNN cell updates (gate nonlinearities + state update) for the ISA being
// compiled.
#pragma once
#include <cstdint>

#include "kernels/simd.h"

namespace cpuformer::kernels::CPUFORMER_KERNEL_ISA {

// gates: pre-activations of n units for i, f, g, o (torch's order) at gates + {0, 1, 2, 3} * gate_stride;
// c: [n] cell state, updated in place to f*c + i*g; h: [n] = o * tanh(c_new). i, f, o use sigmoid, g tanh.
void lstm_gates(const float* gates, int64_t gate_stride, float* c, float* h, int64_t n);

// GRU cell for n units (torch's order r, z, n): gi = input part with b_ih, gh = hidden part with b_hh, each three
// [n] rows gate_stride apart; h[n] = (1 - z) * tanh(gi_n + r * gh_n) + z * h_prev (h must not alias h_prev).
void gru_gates(const float* gi, const float* gh, int64_t gate_stride, const float* h_prev, float* h, int64_t n);

// Elman RNN cell for n units: h[n] = tanh(pre[n]) (relu(pre[n]) when relu); pre may equal h.
void rnn_gates(const float* pre, float* h, int64_t n, bool relu);

}  // namespace cpuformer::kernels::CPUFORMER_KERNEL_ISA
