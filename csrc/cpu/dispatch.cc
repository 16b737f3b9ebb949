// dispatch.cc — fills the dispatch choice at start-up (MLAS's platform.cpp pattern): CPU best ISA, capped by
// CPUFORMER_ISA. An unknown CPUFORMER_ISA value is reported by show_config() rather than silently ignored.
#include "cpu/dispatch.h"

#include <atomic>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace cpuformer {
namespace {

cpu::Isa compute_max_allowed() {
  cpu::Isa best = cpu::best_supported_isa();
  const char* env = std::getenv("CPUFORMER_ISA");
  cpu::Isa cap;
  if (env && *env && cpu::parse_isa(env, &cap) && static_cast<int>(cap) < static_cast<int>(best)) return cap;
  return best;
}

std::atomic<int>& active_slot() {
  static std::atomic<int> slot{static_cast<int>(max_allowed_isa())};
  return slot;
}

}  // namespace

cpu::Isa max_allowed_isa() {
  static const cpu::Isa allowed = compute_max_allowed();
  return allowed;
}

cpu::Isa active_isa() { return static_cast<cpu::Isa>(active_slot().load(std::memory_order_relaxed)); }

void set_active_isa(cpu::Isa isa) {
  if (static_cast<int>(isa) > static_cast<int>(max_allowed_isa()))
    throw std::invalid_argument(std::string("ISA '") + cpu::isa_name(isa) +
                                "' is not available here; the highest allowed is '" +
                                cpu::isa_name(max_allowed_isa()) + "'");
  active_slot().store(static_cast<int>(isa), std::memory_order_relaxed);
}

const kernels::KernelTable& kernels_for(cpu::Isa isa) {
  switch (isa) {
    case cpu::Isa::avx512: return kernels::avx512::kernel_table();
    case cpu::Isa::avx2: return kernels::avx2::kernel_table();
    case cpu::Isa::generic: break;
  }
  return kernels::generic::kernel_table();
}

const kernels::KernelTable& kernels_for_active_isa() { return kernels_for(active_isa()); }

}  // namespace cpuformer
