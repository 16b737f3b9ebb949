// lstm_cell.cc — one LSTM step: gates = x W_ih^T + (b_ih + b_hh) + h W_hh^T (the second GEMM adds the first as its
// residual), then lstm_gates updates c and writes h per row.
#include "ops/lstm_cell.h"

#include <cstring>

#include "ops/aligned_buffer.h"
#include "ops/gemm.h"
#include "ops/packed_matrix.h"
#include "ops/rowwise.h"

namespace cpuformer {

LstmCellDims lstm_cell_check(const LstmCellArgs& a) {
  const std::vector<int64_t>& whh = a.w_hh.shape;
  const int64_t hidden = whh.size() == 2 ? whh[1] : 0;
  if (hidden == 0 || whh[0] != 4 * hidden)
    fail("w_hh must have shape (4 * hidden, hidden) with hidden > 0, got " + shape_str(whh));
  const std::vector<int64_t>& wih = a.w_ih.shape;
  if (wih.size() != 2 || wih[0] != 4 * hidden)
    fail("w_ih must have shape (" + std::to_string(4 * hidden) + ", input_size) to match w_hh " + shape_str(whh) +
         ", got " + shape_str(wih));
  const int64_t input_size = wih[1];
  const std::vector<int64_t>& x = a.x.shape;
  if (x.size() != 2 || x[1] != input_size)
    fail("x must have shape (batch, " + std::to_string(input_size) + "), got " + shape_str(x));
  const int64_t batch = x[0];
  require_shape(a.h.shape, "h", {batch, hidden});
  require_shape(a.c.shape, "c", {batch, hidden});
  if (a.b_ih.given()) require_shape(a.b_ih.shape, "b_ih", {4 * hidden});
  if (a.b_hh.given()) require_shape(a.b_hh.shape, "b_hh", {4 * hidden});
  return {batch, input_size, hidden};
}

void lstm_cell(const LstmCellArgs& args, float* h_out, float* c_out, const kernels::KernelTable& kernels) {
  const LstmCellDims dims = lstm_cell_check(args);
  const int64_t batch = dims.batch, hidden = dims.hidden, gates_n = 4 * hidden;
  if (batch == 0) return;
  const float *b_ih = args.b_ih.data, *b_hh = args.b_hh.data;
  AlignedBuffer bias;
  if (b_ih || b_hh) {
    bias = AlignedBuffer(static_cast<size_t>(gates_n));
    for (int64_t j = 0; j < gates_n; ++j) bias.data()[j] = (b_ih ? b_ih[j] : 0.0f) + (b_hh ? b_hh[j] : 0.0f);
  }
  const PackedMatrix packed_ih(args.w_ih.data, gates_n, dims.input_size, WeightLayout::out_in,
                               bias.empty() ? nullptr : bias.data(), kernels);
  const PackedMatrix packed_hh(args.w_hh.data, gates_n, hidden, WeightLayout::out_in, nullptr, kernels);
  AlignedBuffer x_part(static_cast<size_t>(batch * gates_n)), gates(static_cast<size_t>(batch * gates_n));
  gemm_packed(args.x.data, batch, dims.input_size, packed_ih, x_part.data(), gates_n, kernels::Activation::none,
              nullptr, 0, /*int8_compute=*/false);
  gemm_packed(args.h.data, batch, hidden, packed_hh, gates.data(), gates_n, kernels::Activation::none, x_part.data(),
              gates_n, /*int8_compute=*/false);
  std::memcpy(c_out, args.c.data, sizeof(float) * batch * hidden);
  for_each_row(batch, 60.0 * hidden, [&](int64_t b) {
    kernels.lstm_gates(gates.data() + b * gates_n, hidden, c_out + b * hidden, h_out + b * hidden, hidden);
  });
}

}  // namespace cpuformer
