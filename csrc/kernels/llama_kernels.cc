// llama_kernels.cc — x, y are (n,) rows; a rotary head is (2 * half,) floats rotated in place.
#include "kernels/llama_kernels.h"

#include <cmath>

#include "kernels/vec_math.h"

namespace cpuformer::kernels::CPUFORMER_KERNEL_ISA {
namespace {
constexpr int kW = Vec::width;
}  // namespace

// x: (n,), weight: (n,) -> y = x * rsqrt(mean(x^2) + eps) * weight (Llama's RMSNorm in fp32). y may equal x.
void rms_norm_row(const float* x, const float* weight, float* y, int64_t n, float eps) {
  Vec a0 = Vec::zero(), a1 = Vec::zero();
  int64_t i = 0;
  for (; i + 2 * kW <= n; i += 2 * kW) {
    const Vec u = Vec::load(x + i), w = Vec::load(x + i + kW);
    a0 = fma(u, u, a0);
    a1 = fma(w, w, a1);
  }
  for (; i + kW <= n; i += kW) {
    const Vec u = Vec::load(x + i);
    a0 = fma(u, u, a0);
  }
  if (i < n) {
    const Vec u = Vec::load_partial(x + i, n - i);
    a1 = fma(u, u, a1);
  }
  const float mean_square = (a0 + a1).reduce_add() / static_cast<float>(n);
  const Vec inv_rms = Vec::broadcast(1.0f / std::sqrt(mean_square + eps));
  for (i = 0; i + kW <= n; i += kW) (Vec::load(x + i) * inv_rms * Vec::load(weight + i)).store(y + i);
  if (i < n) {
    const int64_t r = n - i;
    (Vec::load_partial(x + i, r) * inv_rms * Vec::load_partial(weight + i, r)).store_partial(y + i, r);
  }
}

// x: (2 * half,) one head, cos/sin: (half,) of its position. Hugging Face's rotate_half convention: the pairs are
// (x[i], x[i + half]): x1' = x1 cos - x2 sin, x2' = x2 cos + x1 sin.
void rope_rotate_half(float* x, const float* cos, const float* sin, int64_t half) {
  float* x2 = x + half;
  int64_t i = 0;
  for (; i + kW <= half; i += kW) {
    const Vec a = Vec::load(x + i), b = Vec::load(x2 + i), c = Vec::load(cos + i), s = Vec::load(sin + i);
    (a * c - b * s).store(x + i);
    (b * c + a * s).store(x2 + i);
  }
  if (i < half) {
    const int64_t r = half - i;
    const Vec a = Vec::load_partial(x + i, r), b = Vec::load_partial(x2 + i, r);
    const Vec c = Vec::load_partial(cos + i, r), s = Vec::load_partial(sin + i, r);
    (a * c - b * s).store_partial(x + i, r);
    (b * c + a * s).store_partial(x2 + i, r);
  }
}

// gate, up, y: (n,) -> y = silu(gate) * up = gate / (1 + e^-gate) * up. y may equal gate or up.
void silu_mul_row(const float* gate, const float* up, float* y, int64_t n) {
  const Vec one = Vec::broadcast(1.0f);
  auto f = [one](Vec g, Vec u) { return g / (one + vec_exp(Vec::zero() - g)) * u; };
  int64_t i = 0;
  for (; i + kW <= n; i += kW) f(Vec::load(gate + i), Vec::load(up + i)).store(y + i);
  if (i < n) f(Vec::load_partial(gate + i, n - i), Vec::load_partial(up + i, n - i)).store_partial(y + i, n - i);
}

}  // namespace cpuformer::kernels::CPUFORMER_KERNEL_ISA
