// attention_kernels.h — fused scaled-dot-product attention for one (sequence, head) query block, with the
// online softmax (running max and sum, rescaled per key block) so no [nq, nk] score matrix ever exists.
#pragma once
#include "kernels/kernel_table.h"

namespace cpuformer::kernels::CPUFORMER_KERNEL_ISA {

// Keys processed per online-softmax step; the op sizes nothing by it (the workspace size says all).
inline constexpr int64_t kAttentionKeyBlock = 64;

// out = softmax(scale * q k^T + mask) v for tile.nq queries; see AttentionTile in kernel_table.h.
// A query that sees no key gets zeros (or row_max = -inf, row_sum = 0 in partial mode).
void attention_tile(const AttentionTile& tile);
// Floats of workspace attention_tile needs for nq queries of head size d.
int64_t attention_workspace_floats(int64_t nq, int64_t d);
// Merges partial results over key splits: out = sum_s e^{m_s - M} o_s / sum_s e^{m_s - M} l_s.
void attention_merge(const float* parts, const float* row_max, const float* row_sum, int64_t splits, int64_t nq,
                     int64_t d, float* out, int64_t ldo);

}  // namespace cpuformer::kernels::CPUFORMER_KERNEL_ISA
