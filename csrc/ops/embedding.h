// embedding.h — row gathers from an embedding table, single ids or pooled bags.
#pragma once
#include <cstdint>

namespace cpuformer {

enum class BagMode { sum, mean };

// ids: [n] already range-checked against table rows; out: [n, dim].
void embedding(const int64_t* ids, int64_t n, const float* table, int64_t dim, float* out);
// Bag b covers ids[offsets[b] : offsets[b+1]] (the last bag runs to n); offsets checked non-decreasing.
// out: [bags, dim]; an empty bag gives zeros.
void embedding_bag(const int64_t* ids, int64_t n, const int64_t* offsets, int64_t bags, const float* table,
                   int64_t dim, BagMode mode, float* out);

}  // namespace cpuformer
