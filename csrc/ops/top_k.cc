// top_k.cc — scores are computed a block of columns at a time by the packed GEMM into a small buffer; a SIMD
// compare against each query's current k-th best score (select_greater_or_nan) drops almost every column, and the
// few survivors go through a k-sized heap. The order is torch.topk's: NaN above +inf, and -inf is a score like any
// other. Work is split over query blocks, or over column ranges when there are fewer query blocks than threads
// (single-query search), with per-range heaps merged at the end.
#include "ops/top_k.h"

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <vector>

#include "ops/aligned_buffer.h"
#include "ops/gemm.h"
#include "ops/parallel.h"
#include "ops/threading.h"

namespace cpuformer {
namespace {

constexpr int64_t kChunkPanels = 64;  // columns scored per block: 64 panels (1024 columns with AVX2)

struct Candidate {
  float score;
  int64_t index;
};

// Higher score first, NaN above every number (torch.topk's order); equal scores (or both NaN): lower index first,
// so results do not depend on the split.
inline bool better(const Candidate& a, const Candidate& b) {
  const bool a_nan = a.score != a.score, b_nan = b.score != b.score;
  if (a_nan || b_nan) return a_nan && (!b_nan || a.index < b.index);
  return a.score > b.score || (a.score == b.score && a.index < b.index);
}

class TopKHeap {
 public:
  explicit TopKHeap(int64_t k) : k_(k) { items_.reserve(static_cast<size_t>(k)); }
  // select_greater_or_nan's threshold: NaN (everything passes, -inf included) until the heap is full, then the
  // worst kept score (a later column must beat it; a NaN always passes).
  float threshold() const {
    return static_cast<int64_t>(items_.size()) < k_ ? std::numeric_limits<float>::quiet_NaN() : items_.front().score;
  }
  // Full of NaN: no later column (higher index) can enter.
  bool closed() const {
    return static_cast<int64_t>(items_.size()) == k_ && items_.front().score != items_.front().score;
  }
  void offer(Candidate c) {
    if (static_cast<int64_t>(items_.size()) < k_) {
      items_.push_back(c);
      std::push_heap(items_.begin(), items_.end(), better);  // front = worst kept
    } else if (better(c, items_.front())) {
      std::pop_heap(items_.begin(), items_.end(), better);
      items_.back() = c;
      std::push_heap(items_.begin(), items_.end(), better);
    }
  }
  const std::vector<Candidate>& items() const { return items_; }

 private:
  int64_t k_;
  std::vector<Candidate> items_;  // heap ordered by better(): front is the worst of the kept
};

bool is_excluded(const int64_t* row, int64_t count, int64_t col) {
  for (int64_t e = 0; e < count; ++e)
    if (row[e] == col) return true;
  return false;
}

}  // namespace

void top_k_dot(const float* queries, int64_t q, int64_t ldq, const PackedMatrix& b, int64_t k,
               const int64_t* exclude, int64_t n_exclude, int64_t* out_indices, float* out_scores) {
  if (b.dtype() != WeightDtype::f32)
    throw std::invalid_argument("top_k supports float32 packed weights only (dtype 'float32')");
  if (q == 0 || k == 0) return;
  const kernels::KernelTable& kt = b.kernels();
  const int nr = b.nr();
  const int64_t n = b.n(), panels = b.num_panels();
  const int64_t q_block = 2 * kt.gemm_mr;
  const int64_t q_blocks = (q + q_block - 1) / q_block;
  const int threads = threads_for_work(2.0 * q * n * std::max<int64_t>(b.k(), 1));
  const TeamLease lease(threads);
  const int64_t chunks = (panels + kChunkPanels - 1) / kChunkPanels;
  // Column splits only when there are fewer query blocks than threads; a few per thread, so the threads that run
  // take over the splits of one that does not (see ops/parallel.h).
  const int64_t splits = q_blocks >= threads ? 1 : std::min<int64_t>(4 * threads, chunks);
  const int64_t items = q_blocks * splits;
  std::vector<TopKHeap> heaps(static_cast<size_t>(items * q_block), TopKHeap(k));

  const int64_t chunk_cols = kChunkPanels * nr;
  std::vector<AlignedBuffer> scores_of(static_cast<size_t>(lease.threads()));
  std::vector<std::vector<int64_t>> survivors_of(static_cast<size_t>(lease.threads()));
  for (int t = 0; t < lease.threads(); ++t) {
    scores_of[t] = AlignedBuffer(static_cast<size_t>(q_block * chunk_cols));
    survivors_of[t].resize(static_cast<size_t>(chunk_cols));
  }
  run_tasks(lease, items, [&](int64_t item, int thread) {
    AlignedBuffer& scores = scores_of[static_cast<size_t>(thread)];
    std::vector<int64_t>& survivors = survivors_of[static_cast<size_t>(thread)];
    const int64_t qb = item / splits, split = item % splits;
    const int64_t q0 = qb * q_block, rows = std::min(q, q0 + q_block) - q0;
    const int64_t c_begin = split * chunks / splits * kChunkPanels;
    const int64_t c_end = std::min(panels, (split + 1) * chunks / splits * kChunkPanels);
    for (int64_t p0 = c_begin; p0 < c_end; p0 += kChunkPanels) {
      const int64_t p1 = std::min(c_end, p0 + kChunkPanels);
      gemm_packed_block(queries + q0 * ldq, rows, ldq, b, p0, p1, scores.data(), chunk_cols, GemmBlockOptions{});
      const int64_t valid = std::min(n, p1 * nr) - p0 * nr;  // the last panel's padding is not a column
      for (int64_t r = 0; r < rows; ++r) {
        TopKHeap& heap = heaps[static_cast<size_t>(item * q_block + r)];
        if (heap.closed()) continue;
        const float* row = scores.data() + r * chunk_cols;
        const int64_t* excl = exclude ? exclude + (q0 + r) * n_exclude : nullptr;
        const int64_t count = kt.select_greater_or_nan(row, valid, heap.threshold(), survivors.data());
        for (int64_t s = 0; s < count; ++s) {
          const int64_t col = p0 * nr + survivors[static_cast<size_t>(s)];
          if (excl && is_excluded(excl, n_exclude, col)) continue;
          heap.offer({row[survivors[static_cast<size_t>(s)]], col});
        }
      }
    }
  });

  // Merge each query's per-split heaps and write best first.
  std::vector<Candidate> merged;
  for (int64_t i = 0; i < q; ++i) {
    const int64_t qb = i / q_block, r = i % q_block;
    merged.clear();
    for (int64_t split = 0; split < splits; ++split) {
      const auto& part = heaps[static_cast<size_t>((qb * splits + split) * q_block + r)].items();
      merged.insert(merged.end(), part.begin(), part.end());
    }
    std::sort(merged.begin(), merged.end(), better);
    for (int64_t j = 0; j < k; ++j) {
      const bool found = j < static_cast<int64_t>(merged.size());
      out_indices[i * k + j] = found ? merged[static_cast<size_t>(j)].index : -1;
      out_scores[i * k + j] = found ? merged[static_cast<size_t>(j)].score : -std::numeric_limits<float>::infinity();
    }
  }
}

}  // namespace cpuformer
