// packed_matrix.cc — packs W into the B-panel layout the micro-kernel streams: panel p holds columns
// [p*NR, p*NR+NR) of B = W^T, one NR-element row per k, so the kernel reads B strictly sequentially.
// int8 and bf16 panels hold the same columns with one or two bytes per element, interleaved by 4 or 2 k (the order
// the integer / bf16 dot-product instructions read); int8's scales sit beside them.
#include "ops/packed_matrix.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "ops/rowwise.h"
#include "ops/threading.h"

namespace cpuformer {

WeightDtype parse_weight_dtype(const std::string& name) {
  if (name == "float32") return WeightDtype::f32;
  if (name == "bf16") return WeightDtype::bf16;
  if (name == "int8") return WeightDtype::s8;
  throw std::invalid_argument("dtype must be one of 'float32', 'bf16', 'int8'; got '" + name + "'");
}

const char* weight_dtype_name(WeightDtype dtype) {
  switch (dtype) {
    case WeightDtype::s8: return "int8";
    case WeightDtype::bf16: return "bf16";
    default: return "float32";
  }
}

PackedMatrix::PackedMatrix(const float* weight, int64_t n, int64_t k, WeightLayout layout, const float* bias,
                           const kernels::KernelTable& kernels, WeightDtype dtype, int64_t group, const float* smooth)
    : n_(n), k_(k), nr_(kernels.gemm_nr), dtype_(dtype), kernels_(&kernels) {
  if (group < 0) throw std::invalid_argument("int8 group size must be >= 0 (0: one scale per output feature)");
  if (smooth) {
    if (dtype != WeightDtype::s8) throw std::invalid_argument("smooth needs dtype 'int8'");
    inv_smooth_ = AlignedBuffer(static_cast<size_t>(std::max<int64_t>(k, 1)));
    for (int64_t j = 0; j < k; ++j) {
      if (!(smooth[j] > 0.0f) || !std::isfinite(smooth[j]) || !std::isfinite(1.0f / smooth[j]))
        throw std::invalid_argument("smooth must hold positive finite factors; input feature " + std::to_string(j) +
                                    " has " + std::to_string(smooth[j]));
      inv_smooth_.data()[j] = 1.0f / smooth[j];
    }
    smooth_ = smooth;
  }
  group_ = dtype == WeightDtype::s8 && group > 0 ? std::min(group, std::max<int64_t>(k, 1)) : std::max<int64_t>(k, 1);
  if (dtype == WeightDtype::s8)
    pack_s8(weight, layout);
  else if (dtype == WeightDtype::bf16)
    pack_bf16(weight, layout);
  else
    pack_f32(weight, layout);
  smooth_ = nullptr;
  if (bias) {
    bias_ = AlignedBuffer(static_cast<size_t>(num_panels() * nr_));
    bias_.zero();
    for (int64_t j = 0; j < n; ++j) bias_.data()[j] = bias[j];
  }
}

// Writes value(col, kk) into NR-column panels (panel p holds columns p*nr .. p*nr+nr-1, k rows of nr values);
// columns past n are padding and get value's answer for them (0).
namespace {

template <class T, class Value>
void fill_panels(T* out, int64_t panels, int64_t k, int nr, int threads, Value value) {
  const TeamLease lease(threads);
  run_tasks(lease, panels, [&](int64_t p, int) {
    T* dst = out + p * k * nr;
    for (int64_t kk = 0; kk < k; ++kk)
      for (int j = 0; j < nr; ++j) dst[kk * nr + j] = value(p * nr + j, kk);
  });
}

}  // namespace

void PackedMatrix::pack_f32(const float* weight, WeightLayout layout) {
  const int64_t panels = num_panels(), n = n_, k = k_;
  panels_ = AlignedBuffer(static_cast<size_t>(panels * nr_ * k));
  fill_panels(panels_.data(), panels, k, nr_, threads_for_work(static_cast<double>(n) * k),
              [&](int64_t col, int64_t kk) {
                if (col >= n) return 0.0f;
                return layout == WeightLayout::out_in ? weight[col * k + kk] : weight[kk * n + col];
              });
}

void PackedMatrix::pack_s8(const float* weight, WeightLayout layout) {
  const int64_t panels = num_panels(), n = n_, k = k_, groups = num_groups(), group = group_;
  const int nr = nr_;
  // Scales [panels * nr, groups]: max |W[col, group g]| / 127 in fp32. A group whose scale is 0 (all zeros,
  // or a max so small that /127 underflows) gets scale 1, so it quantizes to zeros without dividing by 0.
  // Padding columns get 1 too. Kept column-major here, then laid out per panel as [groups, nr].
  std::vector<float> col_scale(static_cast<size_t>(panels * nr * groups), 0.0f);
  int64_t bad = -1;  // first output feature holding an inf or NaN
  auto take = [&](int64_t col, int64_t kk, float w) {
    if (!std::isfinite(w) && (bad < 0 || col < bad)) bad = col;
    float& s = col_scale[col * groups + kk / group];
    s = std::max(s, std::fabs(w));
  };
  if (layout == WeightLayout::out_in) {
    for (int64_t col = 0; col < n; ++col)
      for (int64_t kk = 0; kk < k; ++kk) take(col, kk, at(weight, layout, col, kk));
  } else {
    for (int64_t kk = 0; kk < k; ++kk)
      for (int64_t col = 0; col < n; ++col) take(col, kk, at(weight, layout, col, kk));
  }
  if (bad >= 0)
    throw std::invalid_argument("int8 quantization needs finite weights; output feature " + std::to_string(bad) +
                                " has an inf or NaN");
  for (float& s : col_scale) {
    s = s / 127.0f;
    if (s == 0.0f) s = 1.0f;
  }
  scales_ = AlignedBuffer(static_cast<size_t>(panels * groups * nr));
  for (int64_t col = 0; col < panels * nr; ++col)
    for (int64_t g = 0; g < groups; ++g)
      scales_.data()[((col / nr) * groups + g) * nr + col % nr] = col_scale[col * groups + g];
  const int64_t k4 = this->k4();
  panels_s8_ = AlignedArray<int8_t>(static_cast<size_t>(panels * nr * k4));
  colsums_ = AlignedBuffer(static_cast<size_t>(panels * groups * nr));
  run_tasks(TeamLease(threads_for_work(static_cast<double>(n) * k)), panels, [&](int64_t p, int) {
    int8_t* dst = panels_s8_.data() + p * k4 * nr;
    float* colsum = colsums_.data() + p * groups * nr;
    std::fill(colsum, colsum + groups * nr, 0.0f);
    for (int64_t kk = 0; kk < k4; ++kk)
      for (int j = 0; j < nr; ++j) {
        const int64_t col = p * nr + j;
        int8_t q = 0;
        if (col < n && kk < k) {
          // Division (not a reciprocal multiply) and nearbyint in the default round-to-nearest-even mode,
          // so the result equals numpy's np.rint(W / scale) in float32.
          const float s = col_scale[col * groups + kk / group];
          q = static_cast<int8_t>(std::min(127.0f, std::max(-127.0f, std::nearbyint(at(weight, layout, col, kk) / s))));
          colsum[(kk / group) * nr + j] += q;  // exact: |sum| <= 127 * group fits a float's 24 bits for any group
        }
        dst[(kk / 4) * nr * 4 + j * 4 + kk % 4] = q;
      }
  });
}

namespace {

// fp32 -> bf16 bits, round to nearest, ties to even; a NaN stays a (quiet) NaN instead of rounding to inf.
uint16_t to_bf16(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  if (std::isnan(x)) return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  bits += 0x7FFFu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

float from_bf16(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float x;
  std::memcpy(&x, &bits, sizeof x);
  return x;
}

}  // namespace

void PackedMatrix::pack_bf16(const float* weight, WeightLayout layout) {
  const int64_t panels = num_panels(), n = n_, k = k_, k2 = this->k2();
  const int nr = nr_;
  panels_bf16_ = AlignedArray<uint16_t>(static_cast<size_t>(panels * nr * k2));
  run_tasks(TeamLease(threads_for_work(static_cast<double>(n) * k)), panels, [&](int64_t p, int) {
    uint16_t* dst = panels_bf16_.data() + p * k2 * nr;
    for (int64_t kk = 0; kk < k2; ++kk)
      for (int j = 0; j < nr; ++j) {
        const int64_t col = p * nr + j;
        dst[((kk / 2) * nr + j) * 2 + kk % 2] = col < n && kk < k ? to_bf16(at(weight, layout, col, kk)) : uint16_t{0};
      }
  });
}

void PackedMatrix::unpack_out_in(float* weight) const {
  for (int64_t col = 0; col < n_; ++col) {
    const int64_t p = col / nr_, j = col % nr_;
    if (dtype_ == WeightDtype::s8) {
      const float* s = panel_scale(p) + j;
      const float* inv = inv_smooth();
      for (int64_t kk = 0; kk < k_; ++kk)
        weight[col * k_ + kk] = static_cast<float>(s8_at(p, kk, j)) * s[(kk / group_) * nr_] * (inv ? inv[kk] : 1.0f);
    } else if (dtype_ == WeightDtype::bf16) {
      for (int64_t kk = 0; kk < k_; ++kk) weight[col * k_ + kk] = from_bf16(bf16_at(p, kk, j));
    } else {
      const float* src = panel(p) + j;
      for (int64_t kk = 0; kk < k_; ++kk) weight[col * k_ + kk] = src[kk * nr_];
    }
  }
}

void PackedMatrix::unpack_rows(const int64_t* ids, int64_t count, float* out) const {
  // A row of W is one column of a panel: k entries nr apart. Per row that is a strided walk over k * nr
  // elements, cheap next to the forward pass that follows a lookup.
  for_each_row(count, 4.0 * k_ * nr_, [&](int64_t r) {
    const int64_t col = ids[r], p = col / nr_, j = col % nr_;
    float* dst = out + r * k_;
    if (dtype_ == WeightDtype::s8) {
      const float* s = panel_scale(p) + j;
      const float* inv = inv_smooth();
      for (int64_t kk = 0; kk < k_; ++kk)
        dst[kk] = static_cast<float>(s8_at(p, kk, j)) * s[(kk / group_) * nr_] * (inv ? inv[kk] : 1.0f);
    } else if (dtype_ == WeightDtype::bf16) {
      for (int64_t kk = 0; kk < k_; ++kk) dst[kk] = from_bf16(bf16_at(p, kk, j));
    } else {
      const float* src = panel(p) + j;
      for (int64_t kk = 0; kk < k_; ++kk) dst[kk] = src[kk * nr_];
    }
  });
}

void PackedMatrix::unpack_s8(int8_t* q, float* scale) const {
  if (dtype_ != WeightDtype::s8) throw std::invalid_argument("unpack_s8 needs an int8 PackedMatrix");
  for (int64_t col = 0; col < n_; ++col) {
    const int64_t p = col / nr_, j = col % nr_;
    for (int64_t kk = 0; kk < k_; ++kk) q[col * k_ + kk] = s8_at(p, kk, j);
    for (int64_t g = 0; g < num_groups(); ++g) scale[col * num_groups() + g] = panel_scale(p)[g * nr_ + j];
  }
}

int64_t PackedMatrix::packed_bytes() const {
  return static_cast<int64_t>(panels_.size() * sizeof(float) + panels_s8_.size() + scales_.size() * sizeof(float) +
                              colsums_.size() * sizeof(float) +
                              panels_bf16_.size() * sizeof(uint16_t) + bias_.size() * sizeof(float));
}

void PackedMatrix::unpack_bias(float* bias) const {
  for (int64_t j = 0; j < n_; ++j) bias[j] = bias_.empty() ? 0.0f : bias_.data()[j];
}

}  // namespace cpuformer
