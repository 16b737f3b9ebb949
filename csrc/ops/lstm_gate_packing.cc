// lstm_gate_packing.cc — reorders torch's [i; f; g; o] gate rows into unit blocks, then packs them once.
#include "ops/lstm_gate_packing.h"

#include <cstring>

#include "ops/aligned_buffer.h"

namespace cpuformer {
namespace {

void interleave_gate_rows(const float* w, int64_t hidden, int64_t k, int64_t units, int64_t blocks, float* dst) {
  for (int64_t b = 0; b < blocks; ++b)
    for (int64_t g = 0; g < 4; ++g)
      for (int64_t u = 0; u < units; ++u) {
        const int64_t j = b * units + u;
        float* row = dst + ((b * 4 + g) * units + u) * k;
        if (j < hidden) std::memcpy(row, w + (g * hidden + j) * k, sizeof(float) * k);
        else std::memset(row, 0, sizeof(float) * k);
      }
}

void interleave_gate_bias(const float* b_ih, const float* b_hh, int64_t hidden, int64_t units, int64_t blocks,
                          float* dst) {
  for (int64_t b = 0; b < blocks; ++b)
    for (int64_t g = 0; g < 4; ++g)
      for (int64_t u = 0; u < units; ++u) {
        const int64_t j = b * units + u;
        float v = 0.0f;
        if (j < hidden) v = (b_ih ? b_ih[g * hidden + j] : 0.0f) + (b_hh ? b_hh[g * hidden + j] : 0.0f);
        dst[(b * 4 + g) * units + u] = v;
      }
}

}  // namespace

std::unique_ptr<PackedMatrix> lstm_pack_gates(const float* w, const float* b_ih, const float* b_hh, int64_t hidden,
                                              int64_t k, int64_t units, int64_t blocks,
                                              const kernels::KernelTable& kernels, WeightDtype dtype) {
  const int64_t rows = 4 * units * blocks;
  AlignedBuffer w_inter(static_cast<size_t>(rows * k));
  interleave_gate_rows(w, hidden, k, units, blocks, w_inter.data());
  AlignedBuffer b_inter;
  if (b_ih || b_hh) {
    b_inter = AlignedBuffer(static_cast<size_t>(rows));
    interleave_gate_bias(b_ih, b_hh, hidden, units, blocks, b_inter.data());
  }
  return std::make_unique<PackedMatrix>(w_inter.data(), rows, k, WeightLayout::out_in,
                                        b_inter.empty() ? nullptr : b_inter.data(), kernels, dtype);
}

}  // namespace cpuformer
