// packed_matrix.cc — packs W into the B-panel layout the micro-kernel streams: panel p holds columns
// [p*NR, p*NR+NR) of B = W^T, one NR-float row per k, so the kernel reads B strictly sequentially.
#include "ops/packed_matrix.h"

#include <omp.h>

#include "ops/threading.h"

namespace cpuformer {

PackedMatrix::PackedMatrix(const float* weight, int64_t n, int64_t k, WeightLayout layout, const float* bias,
                           const kernels::KernelTable& kernels)
    : n_(n), k_(k), nr_(kernels.gemm_nr), kernels_(&kernels),
      panels_(static_cast<size_t>(((n + kernels.gemm_nr - 1) / kernels.gemm_nr) * kernels.gemm_nr * k)) {
  const int64_t panels = num_panels();
  const int nr = nr_;
  const int threads = threads_for_work(static_cast<double>(n) * k);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t p = 0; p < panels; ++p) {
    float* dst = panels_.data() + p * k * nr;
    for (int64_t kk = 0; kk < k; ++kk) {
      for (int j = 0; j < nr; ++j) {
        const int64_t col = p * nr + j;
        float v = 0.0f;
        if (col < n) v = layout == WeightLayout::out_in ? weight[col * k + kk] : weight[kk * n + col];
        dst[kk * nr + j] = v;
      }
    }
  }
  if (bias) {
    bias_ = AlignedBuffer(static_cast<size_t>(panels * nr));
    bias_.zero();
    for (int64_t j = 0; j < n; ++j) bias_.data()[j] = bias[j];
  }
}

void PackedMatrix::unpack_out_in(float* weight) const {
  for (int64_t col = 0; col < n_; ++col) {
    const float* src = panel(col / nr_) + col % nr_;
    for (int64_t kk = 0; kk < k_; ++kk) weight[col * k_ + kk] = src[kk * nr_];
  }
}

void PackedMatrix::unpack_bias(float* bias) const {
  for (int64_t j = 0; j < n_; ++j) bias[j] = bias_.empty() ? 0.0f : bias_.data()[j];
}

}  // namespace cpuformer
