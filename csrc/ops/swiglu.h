// swiglu.h — the SwiGLU gate of Llama-family MLPs on the output of one packed [gate; up] GEMM.
#pragma once
#include <cstdint>

namespace cpuformer {

// gate_up: [rows, 2 * cols] (gate in columns [0, cols), up in [cols, 2 * cols)) -> y [rows, cols] =
// silu(gate) * up. y may be the gate half of gate_up itself (y == gate_up with y_stride == 2 * cols).
void silu_mul(const float* gate_up, float* y, int64_t rows, int64_t cols, int64_t y_stride);

}  // namespace cpuformer
