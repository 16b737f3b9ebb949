// lstm.cc — LSTM layers as: one packed GEMM for the input projection of a chunk of steps (both biases folded
// into its bias), then a step loop inside ONE OpenMP region per chunk. Threads own blocks of hidden units; per
// step each thread multiplies h_{t-1} by its W_hh panels (accumulating onto the projected input) and runs the
// fused gate kernel on the same units, then waits for the step to finish (StepStage: a barrier that steals
// from preempted threads). Both directions of a bidirectional layer are work items of the same steps, so they
// run side by side.
#include "ops/lstm.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <vector>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>

#include "ops/aligned_buffer.h"
#include "ops/gemm.h"
#include "ops/rowwise.h"
#include "ops/threading.h"

namespace cpuformer {
namespace {

constexpr int64_t kKC = 256;                 // K block of the recurrent GEMM (as in gemm.cc): panel slice in L1
constexpr int64_t kChunkFloats = 2 << 20;    // projected-input workspace per chunk (8 MiB), at least one step

// Reorders torch's [i; f; g; o] rows (4 blocks of H) into unit blocks of U: rows of block b are
// [i_b; f_b; g_b; o_b] (U rows each, zero past H), so each block's gates land in 4 whole packed panels
// and one thread can update c and h for those units without waiting for anyone else.
void interleave_gate_rows(const float* w, int64_t hidden, int64_t k, int64_t units, int64_t blocks, float* dst) {
  for (int64_t b = 0; b < blocks; ++b)
    for (int64_t g = 0; g < 4; ++g)
      for (int64_t u = 0; u < units; ++u) {
        const int64_t j = b * units + u;
        float* row = dst + ((b * 4 + g) * units + u) * k;
        if (j < hidden) std::memcpy(row, w + (g * hidden + j) * k, sizeof(float) * k);
        else std::memset(row, 0, sizeof(float) * k);
      }
}

void interleave_gate_bias(const float* b_ih, const float* b_hh, int64_t hidden, int64_t units, int64_t blocks,
                          float* dst) {
  for (int64_t b = 0; b < blocks; ++b)
    for (int64_t g = 0; g < 4; ++g)
      for (int64_t u = 0; u < units; ++u) {
        const int64_t j = b * units + u;
        float v = 0.0f;
        if (j < hidden) v = (b_ih ? b_ih[g * hidden + j] : 0.0f) + (b_hh ? b_hh[g * hidden + j] : 0.0f);
        dst[(b * 4 + g) * units + u] = v;
      }
}

std::unique_ptr<PackedMatrix> pack_gates(const float* w, const float* b_ih, const float* b_hh, int64_t hidden,
                                         int64_t k, int64_t units, int64_t blocks,
                                         const kernels::KernelTable& kt) {
  const int64_t rows = 4 * units * blocks;
  AlignedBuffer w_inter(static_cast<size_t>(rows * k));
  interleave_gate_rows(w, hidden, k, units, blocks, w_inter.data());
  AlignedBuffer b_inter;
  if (b_ih || b_hh) {
    b_inter = AlignedBuffer(static_cast<size_t>(rows));
    interleave_gate_bias(b_ih, b_hh, hidden, units, blocks, b_inter.data());
  }
  return std::make_unique<PackedMatrix>(w_inter.data(), rows, k, WeightLayout::out_in,
                                        b_inter.empty() ? nullptr : b_inter.data(), kt);
}

// c[m, cols] (ldc) (+)= a[m, k] (lda) * panel; K blocked by kKC, rows by MR.
void panel_gemm(const kernels::KernelTable& kt, const float* a, int64_t m, int64_t lda, int64_t k,
                const float* panel, int nr, int cols, float* c, int64_t ldc, bool accumulate) {
  for (int64_t k0 = 0; k0 < k; k0 += kKC) {
    const int64_t kc = std::min(kKC, k - k0);
    for (int64_t i = 0; i < m; i += kt.gemm_mr) {
      const int rows = static_cast<int>(std::min<int64_t>(kt.gemm_mr, m - i));
      kt.gemm_ukernel(rows, cols, kc, a + i * lda + k0, lda, 1, panel + k0 * nr, c + i * ldc, ldc,
                      accumulate || k0 > 0, nullptr);
    }
  }
}

// Whether the step loop's team still runs in parallel. A thread that waits far longer than a step should take
// has seen a preempted teammate (other processes are using the cores); after a few such stalls the team turns
// serial: thread 0 runs every item and the others leave, which beats waiting a time slice per step.
struct StepTeam {
  static constexpr int kStallsBeforeSerial = 2;
  // A wait counts as a stall past this plus 8x the waiting thread's own time per item (big items legitimately
  // make teammates wait longer).
  static constexpr std::chrono::microseconds kStall{200};
  std::atomic<bool> serial{false};
  std::atomic<int> stalls{0};
};

// CPUFORMER_LSTM_STALL_US fixes the stall threshold (tests set 0 to drive the serial fallback); -1 when unset.
std::chrono::microseconds stall_override() {
  static const std::chrono::microseconds value = [] {
    const char* env = std::getenv("CPUFORMER_LSTM_STALL_US");
    return std::chrono::microseconds(env && *env ? std::atoll(env) : -1);
  }();
  return value;
}

// The work items of one stage (cell blocks, or projection panels) for every step, shared by a team of threads.
// Each thread first runs the items it owns (the same ones every step, so its weight panels stay in its cache),
// then waits for the stage to finish, stealing items nobody has claimed yet once it has spun a while. A thread
// the OS preempts between items therefore delays nobody; one preempted inside an item counts as a stall.
class StepStage {
 public:
  explicit StepStage(int64_t items) : items_(items), claimed_(static_cast<size_t>(items)) {
    for (auto& c : claimed_) c.store(-1, std::memory_order_relaxed);
  }

