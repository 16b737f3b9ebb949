// recurrent.h — multi-layer, optionally bidirectional recurrent layers with torch.nn.LSTM / GRU / RNN semantics on
// packed weights. One engine serves every cell kind: they differ only in the number of gates per unit, how the
// biases are folded and the fused gate kernel. The one-shot LSTM cell op is ops/lstm_cell.h; gate packing
// ops/recurrent_gate_packing.h; the per-step barrier ops/step_team.h.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/kernel_table.h"
#include "ops/arg_checks.h"
#include "ops/packed_matrix.h"

namespace cpuformer {

// torch's RNNBase modes.
enum class CellKind { lstm, gru, rnn_tanh, rnn_relu };

// "LSTM", "GRU", "RNN_TANH", "RNN_RELU" -> the kind; std::invalid_argument naming the choices otherwise.
CellKind parse_cell_kind(const std::string& mode);
const char* cell_kind_mode(CellKind kind);  // the inverse of parse_cell_kind
const char* cell_kind_class(CellKind kind);  // torch's class: "LSTM", "GRU", "RNN"
int cell_gates(CellKind kind);               // gate rows per unit: 4, 3, 1

// H = hidden_size, P = proj_size (0: none; LSTM only), Hout = P ? P : H.
struct RecurrentSizes {
  CellKind kind;
  int64_t input_size, hidden_size, num_layers;
  bool bidirectional;
  int64_t proj_size;
};

// Checks the sizes alone: input_size, hidden_size, num_layers >= 1, 0 <= proj_size < hidden_size, and proj_size 0
// unless the kind is LSTM.
void recurrent_check_sizes(const RecurrentSizes& sizes);

// One layer and direction in torch's layout, as given (shapes are checked by PackedRecurrent). G = gates per unit.
struct RecurrentWeightArgs {
  FloatView w_ih;  // [G*H, in]
  FloatView w_hh;  // [G*H, Hout]
  FloatView b_ih;  // [G*H] or not given
  FloatView b_hh;  // [G*H] or not given
  FloatView w_hr;  // [P, H] when P > 0, else not given
};

// One forward call: x [T, B, input_size] ([B, T, input_size] when batch_first); h0 [L*dirs, B, Hout] and (LSTM
// only) c0 [L*dirs, B, H], or not given (zeros); lengths [B], each in [1, T], or not given (all T).
struct RecurrentForwardArgs {
  FloatView x, h0, c0;
  Int64View lengths;
  bool batch_first = false;
};
struct RecurrentForwardDims {
  int64_t steps, batch;
};

class PackedRecurrent {
 public:
  // weights: num_layers * directions sets, layer-major (layer 0 forward, layer 0 reverse, layer 1 ...). Layer 0
  // reads input_size features, later layers directions * Hout. Checks the sizes, the number of sets and every shape
  // (std::invalid_argument naming e.g. weights[1].w_hh and torch's weight_hh_l0_reverse), then packs for `kernels`,
  // every weight matrix in `dtype` (bf16 / int8: weight-only, as PackedLinear; states and gates stay fp32).
  PackedRecurrent(const RecurrentSizes& sizes, const std::vector<RecurrentWeightArgs>& weights,
                  const kernels::KernelTable& kernels, WeightDtype dtype = WeightDtype::f32);

  CellKind kind() const { return kind_; }
  bool has_cell_state() const { return kind_ == CellKind::lstm; }
  int64_t input_size() const { return input_size_; }
  int64_t hidden_size() const { return hidden_; }
  int64_t proj_size() const { return proj_; }
  int64_t num_layers() const { return static_cast<int64_t>(layers_.size()); }
  int directions() const { return directions_; }
  int64_t state_size() const { return proj_ > 0 ? proj_ : hidden_; }  // Hout
  const kernels::KernelTable& kernels() const { return *kernels_; }
  WeightDtype dtype() const { return dtype_; }

  // Checks x, h0, c0 and lengths against this layer stack (std::invalid_argument naming the argument; c0 given to a
  // GRU / RNN is one); returns T and B.
  RecurrentForwardDims check_forward(const RecurrentForwardArgs& args) const;
  // Checks, then runs. out: x's layout with last axis dirs*Hout (zero past each length); h_n, c_n: like h0, c0,
  // taken at each sequence's last valid step (c_n only for LSTM; null otherwise). The reverse direction starts at
  // each sequence's own last step.
  void forward(const RecurrentForwardArgs& args, float* out, float* h_n, float* c_n) const;

  struct Direction {
    // Gate rows interleaved per unit block. LSTM / RNN: b_ih + b_hh folded into w_ih's bias, w_hh has none (the
    // recurrent GEMM accumulates onto the projected input). GRU: w_ih carries b_ih and w_hh b_hh, because the
    // candidate gate scales its hidden part (with b_hn) by r before adding the input part.
    std::unique_ptr<PackedMatrix> w_ih;
    std::unique_ptr<PackedMatrix> w_hh;
    std::unique_ptr<PackedMatrix> w_hr;  // [P, H] as is, or null
  };
  struct Layer {
    int64_t input_size;
    std::vector<Direction> dirs;
  };

 private:
  // forward() after the checks; lengths may be null, c0 / c_n are null unless LSTM.
  void run(const float* x, int64_t steps, int64_t batch, bool batch_first, const float* h0, const float* c0,
           const int64_t* lengths, float* out, float* h_n, float* c_n) const;
  void run_sorted_by_length(const float* x, int64_t steps, int64_t batch, bool batch_first, const float* h0,
                            const float* c0, const int64_t* lengths, float* out, float* h_n, float* c_n) const;
  // lengths, when given, must be in decreasing order.
  void run_layer(const Layer& layer, const float* x, int64_t steps, int64_t batch, const float* const* h0,
                 const float* const* c0, const int64_t* lengths, float* out, bool out_batch_first,
                 float* const* h_n, float* const* c_n, bool* serial) const;

  CellKind kind_;
  int gates_;  // gate rows per unit (cell_gates(kind_))
  int64_t input_size_, hidden_, proj_;
  int directions_;
  int64_t units_per_block_;  // = gemm NR: one block's gates fill exactly gates_ packed panels
  int64_t blocks_;           // ceil(H / units_per_block_)
  WeightDtype dtype_;
  const kernels::KernelTable* kernels_;
  std::vector<Layer> layers_;
};

}  // namespace cpuformer
