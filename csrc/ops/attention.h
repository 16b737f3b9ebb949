// attention.h — multi-head scaled-dot-product attention over per-sequence row ranges: one driver shared by
// the padded, varlen and KV-cache entry points. Validates nothing (the bindings and KVCache do).
#pragma once
#include <cstdint>
#include <vector>

namespace cpuformer {

// Row r of head h in sequence b starts at base + b * batch_stride + (begin[b] + r) * row_stride + h * head_stride;
// its head_dim floats are contiguous. Strided views of a fused QKV projection fit without a copy.
template <class T>
struct HeadRows {
  T* base = nullptr;
  int64_t batch_stride = 0, row_stride = 0, head_stride = 0;
};

struct AttentionProblem {
  int64_t batch = 0, heads = 0, head_dim = 0;
  // Grouped-query attention: k and v hold kv_heads heads (0 = heads), each shared by heads / kv_heads
  // consecutive query heads: query head h reads KV head h / (heads / kv_heads). K/V are never repeated.
  int64_t kv_heads = 0;
  HeadRows<const float> q, k, v;
  HeadRows<float> out;                                  // addressed with q_begin like q
  std::vector<int64_t> q_begin, q_len, k_begin, k_len;  // per sequence, each of size batch
  const uint8_t* key_mask = nullptr;  // key j of sequence b may be seen iff key_mask[b * mask_batch_stride + j]
  int64_t mask_batch_stride = 0;
  bool causal = false;  // query i of sequence b sees key j only when j <= i + k_len[b] - q_len[b]
  float scale = 1.0f;
  // null, or an additive bias by relative position shared by every sequence (MPNet's relative attention):
  // key j and query i of sequence b (the query aligned as in `causal`) add
  // relative_bias[h * relative_bias_head_stride + relative_bias_center + j - (i + k_len[b] - q_len[b])].
  // The caller guarantees every such index is inside the array (center >= longest key range - 1).
  const float* relative_bias = nullptr;
  int64_t relative_bias_head_stride = 0, relative_bias_center = 0;
};

// Tiles every (sequence, head) into query blocks and runs them on OpenMP threads; when there are too few
// blocks to keep every thread busy (decode), long key ranges are split and merged.
void multi_head_attention(const AttentionProblem& problem);

}  // namespace cpuformer
