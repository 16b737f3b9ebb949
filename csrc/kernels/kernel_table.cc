// kernel_table.cc — fills this ISA's KernelTable; compiled once per ISA like every kernel file.
#include "kernels/kernel_table.h"

#include "kernels/elementwise_kernels.h"
#include "kernels/gemm_kernels.h"

namespace cpuformer::kernels::CPUFORMER_KERNEL_ISA {

#define CPUFORMER_STRINGIFY_INNER(x) #x
#define CPUFORMER_STRINGIFY(x) CPUFORMER_STRINGIFY_INNER(x)

const KernelTable& kernel_table() {
  static const KernelTable table = {
      CPUFORMER_STRINGIFY(CPUFORMER_KERNEL_ISA),
      kGemmMR,
      kGemmNR,
      &gemm_ukernel,
      &activation,
      &layer_norm_row,
      &softmax_row,
      &add_inplace,
      &scale_inplace,
      &dot,
      &axpy,
  };
  return table;
}

}  // namespace cpuformer::kernels::CPUFORMER_KERNEL_ISA
