// recurrent_gate_packing.cc — reorders torch's gate row blocks ([i; f; g; o], [r; z; n], ...) into unit blocks,
// then packs them once.
#include "ops/recurrent_gate_packing.h"

#include <cstring>

#include "ops/aligned_buffer.h"

namespace cpuformer {
namespace {

void interleave_gate_rows(const float* w, int gates, int64_t hidden, int64_t k, int64_t units, int64_t blocks,
                          float* dst) {
  for (int64_t b = 0; b < blocks; ++b)
    for (int64_t g = 0; g < gates; ++g)
      for (int64_t u = 0; u < units; ++u) {
        const int64_t j = b * units + u;
        float* row = dst + ((b * gates + g) * units + u) * k;
        if (j < hidden) std::memcpy(row, w + (g * hidden + j) * k, sizeof(float) * k);
        else std::memset(row, 0, sizeof(float) * k);
      }
}

void interleave_gate_bias(const float* b_a, const float* b_b, int gates, int64_t hidden, int64_t units,
                          int64_t blocks, float* dst) {
  for (int64_t b = 0; b < blocks; ++b)
    for (int64_t g = 0; g < gates; ++g)
      for (int64_t u = 0; u < units; ++u) {
        const int64_t j = b * units + u;
        float v = 0.0f;
        if (j < hidden) v = (b_a ? b_a[g * hidden + j] : 0.0f) + (b_b ? b_b[g * hidden + j] : 0.0f);
        dst[(b * gates + g) * units + u] = v;
      }
}

}  // namespace

std::unique_ptr<PackedMatrix> recurrent_pack_gates(const float* w, const float* b_a, const float* b_b, int gates,
                                                   int64_t hidden, int64_t k, int64_t units, int64_t blocks,
                                                   const kernels::KernelTable& kernels, WeightDtype dtype) {
  const int64_t rows = gates * units * blocks;
  AlignedBuffer w_inter(static_cast<size_t>(rows * k));
  interleave_gate_rows(w, gates, hidden, k, units, blocks, w_inter.data());
  AlignedBuffer b_inter;
  if (b_a || b_b) {
    b_inter = AlignedBuffer(static_cast<size_t>(rows));
    interleave_gate_bias(b_a, b_b, gates, hidden, units, blocks, b_inter.data());
  }
  return std::make_unique<PackedMatrix>(w_inter.data(), rows, k, WeightLayout::out_in,
                                        b_inter.empty() ? nullptr : b_inter.data(), kernels, dtype);
}

}  // namespace cpuformer
