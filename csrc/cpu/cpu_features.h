// cpu_features.h — what this CPU and OS can run, read once from CPUID and XGETBV.
#pragma once

namespace cpuformer::cpu {

enum class Isa : int { generic = 0, avx2 = 1, avx512 = 2 };

const char* isa_name(Isa isa);
// Parses "generic" | "avx2" | "avx512"; returns false on anything else.
bool parse_isa(const char* name, Isa* out);

struct CpuFeatures {
  bool avx2_fma = false;  // AVX2 + FMA3 + OS saves YMM state
  bool avx512 = false;    // AVX-512 F/BW/DQ/VL + OS saves ZMM and opmask state
  char brand[49] = {0};
};

const CpuFeatures& cpu_features();
// Highest ISA the CPU supports, ignoring any cap.
Isa best_supported_isa();

}  // namespace cpuformer::cpu
