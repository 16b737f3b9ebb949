// simd.h — the one float vector type every kernel file is written against. Each kernel source is compiled
// once per ISA (cmake/cpuformer_kernels.cmake); CPUFORMER_KERNEL_ISA_* picks the vector and
// CPUFORMER_KERNEL_ISA names the namespace, so the three builds never share a symbol.
#pragma once
#include <cstdint>
#include <cstring>
#include <cmath>
#if defined(CPUFORMER_KERNEL_ISA_AVX2) || defined(CPUFORMER_KERNEL_ISA_AVX512)
#include <immintrin.h>
#endif

namespace cpuformer::kernels::CPUFORMER_KERNEL_ISA {

#if defined(CPUFORMER_KERNEL_ISA_AVX512)

struct Vec {
  static constexpr int width = 16;
  __m512 v;
  static Vec zero() { return {_mm512_setzero_ps()}; }
  static Vec broadcast(float x) { return {_mm512_set1_ps(x)}; }
  static Vec load(const float* p) { return {_mm512_loadu_ps(p)}; }
  static __mmask16 tail_mask(int64_t n) { return static_cast<__mmask16>((1u << n) - 1u); }
  static Vec load_partial(const float* p, int64_t n) { return {_mm512_maskz_loadu_ps(tail_mask(n), p)}; }
  // 16 int8 -> 16 floats (exact: every int8 is a float).
  static Vec load_s8(const int8_t* p) {
    return {_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))))};
  }
  // bf16 (the top halves of floats) -> 16 floats (exact), from 16 32-bit lanes at p that each hold a (k even,
  // k odd) pair of one column (packed_matrix.h's k2 layout): odd = 0 takes the low half (lane << 16), odd = 1 the
  // high half (lane & 0xFFFF0000). One variable shift and one AND either way, no branch.
  static Vec load_bf16(const uint16_t* p, int64_t odd) {
    const __m512i w = _mm512_sll_epi32(_mm512_loadu_si512(p), _mm_cvtsi32_si128(static_cast<int>(16 - 16 * odd)));
    return {_mm512_castsi512_ps(_mm512_and_si512(w, _mm512_set1_epi32(static_cast<int>(0xFFFF0000u))))};
  }
  void store(float* p) const { _mm512_storeu_ps(p, v); }
  void store_partial(float* p, int64_t n) const { _mm512_mask_storeu_ps(p, tail_mask(n), v); }
  float reduce_add() const { return _mm512_reduce_add_ps(v); }
  float reduce_max() const { return _mm512_reduce_max_ps(v); }
  // 2^n for integer-valued n in [-126, 127].
  static Vec exp2_int(Vec n) {
    __m512i bits = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n.v), _mm512_set1_epi32(127)), 23);
    return {_mm512_castsi512_ps(bits)};
  }
  Vec round() const { return {_mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }
  Vec abs() const { return {_mm512_abs_ps(v)}; }
  // x < 0 ? if_negative : otherwise, lane by lane
  static Vec select_negative(Vec x, Vec if_negative, Vec otherwise) {
    __mmask16 m = _mm512_cmp_ps_mask(x.v, _mm512_setzero_ps(), _CMP_LT_OQ);
    return {_mm512_mask_blend_ps(m, otherwise.v, if_negative.v)};
  }
  // Bit i set where a[i] > b[i] (false for NaN).
  // a > b, or either is NaN (unordered): top-k ranks NaN above every number, as torch.topk.
  static uint32_t greater_or_nan_mask(Vec a, Vec b) { return _mm512_cmp_ps_mask(a.v, b.v, _CMP_NLE_UQ); }
};
inline Vec operator+(Vec a, Vec b) { return {_mm512_add_ps(a.v, b.v)}; }
inline Vec operator-(Vec a, Vec b) { return {_mm512_sub_ps(a.v, b.v)}; }
inline Vec operator*(Vec a, Vec b) { return {_mm512_mul_ps(a.v, b.v)}; }
inline Vec operator/(Vec a, Vec b) { return {_mm512_div_ps(a.v, b.v)}; }
inline Vec fma(Vec a, Vec b, Vec c) { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }  // a*b+c
// max / min return b when either operand is NaN (MAXPS semantics, mirrored by generic): max(c, x) keeps a NaN x.
inline Vec max(Vec a, Vec b) { return {_mm512_max_ps(a.v, b.v)}; }
inline Vec min(Vec a, Vec b) { return {_mm512_min_ps(a.v, b.v)}; }

