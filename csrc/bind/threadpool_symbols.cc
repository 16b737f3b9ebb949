// threadpool_symbols.cc — two plain C functions exported from _core so threadpoolctl's controller for
// cpuformer (cpuformer/_threadpool.py) finds and drives our thread count through ctypes, as it does OpenBLAS's
// openblas_get_num_threads / openblas_set_num_threads. Everything else in the module stays hidden.
#include <algorithm>

#include "ops/threading.h"

extern "C" {

__attribute__((visibility("default"))) int cpuformer_get_num_threads() { return cpuformer::process_num_threads(); }

// Clamped to [1, max]: threadpoolctl hands over whatever limit its caller asked for, and has no error channel.
__attribute__((visibility("default"))) void cpuformer_set_num_threads(int n) {
  cpuformer::set_num_threads(std::clamp(n, 1, cpuformer::max_num_threads()));
}

}  // extern "C"
