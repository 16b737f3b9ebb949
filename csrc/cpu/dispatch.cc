// dispatch.cc — fills the dispatch choice at start-up (MLAS's platform.cpp pattern): CPU best ISA, capped by
// CPUFORMER_ISA. An unknown CPUFORMER_ISA value is reported by show_config() rather than silently ignored.
#include "cpu/dispatch.h"

#include <atomic>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace cpuformer {
namespace {

// The highest level the CPU supports that is not above CPUFORMER_ISA (levels are ordered, but a CPU may lack one
// below its best: CPUFORMER_ISA=avx2_vnni on Cascade Lake gives avx2).
cpu::Isa compute_max_allowed() {
  const char* env = std::getenv("CPUFORMER_ISA");
  cpu::Isa cap = cpu::Isa::avx512_bf16;
  if (env && *env && !cpu::parse_isa(env, &cap)) cap = cpu::Isa::avx512_bf16;
  cpu::Isa allowed = cpu::Isa::generic;
  for (cpu::Isa isa : cpu::kAllIsas)
    if (static_cast<int>(isa) <= static_cast<int>(cap) && cpu::isa_supported(isa)) allowed = isa;
  return allowed;
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
  if (static_cast<int>(isa) > static_cast<int>(max_allowed_isa()) || !cpu::isa_supported(isa))
    throw std::invalid_argument(std::string("ISA '") + cpu::isa_name(isa) +
                                "' is not available here; the highest allowed is '" +
                                cpu::isa_name(max_allowed_isa()) + "'");
  active_slot().store(static_cast<int>(isa), std::memory_order_relaxed);
}

const kernels::KernelTable& kernels_for(cpu::Isa isa) {
  switch (isa) {
    case cpu::Isa::avx512_bf16: return kernels::avx512_bf16::kernel_table();
    case cpu::Isa::avx512_vnni: return kernels::avx512_vnni::kernel_table();
    case cpu::Isa::avx512: return kernels::avx512::kernel_table();
    case cpu::Isa::avx2_vnni: return kernels::avx2_vnni::kernel_table();
    case cpu::Isa::avx2: return kernels::avx2::kernel_table();
    case cpu::Isa::generic: break;
  }
  return kernels::generic::kernel_table();
}

const kernels::KernelTable& kernels_for_active_isa() { return kernels_for(active_isa()); }

}  // namespace cpuformer
