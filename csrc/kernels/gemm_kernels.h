// gemm_kernels.h — register-blocked GEMM micro-kernel and its tile shape for the ISA being compiled.
#pragma once
#include "kernels/kernel_table.h"
#include "kernels/simd.h"

namespace cpuformer::kernels::CPUFORMER_KERNEL_ISA {

// Tile of C held in registers: MR rows x NR columns, NR = two vectors. AVX2: 6x16 uses 12 of 16 ymm for
// accumulators; AVX-512: 12x32 uses 24 of 32 zmm; generic: 4x8.
#if defined(CPUFORMER_KERNEL_ISA_AVX512)
inline constexpr int kGemmMR = 12;
#elif defined(CPUFORMER_KERNEL_ISA_AVX2)
inline constexpr int kGemmMR = 6;
#else
inline constexpr int kGemmMR = 4;
#endif
inline constexpr int kGemmNR = 2 * Vec::width;

void gemm_ukernel(int m, int n, int64_t k, const float* a, int64_t rs_a, int64_t cs_a, const float* b_panel,
                  float* c, int64_t ldc, bool accumulate, const GemmEpilogue* epilogue);
// The same tile with an int8 B panel (k x NR bytes) and per-(group, column) scales (gemm_int8_kernels.cc).
void gemm_ukernel_f32s8(int m, int n, int64_t k, const float* a, int64_t rs_a, int64_t cs_a, const int8_t* b_panel,
                        const float* scale, int64_t group, float* c, int64_t ldc, bool accumulate,
                        const GemmEpilogue* epilogue);
// The same tile with a bf16 B panel (k x NR uint16, the top halves of floats; gemm_bf16_kernels.cc).
void gemm_ukernel_f32bf16(int m, int n, int64_t k, const float* a, int64_t rs_a, int64_t cs_a,
                          const uint16_t* b_panel, float* c, int64_t ldc, bool accumulate,
                          const GemmEpilogue* epilogue);
// int8 compute (gemm_u8s8_tile.h). Rows per tile: the kernel keeps d (int32 sums of a K group), acc (fp32 result)
// and, without VNNI, two int16 nibble sums per (row, B vector) in registers. AVX-512 nibbles: 3 x 2 x 4 + 2 B + 2
// broadcasts = 28 of 32 zmm; VNNI: 6 x 2 x 2 + 3 = 27; AVX2 nibbles: 1 x 2 x 4 + 4 = 12 of 16 ymm; AVX-VNNI:
// 3 x 2 x 2 + 3 = 15. Nibbles: A comes as two planes of 4-bit halves (no VNNI, so vpmaddubsw would saturate).
#if defined(CPUFORMER_KERNEL_VNNI) || defined(CPUFORMER_KERNEL_ISA_GENERIC)
inline constexpr bool kU8S8Nibbles = false;
#else
inline constexpr bool kU8S8Nibbles = true;
#endif
#if defined(CPUFORMER_KERNEL_ISA_AVX512)
inline constexpr int kU8S8MR = kU8S8Nibbles ? 3 : 6;
#elif defined(CPUFORMER_KERNEL_ISA_AVX2)
inline constexpr int kU8S8MR = kU8S8Nibbles ? 1 : 3;
#else
inline constexpr int kU8S8MR = kGemmMR;
#endif
void gemm_ukernel_u8s8(int m, int n, int64_t k, const QuantizedRows& a, const int8_t* b4, const float* b_scale,
                       const float* b_colsum, int64_t group, float* c, int64_t ldc, bool accumulate,
                       const GemmEpilogue* epilogue);
bool quantize_u8_row(const float* x, const float* inv_smooth, int64_t k, int64_t group, uint8_t* q, float* scale,
                     float* zero);
// k rows of a quantized B panel -> fp32 panel rows (k x NR floats), as the micro-kernels see them.
void gemm_widen_s8(const int8_t* b_panel, const float* scale, int64_t group, int64_t k, float* out);
void gemm_widen_bf16(const uint16_t* b_panel, int64_t k, float* out);

}  // namespace cpuformer::kernels::CPUFORMER_KERNEL_ISA
