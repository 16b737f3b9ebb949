// gemm_kernels.cc — C tile (m x n, m <= MR, n <= NR) = A rows (m x k, lda) * packed B panel (k x NR).
// A through its strides (rows in place, or an MR-row panel gemm.cc packed; one broadcast per row and k), B from
// its packed panel (NR contiguous floats per k).
#include "kernels/gemm_kernels.h"

#include <array>
#include <utility>

#include "kernels/vec_math.h"

namespace cpuformer::kernels::CPUFORMER_KERNEL_ISA {
namespace {

constexpr int kW = Vec::width;
constexpr int kVecsPerRow = kGemmNR / kW;

// Stores a full MR x NR tile held in acc, applying accumulate and the epilogue in the same pass.
template <int M>
inline void store_tile(Vec (&acc)[M][kVecsPerRow], float* c, int64_t ldc, bool accumulate,
                       const GemmEpilogue* ep) {
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

// M rows, U independent accumulator sets over k (U > 1 hides FMA latency when M is small, e.g. M = 1 decode).
template <int M, int U>
void ukernel_rows(int n, int64_t k, const float* a, int64_t rs_a, int64_t cs_a, const float* b, float* c,
                  int64_t ldc, bool accumulate, const GemmEpilogue* ep) {
  Vec acc[U][M][kVecsPerRow];
  for (int u = 0; u < U; ++u)
    for (int i = 0; i < M; ++i)
      for (int v = 0; v < kVecsPerRow; ++v) acc[u][i][v] = Vec::zero();

  int64_t p = 0;
  for (; p + U <= k; p += U) {
    for (int u = 0; u < U; ++u) {
      const float* bp = b + (p + u) * kGemmNR;
      Vec bv[kVecsPerRow];
      for (int v = 0; v < kVecsPerRow; ++v) bv[v] = Vec::load(bp + v * kW);
      for (int i = 0; i < M; ++i) {
        Vec ai = Vec::broadcast(a[i * rs_a + (p + u) * cs_a]);
        for (int v = 0; v < kVecsPerRow; ++v) acc[u][i][v] = fma(ai, bv[v], acc[u][i][v]);
      }
    }
  }
  for (; p < k; ++p) {
    const float* bp = b + p * kGemmNR;
    for (int i = 0; i < M; ++i) {
      Vec ai = Vec::broadcast(a[i * rs_a + p * cs_a]);
      for (int v = 0; v < kVecsPerRow; ++v) acc[0][i][v] = fma(ai, Vec::load(bp + v * kW), acc[0][i][v]);
    }
  }
  for (int u = 1; u < U; ++u)
    for (int i = 0; i < M; ++i)
      for (int v = 0; v < kVecsPerRow; ++v) acc[0][i][v] = acc[0][i][v] + acc[u][i][v];

  if (n == kGemmNR) {
    store_tile<M>(acc[0], c, ldc, accumulate, ep);
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
  store_tile<M>(acc[0], tile, kGemmNR, accumulate, lep);
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < n; ++j) c[i * ldc + j] = tile[i * kGemmNR + j];
}

using RowsFn = void (*)(int, int64_t, const float*, int64_t, int64_t, const float*, float*, int64_t, bool,
                        const GemmEpilogue*);

template <int M>
constexpr RowsFn rows_fn() {
  // Keep about 8 independent FMA chains in flight: 1 row -> 4 k-sets, 2 rows -> 2, more rows -> 1.
  constexpr int U = M == 1 ? 4 : (M == 2 ? 2 : 1);
  return &ukernel_rows<M, U>;
}

template <int... Ms>
constexpr auto make_rows_table(std::integer_sequence<int, Ms...>) {
  return std::array<RowsFn, sizeof...(Ms)>{rows_fn<Ms + 1>()...};
}

constexpr auto kRowsTable = make_rows_table(std::make_integer_sequence<int, kGemmMR>{});

}  // namespace

void gemm_ukernel(int m, int n, int64_t k, const float* a, int64_t rs_a, int64_t cs_a, const float* b_panel,
                  float* c, int64_t ldc, bool accumulate, const GemmEpilogue* epilogue) {
  kRowsTable[m - 1](n, k, a, rs_a, cs_a, b_panel, c, ldc, accumulate, epilogue);
}

}  // namespace cpuformer::kernels::CPUFORMER_KERNEL_ISA
