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
// Weight-only int8: C[m, n] := (accumulate ? C : 0) + sum_p A[i, p] * (Bpanel[p, j] * scale[p / group, j]),
// Bpanel int8 [k, NR] (same panel layout as fp32, one byte per entry), scale [ceil(k / group), NR] floats; B is
// converted and scaled in registers, so C always holds output units.
using GemmUkernelF32S8Fn = void (*)(int m, int n, int64_t k, const float* a, int64_t rs_a, int64_t cs_a,
                                    const int8_t* b_panel, const float* scale, int64_t group, float* c,
                                    int64_t ldc, bool accumulate, const GemmEpilogue* epilogue);
// Weight-only bf16: as gemm_ukernel with Bpanel bf16 [k, NR] (uint16: the top 16 bits of a float), widened to
// float in registers (exact), fp32 FMAs.
using GemmUkernelF32BF16Fn = void (*)(int m, int n, int64_t k, const float* a, int64_t rs_a, int64_t cs_a,
                                      const uint16_t* b_panel, float* c, int64_t ldc, bool accumulate,
                                      const GemmEpilogue* epilogue);

// int8 compute (issue 10): activations quantized per (row, group of K) to u8 with a zero point, weights int8 per
// (group, column), products summed exactly in int32 per group and dequantized per group into the fp32 tile:
//   C[i, j] = sum_g scale_a[i, g] * scale_b[g, j] * (sum_{k in g} q_a[i, k] * q_b[k, j] - zero_a[i, g] * colsum[g, j])
// with colsum[g, j] = sum_{k in g} q_b[k, j].
struct QuantizedRows {
  const uint8_t* q;     // row i at q + i * ldq, the block's first k at offset 0 (K padded with zeros to a multiple of 4)
  int64_t ldq;
  int64_t lo_plane;     // nibble kernels (u8s8_nibbles): the row holds q >> 4 here and q & 15 at +lo_plane
  const float* scale;   // [rows, groups] lds apart: the block's first group at offset 0
  const float* zero;    // same layout: the zero point (an integer in [0, 255]) as a float
  int64_t lds;
};
// C tile (m <= u8s8_mr rows, n <= NR columns) (+)= the sum above over k values of one K block, then the epilogue.
// b4 is the block's int8 B interleaved by 4 k: b4[(p / 4) * NR * 4 + j * 4 + p % 4] = q_b[p, j] (zero past k);
// b_scale, b_colsum are [groups, NR] for the block's groups. group is a multiple of 4.
using GemmUkernelU8S8Fn = void (*)(int m, int n, int64_t k, const QuantizedRows& a, const int8_t* b4,
                                   const float* b_scale, const float* b_colsum, int64_t group, float* c,
                                   int64_t ldc, bool accumulate, const GemmEpilogue* epilogue);
// One row's k values (x, times inv_smooth[k] when non-null) -> u8 per group of `group`: scale = (max(x, 0) -
// min(x, 0)) / 255 (1 when 0), zero = round(-min / scale), q = clamp(round(x / scale) + zero, 0, 255).
// Returns false if the row holds a NaN or infinity (q is then unspecified).
using QuantizeU8RowFn = bool (*)(const float* x, const float* inv_smooth, int64_t k, int64_t group, uint8_t* q,
                                 float* scale, float* zero);

// bf16 compute (AVX512_BF16): A rounded to bf16 once per call, B the bf16 panel in its k2 layout, vdpbf16ps sums
// each (k even, k odd) pair of products into fp32:
// C tile (m <= bf16_mr rows, n <= NR columns) (+)= A[m, k] * Bpanel[k, NR], then the epilogue. Row i of A is at
// a + i * lda (uint16 bf16 bit patterns, lda even), the block's first k at offset 0 and k padded with a zero bf16
// to even; b_panel is the block's k2 rows (k even except in the last block).
using GemmUkernelBF16Fn = void (*)(int m, int n, int64_t k, const uint16_t* a, int64_t lda, const uint16_t* b_panel,
                                   float* c, int64_t ldc, bool accumulate, const GemmEpilogue* epilogue);
// One row of k floats -> round_up(k, 2) bf16 (round to nearest even, NaN stays NaN, the pad a zero).
using ConvertBF16RowFn = void (*)(const float* x, int64_t k, uint16_t* out);

// One query block of one (sequence, head) against its keys, for attention_tile (attention_kernels.h).
// Row i of q/k/v/out starts at ptr + i * ld (last axis of d floats contiguous), so strided views of a fused
// QKV projection and the KV cache are read in place.
struct AttentionTile {
  const float* q; int64_t ldq;  // [nq, d]
  const float* k; int64_t ldk;  // [nk, d]
  const float* v; int64_t ldv;  // [nk, d]
  float* out; int64_t ldo;      // [nq, d]
  int64_t nq, nk, d;
  float scale;
  const uint8_t* key_mask;  // [nk], nonzero = may attend; null = every key
  bool causal;              // if set, query i sees key j only when j <= i + causal_offset
  int64_t causal_offset;
  float* row_max;  // null: out is normalised. Else out gets the unnormalised sum and row_max/row_sum [nq]
  float* row_sum;  // the softmax state, so key splits can be merged by attention_merge
  float* workspace;  // attention_workspace_floats(nq, d) floats, 64-byte aligned
  // null, or this head's additive bias by relative position (MPNet): score(i, j) += rel_bias[rel_shift + j - i],
  // added after the scale. Indexed per (query, key), never stored as a [nq, nk] matrix.
  const float* rel_bias;
  int64_t rel_shift;
};