  // Runs step s of this stage: own items [lo, hi), then helps until all items of step s are done. Every thread
  // calls it for every step in order until it returns false (the team went serial and this thread may leave).
  template <class Fn>
  bool run(int64_t s, int64_t lo, int64_t hi, bool leader, StepTeam& team, Fn&& fn) {
    if (team.serial.load(std::memory_order_relaxed) && !leader) return false;
    const auto own_start = std::chrono::steady_clock::now();
    int64_t ran = 0;
    for (int64_t i = lo; i < hi; ++i) ran += try_run(i, s, fn);
    const int64_t target = (s + 1) * items_;
    auto wait_start = std::chrono::steady_clock::now();
    const auto stall_after = stall_override().count() >= 0
                                 ? std::chrono::steady_clock::duration(stall_override())
                                 : StepTeam::kStall + (ran > 0 ? 8 * (wait_start - own_start) / ran
                                                               : std::chrono::steady_clock::duration::zero());
    bool stalled = false;
    for (int64_t spins = 0; done_.load(std::memory_order_acquire) < target; ++spins) {
      if (spins % 1024 == 0 && !stalled && std::chrono::steady_clock::now() - wait_start > stall_after) {
        stalled = true;
        if (team.stalls.fetch_add(1, std::memory_order_relaxed) + 1 >= StepTeam::kStallsBeforeSerial)
          team.serial.store(true, std::memory_order_relaxed);
      }
      const bool serial = team.serial.load(std::memory_order_relaxed);
      if (spins < kSpinsBeforeSteal && !serial) continue;
      bool stole = false;
      for (int64_t j = 0; j < items_ && !stole; ++j) stole = try_run((hi + j) % items_, s, fn);
      if (stole) {
        wait_start = std::chrono::steady_clock::now();
        continue;
      }
      if (spins > kSpinsBeforeYield) std::this_thread::yield();
    }
    return true;
  }

 private:
  static constexpr int64_t kSpinsBeforeSteal = 2000;
  static constexpr int64_t kSpinsBeforeYield = 20000;

  template <class Fn>
  bool try_run(int64_t i, int64_t s, Fn& fn) {
    int64_t expected = s - 1;  // every item of step s - 1 is done, so each item reads s - 1 until claimed
    if (claimed_[i].load(std::memory_order_relaxed) != expected ||
        !claimed_[i].compare_exchange_strong(expected, s, std::memory_order_acq_rel))
      return false;
    fn(i);
    done_.fetch_add(1, std::memory_order_release);
    return true;
  }

