// lstm_kernels.cc — gates: 4 x [n] pre-activations (gate_stride apart), c, h: [n]. One pass updates c and h.
#include "kernels/lstm_kernels.h"

#include "kernels/vec_math.h"

namespace cpuformer::kernels::CPUFORMER_KERNEL_ISA {
namespace {
constexpr int kW = Vec::width;

// 1 / (1 + e^{-x}); vec_exp clamps its argument, so very negative x gives ~1e-39 instead of inf / NaN.
inline Vec vec_sigmoid(Vec x) { return Vec::broadcast(1.0f) / (Vec::broadcast(1.0f) + vec_exp(Vec::zero() - x)); }

// tanh(|x|) = (1 - e) / (1 + e) with e = e^{-2|x|} <= 1, so nothing overflows; the sign is put back after.
// Absolute error ~2e-7 (the cancellation in 1 - e near 0 costs relative, not absolute, accuracy).
inline Vec vec_tanh(Vec x) {
  const Vec one = Vec::broadcast(1.0f);
  const Vec ax = x.abs();
  const Vec e = vec_exp(Vec::zero() - (ax + ax));
  const Vec t = (one - e) / (one + e);
  return Vec::select_negative(x, Vec::zero() - t, t);
}

inline void cell_update(Vec gi, Vec gf, Vec gg, Vec go, Vec c_prev, Vec& c_new, Vec& h_new) {
  c_new = fma(vec_sigmoid(gf), c_prev, vec_sigmoid(gi) * vec_tanh(gg));
  h_new = vec_sigmoid(go) * vec_tanh(c_new);
}
}  // namespace

void lstm_gates(const float* gates, int64_t gate_stride, float* c, float* h, int64_t n) {
  const float* gi = gates;
  const float* gf = gates + gate_stride;
  const float* gg = gates + 2 * gate_stride;
  const float* go = gates + 3 * gate_stride;
  Vec c_new, h_new;
  int64_t j = 0;
  for (; j + kW <= n; j += kW) {
    cell_update(Vec::load(gi + j), Vec::load(gf + j), Vec::load(gg + j), Vec::load(go + j), Vec::load(c + j), c_new,
                h_new);
    c_new.store(c + j);
    h_new.store(h + j);
  }
  if (j < n) {
    const int64_t r = n - j;
    cell_update(Vec::load_partial(gi + j, r), Vec::load_partial(gf + j, r), Vec::load_partial(gg + j, r),
                Vec::load_partial(go + j, r), Vec::load_partial(c + j, r), c_new, h_new);
    c_new.store_partial(c + j, r);
    h_new.store_partial(h + j, r);
  }
}

// GRU (torch's order r, z, n): gi = x W_ih^T + b_ih, gh = h W_hh^T + b_hh, each 3 x [n] gate_stride apart.
// r = sig(gi_r + gh_r), z = sig(gi_z + gh_z), n = tanh(gi_n + r * gh_n), h = n + z * (h_prev - n).
void gru_gates(const float* gi, const float* gh, int64_t gate_stride, const float* h_prev, float* h, int64_t n) {
  auto update = [](Vec ir, Vec iz, Vec in, Vec hr, Vec hz, Vec hn, Vec hp) {
    const Vec r = vec_sigmoid(ir + hr), z = vec_sigmoid(iz + hz);
    const Vec cand = vec_tanh(fma(r, hn, in));
    return fma(z, hp - cand, cand);
  };
  const int64_t s = gate_stride;
  int64_t j = 0;
  for (; j + kW <= n; j += kW)
    update(Vec::load(gi + j), Vec::load(gi + s + j), Vec::load(gi + 2 * s + j), Vec::load(gh + j),
           Vec::load(gh + s + j), Vec::load(gh + 2 * s + j), Vec::load(h_prev + j))
        .store(h + j);
  if (j < n) {
    const int64_t r = n - j;
    update(Vec::load_partial(gi + j, r), Vec::load_partial(gi + s + j, r), Vec::load_partial(gi + 2 * s + j, r),
           Vec::load_partial(gh + j, r), Vec::load_partial(gh + s + j, r), Vec::load_partial(gh + 2 * s + j, r),
           Vec::load_partial(h_prev + j, r))
        .store_partial(h + j, r);
  }
}

// Elman RNN: h[n] = tanh(pre[n]) or relu(pre[n]).
void rnn_gates(const float* pre, float* h, int64_t n, bool relu) {
  auto update = [relu](Vec x) { return relu ? max(x, Vec::zero()) : vec_tanh(x); };
  int64_t j = 0;
  for (; j + kW <= n; j += kW) update(Vec::load(pre + j)).store(h + j);
  if (j < n) update(Vec::load_partial(pre + j, n - j)).store_partial(h + j, n - j);
}

}  // namespace cpuformer::kernels::CPUFORMER_KERNEL_ISA
