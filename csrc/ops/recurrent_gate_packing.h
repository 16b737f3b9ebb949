// recurrent_gate_packing.h — torch's LSTM / GRU / RNN gate weights packed so one unit block's gates are that many
// consecutive GEMM panels.
#pragma once
#include <cstdint>
#include <memory>

#include "kernels/kernel_table.h"
#include "ops/packed_matrix.h"

namespace cpuformer {

// w: [gates * H, k] with torch's row blocks (LSTM i, f, g, o; GRU r, z, n; RNN one); b_a, b_b: [gates * H] or null
// (summed into the packed bias). Rows are reordered into `blocks` unit blocks of `units` (= the panel width NR):
// block b holds [gate0_b; gate1_b; ...] (zero rows past H), so panels gates*b .. gates*b + gates - 1 are block b's
// gates and one thread can update the state of those units without waiting for anyone else. The packed matrix
// has gates * units * blocks rows.
std::unique_ptr<PackedMatrix> recurrent_pack_gates(const float* w, const float* b_a, const float* b_b, int gates,
                                                   int64_t hidden, int64_t k, int64_t units, int64_t blocks,
                                                   const kernels::KernelTable& kernels, WeightDtype dtype);

}  // namespace cpuformer
