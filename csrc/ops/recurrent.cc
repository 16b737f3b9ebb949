// recurrent.cc — LSTM / GRU / RNN layers as: one packed GEMM for the input projection of a chunk of steps (the
// biases folded into its bias), then a step loop inside ONE OpenMP region per chunk. Threads own blocks of hidden
// units; per step each thread multiplies h_{t-1} by its W_hh panels (gemm_packed_block accumulating onto the
// projected input; for GRU into a scratch block, since r scales the hidden part of the candidate gate) and runs
// the cell kind's fused gate kernel on the same units, then waits for the step to finish (StepStage,
// step_team.h). Both directions of a bidirectional layer are work items of the same steps, so they run side by side.
#include "ops/recurrent.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "ops/aligned_buffer.h"
#include "ops/gemm.h"
#include "ops/recurrent_gate_packing.h"
#include "ops/step_team.h"
#include "ops/threading.h"

namespace cpuformer {
namespace {

constexpr int64_t kChunkFloats = 2 << 20;  // projected-input workspace per chunk (8 MiB), at least one step
// K block of the per-step GEMMs (the batch's row tiles reuse each 256 x NR slice of a W_hh panel from L1). Against
// gemm_packed_block's default (all of K for a small A block), measured on a 2-core AVX-512 Xeon: the same on
// AVX-512, ~3% faster on AVX2 at B = 32, H = 512 (one thread); B = 1..64, H = 256..1024 otherwise within noise.
constexpr int64_t kStepKC = 256;

// torch's name of weight `field` ("ih", "hh", "hr") or bias `field` of one layer and direction.
std::string torch_name(const char* kind, const char* field, int64_t layer, int direction) {
  return std::string(kind) + "_" + field + "_l" + std::to_string(layer) + (direction ? "_reverse" : "");
}

// Checks one weight: `given` as required, then its shape; messages name weights[set].<arg> and torch's name.
void check_weight(const FloatView& w, int64_t set, const char* arg, const std::string& torch, bool required,
                  const std::vector<int64_t>& shape, CellKind kind) {
  const std::string name = "weights[" + std::to_string(set) + "]." + arg;
  const std::string owner = std::string(" (torch.nn.") + cell_kind_class(kind) + "'s " + torch + ")";
  if (!w.given()) {
    if (required) fail(name + " must have shape " + shape_str(shape) + ", got None" + owner);
    return;
  }
  if (w.shape != shape) fail(name + " must have shape " + shape_str(shape) + ", got " + shape_str(w.shape) + owner);
}

// "an LSTM", "a GRU", "an RNN", for messages.
std::string with_article(CellKind kind) {
  return std::string(kind == CellKind::gru ? "a " : "an ") + cell_kind_class(kind);
}

}  // namespace

CellKind parse_cell_kind(const std::string& mode) {
  for (CellKind kind : {CellKind::lstm, CellKind::gru, CellKind::rnn_tanh, CellKind::rnn_relu})
    if (mode == cell_kind_mode(kind)) return kind;
  fail("mode must be one of 'LSTM', 'GRU', 'RNN_TANH', 'RNN_RELU'; got '" + mode + "'");
}

const char* cell_kind_mode(CellKind kind) {
  switch (kind) {
    case CellKind::lstm: return "LSTM";
    case CellKind::gru: return "GRU";
    case CellKind::rnn_tanh: return "RNN_TANH";
    case CellKind::rnn_relu: return "RNN_RELU";
  }
  return "?";
}

const char* cell_kind_class(CellKind kind) {
  return kind == CellKind::lstm ? "LSTM" : kind == CellKind::gru ? "GRU" : "RNN";
}

int cell_gates(CellKind kind) { return kind == CellKind::lstm ? 4 : kind == CellKind::gru ? 3 : 1; }

void recurrent_check_sizes(const RecurrentSizes& s) {
  require(s.input_size >= 1, "input_size must be >= 1, got " + std::to_string(s.input_size));
  require(s.hidden_size >= 1, "hidden_size must be >= 1, got " + std::to_string(s.hidden_size));
  require(s.num_layers >= 1, "num_layers must be >= 1, got " + std::to_string(s.num_layers));
  if (s.kind != CellKind::lstm && s.proj_size != 0)
    fail(std::string("proj_size must be 0 for ") + with_article(s.kind) + " (only LSTM has projections), got " +
         std::to_string(s.proj_size));
  if (s.proj_size < 0 || s.proj_size >= s.hidden_size)
    fail("proj_size must be in [0, hidden_size) = [0, " + std::to_string(s.hidden_size) + "), got " +
         std::to_string(s.proj_size));
}

PackedRecurrent::PackedRecurrent(const RecurrentSizes& sizes, const std::vector<RecurrentWeightArgs>& weights,
                                 const kernels::KernelTable& kernels, WeightDtype dtype)
    : kind_(sizes.kind), gates_(cell_gates(sizes.kind)), input_size_(sizes.input_size), hidden_(sizes.hidden_size),
      proj_(sizes.proj_size), directions_(sizes.bidirectional ? 2 : 1), units_per_block_(kernels.gemm_nr),
      blocks_(0), dtype_(dtype), kernels_(&kernels) {
  recurrent_check_sizes(sizes);
  const int64_t sets = sizes.num_layers * directions_, hout = state_size(), gate_rows = gates_ * hidden_;
  if (static_cast<int64_t>(weights.size()) != sets)
    fail("weights must hold num_layers * directions = " + std::to_string(sets) +
         " tuples (w_ih, w_hh, b_ih, b_hh, w_hr), got " + std::to_string(weights.size()));
  for (int64_t s = 0; s < sets; ++s) {
    const RecurrentWeightArgs& w = weights[s];
    const int64_t layer = s / directions_, in = layer == 0 ? input_size_ : directions_ * hout;
    const int d = static_cast<int>(s % directions_);
    check_weight(w.w_ih, s, "w_ih", torch_name("weight", "ih", layer, d), true, {gate_rows, in}, kind_);
    check_weight(w.w_hh, s, "w_hh", torch_name("weight", "hh", layer, d), true, {gate_rows, hout}, kind_);
    check_weight(w.b_ih, s, "b_ih", torch_name("bias", "ih", layer, d), false, {gate_rows}, kind_);
    check_weight(w.b_hh, s, "b_hh", torch_name("bias", "hh", layer, d), false, {gate_rows}, kind_);
    if (proj_ > 0)
      check_weight(w.w_hr, s, "w_hr", torch_name("weight", "hr", layer, d), true, {proj_, hidden_}, kind_);
    else if (w.w_hr.given()) fail("weights[" + std::to_string(s) + "].w_hr must be None when proj_size is 0");
  }
  blocks_ = (hidden_ + units_per_block_ - 1) / units_per_block_;
  for (int64_t l = 0; l < sizes.num_layers; ++l) {
    Layer layer;
    layer.input_size = l == 0 ? input_size_ : directions_ * hout;
    for (int d = 0; d < directions_; ++d) {
      const RecurrentWeightArgs& w = weights[l * directions_ + d];
      const bool gru = kind_ == CellKind::gru;  // GRU keeps b_hh with W_hh (see Direction)
      Direction dir;
      dir.w_ih = recurrent_pack_gates(w.w_ih.data, w.b_ih.data, gru ? nullptr : w.b_hh.data, gates_, hidden_,
                                      layer.input_size, units_per_block_, blocks_, kernels, dtype);
      dir.w_hh = recurrent_pack_gates(w.w_hh.data, gru ? w.b_hh.data : nullptr, nullptr, gates_, hidden_, hout,
                                      units_per_block_, blocks_, kernels, dtype);
      if (proj_ > 0)
        dir.w_hr = std::make_unique<PackedMatrix>(w.w_hr.data, proj_, hidden_, WeightLayout::out_in, nullptr, kernels,
                                                  dtype);
      layer.dirs.push_back(std::move(dir));
    }
    layers_.push_back(std::move(layer));
  }
}

RecurrentForwardDims PackedRecurrent::check_forward(const RecurrentForwardArgs& a) const {
  const std::vector<int64_t>& x = a.x.shape;
  if (x.size() != 3 || x[2] != input_size_)
    fail(std::string("x must have shape ") + (a.batch_first ? "(batch, steps, " : "(steps, batch, ") +
         std::to_string(input_size_) + "), got " + shape_str(x));
  const int64_t steps = a.batch_first ? x[1] : x[0], batch = a.batch_first ? x[0] : x[1];
  if (steps == 0) fail("x has 0 time steps; " + with_article(kind_) + " needs at least one, got " + shape_str(x));
  const int64_t states = num_layers() * directions_;
  if (a.h0.given()) require_shape(a.h0.shape, "h0", {states, batch, state_size()});
  if (a.c0.given() && !has_cell_state())
    fail(std::string("c0 must be None for ") + with_article(kind_) + " (only an LSTM has a cell state)");
  if (a.c0.given()) require_shape(a.c0.shape, "c0", {states, batch, hidden_});
  if (a.lengths.given()) {
    if (a.lengths.shape != std::vector<int64_t>{batch})
      fail("lengths must have shape (" + std::to_string(batch) + ",) (one per batch entry), got " +
           shape_str(a.lengths.shape));
    for (int64_t b = 0; b < batch; ++b)
      if (a.lengths.data[b] < 1 || a.lengths.data[b] > steps)
        fail("lengths[" + std::to_string(b) + "] = " + std::to_string(a.lengths.data[b]) + " is outside [1, " +
             std::to_string(steps) + "] (every sequence needs 1 to T = " + std::to_string(steps) + " steps)");
  }
  return {steps, batch};
}

void PackedRecurrent::forward(const RecurrentForwardArgs& args, float* out, float* h_n, float* c_n) const {
  const RecurrentForwardDims dims = check_forward(args);
  run(args.x.data, dims.steps, dims.batch, args.batch_first, args.h0.data, args.c0.data, args.lengths.data, out, h_n,
      c_n);
}

void PackedRecurrent::run(const float* x, int64_t steps, int64_t batch, bool batch_first, const float* h0,
                          const float* c0, const int64_t* lengths, float* out, float* h_n, float* c_n) const {
  if (batch == 0) return;
  const int64_t hout = state_size(), out_cols = directions_ * hout;
  if (lengths && !std::is_sorted(lengths, lengths + batch, std::greater<int64_t>())) {
    run_sorted_by_length(x, steps, batch, batch_first, h0, c0, lengths, out, h_n, c_n);
    return;
  }

  // Layers work time-major; a batch-first input is transposed once, a batch-first output written in place.
  AlignedBuffer x_time_major;
  if (batch_first) {
    x_time_major = AlignedBuffer(static_cast<size_t>(steps * batch * input_size_));
    for (int64_t t = 0; t < steps; ++t)
      for (int64_t b = 0; b < batch; ++b)
        std::memcpy(x_time_major.data() + (t * batch + b) * input_size_, x + (b * steps + t) * input_size_,
                    sizeof(float) * input_size_);
    x = x_time_major.data();
  }
  const int64_t layers = num_layers();
  AlignedBuffer between[2];
  for (int i = 0; i < 2 && i < layers - 1; ++i)
    between[i] = AlignedBuffer(static_cast<size_t>(steps * batch * out_cols));

  const float* layer_in = x;
  // Set once a step loop saw preempted threads (or a recent call did): later loops then run on one thread.
  const bool started_serial = step_team_recently_serial();
  bool serial = started_serial;
  for (int64_t l = 0; l < layers; ++l) {
    const bool last = l == layers - 1;
    float* layer_out = last ? out : between[l % 2].data();
    const float* h0_dir[2] = {nullptr, nullptr};
    const float* c0_dir[2] = {nullptr, nullptr};
    float* hn_dir[2] = {nullptr, nullptr};
    float* cn_dir[2] = {nullptr, nullptr};
    for (int d = 0; d < directions_; ++d) {
      const int64_t s = l * directions_ + d;
      if (h0) h0_dir[d] = h0 + s * batch * hout;
      if (c0) c0_dir[d] = c0 + s * batch * hidden_;
      hn_dir[d] = h_n + s * batch * hout;
      if (c_n) cn_dir[d] = c_n + s * batch * hidden_;
    }
    run_layer(layers_[l], layer_in, steps, batch, h0_dir, c0_dir, lengths, layer_out, last && batch_first, hn_dir,
              cn_dir, &serial);
    layer_in = layer_out;
  }
  if (serial && !started_serial) step_team_note_serial();
}

// Runs the batch reordered by decreasing length, so the sequences still running at any step are a prefix of
// the batch and the recurrent GEMM skips the finished ones (as torch's PackedSequence does), then puts every
// result back in the caller's order.
void PackedRecurrent::run_sorted_by_length(const float* x, int64_t steps, int64_t batch, bool batch_first,
                                           const float* h0, const float* c0, const int64_t* lengths, float* out,
                                           float* h_n, float* c_n) const {
  std::vector<int64_t> order(static_cast<size_t>(batch)), sorted(static_cast<size_t>(batch));
  for (int64_t b = 0; b < batch; ++b) order[b] = b;
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return lengths[a] > lengths[b]; });
  for (int64_t j = 0; j < batch; ++j) sorted[j] = lengths[order[j]];
  const int64_t hout = state_size(), out_cols = directions_ * hout, states = num_layers() * directions_;
  auto row = [&](int64_t t, int64_t b) { return batch_first ? b * steps + t : t * batch + b; };
  // gather/scatter rows of `width` floats between the caller's layout and the sorted time-major one
  auto gather = [&](const float* src, float* dst, int64_t width) {
    for (int64_t t = 0; t < steps; ++t)
      for (int64_t j = 0; j < batch; ++j)
        std::memcpy(dst + (t * batch + j) * width, src + row(t, order[j]) * width, sizeof(float) * width);
  };
  auto permute_states = [&](const float* src, float* dst, int64_t width, bool to_sorted) {
    for (int64_t st = 0; st < states; ++st)
      for (int64_t j = 0; j < batch; ++j) {
        const int64_t sorted_row = st * batch + j, caller_row = st * batch + order[j];
        std::memcpy(dst + (to_sorted ? sorted_row : caller_row) * width,
                    src + (to_sorted ? caller_row : sorted_row) * width, sizeof(float) * width);
      }
  };
  AlignedBuffer xs(static_cast<size_t>(steps * batch * input_size_));
  gather(x, xs.data(), input_size_);
  AlignedBuffer h0s(h0 ? static_cast<size_t>(states * batch * hout) : 0);
  AlignedBuffer c0s(c0 ? static_cast<size_t>(states * batch * hidden_) : 0);
  if (h0) permute_states(h0, h0s.data(), hout, true);
  if (c0) permute_states(c0, c0s.data(), hidden_, true);
  AlignedBuffer outs(static_cast<size_t>(steps * batch * out_cols));
  AlignedBuffer hns(static_cast<size_t>(states * batch * hout));
  AlignedBuffer cns(c_n ? static_cast<size_t>(states * batch * hidden_) : 0);
  run(xs.data(), steps, batch, false, h0 ? h0s.data() : nullptr, c0 ? c0s.data() : nullptr, sorted.data(),
      outs.data(), hns.data(), c_n ? cns.data() : nullptr);
  for (int64_t t = 0; t < steps; ++t)
    for (int64_t j = 0; j < batch; ++j)
      std::memcpy(out + row(t, order[j]) * out_cols, outs.data() + (t * batch + j) * out_cols,
                  sizeof(float) * out_cols);
  permute_states(hns.data(), h_n, hout, false);
  if (c_n) permute_states(cns.data(), c_n, hidden_, false);
}

