// elementwise_kernels.cc — x, y are (n,) rows; callers parallelise over rows.
#include "kernels/elementwise_kernels.h"

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

void layer_norm_row(const float* x, const float* gamma, const float* beta, float* y, int64_t n, float eps) {
  // Two passes (mean, then centred variance) to avoid the E[x^2] - E[x]^2 cancellation.
  const float mean = sum_row(x, n) / static_cast<float>(n);
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

void softmax_row(const float* x, float* y, int64_t n) {
  Vec vmax = Vec::broadcast(-std::numeric_limits<float>::infinity());
  int64_t i = 0;
  for (; i + kW <= n; i += kW) vmax = max(vmax, Vec::load(x + i));
  float mx = vmax.reduce_max();
  for (; i < n; ++i) mx = std::fmax(mx, x[i]);
  if (mx == -std::numeric_limits<float>::infinity()) {  // every entry masked: zeros, not NaN
    for (i = 0; i < n; ++i) y[i] = 0.0f;
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

int64_t select_greater(const float* x, int64_t n, float threshold, int64_t* indices) {
  // One compare per vector; almost every vector has no survivor once a top-k threshold has settled.
  const Vec t = Vec::broadcast(threshold);
  int64_t count = 0, i = 0;
  for (; i + kW <= n; i += kW) {
    for (uint32_t m = Vec::greater_mask(Vec::load(x + i), t); m; m &= m - 1)
      indices[count++] = i + __builtin_ctz(m);
  }
  for (; i < n; ++i)
    if (x[i] > threshold) indices[count++] = i;
  return count;
}

}  // namespace cpuformer::kernels::CPUFORMER_KERNEL_ISA
