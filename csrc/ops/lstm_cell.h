// lstm_cell.h — torch.nn.LSTMCell as a one-shot op: two packed GEMMs and the fused gate kernel.
#pragma once
#include <cstdint>

#include "kernels/kernel_table.h"
#include "ops/arg_checks.h"

namespace cpuformer {

// x [B, I], h, c [B, H], w_ih [4H, I], w_hh [4H, H], b_ih, b_hh [4H] or not given. Gates i, f, g, o in torch's order.
struct LstmCellArgs {
  FloatView x, h, c, w_ih, w_hh, b_ih, b_hh;
};
struct LstmCellDims {
  int64_t batch, input_size, hidden;
};

// Checks every shape against w_hh (H > 0) and w_ih; std::invalid_argument naming the argument otherwise.
LstmCellDims lstm_cell_check(const LstmCellArgs& args);

// h_out, c_out: [B, H]. Checks the arguments first; packs the weights on every call.
void lstm_cell(const LstmCellArgs& args, float* h_out, float* c_out, const kernels::KernelTable& kernels);

}  // namespace cpuformer
