// gemm_ukernel_tile.h — the register-tile body shared by the fp32 micro-kernel (gemm_kernels.cc) and the
// int8-weight one (gemm_int8_kernels.cc): C tile (m x n, m <= MR, n <= NR) = A rows (m x k) * B panel (k x NR)
// with B elements of type TB (float, or int8 converted to float in registers), times an optional per-column
// scale, then the fused epilogue. Included only by kernel sources, so every copy lives in one ISA's namespace.
#pragma once
#include <array>
#include <utility>

#include "kernels/gemm_kernels.h"
#include "kernels/vec_math.h"

namespace cpuformer::kernels::CPUFORMER_KERNEL_ISA {
namespace {

constexpr int kW = Vec::width;
constexpr int kVecsPerRow = kGemmNR / kW;

inline Vec load_b(const float* p) { return Vec::load(p); }
inline Vec load_b(const int8_t* p) { return Vec::load_s8(p); }

// Stores a full MR x NR tile held in acc: x = acc (* scale), (+ C when accumulating), then the epilogue, in one
// pass. The scale multiplies this K block's sum before it meets C, so partial sums in C are already in output
// units and accumulate (beta = 1) means the same as for fp32 weights.
template <int M>
inline void store_tile(Vec (&acc)[M][kVecsPerRow], float* c, int64_t ldc, bool accumulate, const float* scale,
                       const GemmEpilogue* ep) {
  Vec bias[kVecsPerRow], sc[kVecsPerRow];
  if (ep && ep->bias)
    for (int v = 0; v < kVecsPerRow; ++v) bias[v] = Vec::load(ep->bias + v * kW);
  if (scale)
    for (int v = 0; v < kVecsPerRow; ++v) sc[v] = Vec::load(scale + v * kW);
  for (int i = 0; i < M; ++i) {
    for (int v = 0; v < kVecsPerRow; ++v) {
      Vec x = acc[i][v];
      float* cp = c + i * ldc + v * kW;
      if (scale) x = x * sc[v];
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

// M rows, U independent accumulator sets over k (U > 1 hides FMA latency when M is small, e.g. M = 1 decode).
// B is one NR-wide row of TB per k; scale is NR floats or null.
template <int M, int U, class TB>
void ukernel_rows(int n, int64_t k, const float* a, int64_t rs_a, int64_t cs_a, const TB* b, const float* scale,
                  float* c, int64_t ldc, bool accumulate, const GemmEpilogue* ep) {
  Vec acc[U][M][kVecsPerRow];
  for (int u = 0; u < U; ++u)
    for (int i = 0; i < M; ++i)
      for (int v = 0; v < kVecsPerRow; ++v) acc[u][i][v] = Vec::zero();

  int64_t p = 0;
  for (; p + U <= k; p += U) {
    for (int u = 0; u < U; ++u) {
      const TB* bp = b + (p + u) * kGemmNR;
      Vec bv[kVecsPerRow];
      for (int v = 0; v < kVecsPerRow; ++v) bv[v] = load_b(bp + v * kW);
      for (int i = 0; i < M; ++i) {
        Vec ai = Vec::broadcast(a[i * rs_a + (p + u) * cs_a]);
        for (int v = 0; v < kVecsPerRow; ++v) acc[u][i][v] = fma(ai, bv[v], acc[u][i][v]);
      }
    }
  }
  for (; p < k; ++p) {
    const TB* bp = b + p * kGemmNR;
    Vec bv[kVecsPerRow];
    for (int v = 0; v < kVecsPerRow; ++v) bv[v] = load_b(bp + v * kW);
    for (int i = 0; i < M; ++i) {
      Vec ai = Vec::broadcast(a[i * rs_a + p * cs_a]);
      for (int v = 0; v < kVecsPerRow; ++v) acc[0][i][v] = fma(ai, bv[v], acc[0][i][v]);
    }
  }
  for (int u = 1; u < U; ++u)
    for (int i = 0; i < M; ++i)
      for (int v = 0; v < kVecsPerRow; ++v) acc[0][i][v] = acc[0][i][v] + acc[u][i][v];

  if (n == kGemmNR) {
    store_tile<M>(acc[0], c, ldc, accumulate, scale, ep);
    return;
  }
  // Edge columns: run the same store on a full-width scratch tile, then copy the n valid columns.
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
  store_tile<M>(acc[0], tile, kGemmNR, accumulate, scale, lep);
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < n; ++j) c[i * ldc + j] = tile[i * kGemmNR + j];
}

template <class TB>
using RowsFn = void (*)(int, int64_t, const float*, int64_t, int64_t, const TB*, const float*, float*, int64_t, bool,
                        const GemmEpilogue*);

template <class TB, int M>
constexpr RowsFn<TB> rows_fn() {
  // Keep about 8 independent FMA chains in flight: 1 row -> 4 k-sets, 2 rows -> 2, more rows -> 1.
  constexpr int U = M == 1 ? 4 : (M == 2 ? 2 : 1);
  return &ukernel_rows<M, U, TB>;
}

template <class TB, int... Ms>
constexpr auto make_rows_table(std::integer_sequence<int, Ms...>) {
  return std::array<RowsFn<TB>, sizeof...(Ms)>{rows_fn<TB, Ms + 1>()...};
}

// kRowsTable<TB>[m - 1] runs an m-row tile.
template <class TB>
constexpr auto kRowsTable = make_rows_table<TB>(std::make_integer_sequence<int, kGemmMR>{});

}  // namespace
}  // namespace cpuformer::kernels::CPUFORMER_KERNEL_ISA
