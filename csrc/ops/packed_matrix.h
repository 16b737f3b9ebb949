// packed_matrix.h — a weight matrix packed once into NR-column panels for the micro-kernel of one ISA, as fp32,
// as bf16, or as int8 with one scale per output column and group of K (weight-only quantization).
#pragma once
#include <cstdint>
#include <string>

#include "kernels/kernel_table.h"
#include "ops/aligned_buffer.h"

namespace cpuformer {

// How the caller's weight is laid out: nn.Linear keeps [out, in]; GPT-2's Conv1D keeps [in, out].
enum class WeightLayout { out_in, in_out };

// What the panels hold. s8: q[n, k] = round-half-even(W[n, k] / scale[n, g]) in [-127, 127], g = k / group, with
// scale[n, g] = max |W[n, group g]| / 127 (1 when that is 0), so W ~= scale[n, k / group] * q[n, k].
// s8 panels interleave 4 k per column (k4 layout: panel byte (kk / 4) * NR * 4 + j * 4 + kk % 4 holds column j's
// q at kk, K padded to a multiple of 4 with zeros), the order vpdpbusd / vpmaddubsw consume; the weight-only
// kernels pick one byte of each 32-bit lane. One layout serves both int8 paths, so weights are stored once.
// bf16: W rounded to the nearest bf16 (ties to even; NaN stays NaN), stored as its top 16 bits, interleaved by 2 k
// (k2 layout: panel element ((kk / 2) * NR + j) * 2 + kk % 2 holds column j at kk, K padded to even with a zero):
// each 32-bit lane is one column's (k even, k odd) pair, the order vdpbf16ps reads; the weight-only kernels take one
// half of each lane (even: lane << 16, odd: lane & 0xFFFF0000). One stored copy serves both bf16 paths.
enum class WeightDtype { f32, s8, bf16 };

// The default int8 group along K. Measured on all-MiniLM-L6-v2 (600 real sentences, cosine of the mean-pooled
// embedding vs fp32): one scale per output row min 0.99873, groups of 128 min 0.99925, of 64 min 0.99957;
// 64 costs 1/16 of a float per weight (scales are 6% of the int8 bytes) and one vmulps per B vector.
inline constexpr int64_t kDefaultInt8Group = 64;

// "float32" | "bf16" | "int8" (std::invalid_argument naming the supported ones otherwise), and back.
WeightDtype parse_weight_dtype(const std::string& name);
const char* weight_dtype_name(WeightDtype dtype);

class PackedMatrix {
 public:
  // weight is [n, k] (out_in) or [k, n] (in_out), row-major; bias is [n] or null. Packs for `kernels`.
  // s8 needs finite weights (std::invalid_argument otherwise); group is its K group (0: all of K, one scale per
  // output feature); other dtypes ignore it.
  // smooth (s8 only, or null): k positive factors s; the panels hold W[:, j] * s[j] and every multiply divides
  // x[:, j] by s[j] first (SmoothQuant): moves an input channel's range from the activations, quantized per row at
  // run time, into the weights, quantized per column once. Unpacked weights come back divided by s.
  PackedMatrix(const float* weight, int64_t n, int64_t k, WeightLayout layout, const float* bias,
               const kernels::KernelTable& kernels, WeightDtype dtype = WeightDtype::f32,
               int64_t group = kDefaultInt8Group, const float* smooth = nullptr);

