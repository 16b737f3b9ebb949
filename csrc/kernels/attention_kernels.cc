// attention_kernels.cc — q [nq, d] (ldq), k/v [nk, d] (ldk/ldv) -> out [nq, d] (ldo) for one (sequence, head).
// Two paths over the same online softmax:
//  * blocked (nq > kRowPathMaxQueries): scores of a key block are computed key-major, S^T[bk, nq] =
//    K_block · (scale Q)^T, with the GEMM micro-kernel reading K rows in place and Q packed once per call as
//    B panels; the softmax then runs down the columns (one vector = W queries), and O += P V reads V rows in
//    place.
//  * rows (decode, nq tiny): each query does dot products against 8 keys at a time (then 4, then 1 for the
//    tail) and accumulates the block's V rows into register chunks of up to 8 vectors of the output.
#include "kernels/attention_kernels.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <utility>

#include "kernels/elementwise_kernels.h"
#include "kernels/gemm_kernels.h"
#include "kernels/vec_math.h"

namespace cpuformer::kernels::CPUFORMER_KERNEL_ISA {
namespace {

constexpr int kW = Vec::width;
constexpr int kNR = kGemmNR;  // two vectors
constexpr int kMR = kGemmMR;
constexpr int64_t kBK = kAttentionKeyBlock;
constexpr int64_t kRowPathMaxQueries = 2;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();
// Running maxima are floored here before being subtracted, so a query that has only seen masked keys
// (max -inf) computes e^(-inf - floor) = 0 instead of e^(-inf + inf) = NaN. The lowest finite float keeps every
// finite score (a row of -1e35 scores is still a softmax, not zeros).
constexpr float kMaxFloor = std::numeric_limits<float>::lowest();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// Special values follow the float64 reference softmax(scale q k^T + mask) v over the keys a query can see:
// a NaN score (NaN or inf in q or k) or a +inf score makes that query's whole output NaN; NaN / inf in a value
// row reaches the columns it is in; -inf scores count as masked, and a query that sees no key (or only -inf
// scores) gets zeros. Keys a query cannot see (mask, causal) are never read, so whatever they hold cannot leak
// in through 0 * NaN. Every ISA computes the same: the online max may drop a NaN (MAXPS), but the NaN score
// still reaches the sum and P V.

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// e^x, with exact zeros below -87 (masked scores are -inf; vec_exp alone stops at ~1e-38).
inline Vec exp_or_zero(Vec x) { return Vec::select_negative(x + Vec::broadcast(87.0f), Vec::zero(), vec_exp(x)); }

inline bool any_key_visible(const uint8_t* mask, int64_t n) {
  if (!mask) return true;
  for (int64_t j = 0; j < n; ++j)
    if (mask[j]) return true;
  return false;
}

// Writes one finished query row: normalised, or (partial mode) unnormalised with its softmax state.
inline void finish_row(const AttentionTile& t, int64_t i, const float* acc, float m, float l) {
  float* y = t.out + i * t.ldo;
  if (t.row_max) {
    std::copy(acc, acc + t.d, y);
    t.row_max[i] = m;
    t.row_sum[i] = l;
    return;
  }
  const float inv = l == 0.0f ? 0.0f : 1.0f / l;  // a query that saw no key gets zeros; a NaN sum stays NaN
  const Vec vinv = Vec::broadcast(inv);
  int64_t c = 0;
  for (; c + kW <= t.d; c += kW) (Vec::load(acc + c) * vinv).store(y + c);
  if (c < t.d) (Vec::load_partial(acc + c, t.d - c) * vinv).store_partial(y + c, t.d - c);
}

// ---- rows path --------------------------------------------------------------------------------------------

// s[0..R) = q . k_r for the R key rows at k, k + ldk, ...: R independent FMA chains over d (R = 8 keeps both
// FMA pipes busy through their latency).
template <int R>
inline void dot_rows(const float* q, const float* k, int64_t ldk, int64_t d, float* s) {
  Vec acc[R];
  for (int r = 0; r < R; ++r) acc[r] = Vec::zero();
  int64_t c = 0;
  for (; c + kW <= d; c += kW) {
    const Vec qv = Vec::load(q + c);
    for (int r = 0; r < R; ++r) acc[r] = fma(qv, Vec::load(k + r * ldk + c), acc[r]);
  }
  if (c < d) {
    const Vec qv = Vec::load_partial(q + c, d - c);
    for (int r = 0; r < R; ++r) acc[r] = fma(qv, Vec::load_partial(k + r * ldk + c, d - c), acc[r]);
  }
  for (int r = 0; r < R; ++r) s[r] = acc[r].reduce_add();
}

// acc[NV vectors] += sum_j p[j] * v_j[0 : cols] over n value rows (ldv apart), the accumulators held in
// registers for the whole block. kTail: cols < NV * W, the last vector is read with a partial load.
template <int NV, bool kTail>
inline void accumulate_chunk(float* acc, const float* p, const float* v, int64_t ldv, int64_t n, int64_t cols) {
  Vec a[NV];
  for (int u = 0; u < NV; ++u) a[u] = Vec::load(acc + u * kW);
  for (int64_t j = 0; j < n; ++j) {
    const Vec pj = Vec::broadcast(p[j]);
    const float* row = v + j * ldv;
    for (int u = 0; u < NV; ++u) {
      const Vec x = (kTail && u == NV - 1) ? Vec::load_partial(row + u * kW, cols - u * kW) : Vec::load(row + u * kW);
      a[u] = fma(pj, x, a[u]);
    }
  }
  for (int u = 0; u < NV; ++u) a[u].store(acc + u * kW);
}

using ChunkFn = void (*)(float*, const float*, const float*, int64_t, int64_t, int64_t);
constexpr int kChunkVecs = 8;  // 8 accumulators + a broadcast + a load fit the 16 AVX2 registers

template <bool kTail, int... Ns>
constexpr auto make_chunk_table(std::integer_sequence<int, Ns...>) {
  return std::array<ChunkFn, sizeof...(Ns)>{&accumulate_chunk<Ns + 1, kTail>...};
}
constexpr auto kChunkFull = make_chunk_table<false>(std::make_integer_sequence<int, kChunkVecs>{});
constexpr auto kChunkTail = make_chunk_table<true>(std::make_integer_sequence<int, kChunkVecs>{});

// acc[dp] += sum_j p[j] * v_j over n value rows, in column chunks of up to 8 vectors. acc is padded to whole
// vectors (the padding stays zero because V is read with partial loads).
inline void accumulate_values(float* acc, const float* p, const float* v, int64_t ldv, int64_t n, int64_t d) {
  for (int64_t c = 0; c < d; c += kChunkVecs * kW) {
    const int64_t cols = std::min<int64_t>(kChunkVecs * kW, d - c);
    const int vecs = static_cast<int>((cols + kW - 1) / kW);
    const ChunkFn fn = cols % kW == 0 ? kChunkFull[vecs - 1] : kChunkTail[vecs - 1];
    fn(acc + c, p, v + c, ldv, n, cols);
  }
}

// accumulate_values over the runs of visible keys only: a masked key's value row is never read.
inline void accumulate_visible_values(float* acc, const float* p, const float* v, int64_t ldv, int64_t n, int64_t d,
                                      const uint8_t* mask) {
  if (!mask) return accumulate_values(acc, p, v, ldv, n, d);
  for (int64_t a = 0; a < n;) {
    while (a < n && !mask[a]) ++a;
    int64_t b = a;
    while (b < n && mask[b]) ++b;
    if (b > a) accumulate_values(acc, p + a, v + a * ldv, ldv, b - a, d);
    a = b;
  }
}

// s[n] = e^(s - m) in place (masked -inf -> 0); returns the sum.
inline float exp_shifted_sum(float* s, int64_t n, float m) {
  const Vec vm = Vec::broadcast(m);
  Vec sum = Vec::zero();
  int64_t j = 0;
  for (; j + kW <= n; j += kW) {
    const Vec e = exp_or_zero(Vec::load(s + j) - vm);
    e.store(s + j);
    sum = sum + e;
  }
  float total = sum.reduce_add();
  if (j < n) {
    exp_or_zero(Vec::load_partial(s + j, n - j) - vm).store_partial(s + j, n - j);
    for (; j < n; ++j) total += s[j];
  }
  return total;
}

void attend_rows(const AttentionTile& t) {
  const int64_t d = t.d, dp = round_up(d, kW);
  float* qs = t.workspace;  // [dp] scaled query
  float* acc = qs + dp;     // [dp] unnormalised output
  float* s = acc + dp;      // [kBK] scores, then probabilities
  for (int64_t i = 0; i < t.nq; ++i) {
    const float* q = t.q + i * t.ldq;
    for (int64_t c = 0; c < dp; ++c) qs[c] = c < d ? q[c] * t.scale : 0.0f;
    std::fill(acc, acc + dp, 0.0f);
    float m = kNegInf, l = 0.0f;
    const int64_t limit = t.causal ? std::clamp<int64_t>(i + t.causal_offset + 1, 0, t.nk) : t.nk;
    for (int64_t j0 = 0; j0 < limit; j0 += kBK) {
      const int64_t bk = std::min(kBK, limit - j0);
      const uint8_t* mask = t.key_mask ? t.key_mask + j0 : nullptr;
      if (!any_key_visible(mask, bk)) continue;
      const float* kb = t.k + j0 * t.ldk;
      int64_t j = 0;
      for (; j + 8 <= bk; j += 8) dot_rows<8>(qs, kb + j * t.ldk, t.ldk, d, s + j);
      for (; j + 4 <= bk; j += 4) dot_rows<4>(qs, kb + j * t.ldk, t.ldk, d, s + j);
      for (; j < bk; ++j) s[j] = dot(qs, kb + j * t.ldk, d);
      if (t.rel_bias) {
        const float* bias = t.rel_bias + (t.rel_shift + j0 - i);  // bias[j]: key j0 + j, query i
        for (j = 0; j < bk; ++j) s[j] += bias[j];
      }
      float block_max = kNegInf;
      for (j = 0; j < bk; ++j) {
        if (mask && !mask[j]) s[j] = kNegInf;
        block_max = std::max(block_max, s[j]);
      }
      // acc and l are kept relative to the floored max (e^(-inf - floor) = 0 when nothing was visible yet).
      const float m_new = std::max(m, block_max);
      const float shift = std::max(m_new, kMaxFloor);
      const float alpha = std::exp(std::max(m, kMaxFloor) - shift);
      const float block_sum = exp_shifted_sum(s, bk, shift);
      if (alpha != 1.0f) scale_inplace(acc, alpha, dp);
      l = l * alpha + block_sum;
      m = m_new;
      accumulate_visible_values(acc, s, t.v + j0 * t.ldv, t.ldv, bk, d, mask);
    }
    finish_row(t, i, acc, m, l);
  }
}

// ---- blocked path -----------------------------------------------------------------------------------------

// o[M rows (ldo), NR cols] += P^T[k, M rows] (key-major, ldp) * V[k, NR cols] (ldv, padded panel).
template <int M>
void pv_ukernel(int64_t k, const float* p, int64_t ldp, const float* v, int64_t ldv, float* o, int64_t ldo) {
  static_assert(kNR == 2 * kW, "two vectors per row");
  // Accumulate from zero and add o once at the end: keeps all 2M accumulators in registers (GCC spilled them
  // every iteration when they started from loads of o).
  Vec acc0[M], acc1[M];
  for (int i = 0; i < M; ++i) acc0[i] = acc1[i] = Vec::zero();
  for (int64_t kk = 0; kk < k; ++kk) {
    const Vec b0 = Vec::load(v + kk * ldv), b1 = Vec::load(v + kk * ldv + kW);
    const float* pr = p + kk * ldp;
    for (int i = 0; i < M; ++i) {
      const Vec a = Vec::broadcast(pr[i]);
      acc0[i] = fma(a, b0, acc0[i]);
      acc1[i] = fma(a, b1, acc1[i]);
    }
  }
  for (int i = 0; i < M; ++i) {
    (acc0[i] + Vec::load(o + i * ldo)).store(o + i * ldo);
    (acc1[i] + Vec::load(o + i * ldo + kW)).store(o + i * ldo + kW);
  }
}

using PvFn = void (*)(int64_t, const float*, int64_t, const float*, int64_t, float*, int64_t);

template <int... Ms>
constexpr auto make_pv_table(std::integer_sequence<int, Ms...>) {
  return std::array<PvFn, sizeof...(Ms)>{&pv_ukernel<Ms + 1>...};
}
constexpr auto kPv = make_pv_table(std::make_integer_sequence<int, kMR>{});

struct BlockedWorkspace {
  float* qt;     // [nqp / NR][d][NR]: scaled queries packed as GEMM B panels
  float* st;     // [kBK][nqp]: scores of one key block, then probabilities (key-major)
  float* o;      // [nq][dp]: unnormalised outputs
  float* m;      // [nqp] running max
  float* l;      // [nqp] running sum
  float* alpha;  // [nqp] rescale of the previous blocks
  float* vp;     // [kBK][dp]: the key block's value rows, contiguous and zero-padded to whole panels
};

int64_t blocked_workspace_floats(int64_t nq, int64_t d) {
  const int64_t nqp = round_up(nq, kNR), dp = round_up(d, kNR);
  return nqp * d + kBK * nqp + nq * dp + 3 * nqp + kBK * dp;
}

BlockedWorkspace carve(float* ws, int64_t nq, int64_t d) {
  const int64_t nqp = round_up(nq, kNR), dp = round_up(d, kNR);
  BlockedWorkspace w;
  w.qt = ws;
  w.st = w.qt + nqp * d;
  w.o = w.st + kBK * nqp;
  w.m = w.o + nq * dp;
  w.l = w.m + nqp;
  w.alpha = w.l + nqp;
  w.vp = w.alpha + nqp;
  return w;
}

// Online softmax down the columns of st[bk][nqp]: one vector holds W queries.
void softmax_block_columns(const BlockedWorkspace& w, int64_t bk, int64_t nqp) {
  const Vec floor = Vec::broadcast(kMaxFloor);
  for (int64_t c = 0; c < nqp; c += kW) {
    const Vec m_old = Vec::load(w.m + c);
    Vec mx = m_old;
    for (int64_t j = 0; j < bk; ++j) mx = max(mx, Vec::load(w.st + j * nqp + c));
    const Vec m_safe = max(mx, floor);
    const Vec alpha = exp_or_zero(m_old - m_safe);
    Vec sum = Vec::zero();
    for (int64_t j = 0; j < bk; ++j) {
      float* sp = w.st + j * nqp + c;
      const Vec e = exp_or_zero(Vec::load(sp) - m_safe);
      e.store(sp);
      sum = sum + e;
    }
    fma(Vec::load(w.l + c), alpha, sum).store(w.l + c);
    alpha.store(w.alpha + c);
    mx.store(w.m + c);
  }
}

// st[j][i] += rel_bias[rel_shift + j0 + j - i] for the block's keys j and the tile's queries i. Along a row of
// st the bias index falls by one per query, so each row reads a reversed window of the per-head bias vector
// (a scalar loop: 1 add per score against ~2 * head_dim flops of QK^T and PV for it).
void add_relative_bias(const AttentionTile& t, const BlockedWorkspace& w, int64_t j0, int64_t bk, int64_t nqp) {
  for (int64_t j = 0; j < bk; ++j) {
    float* row = w.st + j * nqp;
    const float* bias = t.rel_bias + (t.rel_shift + j0 + j);  // bias[-i] belongs to query i
    for (int64_t i = 0; i < t.nq; ++i) row[i] += bias[-i];
  }
}

void attend_blocked(const AttentionTile& t) {
  const int64_t nq = t.nq, d = t.d, nqp = round_up(nq, kNR), dp = round_up(d, kNR), panels = nqp / kNR;
  const BlockedWorkspace w = carve(t.workspace, nq, d);
  for (int64_t i = 0; i < nqp; ++i) {
    float* dst = w.qt + (i / kNR) * d * kNR + i % kNR;
    const float* q = t.q + i * t.ldq;
    for (int64_t c = 0; c < d; ++c) dst[c * kNR] = i < nq ? q[c] * t.scale : 0.0f;
  }
  std::fill(w.o, w.o + nq * dp, 0.0f);
  std::fill(w.m, w.m + nqp, kNegInf);
  std::fill(w.l, w.l + nqp, 0.0f);

  // Keys after the last query's causal limit are never visible.
  const int64_t nk_end = t.causal ? std::clamp<int64_t>(nq + t.causal_offset, 0, t.nk) : t.nk;
  for (int64_t j0 = 0; j0 < nk_end; j0 += kBK) {
    const int64_t bk = std::min(kBK, nk_end - j0);
    const uint8_t* mask = t.key_mask ? t.key_mask + j0 : nullptr;
    if (!any_key_visible(mask, bk)) continue;  // e.g. a block of padding

    // S^T[bk, nqp] = K[j0 : j0 + bk] (rows read in place) * Qt panels.
    for (int64_t r = 0; r < bk; r += kMR) {
      const int rows = static_cast<int>(std::min<int64_t>(kMR, bk - r));
      const float* kr = t.k + (j0 + r) * t.ldk;
      for (int64_t p = 0; p < panels; ++p)
        gemm_ukernel(rows, kNR, d, kr, t.ldk, 1, w.qt + p * d * kNR, w.st + r * nqp + p * kNR, nqp, false, nullptr);
    }
    if (t.rel_bias) add_relative_bias(t, w, j0, bk, nqp);
    // Masked keys: the whole row; causal: the queries before (key - offset) cannot see this key yet.
    for (int64_t j = 0; j < bk; ++j) {
      float* row = w.st + j * nqp;
      if (mask && !mask[j]) {
        std::fill(row, row + nqp, kNegInf);
      } else if (t.causal) {
        const int64_t first_query = j0 + j - t.causal_offset;
        if (first_query > 0) std::fill(row, row + std::min(first_query, nqp), kNegInf);
      }
    }
    softmax_block_columns(w, bk, nqp);
    for (int64_t i = 0; i < nq; ++i)
      if (w.alpha[i] != 1.0f) scale_inplace(w.o + i * dp, w.alpha[i], dp);

    // O[nq, d] += P[nq, bk] V[bk, d], P read key-major from st. V rows are copied first: rows of a fused QKV
    // projection sit a few KiB apart, and such strides map a panel's rows onto a handful of L1 sets.
    // A masked key's row is zeros instead (never read: its NaN would survive P = 0).
    for (int64_t j = 0; j < bk; ++j) {
      const float* src = t.v + (j0 + j) * t.ldv;
      float* dst = w.vp + j * dp;
      if (mask && !mask[j]) {
        std::fill(dst, dst + dp, 0.0f);
        continue;
      }
      std::copy(src, src + d, dst);
      std::fill(dst + d, dst + dp, 0.0f);
    }
    // Column panels outside, so the bk x NR slice of V stays in L1 while every query group reuses it.
    for (int64_t c = 0; c < dp; c += kNR) {
      for (int64_t i = 0; i < nq; i += kMR) {
        const int rows = static_cast<int>(std::min<int64_t>(kMR, nq - i));
        if (!t.causal) {
          kPv[rows - 1](bk, w.st + i, nqp, w.vp + c, dp, w.o + i * dp + c, dp);
          continue;
        }
        // Causal: query i + r sees the block's keys [0, first + r + 1). The keys every row of the group sees go
        // through the tile; the few on the diagonal row by row, so no query reads a value row it cannot see.
        const int64_t first = i + t.causal_offset - j0;
        const int64_t shared = std::clamp<int64_t>(first + 1, 0, bk);
        if (shared > 0) kPv[rows - 1](shared, w.st + i, nqp, w.vp + c, dp, w.o + i * dp + c, dp);
        for (int r = 0; r < rows; ++r) {
          const int64_t end = std::clamp<int64_t>(first + r + 1, 0, bk);
          if (end > shared)
            kPv[0](end - shared, w.st + shared * nqp + i + r, nqp, w.vp + shared * dp + c, dp,
                   w.o + (i + r) * dp + c, dp);
        }
      }
    }
  }
  for (int64_t i = 0; i < nq; ++i) finish_row(t, i, w.o + i * dp, w.m[i], w.l[i]);
}

}  // namespace

void attention_tile(const AttentionTile& tile) {
  if (tile.nq <= 0) return;
  if (tile.nq <= kRowPathMaxQueries)
    attend_rows(tile);
  else
    attend_blocked(tile);
}

int64_t attention_workspace_floats(int64_t nq, int64_t d) {
  if (nq <= kRowPathMaxQueries) return 2 * round_up(d, kW) + kBK;
  return blocked_workspace_floats(nq, d);
}

void attention_merge(const float* parts, const float* row_max, const float* row_sum, int64_t splits, int64_t nq,
                     int64_t d, float* out, int64_t ldo) {
  for (int64_t i = 0; i < nq; ++i) {
    float* y = out + i * ldo;
    float m = kNegInf;
    bool any_nan = false;  // a split whose sum is NaN saw a NaN / +inf score: the whole row is NaN
    for (int64_t s = 0; s < splits; ++s) {
      any_nan |= std::isnan(row_sum[s * nq + i]) || std::isnan(row_max[s * nq + i]);
      m = std::max(m, row_max[s * nq + i]);
    }
    std::fill(y, y + d, any_nan ? kNaN : 0.0f);
    if (any_nan || m == kNegInf) continue;  // no split saw a key: zeros
    float denom = 0.0f;
    for (int64_t s = 0; s < splits; ++s) {
      const float ms = row_max[s * nq + i];
      if (ms == kNegInf) continue;
      const float weight = std::exp(ms - m);
      denom += weight * row_sum[s * nq + i];
      axpy(y, weight, parts + (s * nq + i) * d, d);
    }
    scale_inplace(y, 1.0f / denom, d);
  }
}

}  // namespace cpuformer::kernels::CPUFORMER_KERNEL_ISA
