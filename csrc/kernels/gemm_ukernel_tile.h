// gemm_ukernel_tile.h — the register-tile body shared by every GEMM micro-kernel: C tile (m x n, m <= MR,
// n <= NR) = A rows (m x k, fp32) * B panel (k x NR), then the fused epilogue. Only how one NR-wide row of B
// becomes float vectors differs (a Panel reader: fp32 as is, bf16 widened, int8 converted and scaled per K
// group), so fp32, bf16 and int8 weights share one tile loop. Included only by kernel sources, so every copy
// lives in one ISA's namespace.
#pragma once
#include <algorithm>
#include <array>
#include <utility>

#include "kernels/gemm_kernels.h"
#include "kernels/vec_math.h"

namespace cpuformer::kernels::CPUFORMER_KERNEL_ISA {
namespace {

constexpr int kW = Vec::width;
constexpr int kVecsPerRow = kGemmNR / kW;

// kW int8 values, byte `lane` of each of kW consecutive 32-bit words at p, as floats (exact).
inline Vec load_s8_lane(const int8_t* p, int64_t lane) {
#if defined(CPUFORMER_KERNEL_ISA_AVX512)
  const __m512i x = _mm512_sll_epi32(_mm512_loadu_si512(p), _mm_cvtsi32_si128(static_cast<int>(24 - 8 * lane)));
  return {_mm512_cvtepi32_ps(_mm512_srai_epi32(x, 24))};
#elif defined(CPUFORMER_KERNEL_ISA_AVX2)
  const __m256i x = _mm256_sll_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)),
                                     _mm_cvtsi32_si128(static_cast<int>(24 - 8 * lane)));
  return {_mm256_cvtepi32_ps(_mm256_srai_epi32(x, 24))};
#else
  Vec r;
  for (int j = 0; j < Vec::width; ++j) r.v[j] = static_cast<float>(p[j * 4 + lane]);
  return r;
#endif
}

// Panel readers: row(p, v) is vector v of B's row p as floats. K is walked in groups; begin_group(g) runs
// before the rows of group g (only int8 has more than one group: its scales change per group of K).
struct PanelF32 {
  static constexpr bool kGroupScaled = false;
  const float* b;
  int64_t group_size(int64_t k) const { return k; }
  void begin_group(int64_t) {}
  Vec row(int64_t p, int v) const { return Vec::load(b + p * kGemmNR + v * kW); }
};

struct PanelBF16 {
  static constexpr bool kGroupScaled = false;
  const uint16_t* b;
  int64_t group_size(int64_t k) const { return k; }
  void begin_group(int64_t) {}
  // Panel rows are interleaved by 2 k (packed_matrix.h's k2 layout, the order vdpbf16ps reads): row p of
  // vector v is half p % 2 of each 32-bit lane of the 2 * kW values at k2 row p / 2.
  Vec row(int64_t p, int v) const { return Vec::load_bf16(b + (p >> 1) * kGemmNR * 2 + v * kW * 2, p & 1); }
};

// int8 q with one scale per (group of `group` k, column): B = q * scale, formed in registers, so the sums are
// in output units whatever the grouping and C, bias and the epilogue never see a scale. kGroupScaled: a tile
// may instead sum raw(p, v) over a group and multiply the sum by group_scale(v) once (same math, other rounding).
struct PanelS8 {
  static constexpr bool kGroupScaled = true;
  const int8_t* b;
  const float* scale;  // [groups, NR]
  int64_t group;
  Vec sc[kVecsPerRow];
  int64_t group_size(int64_t) const { return group; }
  void begin_group(int64_t g) {
    for (int v = 0; v < kVecsPerRow; ++v) sc[v] = Vec::load(scale + g * kGemmNR + v * kW);
  }
  // Panel rows are interleaved by 4 k (packed_matrix.h's k4 layout): row p of vector v is byte p % 4 of each
  // 32-bit lane of the 4 * kW bytes at k4 row p / 4, sign-extended by a shift pair.
  Vec raw(int64_t p, int v) const { return load_s8_lane(b + (p >> 2) * kGemmNR * 4 + v * kW * 4, p & 3); }
  Vec row(int64_t p, int v) const { return raw(p, v) * sc[v]; }
  Vec group_scale(int v) const { return sc[v]; }
};

