// kernel_table.cc — fills this ISA's KernelTable; compiled once per ISA like every kernel file.
// Entries are assigned by name so adding a kernel never depends on the order of the struct's fields.
#include "kernels/kernel_table.h"

#include "kernels/attention_kernels.h"
#include "kernels/elementwise_kernels.h"
#include "kernels/gemm_kernels.h"
#include "kernels/llama_kernels.h"
#include "kernels/lstm_kernels.h"

namespace cpuformer::kernels::CPUFORMER_KERNEL_ISA {

#define CPUFORMER_STRINGIFY_INNER(x) #x
#define CPUFORMER_STRINGIFY(x) CPUFORMER_STRINGIFY_INNER(x)

static KernelTable make_table() {
  KernelTable t{};
  t.isa_name = CPUFORMER_STRINGIFY(CPUFORMER_KERNEL_ISA);
  t.gemm_mr = kGemmMR;
  t.gemm_nr = kGemmNR;
  t.gemm_ukernel = &gemm_ukernel;
  t.gemm_ukernel_f32s8 = &gemm_ukernel_f32s8;
  t.gemm_ukernel_f32bf16 = &gemm_ukernel_f32bf16;
  t.gemm_widen_s8 = &gemm_widen_s8;
  t.gemm_widen_bf16 = &gemm_widen_bf16;
  t.u8s8_mr = kU8S8MR;
  t.u8s8_nibbles = kU8S8Nibbles;
  t.u8s8_by_default = false;
  t.u8s8_min_rows = 16;
  t.gemm_ukernel_u8s8 = &gemm_ukernel_u8s8;
  t.quantize_u8_row = &quantize_u8_row;
  t.bf16_mr = 0;
  t.bf16_by_default = false;
  t.bf16_compute_name = nullptr;
  t.gemm_ukernel_bf16 = nullptr;
  t.convert_bf16_row = nullptr;
  t.activation = &activation;
  t.layer_norm_row = &layer_norm_row;
  t.softmax_row = &softmax_row;
  t.add_inplace = &add_inplace;
  t.scale_inplace = &scale_inplace;
  t.dot = &dot;
  t.axpy = &axpy;
  t.select_greater_or_nan = &select_greater_or_nan;
  t.lstm_gates = &lstm_gates;
  t.gru_gates = &gru_gates;
  t.rnn_gates = &rnn_gates;
  t.rms_norm_row = &rms_norm_row;
  t.rope_rotate_half = &rope_rotate_half;
  t.silu_mul_row = &silu_mul_row;
  t.attention_tile = &attention_tile;
  t.attention_workspace_floats = &attention_workspace_floats;
  t.attention_merge = &attention_merge;
  return t;
}

const KernelTable& kernel_table() {
  static const KernelTable table = make_table();
  return table;
}

}  // namespace cpuformer::kernels::CPUFORMER_KERNEL_ISA
