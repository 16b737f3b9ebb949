// threading.h — the thread count every parallel op uses, and what OpenMP runtime we were built with.
#pragma once
#include <string>

namespace cpuformer {

int num_threads();
// n >= 1. Applies to every following op call, from any Python thread.
void set_num_threads(int n);
std::string openmp_runtime_name();

// Threads worth using for `work` flops: a parallel region costs a few microseconds, so tiny ops stay serial.
int threads_for_work(double flops);

}  // namespace cpuformer
