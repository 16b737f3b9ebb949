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

KVCache::KVCache(int64_t num_layers, int64_t batch, int64_t num_heads, int64_t head_dim, int64_t max_len)
    : layers_(num_layers), batch_(batch), heads_(num_heads), dim_(head_dim), max_len_(max_len) {
  const std::pair<const char*, int64_t> sizes[] = {
      {"num_layers", num_layers}, {"batch", batch}, {"num_heads", num_heads}, {"head_dim", head_dim}, {"max_len", max_len}};
  for (const auto& [name, value] : sizes)
    if (value < 1) throw std::invalid_argument(std::string("KVCache: ") + name + " must be >= 1, got " + std::to_string(value));
  const int64_t floats = checked_product({num_layers, batch, num_heads, max_len, head_dim});
  keys_ = AlignedBuffer(static_cast<size_t>(floats));  // pages are touched (committed) only as rows are written
  values_ = AlignedBuffer(static_cast<size_t>(floats));
  lengths_.assign(static_cast<size_t>(num_layers * batch), 0);
}

void KVCache::check_layer(int64_t layer) const {
  if (layer < 0 || layer >= layers_)
    throw std::invalid_argument("layer must be in [0, " + std::to_string(layers_) + "), got " + std::to_string(layer));
}

int64_t KVCache::longest_locked(int64_t layer) const {
  const auto first = lengths_.begin() + layer * batch_;
  return *std::max_element(first, first + batch_);
}

void KVCache::append(int64_t layer, HeadRows<const float> k, HeadRows<const float> v, int64_t tokens) {
  check_layer(layer);
  std::unique_lock lock(mutex_);
  int64_t* len = lengths_.data() + layer * batch_;
  for (int64_t b = 0; b < batch_; ++b)
    if (len[b] + tokens > max_len_)
      throw std::invalid_argument("KVCache.append: " + std::to_string(tokens) + " more tokens on layer " +
                                  std::to_string(layer) + " (sequence " + std::to_string(b) + " holds " +
                                  std::to_string(len[b]) + ") would exceed max_len=" + std::to_string(max_len_));
  // One task per (sequence, head): `tokens` rows of dim_ floats each.
  for_each_row(batch_ * heads_, 2.0 * tokens * dim_, [&](int64_t bh) {
    const int64_t b = bh / heads_, h = bh % heads_;
    float* kd = keys_.data() + offset(layer, b, h) + len[b] * dim_;
    float* vd = values_.data() + offset(layer, b, h) + len[b] * dim_;
    const float* ks = k.base + b * k.batch_stride + h * k.head_stride;
    const float* vs = v.base + b * v.batch_stride + h * v.head_stride;
    for (int64_t t = 0; t < tokens; ++t) {
      std::memcpy(kd + t * dim_, ks + t * k.row_stride, static_cast<size_t>(dim_) * sizeof(float));
      std::memcpy(vd + t * dim_, vs + t * v.row_stride, static_cast<size_t>(dim_) * sizeof(float));
    }
  });
  for (int64_t b = 0; b < batch_; ++b) len[b] += tokens;
}

void KVCache::attend(int64_t layer, HeadRows<const float> q, int64_t tq, const uint8_t* mask, int64_t mask_len,
                     int64_t mask_row_stride, bool causal, float scale, HeadRows<float> out) const {
  check_layer(layer);
  std::shared_lock lock(mutex_);
  const int64_t longest = longest_locked(layer);
  if (mask && mask_len != longest)
    throw std::invalid_argument("attention_mask must have shape (" + std::to_string(batch_) + ", " +
                                std::to_string(longest) + ") to cover the cached keys of layer " +
                                std::to_string(layer) + ", got (" + std::to_string(batch_) + ", " +
                                std::to_string(mask_len) + ")");
  AttentionProblem p;
  p.batch = batch_;
  p.heads = heads_;
  p.head_dim = dim_;
  p.q = q;
  p.out = out;
  const int64_t layer_offset = offset(layer, 0, 0);
  p.k = {keys_.data() + layer_offset, heads_ * max_len_ * dim_, dim_, max_len_ * dim_};
  p.v = {values_.data() + layer_offset, heads_ * max_len_ * dim_, dim_, max_len_ * dim_};
  p.q_begin.assign(batch_, 0);
  p.q_len.assign(batch_, tq);
  p.k_begin.assign(batch_, 0);
  p.k_len.assign(lengths_.begin() + layer * batch_, lengths_.begin() + (layer + 1) * batch_);
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

int64_t KVCache::longest(int64_t layer) const {
  check_layer(layer);
  std::shared_lock lock(mutex_);
  return longest_locked(layer);
}

void KVCache::reset() {
  std::unique_lock lock(mutex_);
  std::fill(lengths_.begin(), lengths_.end(), 0);
}

void KVCache::trim(int64_t length) {
  if (length < 0 || length > max_len_)
    throw std::invalid_argument("KVCache.trim: length must be in [0, max_len=" + std::to_string(max_len_) + "], got " +
                                std::to_string(length));
  std::unique_lock lock(mutex_);
  for (int64_t& n : lengths_) n = std::min(n, length);
}

void KVCache::copy_out(int64_t layer, bool values, float* out, int64_t len) const {
  check_layer(layer);
  std::shared_lock lock(mutex_);
  if (len != longest_locked(layer))
    throw std::invalid_argument("KVCache: layer " + std::to_string(layer) + " changed length during the copy");
  const float* src = (values ? values_ : keys_).data();
  const int64_t hd = heads_ * dim_;
  for (int64_t b = 0; b < batch_; ++b) {
    const int64_t n = lengths_[layer * batch_ + b];
    for (int64_t t = 0; t < len; ++t)
      for (int64_t h = 0; h < heads_; ++h) {
        float* dst = out + (b * len + t) * hd + h * dim_;
        if (t < n)
          std::memcpy(dst, src + offset(layer, b, h) + t * dim_, static_cast<size_t>(dim_) * sizeof(float));
        else
          std::fill(dst, dst + dim_, 0.0f);
      }
  }
}

}  // namespace cpuformer
