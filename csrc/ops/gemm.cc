// gemm.cc — the BLIS loops around the micro-kernel. B is packed at load time, so per call we only tile:
// a task is an (MC rows) x (NC columns) block of C; inside it, K is blocked by KC so the packed A block stays
// in L2 while each NR-wide B micro-panel is reused by the MC/MR micro-tiles of the block.
#include "ops/gemm.h"

#include <algorithm>

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

}  // namespace

void gemm_packed_block(const float* a, int64_t rows, int64_t lda, const PackedMatrix& b, int64_t panel_begin,
                       int64_t panel_end, float* c, int64_t ldc, const GemmBlockOptions& opt) {
  const kernels::KernelTable& kt = b.kernels();
  const int mr = kt.gemm_mr, nr = b.nr();
  const int64_t k = b.k(), n = b.n();
  // A small A block gains nothing from K blocking; streaming each B panel whole keeps the hardware
  // prefetcher on one long sequential run (decode is bound by reading B).
  int64_t kc_block = opt.kc > 0 ? opt.kc : rows * k <= kSmallABlockFloats ? std::max<int64_t>(k, 1) : kKC;
  // int8 scales change per group of K: a K block must start on a group boundary.
  if (kc_block < k && b.group() < k) kc_block = std::max<int64_t>(1, kc_block / b.group()) * b.group();
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

void gemm_packed(const float* a, int64_t m, int64_t lda, const PackedMatrix& b, float* c, int64_t ldc,
                 kernels::Activation activation, const float* residual, int64_t ldr) {
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

  // Row blocks vary fastest so neighbouring tasks share the same B columns.
  run_tasks(lease, tasks, [&](int64_t task, int) {
    GemmBlockOptions o = opt;
    const int64_t i0 = (task % t.m_tasks) * t.mc;
    const int64_t p0 = (task / t.m_tasks) * t.panels_per_task;
    const int64_t rows = std::min(m, i0 + t.mc) - i0;
    const int64_t p_end = std::min(num_panels, p0 + t.panels_per_task);
    o.residual = residual ? residual + i0 * ldr + p0 * nr : nullptr;
    gemm_packed_block(a + i0 * lda, rows, lda, b, p0, p_end, c + i0 * ldc + p0 * nr, ldc, o);
  });
}

}  // namespace cpuformer