#elif defined(CPUFORMER_KERNEL_ISA_AVX2)

struct Vec {
  static constexpr int width = 8;
  __m256 v;
  static Vec zero() { return {_mm256_setzero_ps()}; }
  static Vec broadcast(float x) { return {_mm256_set1_ps(x)}; }
  static Vec load(const float* p) { return {_mm256_loadu_ps(p)}; }
  static __m256i tail_mask(int64_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static Vec load_partial(const float* p, int64_t n) { return {_mm256_maskload_ps(p, tail_mask(n))}; }
  // 8 int8 -> 8 floats (exact).
  static Vec load_s8(const int8_t* p) {
    return {_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))))};
  }
  // 8 bf16 -> 8 floats (exact), half `odd` of 8 k2 pair lanes (see the AVX-512 Vec).
  static Vec load_bf16(const uint16_t* p, int64_t odd) {
    const __m256i w = _mm256_sll_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)),
                                       _mm_cvtsi32_si128(static_cast<int>(16 - 16 * odd)));
    return {_mm256_castsi256_ps(_mm256_and_si256(w, _mm256_set1_epi32(static_cast<int>(0xFFFF0000u))))};
  }
  void store(float* p) const { _mm256_storeu_ps(p, v); }
  void store_partial(float* p, int64_t n) const { _mm256_maskstore_ps(p, tail_mask(n), v); }
  float reduce_add() const {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
  }
  float reduce_max() const {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
  }
  static Vec exp2_int(Vec n) {
    __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n.v), _mm256_set1_epi32(127)), 23);
    return {_mm256_castsi256_ps(bits)};
  }
  Vec round() const { return {_mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }
  Vec abs() const { return {_mm256_andnot_ps(_mm256_set1_ps(-0.0f), v)}; }
  static Vec select_negative(Vec x, Vec if_negative, Vec otherwise) {
    // A compare, not the sign bit: -0.0 and NaN (x86's default NaN has its sign bit set) pick `otherwise`,
    // as on AVX-512 and generic.
    return {_mm256_blendv_ps(otherwise.v, if_negative.v, _mm256_cmp_ps(x.v, _mm256_setzero_ps(), _CMP_LT_OQ))};
  }
  static uint32_t greater_or_nan_mask(Vec a, Vec b) {  // a > b or unordered
    return static_cast<uint32_t>(_mm256_movemask_ps(_mm256_cmp_ps(a.v, b.v, _CMP_NLE_UQ)));
  }
};
inline Vec operator+(Vec a, Vec b) { return {_mm256_add_ps(a.v, b.v)}; }
inline Vec operator-(Vec a, Vec b) { return {_mm256_sub_ps(a.v, b.v)}; }
inline Vec operator*(Vec a, Vec b) { return {_mm256_mul_ps(a.v, b.v)}; }
inline Vec operator/(Vec a, Vec b) { return {_mm256_div_ps(a.v, b.v)}; }
inline Vec fma(Vec a, Vec b, Vec c) { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; }
inline Vec max(Vec a, Vec b) { return {_mm256_max_ps(a.v, b.v)}; }
inline Vec min(Vec a, Vec b) { return {_mm256_min_ps(a.v, b.v)}; }

#elif defined(CPUFORMER_KERNEL_ISA_GENERIC)

