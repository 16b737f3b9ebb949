// gemm_u8s8_tile.h — int8 compute (issue 10): the u8 activation quantizer and the u8 x s8 micro-kernel with
// exact int32 sums per K group (kernel_table.h's QuantizedRows gives the formula). Included by exactly one
// source per kernel namespace: gemm_u8s8_kernels.cc (generic, avx2, avx512) and vnni/gemm_u8s8_vnni.cc
// (avx2_vnni, avx512_vnni: CPUFORMER_KERNEL_VNNI set).
//
// The product of one u8 and one s8 is summed four k at a time into an int32 lane (one lane per column of B):
// - VNNI: vpdpbusd does exactly that, without intermediate saturation.
// - Without VNNI: vpmaddubsw sums pairs into int16 *with saturation* (255 * 127 * 2 overflows), so A is split into
//   4-bit halves, q = 16 * hi + lo: each pair sum is at most 2 * 15 * 128 = 3840, eight k4 steps of them fit an
//   int16 lane (30720), and vpmaddwd by 16 / by 1 widens and recombines them exactly. Two vpmaddubsw per 4 k
//   instead of one, but no accuracy given up: oneDNN and MLAS instead give a weight or activation bit away.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/gemm_ukernel_tile.h"

namespace cpuformer::kernels::CPUFORMER_KERNEL_ISA {
namespace {

// k4 steps a nibble kernel may sum in int16 lanes before widening: 8 * 3840 = 30720 <= 32767.
constexpr int64_t kNibbleSteps = 8;
constexpr bool kNibbles = kU8S8Nibbles;

#if defined(CPUFORMER_KERNEL_ISA_AVX512)
using IVec = __m512i;
inline IVec ivec_zero() { return _mm512_setzero_si512(); }
inline IVec ivec_load(const int8_t* p) { return _mm512_loadu_si512(p); }
inline IVec ivec_add16(IVec a, IVec b) { return _mm512_add_epi16(a, b); }
inline IVec ivec_add32(IVec a, IVec b) { return _mm512_add_epi32(a, b); }
inline IVec ivec_maddubs(IVec a, IVec b) { return _mm512_maddubs_epi16(a, b); }
inline IVec ivec_madd_by(IVec a, short c) { return _mm512_madd_epi16(a, _mm512_set1_epi16(c)); }
inline Vec ivec_to_float(IVec a) { return {_mm512_cvtepi32_ps(a)}; }
inline IVec ivec_from_float(Vec a) { return _mm512_cvtps_epi32(a.v); }
inline IVec ivec_set1(int32_t x) { return _mm512_set1_epi32(x); }
inline IVec ivec_sub_mul32(IVec d, IVec z, IVec c) { return _mm512_sub_epi32(d, _mm512_mullo_epi32(z, c)); }
inline IVec ivec_broadcast4(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}
#if defined(CPUFORMER_KERNEL_VNNI)
inline IVec ivec_dpbusd(IVec acc, IVec a, IVec b) { return _mm512_dpbusd_epi32(acc, a, b); }
#endif
// 16 floats holding integers in [0, 255] -> 16 bytes.
inline void store_u8(Vec x, uint8_t* out) {
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm512_cvtusepi32_epi8(_mm512_cvtps_epi32(x.v)));
}
#elif defined(CPUFORMER_KERNEL_ISA_AVX2)
using IVec = __m256i;
inline IVec ivec_zero() { return _mm256_setzero_si256(); }
inline IVec ivec_load(const int8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
inline IVec ivec_add16(IVec a, IVec b) { return _mm256_add_epi16(a, b); }
inline IVec ivec_add32(IVec a, IVec b) { return _mm256_add_epi32(a, b); }
inline IVec ivec_maddubs(IVec a, IVec b) { return _mm256_maddubs_epi16(a, b); }
inline IVec ivec_madd_by(IVec a, short c) { return _mm256_madd_epi16(a, _mm256_set1_epi16(c)); }
inline Vec ivec_to_float(IVec a) { return {_mm256_cvtepi32_ps(a)}; }
inline IVec ivec_from_float(Vec a) { return _mm256_cvtps_epi32(a.v); }
inline IVec ivec_set1(int32_t x) { return _mm256_set1_epi32(x); }
inline IVec ivec_sub_mul32(IVec d, IVec z, IVec c) { return _mm256_sub_epi32(d, _mm256_mullo_epi32(z, c)); }
inline IVec ivec_broadcast4(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}
#if defined(CPUFORMER_KERNEL_VNNI)
inline IVec ivec_dpbusd(IVec acc, IVec a, IVec b) { return _mm256_dpbusd_avx_epi32(acc, a, b); }
#endif
inline void store_u8(Vec x, uint8_t* out) {
  const __m256i i = _mm256_cvtps_epi32(x.v);
  const __m128i w = _mm_packus_epi32(_mm256_castsi256_si128(i), _mm256_extracti128_si256(i, 1));
  _mm_storel_epi64(reinterpret_cast<__m128i*>(out), _mm_packus_epi16(w, w));
}
#else
inline void store_u8(Vec x, uint8_t* out) {
  for (int j = 0; j < Vec::width; ++j) out[j] = static_cast<uint8_t>(x.v[j]);
}
#endif

// Adds one group to acc: acc += x * scale_a * scale_b, where x = sum q_a * q_b - zero_a * colsum, formed exactly in
// int32 (both terms are at most 255 * 127 * group, which gemm.cc keeps below 2^31) and converted once: the
// difference is small next to either term, so subtracting after a float conversion would lose its low bits.
template <int M>
inline void dequantize_group(Vec (&acc)[M][kVecsPerRow], const Vec (&x)[M][kVecsPerRow], const QuantizedRows& a,
                             int64_t g, const float* b_scale) {
  Vec sb[kVecsPerRow];
  for (int v = 0; v < kVecsPerRow; ++v) sb[v] = Vec::load(b_scale + g * kGemmNR + v * kW);
  for (int i = 0; i < M; ++i) {
    const Vec sa = Vec::broadcast(a.scale[i * a.lds + g]);
    for (int v = 0; v < kVecsPerRow; ++v) acc[i][v] = fma(x[i][v], sb[v] * sa, acc[i][v]);
  }
}

#if defined(CPUFORMER_KERNEL_ISA_GENERIC)

template <int M>
void u8s8_rows(int n, int64_t k, const QuantizedRows& a, const int8_t* b4, const float* b_scale,
               const float* b_colsum, int64_t group, float* c, int64_t ldc, bool accumulate, const GemmEpilogue* ep) {
  Vec acc[M][kVecsPerRow];
  for (int i = 0; i < M; ++i)
    for (int v = 0; v < kVecsPerRow; ++v) acc[i][v] = Vec::zero();
  for (int64_t g0 = 0, g = 0; g0 < k; g0 += group, ++g) {
    const int64_t g1 = std::min(k, g0 + group);
    Vec x[M][kVecsPerRow];
    for (int i = 0; i < M; ++i) {
      const uint8_t* qa = a.q + i * a.ldq;
      const int32_t zero = static_cast<int32_t>(a.zero[i * a.lds + g]);
      alignas(64) float sums[kGemmNR];
      for (int j = 0; j < kGemmNR; ++j) {
        int32_t s = 0;
        for (int64_t p = g0; p < g1; ++p) s += int32_t(qa[p]) * int32_t(b4[(p / 4) * kGemmNR * 4 + j * 4 + p % 4]);
        sums[j] = static_cast<float>(s - zero * static_cast<int32_t>(b_colsum[g * kGemmNR + j]));
      }
      for (int v = 0; v < kVecsPerRow; ++v) x[i][v] = Vec::load(sums + v * kW);
    }
    dequantize_group<M>(acc, x, a, g, b_scale);
  }
  store_tile_cols<M>(acc, n, c, ldc, accumulate, ep);
}

#else

template <int M>
void u8s8_rows(int n, int64_t k, const QuantizedRows& a, const int8_t* b4, const float* b_scale,
               const float* b_colsum, int64_t group, float* c, int64_t ldc, bool accumulate, const GemmEpilogue* ep) {
  constexpr int64_t kRowBytes = kGemmNR * 4;  // one k4 row of B4: NR columns x 4 k
  prefetch_tile<M>(c, ldc, ep);
  Vec acc[M][kVecsPerRow];
  for (int i = 0; i < M; ++i)
    for (int v = 0; v < kVecsPerRow; ++v) acc[i][v] = Vec::zero();
  for (int64_t g0 = 0, g = 0; g0 < k; g0 += group, ++g) {
    const int64_t steps = (std::min(group, k - g0) + 3) / 4;
    const int8_t* bg = b4 + (g0 / 4) * kRowBytes;
    IVec d[M][kVecsPerRow];
    for (int i = 0; i < M; ++i)
      for (int v = 0; v < kVecsPerRow; ++v) d[i][v] = ivec_zero();
#if defined(CPUFORMER_KERNEL_VNNI)
    for (int64_t s = 0; s < steps; ++s) {
      IVec b[kVecsPerRow];
      for (int v = 0; v < kVecsPerRow; ++v) b[v] = ivec_load(bg + s * kRowBytes + v * kW * 4);
      for (int i = 0; i < M; ++i) {
        const IVec ai = ivec_broadcast4(a.q + i * a.ldq + g0 + 4 * s);
        for (int v = 0; v < kVecsPerRow; ++v) d[i][v] = ivec_dpbusd(d[i][v], ai, b[v]);
      }
    }
#else
    for (int64_t s0 = 0; s0 < steps; s0 += kNibbleSteps) {
      IVec hi[M][kVecsPerRow], lo[M][kVecsPerRow];
      for (int i = 0; i < M; ++i)
        for (int v = 0; v < kVecsPerRow; ++v) hi[i][v] = lo[i][v] = ivec_zero();
      const int64_t s1 = std::min(steps, s0 + kNibbleSteps);
      for (int64_t s = s0; s < s1; ++s) {
        IVec b[kVecsPerRow];
        for (int v = 0; v < kVecsPerRow; ++v) b[v] = ivec_load(bg + s * kRowBytes + v * kW * 4);
        for (int i = 0; i < M; ++i) {
          const uint8_t* row = a.q + i * a.ldq + g0 + 4 * s;
          const IVec ah = ivec_broadcast4(row), al = ivec_broadcast4(row + a.lo_plane);
          for (int v = 0; v < kVecsPerRow; ++v) {
            hi[i][v] = ivec_add16(hi[i][v], ivec_maddubs(ah, b[v]));
            lo[i][v] = ivec_add16(lo[i][v], ivec_maddubs(al, b[v]));
          }
        }
      }
      for (int i = 0; i < M; ++i)
        for (int v = 0; v < kVecsPerRow; ++v)
          d[i][v] = ivec_add32(d[i][v], ivec_add32(ivec_madd_by(hi[i][v], 16), ivec_madd_by(lo[i][v], 1)));
    }
#endif
    IVec colsum[kVecsPerRow];
    for (int v = 0; v < kVecsPerRow; ++v) colsum[v] = ivec_from_float(Vec::load(b_colsum + g * kGemmNR + v * kW));
    Vec x[M][kVecsPerRow];
    for (int i = 0; i < M; ++i) {
      const IVec zero = ivec_set1(static_cast<int32_t>(a.zero[i * a.lds + g]));
      for (int v = 0; v < kVecsPerRow; ++v) x[i][v] = ivec_to_float(ivec_sub_mul32(d[i][v], zero, colsum[v]));
    }
    dequantize_group<M>(acc, x, a, g, b_scale);
  }
  store_tile_cols<M>(acc, n, c, ldc, accumulate, ep);
}

#endif

using U8S8RowsFn = void (*)(int, int64_t, const QuantizedRows&, const int8_t*, const float*, const float*, int64_t,
                            float*, int64_t, bool, const GemmEpilogue*);

template <int... Ms>
constexpr auto make_u8s8_table(std::integer_sequence<int, Ms...>) {
  return std::array<U8S8RowsFn, sizeof...(Ms)>{&u8s8_rows<Ms + 1>...};
}
constexpr auto kU8S8Rows = make_u8s8_table(std::make_integer_sequence<int, kU8S8MR>{});

}  // namespace

void gemm_ukernel_u8s8(int m, int n, int64_t k, const QuantizedRows& a, const int8_t* b4, const float* b_scale,
                       const float* b_colsum, int64_t group, float* c, int64_t ldc, bool accumulate,
                       const GemmEpilogue* epilogue) {
  kU8S8Rows[m - 1](n, k, a, b4, b_scale, b_colsum, group, c, ldc, accumulate, epilogue);
}

namespace {
float min_of(Vec v) {
  alignas(64) float t[kW];
  v.store(t);
  float r = t[0];
  for (int j = 1; j < kW; ++j) r = std::min(r, t[j]);
  return r;
}
float max_of(Vec v) { return v.reduce_max(); }
}  // namespace

bool quantize_u8_row(const float* x, const float* inv_smooth, int64_t k, int64_t group, uint8_t* q, float* scale,
                     float* zero) {
  bool finite = true;
  for (int64_t g0 = 0, g = 0; g0 < k; g0 += group, ++g) {
    const int64_t len = std::min(group, k - g0);
    const float* xg = x + g0;
    const float* sg = inv_smooth ? inv_smooth + g0 : nullptr;
    auto load = [&](int64_t j) {
      const int64_t rest = len - j;
      Vec v = rest >= kW ? Vec::load(xg + j) : Vec::load_partial(xg + j, rest);  // zero-filled: min/max clamp at 0
      if (sg) v = v * (rest >= kW ? Vec::load(sg + j) : Vec::load_partial(sg + j, rest));
      return v;
    };
    // x * 0 is NaN exactly for NaN and +-inf, and a sum keeps it (max / min alone would drop a NaN lane).
    Vec lo = Vec::zero(), hi = Vec::zero(), special = Vec::zero();
    for (int64_t j = 0; j < len; j += kW) {
      const Vec v = load(j);
      lo = min(lo, v);
      hi = max(hi, v);
      special = special + v * Vec::zero();
    }
    const float mn = min_of(lo), mx = max_of(hi);
    if (std::isnan(special.reduce_add()) || !std::isfinite(mx - mn)) {
      finite = false;
      scale[g] = 1.0f;
      zero[g] = 0.0f;
      continue;
    }
    float s = (mx - mn) / 255.0f;
    if (!(s > 0.0f)) s = 1.0f;
    const float inv = 1.0f / s;
    const float z = std::min(255.0f, std::max(0.0f, std::nearbyint(-mn * inv)));
    scale[g] = s;
    zero[g] = z;
    const Vec vinv = Vec::broadcast(inv), vz = Vec::broadcast(z), v0 = Vec::zero(), v255 = Vec::broadcast(255.0f);
    for (int64_t j = 0; j < len; j += kW) {
      const Vec y = min(max((load(j) * vinv).round() + vz, v0), v255);
      if (len - j >= kW) {
        store_u8(y, q + g0 + j);
      } else {
        alignas(64) uint8_t bytes[kW];
        store_u8(y, bytes);
        std::memcpy(q + g0 + j, bytes, static_cast<size_t>(len - j));
      }
    }
  }
  return finite;
}

}  // namespace cpuformer::kernels::CPUFORMER_KERNEL_ISA
