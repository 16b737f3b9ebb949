// gemm.h — C = act(A * W^T + bias) + residual with W pre-packed, parallel over tiles of C.
#pragma once
#include <cstdint>

#include "kernels/kernel_table.h"
#include "ops/packed_matrix.h"

namespace cpuformer {

// a: [m, k] rows lda apart; c: [m, n] rows ldc apart (must not overlap a); residual: [m, n] rows ldr apart,
// or null. Runs on the kernels `b` was packed for; b's panels may be float32, bf16 or int8 (weight-only: the
// micro-kernel converts B to float in registers; int8 also scales it by its (group, column) scale).
// compute_in_weight_dtype: with int8 weights and at least gemm_u8s8_min_rows() rows, quantize A too (int8 compute);
// with bf16 weights and at least gemm_bf16_min_rows() rows, round A to bf16 (bf16 compute, where the kernels have it).
// false keeps both weight-only at any M (recurrent layers: their input projections feed gates that compound
// rounding over time steps, and their step loop is weight-only anyway).
void gemm_packed(const float* a, int64_t m, int64_t lda, const PackedMatrix& b, float* c, int64_t ldc,
                 kernels::Activation activation = kernels::Activation::none, const float* residual = nullptr,
                 int64_t ldr = 0, bool compute_in_weight_dtype = true);

// From this many rows of A on, gemm_packed runs int8 weights as int8 compute (A quantized per row and K group), on
// the active kernels (KernelTable::u8s8_min_rows: 1 with VNNI, 16 without).
int64_t gemm_u8s8_min_rows();

// When int8 compute runs (CPUFORMER_INT8_COMPUTE, read once; the test hook changes it): auto = on the levels where
// it beats fp32 (KernelTable::u8s8_by_default: the VNNI levels), on = on every level, off = never (weight-only).
enum class Int8ComputeMode { automatic, on, off };
Int8ComputeMode int8_compute_mode();
void set_int8_compute_mode(Int8ComputeMode mode);
bool int8_compute_enabled(const kernels::KernelTable& kt);

// From this many rows of A on, gemm_packed runs bf16 weights as bf16 compute where it is enabled.
int64_t gemm_bf16_min_rows();

// When bf16 compute runs (CPUFORMER_BF16_COMPUTE, read once; the test hook changes it), only on kernels that have it
// (KernelTable::gemm_ukernel_bf16: the avx512_bf16 level): auto = where KernelTable::bf16_by_default, on = always,
// off = never (weight-only).
enum class BF16ComputeMode { automatic, on, off };
BF16ComputeMode bf16_compute_mode();
void set_bf16_compute_mode(BF16ComputeMode mode);
bool bf16_compute_enabled(const kernels::KernelTable& kt);

// A rounded to bf16 for bf16 compute: row i at a + i * lda (uint16 bit patterns, lda even, k padded with a zero).
struct BF16Rows {
  const uint16_t* a;
  int64_t lda;
};

struct GemmBlockOptions {
  kernels::Activation activation = kernels::Activation::none;
  const float* residual = nullptr;  // at the block's first row and column, rows ldr apart
  int64_t ldr = 0;
  bool pack_a = false;  // copy A into MR-row panels first (worth it when rows >> MR)
  // C = act(C + A*B + bias) + residual: the block adds onto what C holds (the micro-kernel's beta = 1 from the
  // first K block on). Off (beta = 0), C is written without being read first.
  bool accumulate = false;
  // K block length; 0 = gemm's own choice (KC = 1024, or all of K when the A block is small). A caller whose
  // row tiles must reuse each B panel slice from L1 passes a shorter one.
  int64_t kc = 0;
  // int8 compute: the block's rows of A quantized (gemm_packed does it when B is int8 and M is large enough); B must
  // be int8. Null: A is read as floats.
  const kernels::QuantizedRows* quantized = nullptr;
  // bf16 compute: the block's rows of A rounded to bf16 (gemm_packed does it when B is bf16, M is large enough and
  // the kernels have it); B must be bf16. Null: A is read as floats.
  const BF16Rows* bf16 = nullptr;
};

// Serial building block of gemm_packed for ops that fuse work around a GEMM: C[rows, columns of panels
// [panel_begin, panel_end)] (=, or += with options.accumulate) A[rows, k] * B, for `rows` rows of A (rows may be
// 0). `c` points at the block's first row and column. K is blocked as in gemm_packed unless options.kc is set.
void gemm_packed_block(const float* a, int64_t rows, int64_t lda, const PackedMatrix& b, int64_t panel_begin,
                       int64_t panel_end, float* c, int64_t ldc, const GemmBlockOptions& options);

}  // namespace cpuformer
