// attention.cc — splits attention into tasks (sequence, head, query block [, key split]) and runs the
// fused kernel on each; the kernel math lives in kernels/attention_kernels.cc.
#include "ops/attention.h"

#include <algorithm>

#include "cpu/dispatch.h"
#include "ops/aligned_buffer.h"
#include "ops/parallel.h"
#include "ops/threading.h"

namespace cpuformer {
namespace {

constexpr int64_t kQueryBlock = 64;        // queries per task: their packed Q and outputs stay in L1/L2
constexpr int64_t kMinKeysPerSplit = 256;  // splitting shorter key ranges costs more than it wins
constexpr int64_t kKeySplitAlign = 64;

struct Task {
  int64_t b, h, q0, nq;  // query rows [q0, q0 + nq) of sequence b, head h
  int64_t k0, nk;        // key rows [k0, k0 + nk)
  int64_t part_out;      // -1: write the output; else offsets of this key split's partial result ([nq, d])
  int64_t part_max, part_sum;  // and of its softmax state ([nq] each)
};

// A (sequence, head, query block) whose key range was split: the partial results of its splits are laid out
// consecutively, as attention_merge reads them ([splits, nq, d] and [splits, nq] twice).
struct SplitUnit {
  int64_t b, h, q0, nq, splits, out_offset, max_offset, sum_offset;
};

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

}  // namespace

void multi_head_attention(const AttentionProblem& p) {
  const kernels::KernelTable& kt = kernels_for_active_isa();
  const int64_t d = p.head_dim;
  if (p.batch == 0 || p.heads == 0 || d == 0) return;

  double flops = 0.0;
  int64_t units = 0, longest_keys = 0;
  for (int64_t b = 0; b < p.batch; ++b) {
    flops += 4.0 * static_cast<double>(p.q_len[b]) * static_cast<double>(p.k_len[b]) * d * p.heads;
    units += p.heads * ((p.q_len[b] + kQueryBlock - 1) / kQueryBlock);
    longest_keys = std::max(longest_keys, p.k_len[b]);
  }
  if (units == 0) return;
  const int64_t group = p.kv_heads > 0 ? p.heads / p.kv_heads : 1;  // query heads per KV head
  const int threads = threads_for_work(flops);  // splits follow it; the team (lease) only changes who runs them
  // Few query blocks (decode, small batches): split long key ranges so every thread gets work.
  int64_t splits = 1;
  if (threads > 1 && units < 2 * threads)
    splits = std::clamp<int64_t>((2 * threads + units - 1) / units, 1, longest_keys / kMinKeysPerSplit);

  std::vector<Task> tasks;
  std::vector<SplitUnit> split_units;
  tasks.reserve(static_cast<size_t>(units * splits));
  int64_t part_floats = 0, stat_floats = 0;
  for (int64_t b = 0; b < p.batch; ++b) {
    for (int64_t h = 0; h < p.heads; ++h) {
      for (int64_t q0 = 0; q0 < p.q_len[b]; q0 += kQueryBlock) {
        const int64_t nq = std::min(kQueryBlock, p.q_len[b] - q0), nk = p.k_len[b];
        if (splits == 1 || nk < 2 * kMinKeysPerSplit) {
          tasks.push_back({b, h, q0, nq, 0, nk, -1, 0, 0});
          continue;
        }
        const int64_t chunk = round_up((nk + splits - 1) / splits, kKeySplitAlign);
        const int64_t n_chunks = (nk + chunk - 1) / chunk;
        const SplitUnit u{b, h, q0, nq, n_chunks, part_floats, stat_floats, stat_floats + n_chunks * nq};
        split_units.push_back(u);
        for (int64_t c = 0; c < n_chunks; ++c)
          tasks.push_back({b, h, q0, nq, c * chunk, std::min(chunk, nk - c * chunk), u.out_offset + c * nq * d,
                           u.max_offset + c * nq, u.sum_offset + c * nq});
        part_floats += n_chunks * nq * d;
        stat_floats += 2 * n_chunks * nq;
      }
    }
  }

  // Workspaces and partial results are allocated here, outside the parallel region, so nothing in it throws.
  // (16-float multiples keep every thread's slice on its own cache lines.)
  const int64_t ws_floats =
      round_up(std::max(kt.attention_workspace_floats(kQueryBlock, d), kt.attention_workspace_floats(1, d)), 16);
  AlignedBuffer workspace(static_cast<size_t>(ws_floats * threads));
  AlignedBuffer partial_out(static_cast<size_t>(part_floats));
  AlignedBuffer partial_stats(static_cast<size_t>(stat_floats));

  auto run = [&](const Task& t, float* ws) {
    const int64_t qrow = p.q_begin[t.b] + t.q0, krow = p.k_begin[t.b] + t.k0, kv_h = t.h / group;
    kernels::AttentionTile tile{};
    tile.q = p.q.base + t.b * p.q.batch_stride + qrow * p.q.row_stride + t.h * p.q.head_stride;
    tile.ldq = p.q.row_stride;
    tile.k = p.k.base + t.b * p.k.batch_stride + krow * p.k.row_stride + kv_h * p.k.head_stride;
    tile.ldk = p.k.row_stride;
    tile.v = p.v.base + t.b * p.v.batch_stride + krow * p.v.row_stride + kv_h * p.v.head_stride;
    tile.ldv = p.v.row_stride;
    tile.nq = t.nq;
    tile.nk = t.nk;
    tile.d = d;
    tile.scale = p.scale;
    tile.key_mask = p.key_mask ? p.key_mask + t.b * p.mask_batch_stride + t.k0 : nullptr;
    tile.causal = p.causal;
    tile.causal_offset = p.k_len[t.b] - p.q_len[t.b] + t.q0 - t.k0;
    if (p.relative_bias) {  // tile-local (i, j) is relative position j - i - causal_offset
      tile.rel_bias = p.relative_bias + t.h * p.relative_bias_head_stride;
      tile.rel_shift = p.relative_bias_center - tile.causal_offset;
    }
    tile.workspace = ws;
    if (t.part_out < 0) {
      tile.out = p.out.base + t.b * p.out.batch_stride + qrow * p.out.row_stride + t.h * p.out.head_stride;
      tile.ldo = p.out.row_stride;
    } else {
      tile.out = partial_out.data() + t.part_out;
      tile.ldo = d;
      tile.row_max = partial_stats.data() + t.part_max;
      tile.row_sum = partial_stats.data() + t.part_sum;
    }
    kt.attention_tile(tile);
  };

  const int64_t n_tasks = static_cast<int64_t>(tasks.size());
  const TeamLease lease(threads);
  run_tasks(lease, n_tasks, [&](int64_t i, int thread) { run(tasks[i], workspace.data() + thread * ws_floats); });

  // Merge the key splits (a handful of decode-sized units: serial).
  for (const SplitUnit& u : split_units) {
    const int64_t qrow = p.q_begin[u.b] + u.q0;
    float* out = p.out.base + u.b * p.out.batch_stride + qrow * p.out.row_stride + u.h * p.out.head_stride;
    kt.attention_merge(partial_out.data() + u.out_offset, partial_stats.data() + u.max_offset,
                       partial_stats.data() + u.sum_offset, u.splits, u.nq, d, out, p.out.row_stride);
  }
}

}  // namespace cpuformer