#if defined(CPUFORMER_KERNEL_ISA_AVX512)
constexpr int kVectorRegisters = 32;
#else
constexpr int kVectorRegisters = 16;
#endif

// Asks for the C tile's lines (and the residual's) before the K loop. Its rows are ldc apart, each on its own
// page once C outgrows L2, so a store of the whole tile at the end missed on every row at once and stalled the
// store buffer: int8 compute at M = 4096 (C 25 MB) ran 30% slower than at M = 128 (C in L2). Inline asm: GCC 12
// dropped __builtin_prefetch / _mm_prefetch in these kernels.
inline void prefetch_line(const float* p) {
#if defined(__x86_64__)
  asm volatile("prefetcht0 %0" : : "m"(*reinterpret_cast<const char*>(p)));
#else
  (void)p;
#endif
}
template <int M>
inline void prefetch_tile(const float* c, int64_t ldc, const GemmEpilogue* ep) {
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < kGemmNR; j += 16) prefetch_line(c + i * ldc + j);
  if (ep && ep->residual)
    for (int i = 0; i < M; ++i)
      for (int j = 0; j < kGemmNR; j += 16) prefetch_line(ep->residual + i * ep->ldr + j);
}

// Stores a full MR x NR tile held in acc: x = acc (+ C when accumulating), then the epilogue, in one pass.
template <int M>
inline void store_tile(Vec (&acc)[M][kVecsPerRow], float* c, int64_t ldc, bool accumulate, const GemmEpilogue* ep) {
  Vec bias[kVecsPerRow];
  if (ep && ep->bias)
    for (int v = 0; v < kVecsPerRow; ++v) bias[v] = Vec::load(ep->bias + v * kW);
  for (int i = 0; i < M; ++i) {
    for (int v = 0; v < kVecsPerRow; ++v) {
      Vec x = acc[i][v];
      float* cp = c + i * ldc + v * kW;
      if (accumulate) x = x + Vec::load(cp);
      if (ep) {
        if (ep->bias) x = x + bias[v];
        x = vec_activation(x, ep->activation);
        if (ep->residual) x = x + Vec::load(ep->residual + i * ep->ldr + v * kW);
      }
      x.store(cp);
    }
  }
}

// store_tile for a tile of n <= NR valid columns: full tiles store directly; edge tiles run the same store on a
// full-width scratch tile, then copy the n valid columns.
template <int M>
inline void store_tile_cols(Vec (&acc)[M][kVecsPerRow], int n, float* c, int64_t ldc, bool accumulate,
                            const GemmEpilogue* ep) {
  if (n == kGemmNR) {
    store_tile<M>(acc, c, ldc, accumulate, ep);
    return;
  }
  alignas(64) float tile[M * kGemmNR];
  alignas(64) float res[M * kGemmNR];
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < n; ++j) tile[i * kGemmNR + j] = accumulate ? c[i * ldc + j] : 0.0f;
  GemmEpilogue local;
  const GemmEpilogue* lep = ep;
  if (ep && ep->residual) {
    local = *ep;
    for (int i = 0; i < M; ++i)
      for (int j = 0; j < kGemmNR; ++j) res[i * kGemmNR + j] = j < n ? ep->residual[i * ep->ldr + j] : 0.0f;
    local.residual = res;
    local.ldr = kGemmNR;
    lep = &local;
  }
  store_tile<M>(acc, tile, kGemmNR, accumulate, lep);
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < n; ++j) c[i * ldc + j] = tile[i * kGemmNR + j];
}

