// rope.cc — one task per token row: all of its heads share one (cos, sin) row of the table.
#include "ops/rope.h"

#include "cpu/dispatch.h"
#include "ops/rowwise.h"

namespace cpuformer {

void rope(const RopeProblem& p) {
  const kernels::KernelTable& kt = kernels_for_active_isa();
  const int64_t half = p.head_dim / 2;
  for_each_row(p.tokens, 6.0 * p.heads * p.head_dim, [&](int64_t t) {
    float* row = p.x + t * p.row_stride;
    const float* c = p.cos + p.positions[t] * half;
    const float* s = p.sin + p.positions[t] * half;
    for (int64_t h = 0; h < p.heads; ++h) kt.rope_rotate_half(row + h * p.head_dim, c, s, half);
  });
}

}  // namespace cpuformer
