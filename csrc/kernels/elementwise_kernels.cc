// elementwise_kernels.cc — x, y are (n,) rows; callers parallelise over rows.
#include "kernels/elementwise_kernels.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/vec_math.h"

namespace cpuformer::kernels::CPUFORMER_KERNEL_ISA {
namespace {
constexpr int kW = Vec::width;

// y = f(x) lane by lane, tail through partial loads.
template <class F>
inline void map_row(const float* x, float* y, int64_t n, F f) {
  int64_t i = 0;
  for (; i + kW <= n; i += kW) f(Vec::load(x + i)).store(y + i);
  if (i < n) f(Vec::load_partial(x + i, n - i)).store_partial(y + i, n - i);
}

inline float sum_row(const float* x, int64_t n) {
  Vec s0 = Vec::zero(), s1 = Vec::zero();
  int64_t i = 0;
  for (; i + 2 * kW <= n; i += 2 * kW) {
    s0 = s0 + Vec::load(x + i);
    s1 = s1 + Vec::load(x + i + kW);
  }
  for (; i + kW <= n; i += kW) s0 = s0 + Vec::load(x + i);
  if (i < n) s1 = s1 + Vec::load_partial(x + i, n - i);
  return (s0 + s1).reduce_add();
}
}  // namespace

void activation(const float* x, float* y, int64_t n, Activation act) {
  switch (act) {
    case Activation::gelu: map_row(x, y, n, [](Vec v) { return vec_gelu(v); }); break;
    case Activation::gelu_tanh: map_row(x, y, n, [](Vec v) { return vec_gelu_tanh(v); }); break;
    case Activation::relu: map_row(x, y, n, [](Vec v) { return vec_relu(v); }); break;
    case Activation::none: map_row(x, y, n, [](Vec v) { return v; }); break;
  }
}

namespace {
// Sum and largest |x| of one row in one pass (the max costs nothing next to the loads). A NaN may or may not
// reach the max; it reaches the sum, which is all layer_norm needs.
inline float sum_and_abs_max(const float* x, int64_t n, float* abs_max) {
  Vec s0 = Vec::zero(), s1 = Vec::zero(), m = Vec::zero();
  int64_t i = 0;
  for (; i + 2 * kW <= n; i += 2 * kW) {
    const Vec a = Vec::load(x + i), b = Vec::load(x + i + kW);
    s0 = s0 + a;
    s1 = s1 + b;
    m = max(max(m, a.abs()), b.abs());
  }
  for (; i + kW <= n; i += kW) {
    const Vec a = Vec::load(x + i);
    s0 = s0 + a;
    m = max(m, a.abs());
  }
  if (i < n) {
    const Vec a = Vec::load_partial(x + i, n - i);
    s1 = s1 + a;
    m = max(m, a.abs());
  }
  *abs_max = m.reduce_max();
  return (s0 + s1).reduce_add();
}

// Rows whose largest |x| lies outside [2^-40, 2^40] are normalised as x * s with s a power of two (exact) that
// brings it near 1: squares of 1e30-scale values would overflow to inf (and the row become all beta), those of
// 1e-30-scale values underflow to 0 (a division by zero when eps = 0). The plain path below is the same math
// with s = 1.
constexpr float kLayerNormSafeMax = 1099511627776.0f;       // 2^40: n * (2 * 2^40)^2 stays far below FLT_MAX
constexpr float kLayerNormSafeMin = 9.094947017729282e-13f;  // 2^-40

void layer_norm_row_scaled(const float* x, const float* gamma, const float* beta, float* y, int64_t n, float eps,
                           float abs_max) {
  // |x * s| < 2; a subnormal abs_max is scaled by 2^126 at most (2^127 and up are not floats).
  const float s = std::ldexp(1.0f, std::min(126, -std::ilogb(abs_max)));
  const Vec vs = Vec::broadcast(s);
  Vec acc = Vec::zero();
  int64_t i = 0;
  for (; i + kW <= n; i += kW) acc = fma(Vec::load(x + i), vs, acc);
  float sum = acc.reduce_add();
  for (; i < n; ++i) sum += x[i] * s;
  const float mean = sum / static_cast<float>(n);  // of x * s
  const Vec vmean = Vec::broadcast(mean);
  acc = Vec::zero();
  for (i = 0; i + kW <= n; i += kW) {
    const Vec d = fma(Vec::load(x + i), vs, Vec::zero() - vmean);
    acc = fma(d, d, acc);
  }
  float var = acc.reduce_add();
  for (; i < n; ++i) var += (x[i] * s - mean) * (x[i] * s - mean);
  // 1 / sqrt(var_x + eps) with var_x = var / s^2, in double (neither term fits float's range for every s);
  // times 1 / s for the scaled deviations, which lands back near 1 / sqrt(var). When the deviations are tiny next
  // to the values (a nearly constant row of 1e38s) that product passes FLT_MAX: then apply 1 / s and the inverse
  // deviation one after the other (an exact 0 deviation stays 0 instead of 0 * inf).
  const double var_x = static_cast<double>(var) / n / (static_cast<double>(s) * s);
  const double inv_std = 1.0 / std::sqrt(var_x + eps);
  const bool fits = inv_std / s <= std::numeric_limits<float>::max();  // false for NaN and inf too
  const Vec mult = Vec::broadcast(fits ? static_cast<float>(inv_std / s) : 1.0f / s);
  const Vec mult2 = Vec::broadcast(fits ? 1.0f : static_cast<float>(inv_std));
  for (i = 0; i + kW <= n; i += kW) {
    const Vec v = fma(Vec::load(x + i), vs, Vec::zero() - vmean) * mult * mult2;
    fma(v, Vec::load(gamma + i), Vec::load(beta + i)).store(y + i);
  }
  if (i < n) {
    const int64_t r = n - i;
    const Vec v = fma(Vec::load_partial(x + i, r), vs, Vec::zero() - vmean) * mult * mult2;
    fma(v, Vec::load_partial(gamma + i, r), Vec::load_partial(beta + i, r)).store_partial(y + i, r);
  }
}
}  // namespace

void layer_norm_row(const float* x, const float* gamma, const float* beta, float* y, int64_t n, float eps) {
  float abs_max;
  const float total = sum_and_abs_max(x, n, &abs_max);
  // inf (the row then holds inf: NaN everywhere, as the reference) and NaN take the plain path.
  if ((abs_max > kLayerNormSafeMax || (abs_max < kLayerNormSafeMin && abs_max > 0.0f)) &&
      abs_max != std::numeric_limits<float>::infinity())
    return layer_norm_row_scaled(x, gamma, beta, y, n, eps, abs_max);
  // Two passes (mean, then centred variance) to avoid the E[x^2] - E[x]^2 cancellation.
  const float mean = total / static_cast<float>(n);
  const Vec vmean = Vec::broadcast(mean);
  Vec acc = Vec::zero();
  int64_t i = 0;
  for (; i + kW <= n; i += kW) {
    Vec d = Vec::load(x + i) - vmean;
    acc = fma(d, d, acc);
  }
  float var = acc.reduce_add();
  for (; i < n; ++i) var += (x[i] - mean) * (x[i] - mean);
  var /= static_cast<float>(n);
  const Vec inv_std = Vec::broadcast(1.0f / std::sqrt(var + eps));
  for (i = 0; i + kW <= n; i += kW) {
    Vec v = (Vec::load(x + i) - vmean) * inv_std;
    fma(v, Vec::load(gamma + i), Vec::load(beta + i)).store(y + i);
  }
  if (i < n) {
    int64_t r = n - i;
    Vec v = (Vec::load_partial(x + i, r) - vmean) * inv_std;
    fma(v, Vec::load_partial(gamma + i, r), Vec::load_partial(beta + i, r)).store_partial(y + i, r);
  }
}

// NaN anywhere gives a row of NaN (its e^(x - max) is NaN, so is the sum); +inf too (inf - inf), as torch.
// The max may miss a NaN (MAXPS keeps one operand): that changes nothing, the NaN still reaches the sum.
void softmax_row(const float* x, float* y, int64_t n) {
  Vec vmax = Vec::broadcast(-std::numeric_limits<float>::infinity());
  int64_t i = 0;
  for (; i + kW <= n; i += kW) vmax = max(vmax, Vec::load(x + i));
  float mx = vmax.reduce_max();
  for (; i < n; ++i) mx = std::fmax(mx, x[i]);
  if (mx == -std::numeric_limits<float>::infinity()) {
    // Every entry masked: zeros, not NaN, unless a NaN hid from the max (then NaN, as any row holding one).
    bool any_nan = false;
    for (i = 0; i < n; ++i) any_nan |= std::isnan(x[i]);
    std::fill(y, y + n, any_nan ? std::numeric_limits<float>::quiet_NaN() : 0.0f);
    return;
  }
  const Vec vm = Vec::broadcast(mx);
  map_row(x, y, n, [vm](Vec v) { return vec_exp(v - vm); });
  scale_inplace(y, 1.0f / sum_row(y, n), n);
}

void add_inplace(float* y, const float* x, int64_t n) {
  int64_t i = 0;
  for (; i + kW <= n; i += kW) (Vec::load(y + i) + Vec::load(x + i)).store(y + i);
  if (i < n) (Vec::load_partial(y + i, n - i) + Vec::load_partial(x + i, n - i)).store_partial(y + i, n - i);
}

void scale_inplace(float* y, float s, int64_t n) {
  const Vec vs = Vec::broadcast(s);
  map_row(y, y, n, [vs](Vec v) { return v * vs; });
}

float dot(const float* a, const float* b, int64_t n) {
  Vec s0 = Vec::zero(), s1 = Vec::zero();
  int64_t i = 0;
  for (; i + 2 * kW <= n; i += 2 * kW) {
    s0 = fma(Vec::load(a + i), Vec::load(b + i), s0);
    s1 = fma(Vec::load(a + i + kW), Vec::load(b + i + kW), s1);
  }
  for (; i + kW <= n; i += kW) s0 = fma(Vec::load(a + i), Vec::load(b + i), s0);
  if (i < n) s1 = fma(Vec::load_partial(a + i, n - i), Vec::load_partial(b + i, n - i), s1);
  return (s0 + s1).reduce_add();
}

void axpy(float* y, float s, const float* x, int64_t n) {
  const Vec vs = Vec::broadcast(s);
  int64_t i = 0;
  for (; i + kW <= n; i += kW) fma(vs, Vec::load(x + i), Vec::load(y + i)).store(y + i);
  if (i < n) fma(vs, Vec::load_partial(x + i, n - i), Vec::load_partial(y + i, n - i)).store_partial(y + i, n - i);
}

int64_t select_greater_or_nan(const float* x, int64_t n, float threshold, int64_t* indices) {
  // One compare per vector; almost every vector has no survivor once a top-k threshold has settled.
  // NaN ranks above every number (torch.topk), so a NaN entry always passes, and a NaN threshold passes all.
  const Vec t = Vec::broadcast(threshold);
  int64_t count = 0, i = 0;
  for (; i + kW <= n; i += kW) {
    for (uint32_t m = Vec::greater_or_nan_mask(Vec::load(x + i), t); m; m &= m - 1)
      indices[count++] = i + __builtin_ctz(m);
  }
  for (; i < n; ++i)
    if (!(x[i] <= threshold)) indices[count++] = i;
  return count;
}

}  // namespace cpuformer::kernels::CPUFORMER_KERNEL_ISA