// M rows, U independent accumulator sets over k (U > 1 hides FMA latency when M is small, e.g. M = 1 decode).
// A group-scaled panel (int8) defers its scale to the end of each group when the tile has registers for a
// second, scaled set of sums: one FMA per accumulator per group instead of a multiply per B vector per k
// (decode-sized tiles: M = 1 spent ~30% more time with the multiply on AVX-512).
template <int M, int U, class Panel>
void ukernel_rows(int n, int64_t k, const float* a, int64_t rs_a, int64_t cs_a, Panel b, float* c, int64_t ldc,
                  bool accumulate, const GemmEpilogue* ep) {
  constexpr bool kDefer = Panel::kGroupScaled && M * kVecsPerRow * U + 2 * kVecsPerRow + 1 <= kVectorRegisters;
  prefetch_tile<M>(c, ldc, ep);
  Vec acc[U][M][kVecsPerRow];
  Vec total[kDefer ? M : 1][kVecsPerRow];
  for (int u = 0; u < U; ++u)
    for (int i = 0; i < M; ++i)
      for (int v = 0; v < kVecsPerRow; ++v) acc[u][i][v] = Vec::zero();
  if constexpr (kDefer)
    for (int i = 0; i < M; ++i)
      for (int v = 0; v < kVecsPerRow; ++v) total[i][v] = Vec::zero();
  auto b_row = [&b](int64_t p, int v) {
    if constexpr (kDefer) return b.raw(p, v);
    else return b.row(p, v);
  };

  const int64_t group = b.group_size(k);
  for (int64_t g0 = 0; g0 < k; g0 += group) {
    b.begin_group(g0 / group);
    const int64_t g1 = std::min(k, g0 + group);
    int64_t p = g0;
    for (; p + U <= g1; p += U) {
      for (int u = 0; u < U; ++u) {
        Vec bv[kVecsPerRow];
        for (int v = 0; v < kVecsPerRow; ++v) bv[v] = b_row(p + u, v);
        for (int i = 0; i < M; ++i) {
          Vec ai = Vec::broadcast(a[i * rs_a + (p + u) * cs_a]);
          for (int v = 0; v < kVecsPerRow; ++v) acc[u][i][v] = fma(ai, bv[v], acc[u][i][v]);
        }
      }
    }
    for (; p < g1; ++p) {
      Vec bv[kVecsPerRow];
      for (int v = 0; v < kVecsPerRow; ++v) bv[v] = b_row(p, v);
      for (int i = 0; i < M; ++i) {
        Vec ai = Vec::broadcast(a[i * rs_a + p * cs_a]);
        for (int v = 0; v < kVecsPerRow; ++v) acc[0][i][v] = fma(ai, bv[v], acc[0][i][v]);
      }
    }
    if constexpr (kDefer) {
      for (int i = 0; i < M; ++i)
        for (int v = 0; v < kVecsPerRow; ++v) {
          Vec sum = acc[0][i][v];
          for (int u = 1; u < U; ++u) sum = sum + acc[u][i][v];
          total[i][v] = fma(sum, b.group_scale(v), total[i][v]);
          for (int u = 0; u < U; ++u) acc[u][i][v] = Vec::zero();
        }
    }
  }
  if constexpr (kDefer) {
    for (int i = 0; i < M; ++i)
      for (int v = 0; v < kVecsPerRow; ++v) acc[0][i][v] = total[i][v];
  } else {
    for (int u = 1; u < U; ++u)
      for (int i = 0; i < M; ++i)
        for (int v = 0; v < kVecsPerRow; ++v) acc[0][i][v] = acc[0][i][v] + acc[u][i][v];
  }

  store_tile_cols<M>(acc[0], n, c, ldc, accumulate, ep);
}

template <class Panel>
using RowsFn = void (*)(int, int64_t, const float*, int64_t, int64_t, Panel, float*, int64_t, bool,
                        const GemmEpilogue*);

template <class Panel, int M>
constexpr RowsFn<Panel> rows_fn() {
  // Keep about 8 independent FMA chains in flight: 1 row -> 4 k-sets, 2 rows -> 2, more rows -> 1.
  constexpr int U = M == 1 ? 4 : (M == 2 ? 2 : 1);
  return &ukernel_rows<M, U, Panel>;
}

template <class Panel, int... Ms>
constexpr auto make_rows_table(std::integer_sequence<int, Ms...>) {
  return std::array<RowsFn<Panel>, sizeof...(Ms)>{rows_fn<Panel, Ms + 1>()...};
}

// kRowsTable<Panel>[m - 1] runs an m-row tile.
template <class Panel>
constexpr auto kRowsTable = make_rows_table<Panel>(std::make_integer_sequence<int, kGemmMR>{});

}  // namespace
}  // namespace cpuformer::kernels::CPUFORMER_KERNEL_ISA
