// embedding.cc — gathers are memory-bound; copy rows in parallel, pool bags with the SIMD add kernel.
#include "ops/embedding.h"

#include <cstring>

#include "cpu/dispatch.h"
#include "ops/rowwise.h"

namespace cpuformer {

void embedding(const int64_t* ids, int64_t n, const float* table, int64_t dim, float* out) {
  for_each_row(n, 2.0 * dim, [&](int64_t i) {
    std::memcpy(out + i * dim, table + ids[i] * dim, static_cast<size_t>(dim) * sizeof(float));
  });
}

void embedding_bag(const int64_t* ids, int64_t n, const int64_t* offsets, int64_t bags, const float* table,
                   int64_t dim, BagMode mode, float* out) {
  const auto& kt = kernels_for_active_isa();
  const double avg_bag = bags > 0 ? static_cast<double>(n) / bags : 0.0;
  for_each_row(bags, 2.0 * dim * (avg_bag + 1.0), [&](int64_t b) {
    const int64_t begin = offsets[b], end = b + 1 < bags ? offsets[b + 1] : n;
    float* dst = out + b * dim;
    std::memset(dst, 0, static_cast<size_t>(dim) * sizeof(float));
    for (int64_t i = begin; i < end; ++i) kt.add_inplace(dst, table + ids[i] * dim, dim);
    if (mode == BagMode::mean && end > begin) kt.scale_inplace(dst, 1.0f / static_cast<float>(end - begin), dim);
  });
}

}  // namespace cpuformer
