// rowwise.h — runs fn(row) for each of `rows` rows, over OpenMP threads when flops_per_row * rows pays for them.
#pragma once
#include <omp.h>

#include <algorithm>
#include <cstdint>

#include "ops/threading.h"

namespace cpuformer {

// fn(row) is called once for each row in [0, rows); `flops_per_row` sizes the thread count.
template <class Fn>
void for_each_row(int64_t rows, double flops_per_row, Fn fn) {
  const int threads = threads_for_work(flops_per_row * static_cast<double>(rows));
  if (threads <= 1) {
    for (int64_t r = 0; r < rows; ++r) fn(r);
    return;
  }
  // Dynamic chunks (about 8 per thread): a descheduled thread delays only its current chunk (see gemm.cc).
  const int64_t chunk = std::max<int64_t>(1, rows / (8 * threads));
#pragma omp parallel for num_threads(threads) schedule(dynamic, chunk)
  for (int64_t r = 0; r < rows; ++r) fn(r);
}

}  // namespace cpuformer