void PackedRecurrent::run_layer(const Layer& layer, const float* x, int64_t steps, int64_t batch,
                                const float* const* h0, const float* const* c0, const int64_t* lengths, float* out,
                                bool out_batch_first, float* const* h_n, float* const* c_n, bool* serial) const {
  const kernels::KernelTable& kt = *kernels_;
  const int64_t hidden = hidden_, hout = state_size(), proj = proj_, units = units_per_block_, blocks = blocks_;
  const int dirs = directions_, nr = kt.gemm_nr, gates_per_unit = gates_;
  const CellKind kind = kind_;
  const bool lstm = kind == CellKind::lstm, gru = kind == CellKind::gru;
  const int64_t block_cols = gates_per_unit * units;  // one unit block's gates
  const int64_t gate_cols = block_cols * blocks;      // one direction's projected gates per (t, b) row
  const int64_t ldg = dirs * gate_cols;
  const int64_t out_cols = dirs * hout;
  const int64_t in = layer.input_size;
  const int64_t chunk = std::clamp<int64_t>(kChunkFloats / (batch * ldg), 1, steps);

  AlignedBuffer gates(static_cast<size_t>(chunk * batch * ldg));
  // State per direction: h double-buffered (threads read all of h_{t-1} while writing h_t), c (LSTM), and the
  // unprojected o * tanh(c) when proj_size > 0. GRU: the hidden parts of each block's gates (one slot per work
  // item, so a stolen item never shares one).
  AlignedBuffer h_state(static_cast<size_t>(dirs * 2 * batch * hout));
  AlignedBuffer c_state(lstm ? static_cast<size_t>(dirs * batch * hidden) : 0);
  AlignedBuffer hidden_part(gru ? static_cast<size_t>(dirs * blocks * batch * block_cols) : 0);
  AlignedBuffer raw_h(proj > 0 ? static_cast<size_t>(dirs * batch * hidden) : 0);
  raw_h.zero();
  auto h_buf = [&](int d, int which) { return h_state.data() + (d * 2 + which) * batch * hout; };
  auto c_buf = [&](int d) { return c_state.data() + d * batch * hidden; };
  auto raw_buf = [&](int d) { return raw_h.data() + d * batch * hidden; };
  for (int d = 0; d < dirs; ++d) {
    if (h0[d]) std::memcpy(h_buf(d, 0), h0[d], sizeof(float) * batch * hout);
    else std::memset(h_buf(d, 0), 0, sizeof(float) * batch * hout);
    if (!lstm) continue;
    if (c0[d]) std::memcpy(c_buf(d), c0[d], sizeof(float) * batch * hidden);
    else std::memset(c_buf(d), 0, sizeof(float) * batch * hidden);
  }
  auto out_row = [&](int64_t t, int64_t b, int d) {
    return out + (out_batch_first ? b * steps + t : t * batch + b) * out_cols + d * hout;
  };
  auto active = [&](int64_t t, int64_t b) { return !lengths || t < lengths[b]; };
  // Lengths arrive sorted in decreasing order (forward() sees to it): rows still running at t are a prefix.
  std::vector<int64_t> running(static_cast<size_t>(steps), batch);
  if (lengths)
    for (int64_t t = 0; t < steps; ++t)
      running[t] = std::count_if(lengths, lengths + batch, [t](int64_t len) { return len > t; });

  const int64_t cell_items = dirs * blocks;
  const int64_t proj_panels = proj > 0 ? layer.dirs[0].w_hr->num_panels() : 0;
  const int64_t proj_items = dirs * proj_panels;
  const double step_flops =
      2.0 * batch * dirs * (static_cast<double>(gates_per_unit) * hidden * hout + static_cast<double>(proj) * hidden);
  const int threads = static_cast<int>(std::min<int64_t>(threads_for_work(step_flops), cell_items));

  int cur = 0;  // which h buffer holds h_{t-1}
  for (int64_t t0 = 0; t0 < steps; t0 += chunk) {
    const int64_t n = std::min(chunk, steps - t0);
    // Forward reads steps [t0, t0 + n), reverse the mirror range; gate slot = t - first step of the range.
    int64_t first[2] = {t0, steps - t0 - n};
    for (int d = 0; d < dirs; ++d)
      gemm_packed(x + first[d] * batch * in, n * batch, in, *layer.dirs[d].w_ih, gates.data() + d * gate_cols, ldg,
                  kernels::Activation::none, nullptr, 0, /*int8_compute=*/false);

    GemmBlockOptions accumulate, separate, project;
    accumulate.accumulate = true;
    accumulate.kc = separate.kc = project.kc = kStepKC;
    // One cell block: recurrent GEMM on its gate panels (accumulating onto the projected input; GRU: into its
    // hidden-part slot, b_hh included), then the cell kind's gate kernel.
    auto cell_block = [&](int64_t item, int64_t s, int which) {
      const int d = static_cast<int>(item / blocks);
      const int64_t blk = item % blocks, j0 = blk * units, n_units = std::min(units, hidden - j0);
      const int64_t t = d == 0 ? t0 + s : steps - 1 - (t0 + s);
      float* g = gates.data() + (t - first[d]) * batch * ldg + d * gate_cols + blk * block_cols;
      const float* h_prev = h_buf(d, which);
      float* h_next = h_buf(d, which ^ 1);
      const PackedMatrix& w_hh = *layer.dirs[d].w_hh;
      const int64_t panel0 = blk * gates_per_unit, panel1 = panel0 + gates_per_unit;
      float* gh = gru ? hidden_part.data() + item * batch * block_cols : nullptr;
      if (gru) gemm_packed_block(h_prev, running[t], hout, w_hh, panel0, panel1, gh, block_cols, separate);
      else gemm_packed_block(h_prev, running[t], hout, w_hh, panel0, panel1, g, ldg, accumulate);
      for (int64_t b = 0; b < batch; ++b) {
        const bool on = active(t, b);
        if (proj > 0) {
          if (on) kt.lstm_gates(g + b * ldg, units, c_buf(d) + b * hidden + j0, raw_buf(d) + b * hidden + j0, n_units);
          continue;
        }
        float* h_dst = h_next + b * hout + j0;
        if (on) {
          if (lstm) kt.lstm_gates(g + b * ldg, units, c_buf(d) + b * hidden + j0, h_dst, n_units);
          else if (gru) kt.gru_gates(g + b * ldg, gh + b * block_cols, units, h_prev + b * hout + j0, h_dst, n_units);
          else kt.rnn_gates(g + b * ldg, h_dst, n_units, kind == CellKind::rnn_relu);
          std::memcpy(out_row(t, b, d) + j0, h_dst, sizeof(float) * n_units);
        } else {  // past this sequence's end: state frozen, output zero
          std::memcpy(h_dst, h_prev + b * hout + j0, sizeof(float) * n_units);
          std::memset(out_row(t, b, d) + j0, 0, sizeof(float) * n_units);
        }
      }
    };
    // One projection panel: h_t[:, cols] = raw_h @ W_hr^T for nr output columns.
    auto proj_block = [&](int64_t item, int64_t s, int which) {
      const int d = static_cast<int>(item / proj_panels);
      const int64_t p = item % proj_panels, j0 = p * nr;
      const int cols = static_cast<int>(std::min<int64_t>(nr, proj - j0));
      const int64_t t = d == 0 ? t0 + s : steps - 1 - (t0 + s);
      const float* h_prev = h_buf(d, which);
      float* h_next = h_buf(d, which ^ 1);
      gemm_packed_block(raw_buf(d), running[t], hidden, *layer.dirs[d].w_hr, p, p + 1, h_next + j0, hout, project);
      for (int64_t b = 0; b < batch; ++b) {
        if (active(t, b)) {
          std::memcpy(out_row(t, b, d) + j0, h_next + b * hout + j0, sizeof(float) * cols);
        } else {
          std::memcpy(h_next + b * hout + j0, h_prev + b * hout + j0, sizeof(float) * cols);
          std::memset(out_row(t, b, d) + j0, 0, sizeof(float) * cols);
        }
      }
    };

    StepStage cells(cell_items), projections(proj_items);
    StepTeam team;
    const TeamLease lease(*serial ? 1 : threads);  // after the input GEMM above, which takes its own
#pragma omp parallel num_threads(lease.threads())
    {
      const int64_t nt = omp_get_num_threads(), tid = omp_get_thread_num();
      const int64_t c_lo = cell_items * tid / nt, c_hi = cell_items * (tid + 1) / nt;
      const int64_t p_lo = proj_items * tid / nt, p_hi = proj_items * (tid + 1) / nt;
      const bool leader = tid == 0;
      for (int64_t s = 0; s < n; ++s) {
        const int which = cur ^ static_cast<int>(s & 1);
        if (!cells.run(s, c_lo, c_hi, leader, team, [&](int64_t item) { cell_block(item, s, which); })) break;
        if (proj > 0 &&
            !projections.run(s, p_lo, p_hi, leader, team, [&](int64_t item) { proj_block(item, s, which); }))
          break;
      }
    }
    *serial = *serial || team.serial();
    cur ^= static_cast<int>(n & 1);
  }
  for (int d = 0; d < dirs; ++d) {
    std::memcpy(h_n[d], h_buf(d, cur), sizeof(float) * batch * hout);
    if (lstm) std::memcpy(c_n[d], c_buf(d), sizeof(float) * batch * hidden);
  }
}

}  // namespace cpuformer