  int64_t items_;
  std::vector<std::atomic<int64_t>> claimed_;  // last step each item was claimed for
  alignas(64) std::atomic<int64_t> done_{0};   // items finished, over all steps
};

// Until when (steady clock) new calls start their step loops serial because a recent call saw preempted
// threads; after that they try parallel again, so a quiet machine gets its threads back within kSerialHold.
std::atomic<int64_t> g_serial_until_ns{0};
constexpr std::chrono::milliseconds kSerialHold{250};

int64_t steady_now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void require(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument(message);
}

}  // namespace

PackedLstm::PackedLstm(int64_t input_size, int64_t hidden_size, int64_t num_layers, bool bidirectional,
                       int64_t proj_size, const std::vector<LstmWeightsView>& weights,
                       const kernels::KernelTable& kernels)
    : input_size_(input_size), hidden_(hidden_size), proj_(proj_size), directions_(bidirectional ? 2 : 1),
      units_per_block_(kernels.gemm_nr), blocks_(0), kernels_(&kernels) {
  require(input_size > 0, "LSTM input_size must be positive, got " + std::to_string(input_size));
  require(hidden_size > 0, "LSTM hidden_size must be positive, got " + std::to_string(hidden_size));
  require(num_layers > 0, "LSTM num_layers must be positive, got " + std::to_string(num_layers));
  require(proj_size >= 0 && proj_size < hidden_size,
          "LSTM proj_size must be in [0, hidden_size) = [0, " + std::to_string(hidden_size) + "), got " +
              std::to_string(proj_size));
  require(static_cast<int64_t>(weights.size()) == num_layers * directions_,
          "LSTM needs num_layers * directions = " + std::to_string(num_layers * directions_) +
              " weight sets, got " + std::to_string(weights.size()));
  blocks_ = (hidden_ + units_per_block_ - 1) / units_per_block_;
  const int64_t hout = state_size();
  for (int64_t l = 0; l < num_layers; ++l) {
    Layer layer;
    layer.input_size = l == 0 ? input_size : directions_ * hout;
    for (int d = 0; d < directions_; ++d) {
      const LstmWeightsView& w = weights[l * directions_ + d];
      require(w.w_ih && w.w_hh && (proj_ == 0 || w.w_hr), "LSTM weight pointers must not be null");
      Direction dir;
      dir.w_ih = pack_gates(w.w_ih, w.b_ih, w.b_hh, hidden_, layer.input_size, units_per_block_, blocks_, kernels);
      dir.w_hh = pack_gates(w.w_hh, nullptr, nullptr, hidden_, hout, units_per_block_, blocks_, kernels);
      if (proj_ > 0)
        dir.w_hr = std::make_unique<PackedMatrix>(w.w_hr, proj_, hidden_, WeightLayout::out_in, nullptr, kernels);
      layer.dirs.push_back(std::move(dir));
    }
    layers_.push_back(std::move(layer));
  }
}

void PackedLstm::forward(const float* x, int64_t steps, int64_t batch, bool batch_first, const float* h0,
                         const float* c0, const int64_t* lengths, float* out, float* h_n, float* c_n) const {
  require(steps > 0, "LSTM needs at least one time step, got " + std::to_string(steps));
  require(batch >= 0, "LSTM batch must be >= 0, got " + std::to_string(batch));
  if (batch == 0) return;
  if (lengths)
    for (int64_t b = 0; b < batch; ++b)
      require(lengths[b] >= 1 && lengths[b] <= steps,
              "LSTM lengths[" + std::to_string(b) + "] = " + std::to_string(lengths[b]) + " is outside [1, " +
                  std::to_string(steps) + "]");
  const int64_t hout = state_size(), out_cols = directions_ * hout;
  if (lengths && !std::is_sorted(lengths, lengths + batch, std::greater<int64_t>())) {
    forward_sorted_by_length(x, steps, batch, batch_first, h0, c0, lengths, out, h_n, c_n);
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
  const bool started_serial = steady_now_ns() < g_serial_until_ns.load(std::memory_order_relaxed);
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
      cn_dir[d] = c_n + s * batch * hidden_;
    }
    run_layer(layers_[l], layer_in, steps, batch, h0_dir, c0_dir, lengths, layer_out, last && batch_first, hn_dir,
              cn_dir, &serial);
    layer_in = layer_out;
  }
  if (serial && !started_serial)
    g_serial_until_ns.store(steady_now_ns() + std::chrono::nanoseconds(kSerialHold).count(), std::memory_order_relaxed);
}

