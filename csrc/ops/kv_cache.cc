// kv_cache.cc — appends copy new rows into place; attend points the attention driver at the cached rows.
#include "ops/kv_cache.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <string>

#include "ops/rowwise.h"

namespace cpuformer {
namespace {

int64_t checked_product(std::initializer_list<int64_t> sizes) {
  int64_t total = 1;
  for (int64_t s : sizes) {
    if (s != 0 && total > std::numeric_limits<int64_t>::max() / 4 / s)
      throw std::invalid_argument("KVCache: num_layers * batch * num_heads * max_len * head_dim is too large");
    total *= s;
  }
  return total;
}

}  // namespace

KVCache::KVCache(int64_t num_layers, int64_t batch, int64_t num_heads, int64_t head_dim, int64_t max_len,
                 int64_t num_kv_heads)
    : layers_(num_layers), batch_(batch), heads_(num_heads), kv_heads_(num_kv_heads == 0 ? num_heads : num_kv_heads),
      dim_(head_dim), max_len_(max_len) {
  const std::pair<const char*, int64_t> sizes[] = {
      {"num_layers", num_layers}, {"batch", batch}, {"num_heads", num_heads}, {"head_dim", head_dim}, {"max_len", max_len}};
  for (const auto& [name, value] : sizes)
    if (value < 1) throw std::invalid_argument(std::string("KVCache: ") + name + " must be >= 1, got " + std::to_string(value));
  if (kv_heads_ < 1 || heads_ % kv_heads_ != 0)
    throw std::invalid_argument("KVCache: num_kv_heads must be >= 1 and divide num_heads=" + std::to_string(num_heads) +
                                ", got " + std::to_string(num_kv_heads));
  const int64_t floats = checked_product({num_layers, batch, kv_heads_, max_len, head_dim});
  keys_ = AlignedBuffer(static_cast<size_t>(floats));  // pages are touched (committed) only as rows are written
  values_ = AlignedBuffer(static_cast<size_t>(floats));
  lengths_.assign(static_cast<size_t>(num_layers * batch), 0);
}

void KVCache::check_layer(int64_t layer) const {
  if (layer < 0 || layer >= layers_)
    throw std::invalid_argument("layer must be in [0, " + std::to_string(layers_) + "), got " + std::to_string(layer));
}

std::vector<int64_t> KVCache::check_rows(const std::vector<int64_t>& rows) const {
  if (rows.empty()) {
    std::vector<int64_t> all(static_cast<size_t>(batch_));
    for (int64_t b = 0; b < batch_; ++b) all[b] = b;
    return all;
  }
  std::vector<bool> seen(static_cast<size_t>(batch_), false);
  for (int64_t r : rows) {
    if (r < 0 || r >= batch_)
      throw std::invalid_argument("KVCache: rows must be cache rows in [0, " + std::to_string(batch_) + "), got " +
                                  std::to_string(r));
    if (seen[r]) throw std::invalid_argument("KVCache: rows must be distinct, got row " + std::to_string(r) + " twice");
    seen[r] = true;
  }
  return rows;
}

int64_t KVCache::longest_locked(int64_t layer, const std::vector<int64_t>& rows) const {
  const int64_t* len = lengths_.data() + layer * batch_;
  int64_t longest = 0;
  for (int64_t r : rows) longest = std::max(longest, len[r]);
  return longest;
}

void KVCache::append(int64_t layer, HeadRows<const float> k, HeadRows<const float> v, int64_t tokens,
                     const std::vector<int64_t>& rows_in) {
  check_layer(layer);
  const std::vector<int64_t> rows = check_rows(rows_in);
  const int64_t n = static_cast<int64_t>(rows.size());
  std::unique_lock lock(mutex_);
  int64_t* len = lengths_.data() + layer * batch_;
  for (int64_t r : rows)
    if (len[r] + tokens > max_len_)
      throw std::invalid_argument("KVCache.append: " + std::to_string(tokens) + " more tokens on layer " +
                                  std::to_string(layer) + " (sequence " + std::to_string(r) + " holds " +
                                  std::to_string(len[r]) + ") would exceed max_len=" + std::to_string(max_len_));
  // One task per (sequence, KV head): `tokens` rows of dim_ floats each. Input sequence i goes to cache row rows[i].
  for_each_row(n * kv_heads_, 2.0 * tokens * dim_, [&](int64_t ih) {
    const int64_t i = ih / kv_heads_, h = ih % kv_heads_, b = rows[i];
    float* kd = keys_.data() + offset(layer, b, h) + len[b] * dim_;
    float* vd = values_.data() + offset(layer, b, h) + len[b] * dim_;
    const float* ks = k.base + i * k.batch_stride + h * k.head_stride;
    const float* vs = v.base + i * v.batch_stride + h * v.head_stride;
    for (int64_t t = 0; t < tokens; ++t) {
      std::memcpy(kd + t * dim_, ks + t * k.row_stride, static_cast<size_t>(dim_) * sizeof(float));
      std::memcpy(vd + t * dim_, vs + t * v.row_stride, static_cast<size_t>(dim_) * sizeof(float));
    }
  });
  for (int64_t r : rows) len[r] += tokens;
}

void KVCache::attend(int64_t layer, HeadRows<const float> q, int64_t tq, const uint8_t* mask, int64_t mask_len,
                     int64_t mask_row_stride, bool causal, float scale, HeadRows<float> out,
                     const std::vector<int64_t>& rows_in) const {
  check_layer(layer);
  const std::vector<int64_t> rows = check_rows(rows_in);
  const int64_t n = static_cast<int64_t>(rows.size());
  std::shared_lock lock(mutex_);
  const int64_t longest = longest_locked(layer, rows);
  if (mask && mask_len != longest)
    throw std::invalid_argument("attention_mask must have shape (" + std::to_string(n) + ", " +
                                std::to_string(longest) + ") to cover the cached keys of layer " +
                                std::to_string(layer) + ", got (" + std::to_string(n) + ", " +
                                std::to_string(mask_len) + ")");
  AttentionProblem p;
  p.batch = n;
  p.heads = heads_;
  p.kv_heads = kv_heads_;
  p.head_dim = dim_;
  p.q = q;
  p.out = out;
  // Cache row rows[i] is reached through k_begin (in rows of dim_ floats), so any subset needs no copy.
  const int64_t layer_offset = offset(layer, 0, 0), rows_per_batch_entry = kv_heads_ * max_len_;
  p.k = {keys_.data() + layer_offset, 0, dim_, max_len_ * dim_};
  p.v = {values_.data() + layer_offset, 0, dim_, max_len_ * dim_};
  p.q_begin.assign(n, 0);
  p.q_len.assign(n, tq);
  for (int64_t r : rows) {
    p.k_begin.push_back(r * rows_per_batch_entry);
    p.k_len.push_back(lengths_[layer * batch_ + r]);
  }
  p.key_mask = mask;
  p.mask_batch_stride = mask_row_stride;
  p.causal = causal;
  p.scale = scale;
  multi_head_attention(p);
}

std::vector<int64_t> KVCache::lengths(int64_t layer) const {
  check_layer(layer);
  std::shared_lock lock(mutex_);
  return {lengths_.begin() + layer * batch_, lengths_.begin() + (layer + 1) * batch_};
}

int64_t KVCache::longest(int64_t layer, const std::vector<int64_t>& rows) const {
  check_layer(layer);
  const std::vector<int64_t> checked = check_rows(rows);
  std::shared_lock lock(mutex_);
  return longest_locked(layer, checked);
}

void KVCache::reset(const std::vector<int64_t>& rows) {
  const std::vector<int64_t> checked = check_rows(rows);
  std::unique_lock lock(mutex_);
  for (int64_t layer = 0; layer < layers_; ++layer)
    for (int64_t r : checked) lengths_[layer * batch_ + r] = 0;
}

void KVCache::trim(int64_t length) {
  if (length < 0 || length > max_len_)
    throw std::invalid_argument("KVCache.trim: length must be in [0, max_len=" + std::to_string(max_len_) + "], got " +
                                std::to_string(length));
  std::unique_lock lock(mutex_);
  for (int64_t& n : lengths_) n = std::min(n, length);
}

void KVCache::reorder(const std::vector<int64_t>& source) {
  if (static_cast<int64_t>(source.size()) != batch_)
    throw std::invalid_argument("KVCache.reorder: source must have one entry per cache row (" + std::to_string(batch_) +
                                "), got " + std::to_string(source.size()));
  for (int64_t s : source)
    if (s < 0 || s >= batch_)
      throw std::invalid_argument("KVCache.reorder: source rows must be in [0, " + std::to_string(batch_) + "), got " +
                                  std::to_string(s));
  std::unique_lock lock(mutex_);
  // Only rows that change are copied; their sources are read into a scratch copy first, so a row that is both a
  // source and a destination (a permutation cycle) is read before it is overwritten.
  std::vector<int64_t> moved;
  for (int64_t b = 0; b < batch_; ++b)
    if (source[b] != b) moved.push_back(b);
  if (moved.empty()) return;
  std::vector<float> scratch;
  for (int64_t layer = 0; layer < layers_; ++layer) {
    int64_t len = 0;
    for (int64_t b : moved) len = std::max(len, lengths_[layer * batch_ + source[b]]);
    const size_t per_row = static_cast<size_t>(kv_heads_ * len * dim_);
    scratch.resize(2 * moved.size() * per_row);
    for (AlignedBuffer* buf : {&keys_, &values_}) {
      float* base = buf->data();
      const size_t half = buf == &keys_ ? 0 : moved.size() * per_row;
      for (size_t i = 0; i < moved.size(); ++i)
        for (int64_t h = 0; h < kv_heads_; ++h)
          std::memcpy(scratch.data() + half + i * per_row + h * len * dim_, base + offset(layer, source[moved[i]], h),
                      static_cast<size_t>(len * dim_) * sizeof(float));
    }
    for (AlignedBuffer* buf : {&keys_, &values_}) {
      float* base = buf->data();
      const size_t half = buf == &keys_ ? 0 : moved.size() * per_row;
      for (size_t i = 0; i < moved.size(); ++i)
        for (int64_t h = 0; h < kv_heads_; ++h)
          std::memcpy(base + offset(layer, moved[i], h), scratch.data() + half + i * per_row + h * len * dim_,
                      static_cast<size_t>(len * dim_) * sizeof(float));
    }
    std::vector<int64_t> old(lengths_.begin() + layer * batch_, lengths_.begin() + (layer + 1) * batch_);
    for (int64_t b : moved) lengths_[layer * batch_ + b] = old[source[b]];
  }
}

void KVCache::copy_out(int64_t layer, bool values, float* out, int64_t len) const {
  check_layer(layer);
  std::shared_lock lock(mutex_);
  if (len != longest_locked(layer, check_rows({})))
    throw std::invalid_argument("KVCache: layer " + std::to_string(layer) + " changed length during the copy");
  const float* src = (values ? values_ : keys_).data();
  const int64_t hd = kv_heads_ * dim_;
  for (int64_t b = 0; b < batch_; ++b) {
    const int64_t n = lengths_[layer * batch_ + b];
    for (int64_t t = 0; t < len; ++t)
      for (int64_t h = 0; h < kv_heads_; ++h) {
        float* dst = out + (b * len + t) * hd + h * dim_;
        if (t < n)
          std::memcpy(dst, src + offset(layer, b, h) + t * dim_, static_cast<size_t>(dim_) * sizeof(float));
        else
          std::fill(dst, dst + dim_, 0.0f);
      }
  }
}

}  // namespace cpuformer
