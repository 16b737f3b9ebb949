// kv_cache.h — preallocated keys/values for incremental decoding, laid out [layer, batch, head, max_len, dim]
// so one head's keys are contiguous rows for the decode dot products. Appends copy only the new rows.
// Every cache row keeps its own length, so rows may also advance independently: `rows` picks which cache rows
// the inputs' sequences are (continuous batching: requests join and leave a running batch, freed rows are
// reset and reused). An empty `rows` means every row, in order.
// Grouped-query attention: the cache stores num_kv_heads heads (<= num_heads, dividing it); queries keep
// num_heads heads and query head h reads KV head h / (num_heads / num_kv_heads). K/V are stored once per KV head.
#pragma once
#include <cstdint>
#include <shared_mutex>
#include <vector>

#include "ops/aligned_buffer.h"
#include "ops/attention.h"

namespace cpuformer {

class KVCache {
 public:
  // Throws std::invalid_argument for non-positive sizes or num_kv_heads not dividing num_heads (0 = num_heads).
  KVCache(int64_t num_layers, int64_t batch, int64_t num_heads, int64_t head_dim, int64_t max_len,
          int64_t num_kv_heads = 0);

  // k, v: `tokens` rows per sequence, kv_heads * head_dim floats each (row b, t at base + b * batch_stride +
  // t * row_stride), written at each sequence's current length of `layer`, which then advances by `tokens`.
  // Throws std::invalid_argument when a sequence would pass max_len.
  // rows: sequence i of k/v is cache row rows[i] (distinct, in [0, batch)); empty = all rows in order.
  void append(int64_t layer, HeadRows<const float> k, HeadRows<const float> v, int64_t tokens,
              const std::vector<int64_t>& rows = {});

  // out = attention of q ([batch, tq] rows, head h at column h * head_dim) over the cached keys of `layer`.
  // mask: [batch, mask_len] flags, row b at mask + b * mask_row_stride, or null; mask_len must equal the longest
  // cached sequence. rows: sequence i of q (and of mask, out) attends to cache row rows[i]; empty = all rows.
  void attend(int64_t layer, HeadRows<const float> q, int64_t tq, const uint8_t* mask, int64_t mask_len,
              int64_t mask_row_stride, bool causal, float scale, HeadRows<float> out,
              const std::vector<int64_t>& rows = {}) const;

  std::vector<int64_t> lengths(int64_t layer) const;
  // The longest cached sequence of `layer` among `rows` (empty = all rows).
  int64_t longest(int64_t layer, const std::vector<int64_t>& rows = {}) const;
  // Forget the cached tokens of `rows` in every layer (empty = all rows); storage is kept.
  void reset(const std::vector<int64_t>& rows = {});
  // Throws std::invalid_argument unless rows are distinct and in [0, batch); returns them, or 0..batch-1 if empty.
  std::vector<int64_t> check_rows(const std::vector<int64_t>& rows) const;
  // Keeps at most `length` tokens of every sequence in every layer.
  void trim(int64_t length);
  // Row b becomes a copy of old row source[b] (keys, values and lengths of every layer); source has one entry per
  // row, in [0, batch), repeats allowed (beam search: a beam's continuations replace the beams that lost).
  void reorder(const std::vector<int64_t>& source);
  // Copies the cached keys (or values) of `layer` into out [batch, len, kv_heads * head_dim]; len must be
  // longest(layer). Rows past a shorter sequence's length are zero.
  void copy_out(int64_t layer, bool values, float* out, int64_t len) const;

  int64_t num_layers() const { return layers_; }
  int64_t batch() const { return batch_; }
  int64_t num_heads() const { return heads_; }
  int64_t num_kv_heads() const { return kv_heads_; }
  int64_t head_dim() const { return dim_; }
  int64_t max_len() const { return max_len_; }

 private:
  void check_layer(int64_t layer) const;
  int64_t longest_locked(int64_t layer, const std::vector<int64_t>& rows) const;
  // First float of (layer, b, KV head h, row 0).
  int64_t offset(int64_t layer, int64_t b, int64_t h) const { return ((layer * batch_ + b) * kv_heads_ + h) * max_len_ * dim_; }

  int64_t layers_, batch_, heads_, kv_heads_, dim_, max_len_;
  AlignedBuffer keys_, values_;
  std::vector<int64_t> lengths_;  // [layer, batch]
  mutable std::shared_mutex mutex_;  // appends/reset/trim exclusive, attend/copies shared
};

}  // namespace cpuformer
