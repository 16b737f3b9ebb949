// packed_matrix.h — a weight matrix packed once into NR-column panels for the micro-kernel of one ISA, as fp32
// or as int8 with one scale per output column (weight-only quantization).
#pragma once
#include <cstdint>

#include "kernels/kernel_table.h"
#include "ops/aligned_buffer.h"

namespace cpuformer {

// How the caller's weight is laid out: nn.Linear keeps [out, in]; GPT-2's Conv1D keeps [in, out].
enum class WeightLayout { out_in, in_out };

// What the panels hold. s8: q[n, k] = round-half-even(W[n, k] / scale[n]) in [-127, 127] with
// scale[n] = max_k |W[n, k]| / 127 (1 for an all-zero row), so W ~= scale[n] * q[n, k].
enum class WeightDtype { f32, s8 };

class PackedMatrix {
 public:
  // weight is [n, k] (out_in) or [k, n] (in_out), row-major; bias is [n] or null. Packs for `kernels`.
  // s8 needs finite weights (std::invalid_argument otherwise).
  PackedMatrix(const float* weight, int64_t n, int64_t k, WeightLayout layout, const float* bias,
               const kernels::KernelTable& kernels, WeightDtype dtype = WeightDtype::f32);

  int64_t n() const { return n_; }  // output features
  int64_t k() const { return k_; }  // input features
  int nr() const { return nr_; }
  WeightDtype dtype() const { return dtype_; }
  int64_t num_panels() const { return (n_ + nr_ - 1) / nr_; }
  // f32 panel p: k rows of nr contiguous floats, columns past n zero-filled.
  const float* panel(int64_t p) const { return panels_.data() + p * k_ * nr_; }
  // s8 panel p: k rows of nr int8, columns past n zero-filled; its nr scales (padding columns have scale 1).
  const int8_t* panel_s8(int64_t p) const { return panels_s8_.data() + p * k_ * nr_; }
  const float* panel_scale(int64_t p) const { return scales_.data() + p * nr_; }
  // nr bias values for panel p (zero-padded), or null when there is no bias.
  const float* panel_bias(int64_t p) const { return bias_.empty() ? nullptr : bias_.data() + p * nr_; }
  bool has_bias() const { return !bias_.empty(); }
  // The kernels it was packed for; every multiply with it uses these, whatever the active ISA is now.
  const kernels::KernelTable& kernels() const { return *kernels_; }
  // Unpacks back to [n, k] (out_in), for tests and for users who want the weight back (s8: q * scale in fp32).
  void unpack_out_in(float* weight) const;
  void unpack_bias(float* bias) const;
  // s8 only: q [n, k] (out_in) and scale [n].
  void unpack_s8(int8_t* q, float* scale) const;

 private:
  void pack_f32(const float* weight, WeightLayout layout);
  void pack_s8(const float* weight, WeightLayout layout);

  int64_t n_, k_;
  int nr_;
  WeightDtype dtype_;
  const kernels::KernelTable* kernels_;
  AlignedBuffer panels_;             // f32
  AlignedArray<int8_t> panels_s8_;  // s8
  AlignedBuffer scales_;             // s8: num_panels * nr
  AlignedBuffer bias_;
};

}  // namespace cpuformer
