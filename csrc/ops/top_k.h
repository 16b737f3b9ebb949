// top_k.h — fused scoring + top-k: the k best columns of queries @ B^T per query, never storing all scores.
#pragma once
#include <cstdint>

#include "ops/packed_matrix.h"

namespace cpuformer {

// queries: [q, d] rows ldq apart; b: packed [n, d], float32 only (its bias, if any, is added to the scores).
// exclude: [q, n_exclude] column ids never returned for that query (entries < 0 or >= n are ignored), or null.
// out_indices / out_scores: [q, k], best first as torch.topk orders them (NaN above +inf, -inf below every
// number), equal scores (and NaNs) in ascending column order. A query with fewer than k columns left after
// `exclude` is padded with index -1, score -inf.
void top_k_dot(const float* queries, int64_t q, int64_t ldq, const PackedMatrix& b, int64_t k,
               const int64_t* exclude, int64_t n_exclude, int64_t* out_indices, float* out_scores);

}  // namespace cpuformer
