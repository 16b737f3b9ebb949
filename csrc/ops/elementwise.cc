// elementwise.cc — validates nothing (bindings do), splits rows over threads, calls the active kernels.
#include "ops/elementwise.h"

#include <algorithm>
#include <stdexcept>

#include "cpu/dispatch.h"
#include "ops/rowwise.h"

namespace cpuformer {

kernels::Activation parse_activation(const std::string& name) {
  if (name == "none") return kernels::Activation::none;
  if (name == "gelu") return kernels::Activation::gelu;
  if (name == "gelu_tanh") return kernels::Activation::gelu_tanh;
  if (name == "relu") return kernels::Activation::relu;
  throw std::invalid_argument("activation must be one of 'none', 'gelu', 'gelu_tanh', 'relu'; got '" + name + "'");
}

void activation(const float* x, float* y, int64_t n, kernels::Activation act) {
  const auto& kt = kernels_for_active_isa();
  constexpr int64_t kChunk = 16384;  // independent chunks so large tensors use every thread
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  for_each_row(chunks, 20.0 * kChunk, [&](int64_t c) {
    const int64_t begin = c * kChunk;
    kt.activation(x + begin, y + begin, std::min(kChunk, n - begin), act);
  });
}

void layer_norm(const float* x, const float* gamma, const float* beta, float* y, int64_t rows, int64_t cols,
                float eps) {
  const auto& kt = kernels_for_active_isa();
  for_each_row(rows, 8.0 * cols, [&](int64_t r) { kt.layer_norm_row(x + r * cols, gamma, beta, y + r * cols, cols, eps); });
}

void softmax(const float* x, float* y, int64_t rows, int64_t cols) {
  const auto& kt = kernels_for_active_isa();
  for_each_row(rows, 20.0 * cols, [&](int64_t r) { kt.softmax_row(x + r * cols, y + r * cols, cols); });
}

}  // namespace cpuformer
