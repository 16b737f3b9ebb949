// lstm.h — multi-layer, optionally bidirectional LSTM (torch.nn.LSTM semantics) with packed weights, and a
// one-shot LSTM cell.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/kernel_table.h"
#include "ops/packed_matrix.h"

namespace cpuformer {

// One layer and direction in torch's layout. H = hidden size, P = proj size (0: none), Hout = P ? P : H.
struct LstmWeightsView {
  const float* w_ih;  // [4H, in]  rows i, f, g, o
  const float* w_hh;  // [4H, Hout]
  const float* b_ih;  // [4H] or null
  const float* b_hh;  // [4H] or null
  const float* w_hr;  // [P, H], only when P > 0
};

class PackedLstm {
 public:
  // weights: num_layers * directions entries, layer-major (layer 0 forward, layer 0 reverse, layer 1 ...).
  // Layer 0 reads input_size features, later layers directions * Hout. Packs for `kernels`.
  PackedLstm(int64_t input_size, int64_t hidden_size, int64_t num_layers, bool bidirectional, int64_t proj_size,
             const std::vector<LstmWeightsView>& weights, const kernels::KernelTable& kernels);

  int64_t input_size() const { return input_size_; }
  int64_t hidden_size() const { return hidden_; }
  int64_t proj_size() const { return proj_; }
  int64_t num_layers() const { return static_cast<int64_t>(layers_.size()); }
  int directions() const { return directions_; }
  int64_t state_size() const { return proj_ > 0 ? proj_ : hidden_; }  // Hout
  const kernels::KernelTable& kernels() const { return *kernels_; }

  // x: [T, B, input_size] ([B, T, input_size] when batch_first). h0: [L*dirs, B, Hout], c0: [L*dirs, B, H],
  // either may be null (zeros). lengths: [B] valid steps per sequence, each in [1, T], or null (all T).
  // out: x's layout with last axis dirs*Hout (zero past each length); h_n, c_n: like h0, c0, taken at each
  // sequence's last valid step. The reverse direction starts at each sequence's own last step.
  void forward(const float* x, int64_t steps, int64_t batch, bool batch_first, const float* h0, const float* c0,
               const int64_t* lengths, float* out, float* h_n, float* c_n) const;

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
  void forward_sorted_by_length(const float* x, int64_t steps, int64_t batch, bool batch_first, const float* h0,
                                const float* c0, const int64_t* lengths, float* out, float* h_n, float* c_n) const;
  // lengths, when given, must be in decreasing order.
  void run_layer(const Layer& layer, const float* x, int64_t steps, int64_t batch, const float* const* h0,
                 const float* const* c0, const int64_t* lengths, float* out, bool out_batch_first,
                 float* const* h_n, float* const* c_n, bool* serial) const;

  int64_t input_size_, hidden_, proj_;
  int directions_;
  int64_t units_per_block_;  // = gemm NR: one block's 4 gates fill exactly 4 packed panels
  int64_t blocks_;           // ceil(H / units_per_block_)
  const kernels::KernelTable* kernels_;
  std::vector<Layer> layers_;
};

// torch.nn.LSTMCell: x [B, I], h, c [B, H], w_ih [4H, I], w_hh [4H, H], biases [4H] or null -> h_out, c_out [B, H].
// Packs the weights on every call (one-shot).
void lstm_cell(const float* x, const float* h, const float* c, int64_t batch, int64_t input_size, int64_t hidden,
               const float* w_ih, const float* w_hh, const float* b_ih, const float* b_hh, float* h_out, float* c_out,
               const kernels::KernelTable& kernels);

}  // namespace cpuformer
