// vec_math.h — exp, erf-based GELU, tanh-based GELU and ReLU on one Vec. Our own polynomial fits;
// accuracy is stated next to each, and tests/ops/test_elementwise.py checks it against float64 numpy.
#pragma once
#include "kernels/kernel_table.h"
#include "kernels/simd.h"

namespace cpuformer::kernels::CPUFORMER_KERNEL_ISA {

// NaN: every helper here returns NaN for a NaN input, on every ISA. max / min return their SECOND operand when
// either is NaN (simd.h), so clamps are written max(bound, x) / min(bound, x): the NaN passes through.

// e^x, relative error < 2e-7 on [-86.6, 88.37]; inputs below -86.6 (and -inf) give ~2e-38 rather than 0,
// inputs above 88.37 (and +inf) give +inf (true overflow starts at 88.72; the callers that get there, tanh-GELU
// and sigmoid of large negative inputs, only need 1 / (1 + e) ~ 0), NaN gives NaN. The floor keeps every result a
// normal float: a subnormal result, and every multiply that meets it later, takes a microcode assist (~100
// cycles each on Intel).
inline Vec vec_exp(Vec x) {
  const Vec log2e = Vec::broadcast(1.44269504088896341f);
  const Vec ln2_hi = Vec::broadcast(0.693359375f);     // ln2 split so n*ln2_hi is exact
  const Vec ln2_lo = Vec::broadcast(-2.12194440e-4f);
  // The ceiling rounds n to at most 128, whose 2^n bit pattern is exactly +inf (129 would wrap).
  x = min(Vec::broadcast(88.5f), max(Vec::broadcast(-86.6f), x));
  Vec n = (x * log2e).round();
  Vec r = x - n * ln2_hi - n * ln2_lo;  // |r| <= ln2 / 2
  // Taylor series of e^r to r^7 in Horner form: truncation < 3e-9 for |r| <= 0.347.
  Vec p = Vec::broadcast(1.0f / 5040.0f);
  p = fma(p, r, Vec::broadcast(1.0f / 720.0f));
  p = fma(p, r, Vec::broadcast(1.0f / 120.0f));
  p = fma(p, r, Vec::broadcast(1.0f / 24.0f));
  p = fma(p, r, Vec::broadcast(1.0f / 6.0f));
  p = fma(p, r, Vec::broadcast(0.5f));
  p = fma(p, r, Vec::broadcast(1.0f));
  p = fma(p, r, Vec::broadcast(1.0f));
  return p * Vec::exp2_int(n);
}

// 0.5 * erfc(|z|) via Abramowitz & Stegun 7.1.26 (absolute error < 1.5e-7 on erf). For |z| > 8.9 the exp
// factor stays at e^-80: erfc is then ~1e-37 instead of smaller, but never a subnormal (see vec_exp), which made
// a fused GELU over strongly negative inputs 10x slower.
inline Vec half_erfc_abs(Vec z) {
  Vec az = z.abs();
  Vec t = Vec::broadcast(1.0f) / fma(Vec::broadcast(0.3275911f), az, Vec::broadcast(1.0f));
  Vec poly = Vec::broadcast(1.061405429f);
  poly = fma(poly, t, Vec::broadcast(-1.453152027f));
  poly = fma(poly, t, Vec::broadcast(1.421413741f));
  poly = fma(poly, t, Vec::broadcast(-0.284496736f));
  poly = fma(poly, t, Vec::broadcast(0.254829592f));
  poly = poly * t;
  Vec zero = Vec::zero();
  return Vec::broadcast(0.5f) * poly * vec_exp(max(Vec::broadcast(-80.0f), zero - az * az));
}

// GELU(x) = x * Phi(x) = x * 0.5 * erfc(-x / sqrt 2). Written as x * (1 - q) or x * q with q = 0.5 erfc(|z|)
// so negative inputs keep their relative accuracy instead of cancelling 1 + erf(z).
inline Vec vec_gelu(Vec x) {
  Vec q = half_erfc_abs(x * Vec::broadcast(0.70710678118654752f));
  Vec one_minus_q = Vec::broadcast(1.0f) - q;
  return x * Vec::select_negative(x, q, one_minus_q);
}

// GELU with the tanh approximation (GPT-2's "gelu_new"): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
// 0.5 (1 + tanh(u)) = 1 / (1 + e^{-2u}), which needs one exp and no cancellation.
inline Vec vec_gelu_tanh(Vec x) {
  Vec x3 = x * x * x;
  Vec u = Vec::broadcast(0.7978845608028654f) * fma(Vec::broadcast(0.044715f), x3, x);
  Vec e = vec_exp(Vec::zero() - (u + u));
  return x / (Vec::broadcast(1.0f) + e);
}

inline Vec vec_relu(Vec x) { return max(Vec::zero(), x); }  // NaN stays NaN (torch.relu)

inline Vec vec_activation(Vec x, Activation act) {
  switch (act) {
    case Activation::gelu: return vec_gelu(x);
    case Activation::gelu_tanh: return vec_gelu_tanh(x);
    case Activation::relu: return vec_relu(x);
    case Activation::none: break;
  }
  return x;
}

}  // namespace cpuformer::kernels::CPUFORMER_KERNEL_ISA
