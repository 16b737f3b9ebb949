// dispatch.h — the kernel table every op calls through, chosen once from CPU features and CPUFORMER_ISA.
#pragma once
#include "cpu/cpu_features.h"
#include "kernels/kernel_table.h"

namespace cpuformer {

// The active table. Ops read it once per call (or store it with packed data) and never test ISA macros.
const kernels::KernelTable& kernels_for_active_isa();
const kernels::KernelTable& kernels_for(cpu::Isa isa);

cpu::Isa active_isa();
// Highest ISA allowed: the CPU's best, lowered by CPUFORMER_ISA when set.
cpu::Isa max_allowed_isa();
// Test hook: switch the active ISA at run time. Throws std::invalid_argument above max_allowed_isa().
void set_active_isa(cpu::Isa isa);

}  // namespace cpuformer