// Portable C++: four lanes in plain loops, which compilers turn into baseline SSE2 on x86-64.
struct Vec {
  static constexpr int width = 4;
  float v[4];
  static Vec zero() { return {{0.f, 0.f, 0.f, 0.f}}; }
  static Vec broadcast(float x) { return {{x, x, x, x}}; }
  static Vec load(const float* p) { Vec r; std::memcpy(r.v, p, sizeof r.v); return r; }
  static Vec load_partial(const float* p, int64_t n) {
    Vec r = zero();
    for (int64_t i = 0; i < n; ++i) r.v[i] = p[i];
    return r;
  }
  // 4 int8 -> 4 floats (exact).
  static Vec load_s8(const int8_t* p) { return {{float(p[0]), float(p[1]), float(p[2]), float(p[3])}}; }
  // 4 bf16 -> 4 floats (exact), half `odd` of 4 k2 pair lanes (see the AVX-512 Vec).
  static Vec load_bf16(const uint16_t* p, int64_t odd) {
    Vec r;
    for (int i = 0; i < 4; ++i) {
      const uint32_t bits = static_cast<uint32_t>(p[2 * i + odd]) << 16;
      std::memcpy(&r.v[i], &bits, sizeof bits);
    }
    return r;
  }
  void store(float* p) const { std::memcpy(p, v, sizeof v); }
  void store_partial(float* p, int64_t n) const { for (int64_t i = 0; i < n; ++i) p[i] = v[i]; }
  float reduce_add() const { return (v[0] + v[1]) + (v[2] + v[3]); }
  float reduce_max() const { return std::fmax(std::fmax(v[0], v[1]), std::fmax(v[2], v[3])); }
  static Vec exp2_int(Vec n) {
    Vec r;
    for (int i = 0; i < 4; ++i) {
      // NaN -> 0 (a float-to-int cast of NaN is undefined; the SIMD conversions give a value too).
      const int32_t e = n.v[i] == n.v[i] ? static_cast<int32_t>(n.v[i]) : 0;
      const uint32_t bits = static_cast<uint32_t>(e + 127) << 23;
      std::memcpy(&r.v[i], &bits, sizeof bits);
    }
    return r;
  }
  Vec round() const { Vec r; for (int i = 0; i < 4; ++i) r.v[i] = std::nearbyint(v[i]); return r; }
  Vec abs() const { Vec r; for (int i = 0; i < 4; ++i) r.v[i] = std::fabs(v[i]); return r; }
  static Vec select_negative(Vec x, Vec if_negative, Vec otherwise) {
    Vec r;
    for (int i = 0; i < 4; ++i) r.v[i] = x.v[i] < 0.f ? if_negative.v[i] : otherwise.v[i];
    return r;
  }
  static uint32_t greater_or_nan_mask(Vec a, Vec b) {  // a > b or unordered
    uint32_t m = 0;
    for (int i = 0; i < 4; ++i) m |= static_cast<uint32_t>(!(a.v[i] <= b.v[i])) << i;
    return m;
  }
};
template <class F>
inline Vec lanewise(Vec a, Vec b, F f) {
  Vec r;
  for (int i = 0; i < 4; ++i) r.v[i] = f(a.v[i], b.v[i]);
  return r;
}
inline Vec operator+(Vec a, Vec b) { return lanewise(a, b, [](float x, float y) { return x + y; }); }
inline Vec operator-(Vec a, Vec b) { return lanewise(a, b, [](float x, float y) { return x - y; }); }
inline Vec operator*(Vec a, Vec b) { return lanewise(a, b, [](float x, float y) { return x * y; }); }
inline Vec operator/(Vec a, Vec b) { return lanewise(a, b, [](float x, float y) { return x / y; }); }
inline Vec fma(Vec a, Vec b, Vec c) { Vec r; for (int i = 0; i < 4; ++i) r.v[i] = a.v[i] * b.v[i] + c.v[i]; return r; }
// As MAXPS / MINPS (not fmax): b when either is NaN, so one operand order keeps NaN on every ISA.
inline Vec max(Vec a, Vec b) { Vec r; for (int i = 0; i < 4; ++i) r.v[i] = a.v[i] > b.v[i] ? a.v[i] : b.v[i]; return r; }
inline Vec min(Vec a, Vec b) { Vec r; for (int i = 0; i < 4; ++i) r.v[i] = a.v[i] < b.v[i] ? a.v[i] : b.v[i]; return r; }

#else
#error "compile kernels through cpuformer_add_isa_kernels() so exactly one CPUFORMER_KERNEL_ISA_* is set"
#endif

}  // namespace cpuformer::kernels::CPUFORMER_KERNEL_ISA
