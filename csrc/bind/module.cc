// module.cc — the cpuformer._core extension module.
#include "bind/bindings.h"

PYBIND11_MODULE(_core, m) {
  m.doc() = "cpuformer C++ core: runtime-dispatched SIMD kernels, packed GEMM, fused ops.";
  cpuformer::bind::bind_config(m);
  cpuformer::bind::bind_linear(m);
  cpuformer::bind::bind_elementwise(m);
  cpuformer::bind::bind_decoder_ops(m);
  cpuformer::bind::bind_embedding(m);
  cpuformer::bind::bind_attention(m);
  cpuformer::bind::bind_recurrent(m);
  cpuformer::bind::bind_array_pool(m);
}
