// lstm_gate_packing.h — torch's LSTM gate weights packed so one unit block's four gates are four GEMM panels.
#pragma once
#include <cstdint>
#include <memory>

#include "kernels/kernel_table.h"
#include "ops/packed_matrix.h"

namespace cpuformer {

// w: [4H, k] with torch's row blocks i, f, g, o; b_ih, b_hh: [4H] or null (summed into the packed bias).
// Rows are reordered into `blocks` unit blocks of `units` (= the panel width NR): block b holds [i_b; f_b; g_b; o_b]
// (zero rows past H), so panels 4b..4b+3 are block b's gates and one thread can update c and h for those units
// without waiting for anyone else. The packed matrix has 4 * units * blocks rows.
std::unique_ptr<PackedMatrix> lstm_pack_gates(const float* w, const float* b_ih, const float* b_hh, int64_t hidden,
                                              int64_t k, int64_t units, int64_t blocks,
                                              const kernels::KernelTable& kernels, WeightDtype dtype);

}  // namespace cpuformer
