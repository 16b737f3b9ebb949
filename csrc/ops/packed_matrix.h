// packed_matrix.h — a weight matrix packed once into NR-column panels for the micro-kernel of one ISA.
#pragma once
#include <cstdint>

#include "kernels/kernel_table.h"
#include "ops/aligned_buffer.h"

namespace cpuformer {

// How the caller's weight is laid out: nn.Linear keeps [out, in]; GPT-2's Conv1D keeps [in, out].
enum class WeightLayout { out_in, in_out };

class PackedMatrix {
 public:
  // weight is [n, k] (out_in) or [k, n] (in_out), row-major; bias is [n] or null. Packs for `kernels`.
  PackedMatrix(const float* weight, int64_t n, int64_t k, WeightLayout layout, const float* bias,
               const kernels::KernelTable& kernels);

  int64_t n() const { return n_; }  // output features
  int64_t k() const { return k_; }  // input features
  int nr() const { return nr_; }
  int64_t num_panels() const { return (n_ + nr_ - 1) / nr_; }
  // Panel p: k rows of nr contiguous floats, columns past n zero-filled.
  const float* panel(int64_t p) const { return panels_.data() + p * k_ * nr_; }
  // nr bias values for panel p (zero-padded), or null when there is no bias.
  const float* panel_bias(int64_t p) const { return bias_.empty() ? nullptr : bias_.data() + p * nr_; }
  bool has_bias() const { return !bias_.empty(); }
  // The kernels it was packed for; every multiply with it uses these, whatever the active ISA is now.
  const kernels::KernelTable& kernels() const { return *kernels_; }
  // Unpacks back to [n, k] (out_in), for tests and for users who want the weight back.
  void unpack_out_in(float* weight) const;
  void unpack_bias(float* bias) const;

 private:
  int64_t n_, k_;
  int nr_;
  const kernels::KernelTable* kernels_;
  AlignedBuffer panels_;
  AlignedBuffer bias_;
};

}  // namespace cpuformer
