// lstm.h — multi-layer, optionally bidirectional LSTM (torch.nn.LSTM semantics) with packed weights. The one-shot
// cell is ops/lstm_cell.h; gate packing ops/lstm_gate_packing.h; the per-step barrier ops/step_team.h.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/kernel_table.h"
#include "ops/arg_checks.h"
#include "ops/packed_matrix.h"

namespace cpuformer {

// H = hidden_size, P = proj_size (0: none), Hout = P ? P : H.
struct LstmSizes {
  int64_t input_size, hidden_size, num_layers;
  bool bidirectional;
  int64_t proj_size;
};

// Checks the sizes alone: input_size, hidden_size, num_layers >= 1 and 0 <= proj_size < hidden_size.
void lstm_check_sizes(const LstmSizes& sizes);

// One layer and direction in torch's layout, as given (shapes are checked by PackedLstm).
struct LstmWeightArgs {
  FloatView w_ih;  // [4H, in]  rows i, f, g, o
  FloatView w_hh;  // [4H, Hout]
  FloatView b_ih;  // [4H] or not given
  FloatView b_hh;  // [4H] or not given
  FloatView w_hr;  // [P, H] when P > 0, else not given
};

// One forward call: x [T, B, input_size] ([B, T, input_size] when batch_first); h0 [L*dirs, B, Hout] and c0
// [L*dirs, B, H], or not given (zeros); lengths [B], each in [1, T], or not given (all T).
struct LstmForwardArgs {
  FloatView x, h0, c0;
  Int64View lengths;
  bool batch_first = false;
};
struct LstmForwardDims {
  int64_t steps, batch;
};

class PackedLstm {
 public:
  // weights: num_layers * directions sets, layer-major (layer 0 forward, layer 0 reverse, layer 1 ...). Layer 0
  // reads input_size features, later layers directions * Hout. Checks the sizes, the number of sets and every shape
  // (std::invalid_argument naming e.g. weights[1].w_hh and torch's weight_hh_l0_reverse), then packs for `kernels`,
  // every weight matrix in `dtype` (bf16 / int8: weight-only, as PackedLinear; states and gates stay fp32).
  PackedLstm(const LstmSizes& sizes, const std::vector<LstmWeightArgs>& weights, const kernels::KernelTable& kernels,
             WeightDtype dtype = WeightDtype::f32);

  int64_t input_size() const { return input_size_; }
  int64_t hidden_size() const { return hidden_; }
  int64_t proj_size() const { return proj_; }
  int64_t num_layers() const { return static_cast<int64_t>(layers_.size()); }
  int directions() const { return directions_; }
  int64_t state_size() const { return proj_ > 0 ? proj_ : hidden_; }  // Hout
  const kernels::KernelTable& kernels() const { return *kernels_; }
  WeightDtype dtype() const { return dtype_; }

  // Checks x, h0, c0 and lengths against this LSTM (std::invalid_argument naming the argument); returns T and B.
  LstmForwardDims check_forward(const LstmForwardArgs& args) const;
  // Checks, then runs. out: x's layout with last axis dirs*Hout (zero past each length); h_n, c_n: like h0, c0,
  // taken at each sequence's last valid step. The reverse direction starts at each sequence's own last step.
  void forward(const LstmForwardArgs& args, float* out, float* h_n, float* c_n) const;

  struct Direction {
    std::unique_ptr<PackedMatrix> w_ih;  // gate rows interleaved per unit block, biases summed in
    std::unique_ptr<PackedMatrix> w_hh;  // same interleaving, no bias
    std::unique_ptr<PackedMatrix> w_hr;  // [P, H] as is, or null
  };
  struct Layer {
    int64_t input_size;
    std::vector<Direction> dirs;
  };

 private:
  // forward() after the checks; lengths may be null.
  void run(const float* x, int64_t steps, int64_t batch, bool batch_first, const float* h0, const float* c0,
           const int64_t* lengths, float* out, float* h_n, float* c_n) const;
  void run_sorted_by_length(const float* x, int64_t steps, int64_t batch, bool batch_first, const float* h0,
                            const float* c0, const int64_t* lengths, float* out, float* h_n, float* c_n) const;
  // lengths, when given, must be in decreasing order.
  void run_layer(const Layer& layer, const float* x, int64_t steps, int64_t batch, const float* const* h0,
                 const float* const* c0, const int64_t* lengths, float* out, bool out_batch_first,
                 float* const* h_n, float* const* c_n, bool* serial) const;

  int64_t input_size_, hidden_, proj_;
  int directions_;
  int64_t units_per_block_;  // = gemm NR: one block's 4 gates fill exactly 4 packed panels
  int64_t blocks_;           // ceil(H / units_per_block_)
  WeightDtype dtype_;
  const kernels::KernelTable* kernels_;
  std::vector<Layer> layers_;
};

}  // namespace cpuformer