// Runs the batch reordered by decreasing length, so the sequences still running at any step are a prefix of
// the batch and the recurrent GEMM skips the finished ones (as torch's PackedSequence does), then puts every
// result back in the caller's order.
void PackedLstm::forward_sorted_by_length(const float* x, int64_t steps, int64_t batch, bool batch_first,
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
  AlignedBuffer hns(static_cast<size_t>(states * batch * hout)), cns(static_cast<size_t>(states * batch * hidden_));
  forward(xs.data(), steps, batch, false, h0 ? h0s.data() : nullptr, c0 ? c0s.data() : nullptr, sorted.data(),
          outs.data(), hns.data(), cns.data());
  for (int64_t t = 0; t < steps; ++t)
    for (int64_t j = 0; j < batch; ++j)
      std::memcpy(out + row(t, order[j]) * out_cols, outs.data() + (t * batch + j) * out_cols,
                  sizeof(float) * out_cols);
  permute_states(hns.data(), h_n, hout, false);
  permute_states(cns.data(), c_n, hidden_, false);
}

void PackedLstm::run_layer(const Layer& layer, const float* x, int64_t steps, int64_t batch, const float* const* h0,
                           const float* const* c0, const int64_t* lengths, float* out, bool out_batch_first,
                           float* const* h_n, float* const* c_n, bool* serial) const {
  const kernels::KernelTable& kt = *kernels_;
  const int64_t hidden = hidden_, hout = state_size(), proj = proj_, units = units_per_block_, blocks = blocks_;
  const int dirs = directions_, nr = kt.gemm_nr;
  const int64_t gate_cols = 4 * units * blocks;  // one direction's projected gates per (t, b) row
  const int64_t ldg = dirs * gate_cols;
  const int64_t out_cols = dirs * hout;
  const int64_t in = layer.input_size;
  const int64_t chunk = std::clamp<int64_t>(kChunkFloats / (batch * ldg), 1, steps);

  AlignedBuffer gates(static_cast<size_t>(chunk * batch * ldg));
  // State per direction: h double-buffered (threads read all of h_{t-1} while writing h_t), c, and the
  // unprojected o * tanh(c) when proj_size > 0.
  AlignedBuffer h_state(static_cast<size_t>(dirs * 2 * batch * hout));
  AlignedBuffer c_state(static_cast<size_t>(dirs * batch * hidden));
  AlignedBuffer raw_h(proj > 0 ? static_cast<size_t>(dirs * batch * hidden) : 0);
  raw_h.zero();
  auto h_buf = [&](int d, int which) { return h_state.data() + (d * 2 + which) * batch * hout; };
  auto c_buf = [&](int d) { return c_state.data() + d * batch * hidden; };
  auto raw_buf = [&](int d) { return raw_h.data() + d * batch * hidden; };
  for (int d = 0; d < dirs; ++d) {
    if (h0[d]) std::memcpy(h_buf(d, 0), h0[d], sizeof(float) * batch * hout);
    else std::memset(h_buf(d, 0), 0, sizeof(float) * batch * hout);
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
  const double step_flops = 2.0 * batch * dirs * (4.0 * hidden * hout + static_cast<double>(proj) * hidden);
  const int threads = static_cast<int>(std::min<int64_t>(threads_for_work(step_flops), cell_items));

  int cur = 0;  // which h buffer holds h_{t-1}
  for (int64_t t0 = 0; t0 < steps; t0 += chunk) {
    const int64_t n = std::min(chunk, steps - t0);
    // Forward reads steps [t0, t0 + n), reverse the mirror range; gate slot = t - first step of the range.
    int64_t first[2] = {t0, steps - t0 - n};
    for (int d = 0; d < dirs; ++d)
      gemm_packed(x + first[d] * batch * in, n * batch, in, *layer.dirs[d].w_ih, gates.data() + d * gate_cols, ldg);

    // One cell block: recurrent GEMM on 4 panels (accumulating onto the projected input), then the gates.
    auto cell_block = [&](int64_t item, int64_t s, int which) {
      const int d = static_cast<int>(item / blocks);
      const int64_t blk = item % blocks, j0 = blk * units, n_units = std::min(units, hidden - j0);
      const int64_t t = d == 0 ? t0 + s : steps - 1 - (t0 + s);
      float* g = gates.data() + (t - first[d]) * batch * ldg + d * gate_cols + blk * 4 * units;
      const float* h_prev = h_buf(d, which);
      float* h_next = h_buf(d, which ^ 1);
      const PackedMatrix& w_hh = *layer.dirs[d].w_hh;
      for (int gate = 0; gate < 4; ++gate)
        panel_gemm(kt, h_prev, running[t], hout, hout, w_hh.panel(blk * 4 + gate), nr, nr, g + gate * units, ldg,
                   true);
      for (int64_t b = 0; b < batch; ++b) {
        const bool on = active(t, b);
        if (proj > 0) {
          if (on) kt.lstm_gates(g + b * ldg, units, c_buf(d) + b * hidden + j0, raw_buf(d) + b * hidden + j0, n_units);
          continue;
        }
        float* h_dst = h_next + b * hout + j0;
        if (on) {
          kt.lstm_gates(g + b * ldg, units, c_buf(d) + b * hidden + j0, h_dst, n_units);
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
      panel_gemm(kt, raw_buf(d), running[t], hidden, hidden, layer.dirs[d].w_hr->panel(p), nr, cols, h_next + j0,
                 hout, false);
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
#pragma omp parallel num_threads(*serial ? 1 : threads)
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
    *serial = *serial || team.serial.load();
    cur ^= static_cast<int>(n & 1);
  }
  for (int d = 0; d < dirs; ++d) {
    std::memcpy(h_n[d], h_buf(d, cur), sizeof(float) * batch * hout);
    std::memcpy(c_n[d], c_buf(d), sizeof(float) * batch * hidden);
  }
}

void lstm_cell(const float* x, const float* h, const float* c, int64_t batch, int64_t input_size, int64_t hidden,
               const float* w_ih, const float* w_hh, const float* b_ih, const float* b_hh, float* h_out, float* c_out,
               const kernels::KernelTable& kernels) {
  require(hidden > 0, "lstm_cell hidden size must be positive, got " + std::to_string(hidden));
  if (batch == 0) return;
  AlignedBuffer bias;
  if (b_ih || b_hh) {
    bias = AlignedBuffer(static_cast<size_t>(4 * hidden));
    for (int64_t j = 0; j < 4 * hidden; ++j) bias.data()[j] = (b_ih ? b_ih[j] : 0.0f) + (b_hh ? b_hh[j] : 0.0f);
  }
  const PackedMatrix packed_ih(w_ih, 4 * hidden, input_size, WeightLayout::out_in, bias.empty() ? nullptr : bias.data(),
                               kernels);
  const PackedMatrix packed_hh(w_hh, 4 * hidden, hidden, WeightLayout::out_in, nullptr, kernels);
  AlignedBuffer x_part(static_cast<size_t>(batch * 4 * hidden)), gates(static_cast<size_t>(batch * 4 * hidden));
  gemm_packed(x, batch, input_size, packed_ih, x_part.data(), 4 * hidden);
  gemm_packed(h, batch, hidden, packed_hh, gates.data(), 4 * hidden, kernels::Activation::none, x_part.data(),
              4 * hidden);
  std::memcpy(c_out, c, sizeof(float) * batch * hidden);
  for_each_row(batch, 60.0 * hidden, [&](int64_t b) {
    kernels.lstm_gates(gates.data() + b * 4 * hidden, hidden, c_out + b * hidden, h_out + b * hidden, hidden);
  });
}

}  // namespace cpuformer
