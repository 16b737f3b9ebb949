// swiglu.cc — one kernel call per row, rows spread over threads.
#include "ops/swiglu.h"

#include "cpu/dispatch.h"
#include "ops/rowwise.h"

namespace cpuformer {

void silu_mul(const float* gate_up, float* y, int64_t rows, int64_t cols, int64_t y_stride) {
  const kernels::KernelTable& kt = kernels_for_active_isa();
  for_each_row(rows, 20.0 * cols, [&](int64_t r) {
    const float* g = gate_up + r * 2 * cols;
    kt.silu_mul_row(g, g + cols, y + r * y_stride, cols);
  });
}

}  // namespace cpuformer
