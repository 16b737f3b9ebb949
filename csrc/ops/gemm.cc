// gemm.cc — the BLIS loops around the micro-kernel. B is packed at load time, so per call we only tile:
// a task is an (MC rows) x (NC columns) block of C; inside it, K is blocked by KC so the packed A block stays
// in L2 while each NR-wide B micro-panel is reused by the MC/MR micro-tiles of the block.
#include "ops/gemm.h"

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdlib>
#include <string>
#include <numeric>

#include "cpu/dispatch.h"
#include "ops/aligned_buffer.h"
#include "ops/parallel.h"
#include "ops/threading.h"

namespace cpuformer {
namespace {

// K block. The micro-kernel needs only one 64-byte line of B per k step, which L2 delivers easily, so the
// B micro-panel need not fit L1; a long K block instead saves re-reading and re-writing C once per block.
// Measured on Zen 3 (AVX2): KC = 1024 beat 256 by 5-15% at K = 3072 and by 2x at M = 128, K = 3072.
constexpr int64_t kKC = 1024;
constexpr int64_t kMCRows = 72;  // about MC rows of A (rounded to MR): the packed MC x KC block, 288 KiB, in L2
constexpr int64_t kPanelsPerTask = 48;  // NC = 48 panels: fewer passes over A than 16 (measured best of 16/48/192)
// An A block this small (rows x K floats, 256 KiB) stays in L2 without K blocking; skipping it lets each B
// panel stream whole, which is what small-M calls (decode, M = 1..~64) are bound by.
constexpr int64_t kSmallABlockFloats = 65536;

// bf16 compute from this many rows of A on. Measured on Zen 4 (EPYC, one thread, K 768 x N 3072): bf16 compute is
// faster than weight-only at every M (M = 1: 1.2x, 2: 1.8x, 4 and up: 2.2-2.4x), since weight-only pays 2 vector ops
// per B vector to widen it. Below 4 rows the gain is small and 1-2-sequence decode keeps fp32 activations (the
// accuracy of weight-only); from 4 rows on (batched decode, every prefill and encoder call) bf16 compute runs.
constexpr int64_t kBF16MinRows = 4;

struct Tiling {
  int64_t mc, panels_per_task, m_tasks, n_tasks;
};

Tiling choose_tiling(int64_t m, int64_t num_panels, int mr, int threads) {
  Tiling t;
  // Split M into equal row blocks of about kMCRows (rounded up to MR), so no thread is left with a short tail.
  t.m_tasks = std::max<int64_t>(1, (m + kMCRows - 1) / kMCRows);
  t.mc = ((m + t.m_tasks - 1) / t.m_tasks + mr - 1) / mr * mr;
  t.m_tasks = (m + t.mc - 1) / t.mc;
  t.panels_per_task = std::min<int64_t>(kPanelsPerTask, num_panels);
  // Few row blocks (decode, small batches): split columns finer so every thread gets equal work.
  const int64_t wanted_tasks = 4 * threads;
  if (t.m_tasks * ((num_panels + t.panels_per_task - 1) / t.panels_per_task) < wanted_tasks) {
    int64_t n_split = std::min<int64_t>(num_panels, (wanted_tasks + t.m_tasks - 1) / t.m_tasks);
    t.panels_per_task = (num_panels + n_split - 1) / n_split;
  }
  t.n_tasks = (num_panels + t.panels_per_task - 1) / t.panels_per_task;
  return t;
}

// Copies the A block rows [0, rows) x cols [0, kc) (rows lda apart) into MR-row panels: panel g holds
// rows g*MR.. as kc groups of MR floats, zero-filled past `rows`, so the micro-kernel reads A sequentially.
void pack_a_block(const float* a, int64_t lda, int64_t rows, int64_t kc, int mr, float* dst) {
  for (int64_t g = 0; g < rows; g += mr) {
    float* panel = dst + g * kc;
    const int64_t valid = std::min<int64_t>(mr, rows - g);
    for (int64_t i = 0; i < mr; ++i) {
      if (i < valid) {
        const float* src = a + (g + i) * lda;
        for (int64_t p = 0; p < kc; ++p) panel[p * mr + i] = src[p];
      } else {
        for (int64_t p = 0; p < kc; ++p) panel[p * mr + i] = 0.0f;
      }
    }
  }
}

// Packing buffers per thread, grown on demand and reused across calls (no allocation per GEMM).
float* thread_a_buffer(size_t floats) {
  static thread_local AlignedBuffer buffer;
  if (buffer.size() < floats) buffer = AlignedBuffer(floats);
  return buffer.data();
}

float* thread_b_buffer(size_t floats) {
  static thread_local AlignedBuffer buffer;
  if (buffer.size() < floats) buffer = AlignedBuffer(floats);
  return buffer.data();
}

// A / smooth for smoothed int8 weights on the weight-only path (per calling thread).
float* thread_a_copy(size_t floats) {
  static thread_local AlignedBuffer buffer;
  if (buffer.size() < floats) buffer = AlignedBuffer(floats);
  return buffer.data();
}

// One GEMM call's quantized A (int8 compute), owned by the calling thread and reused across calls.
struct QuantizedA {
  AlignedArray<uint8_t> q;
  AlignedBuffer scale, zero;
};

QuantizedA& thread_quantized_a(int64_t rows, int64_t ldq, int64_t groups) {
  static thread_local QuantizedA a;
  if (a.q.size() < static_cast<size_t>(rows * ldq)) a.q = AlignedArray<uint8_t>(static_cast<size_t>(rows * ldq));
  if (a.scale.size() < static_cast<size_t>(rows * groups)) {
    a.scale = AlignedBuffer(static_cast<size_t>(rows * groups));
    a.zero = AlignedBuffer(static_cast<size_t>(rows * groups));
  }
  return a;
}

// Whether int8 compute can run this multiply exactly: K groups start on a k4 boundary and a group's int32 sum of
// u8 x s8 products (at most 255 * 127 per k) cannot overflow.
bool u8s8_applies(const PackedMatrix& b, int64_t m) {
  if (b.dtype() != WeightDtype::s8 || m < b.kernels().u8s8_min_rows || b.k() == 0) return false;
  if (b.group() % 4 != 0 && b.group() < b.k()) return false;
  return b.group() <= INT32_MAX / (255 * 127);
}

// Quantizes A's m rows (kernel_table.h's QuantizedRows; nibble kernels get q >> 4 then q & 15 as two planes).
// Returns false when a row holds NaN or inf: the caller then multiplies in fp32 so they propagate as in torch.
bool quantize_a(const TeamLease& lease, const float* a, int64_t m, int64_t lda, const PackedMatrix& b,
                kernels::QuantizedRows* out) {
  const kernels::KernelTable& kt = b.kernels();
  const int64_t k = b.k(), k4 = b.k4(), groups = b.num_groups();
  const int64_t ldq = kt.u8s8_nibbles ? 2 * k4 : k4;
  QuantizedA& qa = thread_quantized_a(m, ldq, groups);
  std::atomic<bool> finite{true};
  run_chunked(lease, m, [&](int64_t r) {
    {
      uint8_t* q = qa.q.data() + r * ldq;
      if (!kt.quantize_u8_row(a + r * lda, b.inv_smooth(), k, b.group(), q, qa.scale.data() + r * groups,
                              qa.zero.data() + r * groups))
        finite.store(false, std::memory_order_relaxed);
      std::fill(q + k, q + k4, uint8_t{0});
      if (kt.u8s8_nibbles)
        for (int64_t j = 0; j < k4; ++j) {
          q[k4 + j] = q[j] & 15;
          q[j] = static_cast<uint8_t>(q[j] >> 4);
        }
    }
  });
  *out = {qa.q.data(), ldq, k4, qa.scale.data(), qa.zero.data(), groups};
  return finite.load();
}

bool dtype_is_s8(const PackedMatrix& b) { return b.dtype() == WeightDtype::s8; }

// One GEMM call's A rounded to bf16 (bf16 compute), owned by the calling thread and reused across calls.
AlignedArray<uint16_t>& thread_bf16_a(size_t values) {
  static thread_local AlignedArray<uint16_t> a;
  if (a.size() < values) a = AlignedArray<uint16_t>(values);
  return a;
}

// Rounds A's m rows to bf16 pairs (round_up(K, 2) values per row), all rows in parallel as quantize_a does.
BF16Rows convert_a_bf16(const TeamLease& lease, const float* a, int64_t m, int64_t lda, const PackedMatrix& b) {
  const kernels::KernelTable& kt = b.kernels();
  const int64_t k = b.k(), ld = b.k2();
  uint16_t* out = thread_bf16_a(static_cast<size_t>(m * ld)).data();
  run_chunked(lease, m, [&](int64_t r) { kt.convert_bf16_row(a + r * lda, k, out + r * ld); });
  return {out, ld};
}

// The bf16 compute block: per K block and panel, every row tile of bf16 A against the panel's k2 rows.
void gemm_bf16_block(const BF16Rows& a, int64_t rows, const PackedMatrix& b, int64_t panel_begin, int64_t panel_end,
                     float* c, int64_t ldc, const GemmBlockOptions& opt, int64_t kc_block) {
  const kernels::KernelTable& kt = b.kernels();
  const int mr = kt.bf16_mr, nr = b.nr();
  const int64_t k = b.k(), n = b.n();
  const bool has_epilogue = b.has_bias() || opt.activation != kernels::Activation::none || opt.residual;
  int64_t k0 = 0;
  do {
    const int64_t kc = std::min(kc_block, k - k0);  // kc_block is even, so k0 is: k2 row k0 / 2
    const bool first = k0 == 0, last = k0 + kc == k;
    for (int64_t p = panel_begin; p < panel_end; ++p) {
      const int cols = static_cast<int>(std::min<int64_t>(nr, n - p * nr));
      const int64_t col = (p - panel_begin) * nr;
      kernels::GemmEpilogue ep{b.panel_bias(p), opt.activation, nullptr, opt.ldr};
      const uint16_t* bp = b.panel_bf16(p) + k0 * nr;
      for (int64_t i = 0; i < rows; i += mr) {
        const int r = static_cast<int>(std::min<int64_t>(mr, rows - i));
        ep.residual = opt.residual ? opt.residual + i * opt.ldr + col : nullptr;
        kt.gemm_ukernel_bf16(r, cols, kc, a.a + i * a.lda + k0, a.lda, bp, c + i * ldc + col, ldc,
                             opt.accumulate || !first, last && has_epilogue ? &ep : nullptr);
      }
    }
    k0 += kc;
  } while (k0 < k);
}

// The int8 compute block: per K block and panel, every row tile of quantized A against the panel's int8 k4 rows.
void gemm_u8s8_block(const kernels::QuantizedRows& a, int64_t rows, const PackedMatrix& b, int64_t panel_begin,
                     int64_t panel_end, float* c, int64_t ldc, const GemmBlockOptions& opt, int64_t kc_block) {
  const kernels::KernelTable& kt = b.kernels();
  const int mr = kt.u8s8_mr, nr = b.nr();
  const int64_t k = b.k(), n = b.n(), group = b.group();
  // A K block holds whole groups: each group's zero-point term uses the column sums of all its k.
  kc_block = group >= k ? k : std::max<int64_t>(1, kc_block / group) * group;
  const bool has_epilogue = b.has_bias() || opt.activation != kernels::Activation::none || opt.residual;
  int64_t k0 = 0;
  do {
    const int64_t kc = std::min(kc_block, k - k0);
    const bool first = k0 == 0, last = k0 + kc == k;
    for (int64_t p = panel_begin; p < panel_end; ++p) {
      const int cols = static_cast<int>(std::min<int64_t>(nr, n - p * nr));
      const int64_t col = (p - panel_begin) * nr;
      kernels::GemmEpilogue ep{b.panel_bias(p), opt.activation, nullptr, opt.ldr};
      const int8_t* b4 = b.panel_s8(p) + k0 * nr;  // k0 is a multiple of 4: k4 row k0 / 4
      const float* scale = b.panel_scale(p) + (k0 / group) * nr;
      const float* colsum = b.panel_colsum(p) + (k0 / group) * nr;
      for (int64_t i = 0; i < rows; i += mr) {
        const int r = static_cast<int>(std::min<int64_t>(mr, rows - i));
        const kernels::QuantizedRows tile{a.q + i * a.ldq + k0, a.ldq, a.lo_plane, a.scale + i * a.lds + k0 / group,
                                          a.zero + i * a.lds + k0 / group, a.lds};
        ep.residual = opt.residual ? opt.residual + i * opt.ldr + col : nullptr;
        kt.gemm_ukernel_u8s8(r, cols, kc, tile, b4, scale, colsum, group, c + i * ldc + col, ldc,
                             opt.accumulate || !first, last && has_epilogue ? &ep : nullptr);
      }
    }
    k0 += kc;
  } while (k0 < k);
}

}  // namespace

void gemm_packed_block(const float* a, int64_t rows, int64_t lda, const PackedMatrix& b, int64_t panel_begin,
                       int64_t panel_end, float* c, int64_t ldc, const GemmBlockOptions& opt) {
  const kernels::KernelTable& kt = b.kernels();
  const int mr = kt.gemm_mr, nr = b.nr();
  const int64_t k = b.k(), n = b.n();
  // A small A block gains nothing from K blocking; streaming each B panel whole keeps the hardware
  // prefetcher on one long sequential run (decode is bound by reading B).
  int64_t kc_block = opt.kc > 0 ? opt.kc : rows * k <= kSmallABlockFloats ? std::max<int64_t>(k, 1) : kKC;
  // int8 scales change per group of K and its panels interleave 4 k: a K block starts on a group boundary that
  // is also a multiple of 4.
  if (kc_block < k && dtype_is_s8(b)) {
    const int64_t step = std::lcm<int64_t>(b.group() < k ? b.group() : 4, 4);
    kc_block = std::max<int64_t>(1, kc_block / step) * step;
  }
  // bf16 panels interleave 2 k: K blocks start on even k.
  if (kc_block < k && b.dtype() == WeightDtype::bf16) kc_block = std::max<int64_t>(2, kc_block / 2 * 2);
  if (opt.bf16) {
    gemm_bf16_block(*opt.bf16, rows, b, panel_begin, panel_end, c, ldc, opt, kc_block);
    return;
  }
  if (opt.quantized) {
    gemm_u8s8_block(*opt.quantized, rows, b, panel_begin, panel_end, c, ldc, opt, kc_block);
    return;
  }
  float* a_panels = opt.pack_a ? thread_a_buffer(static_cast<size_t>((rows + mr) * kc_block)) : nullptr;
  // Without bias, activation or residual the kernel gets no epilogue, so its store is a plain (+)= .
  const bool has_epilogue = b.has_bias() || opt.activation != kernels::Activation::none || opt.residual;
  const WeightDtype dtype = b.dtype();
  // bf16 / int8 B converted in registers costs 2-3 extra vector ops per B vector on the FMA ports, paid once per
  // row tile. With several row tiles, widening each panel's K block to fp32 once (L2-resident) and running the
  // fp32 kernel over every tile pays it once: measured on AVX-512 at M = 128, K = 384, int8 in registers was
  // 1.25x the fp32 time.
  const bool widen = dtype != WeightDtype::f32 && rows > 2 * mr;
  float* b_wide = widen ? thread_b_buffer(static_cast<size_t>(kc_block * nr)) : nullptr;
  // do/while so k == 0 still runs the epilogue once (C = act(bias) + residual).
  int64_t k0 = 0;
  do {
    const int64_t kc = std::min(kc_block, k - k0);
    const bool first = k0 == 0, last = k0 + kc == k;
    if (opt.pack_a) pack_a_block(a + k0, lda, rows, kc, mr, a_panels);
    for (int64_t p = panel_begin; p < panel_end; ++p) {
      const int cols = static_cast<int>(std::min<int64_t>(nr, n - p * nr));
      const int64_t col = (p - panel_begin) * nr;
      kernels::GemmEpilogue ep{b.panel_bias(p), opt.activation, nullptr, opt.ldr};
      if (widen && dtype == WeightDtype::s8)
        kt.gemm_widen_s8(b.panel_s8(p) + k0 * nr, b.panel_scale(p) + (k0 / b.group()) * nr, b.group(), kc, b_wide);
      else if (widen)
        kt.gemm_widen_bf16(b.panel_bf16(p) + k0 * nr, kc, b_wide);
      for (int64_t i = 0; i < rows; i += mr) {
        const int r = static_cast<int>(std::min<int64_t>(mr, rows - i));
        ep.residual = opt.residual ? opt.residual + i * opt.ldr + col : nullptr;
        float* cp = c + i * ldc + col;
        const kernels::GemmEpilogue* epp = last && has_epilogue ? &ep : nullptr;
        const bool accumulate = opt.accumulate || !first;
        const float* ap = opt.pack_a ? a_panels + i * kc : a + i * lda + k0;
        const int64_t rs_a = opt.pack_a ? 1 : lda, cs_a = opt.pack_a ? mr : 1;
        if (widen)
          kt.gemm_ukernel(r, cols, kc, ap, rs_a, cs_a, b_wide, cp, ldc, accumulate, epp);
        else if (dtype == WeightDtype::s8)  // k0 is a multiple of the group: this block's scales start at its group
          kt.gemm_ukernel_f32s8(r, cols, kc, ap, rs_a, cs_a, b.panel_s8(p) + k0 * nr,
                                b.panel_scale(p) + (k0 / b.group()) * nr, b.group(), cp, ldc, accumulate, epp);
        else if (dtype == WeightDtype::bf16)
          kt.gemm_ukernel_f32bf16(r, cols, kc, ap, rs_a, cs_a, b.panel_bf16(p) + k0 * nr, cp, ldc, accumulate, epp);
        else
          kt.gemm_ukernel(r, cols, kc, ap, rs_a, cs_a, b.panel(p) + k0 * nr, cp, ldc, accumulate, epp);
      }
    }
    k0 += kc;
  } while (k0 < k);
}

int64_t gemm_u8s8_min_rows() { return kernels_for_active_isa().u8s8_min_rows; }
int64_t gemm_bf16_min_rows() { return kBF16MinRows; }

namespace {
std::atomic<int>& int8_mode_slot() {
  static std::atomic<int> slot{[] {
    const char* env = std::getenv("CPUFORMER_INT8_COMPUTE");
    const std::string v = env ? env : "";
    return static_cast<int>(v == "on" ? Int8ComputeMode::on : v == "off" ? Int8ComputeMode::off
                                                                          : Int8ComputeMode::automatic);
  }()};
  return slot;
}
}  // namespace

Int8ComputeMode int8_compute_mode() { return static_cast<Int8ComputeMode>(int8_mode_slot().load()); }
void set_int8_compute_mode(Int8ComputeMode mode) { int8_mode_slot().store(static_cast<int>(mode)); }
bool int8_compute_enabled(const kernels::KernelTable& kt) {
  const Int8ComputeMode mode = int8_compute_mode();
  return mode == Int8ComputeMode::on || (mode == Int8ComputeMode::automatic && kt.u8s8_by_default);
}

namespace {
std::atomic<int>& bf16_mode_slot() {
  static std::atomic<int> slot{[] {
    const char* env = std::getenv("CPUFORMER_BF16_COMPUTE");
    const std::string v = env ? env : "";
    return static_cast<int>(v == "on" ? BF16ComputeMode::on : v == "off" ? BF16ComputeMode::off
                                                                         : BF16ComputeMode::automatic);
  }()};
  return slot;
}
}  // namespace

BF16ComputeMode bf16_compute_mode() { return static_cast<BF16ComputeMode>(bf16_mode_slot().load()); }
void set_bf16_compute_mode(BF16ComputeMode mode) { bf16_mode_slot().store(static_cast<int>(mode)); }
bool bf16_compute_enabled(const kernels::KernelTable& kt) {
  if (!kt.gemm_ukernel_bf16) return false;
  const BF16ComputeMode mode = bf16_compute_mode();
  return mode == BF16ComputeMode::on || (mode == BF16ComputeMode::automatic && kt.bf16_by_default);
}

void gemm_packed(const float* a, int64_t m, int64_t lda, const PackedMatrix& b, float* c, int64_t ldc,
                 kernels::Activation activation, const float* residual, int64_t ldr, bool compute_in_weight_dtype) {
  if (m == 0 || b.n() == 0) return;
  const int mr = b.kernels().gemm_mr, nr = b.nr();
  const int64_t num_panels = b.num_panels();
  const int threads = threads_for_work(2.0 * m * b.n() * std::max<int64_t>(b.k(), 1));
  const TeamLease lease(threads);
  const Tiling t = choose_tiling(m, num_panels, mr, threads);
  const int64_t tasks = t.m_tasks * t.n_tasks;
  GemmBlockOptions opt;
  opt.activation = activation;
  opt.ldr = ldr;
  // Packing A makes its reads sequential; it pays off once a block has several micro-rows that each sweep
  // many B panels (small M is bound by streaming B instead, and the copy would only add work).
  // Each task packs its own copy of A, so packing also needs enough panels per task to pay for the copy
  // (M = 128, K = 1536, N = 384 split over 4 column tasks of 6 panels was 20% faster without it).
  opt.pack_a = m >= 4 * mr && t.panels_per_task >= 12;
  kernels::QuantizedRows quantized;
  BF16Rows bf16_rows;
  if (compute_in_weight_dtype && b.dtype() == WeightDtype::bf16 && m >= kBF16MinRows && b.k() > 0 &&
      bf16_compute_enabled(b.kernels())) {
    bf16_rows = convert_a_bf16(lease, a, m, lda, b);
    opt.bf16 = &bf16_rows;
    opt.pack_a = false;
  } else if (compute_in_weight_dtype && int8_compute_enabled(b.kernels()) && u8s8_applies(b, m) &&
             quantize_a(lease, a, m, lda, b, &quantized)) {
    opt.quantized = &quantized;
  } else if (const float* inv = b.inv_smooth()) {
    // Smoothed weights, weight-only: multiply by x / s (a copy; small M is the usual case here).
    const int64_t k = b.k();
    float* scaled = thread_a_copy(static_cast<size_t>(m * k));
    for (int64_t r = 0; r < m; ++r)
      for (int64_t j = 0; j < k; ++j) scaled[r * k + j] = a[r * lda + j] * inv[j];
    a = scaled;
    lda = k;
  }

  // Row blocks vary fastest so neighbouring tasks share the same B columns.
  run_tasks(lease, tasks, [&](int64_t task, int) {
    GemmBlockOptions o = opt;
    const int64_t i0 = (task % t.m_tasks) * t.mc;
    const int64_t p0 = (task / t.m_tasks) * t.panels_per_task;
    const int64_t rows = std::min(m, i0 + t.mc) - i0;
    const int64_t p_end = std::min(num_panels, p0 + t.panels_per_task);
    o.residual = residual ? residual + i0 * ldr + p0 * nr : nullptr;
    BF16Rows rows_bf16;
    if (opt.bf16) {
      rows_bf16 = {opt.bf16->a + i0 * opt.bf16->lda, opt.bf16->lda};
      o.bf16 = &rows_bf16;
    }
    kernels::QuantizedRows rows_q;
    if (opt.quantized) {
      rows_q = *opt.quantized;
      rows_q.q += i0 * rows_q.ldq;
      rows_q.scale += i0 * rows_q.lds;
      rows_q.zero += i0 * rows_q.lds;
      o.quantized = &rows_q;
    }
    gemm_packed_block(a + i0 * lda, rows, lda, b, p0, p_end, c + i0 * ldc + p0 * nr, ldc, o);
  });
}

}  // namespace cpuformer