struct KernelTable {
  const char* isa_name;
  int gemm_mr;  // rows of C per micro-kernel call
  int gemm_nr;  // columns per packed B panel
  GemmUkernelFn gemm_ukernel;
  GemmUkernelF32S8Fn gemm_ukernel_f32s8;      // fp32 activations x int8 weights (per-group, per-column scales)
  GemmUkernelF32BF16Fn gemm_ukernel_f32bf16;  // fp32 activations x bf16 weights
  // k rows of an int8 / bf16 B panel -> out[k, NR] floats (q * scale[p / group] / widened bf16): the B the
  // micro-kernels above see, for callers that reuse one panel across many row tiles.
  void (*gemm_widen_s8)(const int8_t* b_panel, const float* scale, int64_t group, int64_t k, float* out);
  void (*gemm_widen_bf16)(const uint16_t* b_panel, int64_t k, float* out);
  // int8 compute. u8s8_nibbles: the kernel reads A as two nibble planes (without VNNI, vpmaddubsw would
  // saturate on full u8 x s8 pairs; 4-bit halves keep every int16 partial sum exact).
  int u8s8_mr;
  bool u8s8_nibbles;
  // Whether int8 compute beats fp32 on the widened weights here, so gemm runs it by default (CPUFORMER_INT8_COMPUTE
  // = auto): only the VNNI levels. Measured on a 2-core AVX-512 Xeon without VNNI, single thread, M = 128..512:
  // the nibble kernel ran at 0.6-0.9x of fp32 (GCC keeps a register copy per int16 accumulator per k4 step).
  bool u8s8_by_default;
  // Fewest rows of A that run int8 compute (fewer stay weight-only). 1 on the VNNI levels: measured on a 2-core
  // AMD EPYC (Zen 4), 2 threads, vpdpbusd beat the weight-only reader 3x at M = 1-16 with weights in cache
  // (768 x 2304: 15 vs 45 us at M = 1) and 1.4x from memory (GPT-2's 768 x 50257 head: 0.72 vs 1.0 ms), because
  // the weight-only reader's widening is the bound, not the bytes. 16 elsewhere (the nibble kernel is not faster).
  int u8s8_min_rows;
  GemmUkernelU8S8Fn gemm_ukernel_u8s8;
  QuantizeU8RowFn quantize_u8_row;
  // bf16 compute: only the avx512_bf16 level has it (null elsewhere: bf16 weights stay weight-only there).
  // bf16_by_default: whether CPUFORMER_BF16_COMPUTE=auto runs it (it must keep the accuracy bar: docs/ARCHITECTURE.md).
  int bf16_mr;
  bool bf16_by_default;
  const char* bf16_compute_name;  // e.g. "vdpbf16ps 12x32 (AVX512_BF16)", or null
  GemmUkernelBF16Fn gemm_ukernel_bf16;
  ConvertBF16RowFn convert_bf16_row;
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
  // Writes the ascending indices i with x[i] > threshold or x[i] NaN (every i when threshold is NaN); returns how many.
  int64_t (*select_greater_or_nan)(const float* x, int64_t n, float threshold, int64_t* indices);
  // Fused attention with online softmax over key blocks; never forms the [nq, nk] score matrix.
  void (*attention_tile)(const AttentionTile& tile);
  int64_t (*attention_workspace_floats)(int64_t nq, int64_t d);
  // out[nq, d] (ldo) = merge of `splits` partial attention_tile results: parts [splits, nq, d],
  // row_max / row_sum [splits, nq].
  void (*attention_merge)(const float* parts, const float* row_max, const float* row_sum, int64_t splits,
                          int64_t nq, int64_t d, float* out, int64_t ldo);
  // Llama-family rows (kernels/llama_kernels.cc): y[n] = x * rsqrt(mean(x^2) + eps) * weight (y may equal x);
  // one head x[2 * half] rotated in place by its position's cos/sin[half] (rotate-half convention);
  // y[n] = silu(gate) * up (y may equal gate or up).
  void (*rms_norm_row)(const float* x, const float* weight, float* y, int64_t n, float eps);
  void (*rope_rotate_half)(float* x, const float* cos, const float* sin, int64_t half);
  void (*silu_mul_row)(const float* gate, const float* up, float* y, int64_t n);
  // LSTM cell for n units: i, f, g, o pre-activations at gates + {0..3} * gate_stride; c[n] := f*c + i*g in place,
  // h[n] = o * tanh(c).
  void (*lstm_gates)(const float* gates, int64_t gate_stride, float* c, float* h, int64_t n);
  // GRU cell for n units: r, z, n input parts (with b_ih) at gi + {0..2} * gate_stride, hidden parts (with b_hh) at
  // gh + {0..2} * gate_stride; h[n] = (1 - z) * tanh(n_i + r * n_h) + z * h_prev.
  void (*gru_gates)(const float* gi, const float* gh, int64_t gate_stride, const float* h_prev, float* h, int64_t n);
  // Elman RNN cell: h[n] = tanh(pre[n]), or relu(pre[n]) when relu.
  void (*rnn_gates)(const float* pre, float* h, int64_t n, bool relu);
};

// One filled table per ISA, each defined in kernel_table.cc compiled for that ISA.
namespace generic { const KernelTable& kernel_table(); }
namespace avx2 { const KernelTable& kernel_table(); }
namespace avx512 { const KernelTable& kernel_table(); }
// The VNNI levels: the AVX2 / AVX-512 tables with the int8 compute kernel on vpdpbusd (csrc/kernels/vnni/).
namespace avx2_vnni { const KernelTable& kernel_table(); }
namespace avx512_vnni { const KernelTable& kernel_table(); }
// avx512_bf16: the avx512_vnni table plus bf16 compute on vdpbf16ps (csrc/kernels/bf16/).
namespace avx512_bf16 { const KernelTable& kernel_table(); }

}  // namespace cpuformer::kernels
