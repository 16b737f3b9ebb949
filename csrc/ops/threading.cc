// threading.cc — one process-wide thread count (default: OpenMP's, which honours OMP_NUM_THREADS).
#include "ops/threading.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <stdexcept>

namespace cpuformer {
namespace {
std::atomic<int>& thread_slot() {
  static std::atomic<int> slot{std::max(1, omp_get_max_threads())};
  return slot;
}
}  // namespace

int num_threads() { return thread_slot().load(std::memory_order_relaxed); }

void set_num_threads(int n) {
  if (n < 1) throw std::invalid_argument("set_num_threads: n must be >= 1, got " + std::to_string(n));
  thread_slot().store(n, std::memory_order_relaxed);
}

std::string openmp_runtime_name() {
#if defined(__clang__)
  return "OpenMP " + std::to_string(_OPENMP) + " (libomp)";
#elif defined(__GNUC__)
  return "OpenMP " + std::to_string(_OPENMP) + " (libgomp)";
#else
  return "OpenMP " + std::to_string(_OPENMP);
#endif
}

int threads_for_work(double flops) {
  constexpr double kFlopsPerThread = 2.0e5;  // below this a fork/join costs more than it saves
  int wanted = static_cast<int>(flops / kFlopsPerThread);
  return std::clamp(wanted, 1, num_threads());
}

}  // namespace cpuformer
