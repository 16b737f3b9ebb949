// kernel_table.h — the ONE table of kernel entry points. csrc/cpu/dispatch.cc picks a filled table at
// start-up; ops call through it and never test ISA macros themselves.
#pragma once
#include <cstdint>

namespace cpuformer::kernels {

enum class Activation : int { none = 0, gelu = 1, gelu_tanh = 2, relu = 3 };

// What the GEMM micro-kernel applies when it stores the last K block: y = act(acc + bias) + residual.
struct GemmEpilogue {
  const float* bias = nullptr;      // NR values for this panel (zero-padded), or null
  Activation activation = Activation::none;
  const float* residual = nullptr;  // same tile position as C, or null
  int64_t ldr = 0;
};

// C[m, n] (ldc) := (accumulate ? C : 0) + A[m, k] * Bpanel[k, NR]; m <= MR, n <= NR. A's element (i, p) is
// a[i*rs_a + p*cs_a]: rows in place (rs_a = lda, cs_a = 1) or a packed MR-row panel (rs_a = 1, cs_a = MR).
// The epilogue, when non-null, is applied in the same pass as the store.
using GemmUkernelFn = void (*)(int m, int n, int64_t k, const float* a, int64_t rs_a, int64_t cs_a,
                               const float* b_panel, float* c, int64_t ldc, bool accumulate,
                               const GemmEpilogue* epilogue);

struct KernelTable {
  const char* isa_name;
  int gemm_mr;  // rows of C per micro-kernel call
  int gemm_nr;  // columns per packed B panel
  GemmUkernelFn gemm_ukernel;
  // y[n] = act(x[n]); x may equal y.
  void (*activation)(const float* x, float* y, int64_t n, Activation act);
  // y[n] = (x - mean) / sqrt(var + eps) * gamma + beta, one row.
  void (*layer_norm_row)(const float* x, const float* gamma, const float* beta, float* y, int64_t n, float eps);
  // y[n] = softmax(x[n]); x may equal y.
  void (*softmax_row)(const float* x, float* y, int64_t n);
  // y[n] += x[n]
  void (*add_inplace)(float* y, const float* x, int64_t n);
  // y[n] *= s
  void (*scale_inplace)(float* y, float s, int64_t n);
  // returns sum_i a[i] * b[i]
  float (*dot)(const float* a, const float* b, int64_t n);
  // y[n] += s * x[n]
  void (*axpy)(float* y, float s, const float* x, int64_t n);
};

// One filled table per ISA, each defined in kernel_table.cc compiled for that ISA.
namespace generic { const KernelTable& kernel_table(); }
namespace avx2 { const KernelTable& kernel_table(); }
namespace avx512 { const KernelTable& kernel_table(); }

}  // namespace cpuformer::kernels
