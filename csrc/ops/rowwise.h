// rowwise.h — runs fn(row) for each of `rows` rows, over the threads the policy grants when flops_per_row * rows
// pays for them (ops/parallel.h: dynamic chunks, stall detection).
#pragma once
#include <cstdint>

#include "ops/parallel.h"
#include "ops/threading.h"

namespace cpuformer {

// fn(row) is called once for each row in [0, rows); `flops_per_row` sizes the thread count.
template <class Fn>
void for_each_row(int64_t rows, double flops_per_row, Fn fn) {
  const TeamLease lease(threads_for_work(flops_per_row * static_cast<double>(rows)));
  run_chunked(lease, rows, fn);
}

}  // namespace cpuformer
