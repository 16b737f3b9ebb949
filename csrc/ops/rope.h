// rope.h — rotary position embeddings applied in place to the heads of strided token rows, so Q and K are rotated
// where the fused QKV projection wrote them (no copy between the projection and attention).
#pragma once
#include <cstdint>

namespace cpuformer {

struct RopeProblem {
  float* x = nullptr;       // token t's row starts at x + t * row_stride; head h at + h * head_dim
  int64_t tokens = 0, row_stride = 0, heads = 0, head_dim = 0;
  const int64_t* positions = nullptr;  // [tokens], each in [0, table_rows)
  const float* cos = nullptr;          // [table_rows, head_dim / 2]: cos / sin of position p's angles
  const float* sin = nullptr;
};

// Rotates every head of every token by its position (Hugging Face's rotate-half pairing (i, i + head_dim / 2)).
void rope(const RopeProblem& p);

}  // namespace cpuformer