  int64_t n() const { return n_; }  // output features
  int64_t k() const { return k_; }  // input features
  int nr() const { return nr_; }
  WeightDtype dtype() const { return dtype_; }
  // s8: k values per scale (>= 1; k itself for one scale per output feature); others: k.
  int64_t group() const { return group_; }
  int64_t num_groups() const { return k_ == 0 ? 0 : (k_ + group_ - 1) / group_; }
  int64_t num_panels() const { return (n_ + nr_ - 1) / nr_; }
  // f32 panel p: k rows of nr contiguous floats, columns past n zero-filled.
  const float* panel(int64_t p) const { return panels_.data() + p * k_ * nr_; }
  // s8 panel p: round_up(k, 4) x nr int8 in the k4 layout, columns past n zero-filled; its scales
  // [num_groups, nr] (padding: 1) and column sums of q per group [num_groups, nr] (for int8 compute's zero points).
  const int8_t* panel_s8(int64_t p) const { return panels_s8_.data() + p * k4() * nr_; }
  const float* panel_scale(int64_t p) const { return scales_.data() + p * num_groups() * nr_; }
  const float* panel_colsum(int64_t p) const { return colsums_.data() + p * num_groups() * nr_; }
  // q of column j of panel p at kk (s8)
  int8_t s8_at(int64_t p, int64_t kk, int64_t j) const { return panel_s8(p)[(kk / 4) * nr_ * 4 + j * 4 + kk % 4]; }
  int64_t k4() const { return (k_ + 3) / 4 * 4; }
  // bf16 panel p: round_up(k, 2) x nr bf16 bit patterns in the k2 layout, columns past n and k past K zero-filled.
  const uint16_t* panel_bf16(int64_t p) const { return panels_bf16_.data() + p * k2() * nr_; }
  uint16_t bf16_at(int64_t p, int64_t kk, int64_t j) const { return panel_bf16(p)[((kk / 2) * nr_ + j) * 2 + kk % 2]; }
  int64_t k2() const { return (k_ + 1) / 2 * 2; }
  // nr bias values for panel p (zero-padded), or null when there is no bias.
  const float* panel_bias(int64_t p) const { return bias_.empty() ? nullptr : bias_.data() + p * nr_; }
  bool has_bias() const { return !bias_.empty(); }
  // 1 / smooth [k], or null when the weights are not smoothed.
  const float* inv_smooth() const { return inv_smooth_.empty() ? nullptr : inv_smooth_.data(); }
  // The kernels it was packed for; every multiply with it uses these, whatever the active ISA is now.
  const kernels::KernelTable& kernels() const { return *kernels_; }
  // Unpacks back to [n, k] (out_in), for tests and for users who want the weight back (s8: q * scale in fp32,
  // bf16: the rounded values).
  void unpack_out_in(float* weight) const;
  // Rows ids[0..count) of W ([n, k] view, dequantized as the kernels see them) into out [count, k]: a tied
  // embedding looked up from the packed head instead of a second float32 table. ids already range-checked.
  void unpack_rows(const int64_t* ids, int64_t count, float* out) const;
  void unpack_bias(float* bias) const;
  // s8 only: q [n, k] (out_in) and scale [n, num_groups].
  void unpack_s8(int8_t* q, float* scale) const;
  // Bytes the panels, scales and bias take (what a forward pass streams).
  int64_t packed_bytes() const;

 private:
  void pack_f32(const float* weight, WeightLayout layout);
  void pack_s8(const float* weight, WeightLayout layout);
  void pack_bf16(const float* weight, WeightLayout layout);
  // B's element (col, kk) from the caller's weight
  float at(const float* weight, WeightLayout layout, int64_t col, int64_t kk) const {
    const float w = layout == WeightLayout::out_in ? weight[col * k_ + kk] : weight[kk * n_ + col];
    return smooth_ ? w * smooth_[kk] : w;
  }

  int64_t n_, k_;
  int nr_;
  WeightDtype dtype_;
  int64_t group_;
  const kernels::KernelTable* kernels_;
  const float* smooth_ = nullptr;  // during packing only
  AlignedBuffer panels_;                  // f32
  AlignedArray<int8_t> panels_s8_;        // s8
  AlignedBuffer scales_;                  // s8: num_panels * num_groups * nr
  AlignedBuffer colsums_;                 // s8: same shape, sum of q over each group's k
  AlignedArray<uint16_t> panels_bf16_;    // bf16
  AlignedBuffer bias_;
  AlignedBuffer inv_smooth_;  // s8 with smoothing: 1 / smooth[k]
};

}  // namespace cpuformer
