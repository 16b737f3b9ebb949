// gemm_bf16_compute.cc — the avx512_bf16 level: the avx512_vnni kernel table plus bf16 compute on vdpbf16ps.
// C tile (m x n, m <= 12, n <= 32) (+)= A (m x k, bf16 (k even, k odd) pairs) * B panel (k x 32, bf16 k2 layout),
// then the fused epilogue of the fp32 kernels (gemm_ukernel_tile.h's store_tile_cols). Compiled once, by
// cpuformer_add_bf16_kernels, with the AVX-512 vectors (CPUFORMER_KERNEL_ISA_AVX512), -mavx512bf16 and
// CPUFORMER_KERNEL_BASE = avx512_vnni.
//
// Per k pair: one 32-bit broadcast of (a[i, k], a[i, k + 1]) per row, one 64-byte load per 16 columns of B (16 lanes
// of (b[k, j], b[k + 1, j])), and vdpbf16ps adds both products to the fp32 lane (each product of two bf16 is exact
// in fp32; the instruction rounds to nearest even, and treats bf16 denormals as zero). 12 x 32: 24 accumulators
// + 2 B vectors + 1 broadcast of 32 zmm, as the fp32 AVX-512 tile; one vdpbf16ps does the work of two FMAs.
#include <cstring>

#include "kernels/gemm_ukernel_tile.h"

#define CPUFORMER_BF16_STRINGIFY_INNER(x) #x
#define CPUFORMER_BF16_STRINGIFY(x) CPUFORMER_BF16_STRINGIFY_INNER(x)

namespace cpuformer::kernels::CPUFORMER_KERNEL_ISA {
namespace {

constexpr int kBF16MR = kGemmMR;
constexpr int64_t kPairRow = kGemmNR * 2;  // uint16 values per k2 row of a B panel

inline __m512 dot_bf16(__m512 acc, __m512i a, __m512i b) {
  return _mm512_dpbf16_ps(acc, reinterpret_cast<__m512bh&>(a), reinterpret_cast<__m512bh&>(b));
}

inline __m512i broadcast_pair(const uint16_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// M rows, U independent accumulator sets over k pairs (U > 1 hides vdpbf16ps latency for 1- and 2-row tiles).
template <int M, int U>
void bf16_rows(int n, int64_t k, const uint16_t* a, int64_t lda, const uint16_t* b, float* c, int64_t ldc,
               bool accumulate, const GemmEpilogue* ep) {
  prefetch_tile<M>(c, ldc, ep);
  Vec acc[U][M][kVecsPerRow];
  for (int u = 0; u < U; ++u)
    for (int i = 0; i < M; ++i)
      for (int v = 0; v < kVecsPerRow; ++v) acc[u][i][v] = Vec::zero();
  const int64_t pairs = (k + 1) / 2;
  int64_t s = 0;
  for (; s + U <= pairs; s += U) {
    for (int u = 0; u < U; ++u) {
      __m512i bv[kVecsPerRow];
      for (int v = 0; v < kVecsPerRow; ++v) bv[v] = _mm512_loadu_si512(b + (s + u) * kPairRow + v * kW * 2);
      for (int i = 0; i < M; ++i) {
        const __m512i ai = broadcast_pair(a + i * lda + 2 * (s + u));
        for (int v = 0; v < kVecsPerRow; ++v) acc[u][i][v].v = dot_bf16(acc[u][i][v].v, ai, bv[v]);
      }
    }
  }
  for (; s < pairs; ++s) {
    __m512i bv[kVecsPerRow];
    for (int v = 0; v < kVecsPerRow; ++v) bv[v] = _mm512_loadu_si512(b + s * kPairRow + v * kW * 2);
    for (int i = 0; i < M; ++i) {
      const __m512i ai = broadcast_pair(a + i * lda + 2 * s);
      for (int v = 0; v < kVecsPerRow; ++v) acc[0][i][v].v = dot_bf16(acc[0][i][v].v, ai, bv[v]);
    }
  }
  for (int u = 1; u < U; ++u)
    for (int i = 0; i < M; ++i)
      for (int v = 0; v < kVecsPerRow; ++v) acc[0][i][v] = acc[0][i][v] + acc[u][i][v];
  store_tile_cols<M>(acc[0], n, c, ldc, accumulate, ep);
}

using BF16RowsFn = void (*)(int, int64_t, const uint16_t*, int64_t, const uint16_t*, float*, int64_t, bool,
                            const GemmEpilogue*);

template <int... Ms>
constexpr auto make_bf16_table(std::integer_sequence<int, Ms...>) {
  // About 8 independent chains in flight: 1 row -> 4 pair sets, 2 rows -> 2, more rows -> 1 (as gemm_ukernel_tile.h).
  return std::array<BF16RowsFn, sizeof...(Ms)>{
      &bf16_rows<Ms + 1, (Ms + 1 == 1 ? 4 : (Ms + 1 == 2 ? 2 : 1))>...};
}
constexpr auto kBF16Rows = make_bf16_table(std::make_integer_sequence<int, kBF16MR>{});

}  // namespace

void gemm_ukernel_avx512bf16_bf16_12x32(int m, int n, int64_t k, const uint16_t* a, int64_t lda,
                                         const uint16_t* b_panel, float* c, int64_t ldc, bool accumulate,
                                         const GemmEpilogue* epilogue) {
  kBF16Rows[m - 1](n, k, a, lda, b_panel, c, ldc, accumulate, epilogue);
}

// x[k] -> out[round_up(k, 2)] bf16 by vcvtne2ps2bf16 (round to nearest even, NaN stays NaN; fp32 denormals become
// zero), 32 floats per instruction; the pad after an odd k is a zero bf16.
void convert_bf16_row_avx512bf16(const float* x, int64_t k, uint16_t* out) {
  int64_t j = 0;
  for (; j + 32 <= k; j += 32) {
    const __m512bh r = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + j + 16), _mm512_loadu_ps(x + j));
    _mm512_storeu_si512(out + j, reinterpret_cast<const __m512i&>(r));
  }
  const int64_t rest = k - j;
  if (rest > 0) {
    const __mmask16 lo = static_cast<__mmask16>(rest >= 16 ? 0xFFFFu : (1u << rest) - 1u);
    const __mmask16 hi = static_cast<__mmask16>(rest <= 16 ? 0u : (1u << (rest - 16)) - 1u);
    const __m512bh r = _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, x + j + 16), _mm512_maskz_loadu_ps(lo, x + j));
    _mm512_mask_storeu_epi16(out + j, static_cast<__mmask32>((1ull << rest) - 1u), reinterpret_cast<const __m512i&>(r));
  }
  if (k % 2) out[k] = 0;
}

const KernelTable& kernel_table() {
  static const KernelTable table = [] {
    KernelTable t = CPUFORMER_KERNEL_BASE::kernel_table();
    t.isa_name = CPUFORMER_BF16_STRINGIFY(CPUFORMER_KERNEL_ISA);
    t.bf16_mr = kBF16MR;
    t.bf16_by_default = true;
    t.bf16_compute_name = "vdpbf16ps 12x32 (AVX512_BF16)";
    t.gemm_ukernel_bf16 = &gemm_ukernel_avx512bf16_bf16_12x32;
    t.convert_bf16_row = &convert_bf16_row_avx512bf16;
    return t;
  }();
  return table;
}

}  // namespace cpuformer::kernels::CPUFORMER_KERNEL_ISA
