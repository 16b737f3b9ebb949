// cpu_features.cc — CPUID leaf 1/7 feature bits, checked against XGETBV so we never pick an ISA whose
// registers the OS does not save on context switch.
#include "cpu/cpu_features.h"

#include <cpuid.h>
#include <cstdint>
#include <cstring>
#include <initializer_list>

namespace cpuformer::cpu {
namespace {

uint64_t read_xcr0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

CpuFeatures detect() {
  CpuFeatures f;
  unsigned eax, ebx, ecx, edx;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return f;
  const bool fma = ecx & (1u << 12);
  const bool osxsave = ecx & (1u << 27);
  const bool avx = ecx & (1u << 28);
  if (!osxsave || !avx) return f;
  const uint64_t xcr0 = read_xcr0();
  const bool os_ymm = (xcr0 & 0x6) == 0x6;           // SSE + AVX state
  const bool os_zmm = (xcr0 & 0xE6) == 0xE6;         // + opmask, ZMM_Hi256, Hi16_ZMM
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return f;
  const bool avx2 = ebx & (1u << 5);
  const bool avx512f = ebx & (1u << 16), avx512dq = ebx & (1u << 17);
  const bool avx512bw = ebx & (1u << 30), avx512vl = ebx & (1u << 31);
  f.avx2_fma = avx2 && fma && os_ymm;
  f.avx512 = f.avx2_fma && avx512f && avx512dq && avx512bw && avx512vl && os_zmm;
  f.avx512_vnni = f.avx512 && (ecx & (1u << 11));
  const unsigned max_sub7 = eax;  // leaf 7 subleaf 0: EAX = highest subleaf
  if (max_sub7 >= 1 && __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx)) {
    f.avx_vnni = f.avx2_fma && (eax & (1u << 4));
    f.avx512_bf16 = f.avx512 && (eax & (1u << 5));
  }

  unsigned max_ext = __get_cpuid_max(0x80000000, nullptr);
  if (max_ext >= 0x80000004) {
    unsigned regs[12];
    for (unsigned i = 0; i < 3; ++i)
      __get_cpuid(0x80000002 + i, &regs[4 * i], &regs[4 * i + 1], &regs[4 * i + 2], &regs[4 * i + 3]);
    std::memcpy(f.brand, regs, 48);
  }
  return f;
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512_bf16: return "avx512_bf16";
    case Isa::avx512_vnni: return "avx512_vnni";
    case Isa::avx512: return "avx512";
    case Isa::avx2_vnni: return "avx2_vnni";
    case Isa::avx2: return "avx2";
    case Isa::generic: break;
  }
  return "generic";
}

bool parse_isa(const char* name, Isa* out) {
  for (Isa isa : kAllIsas) {
    if (std::strcmp(name, isa_name(isa)) == 0) {
      *out = isa;
      return true;
    }
  }
  return false;
}

const char* const* cpu_feature_names(int* count) {
  static const char* names[9];
  static const int n = [] {
    const CpuFeatures& f = cpu_features();
    int k = 0;
    const auto add = [&](bool present, std::initializer_list<const char*> group) {
      if (present)
        for (const char* name : group) names[k++] = name;
    };
    add(f.avx2_fma, {"avx2", "fma"});
    add(f.avx512, {"avx512f", "avx512bw", "avx512dq", "avx512vl"});
    add(f.avx512_vnni, {"avx512_vnni"});
    add(f.avx512_bf16, {"avx512_bf16"});
    add(f.avx_vnni, {"avx_vnni"});
    return k;
  }();
  *count = n;
  return names;
}

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

bool isa_supported(Isa isa) {
  const CpuFeatures& f = cpu_features();
  switch (isa) {
    case Isa::avx512_bf16: return f.avx512 && f.avx512_vnni && f.avx512_bf16;
    case Isa::avx512_vnni: return f.avx512 && f.avx512_vnni;
    case Isa::avx512: return f.avx512;
    case Isa::avx2_vnni: return f.avx2_fma && f.avx_vnni;
    case Isa::avx2: return f.avx2_fma;
    case Isa::generic: break;
  }
  return true;
}

Isa best_supported_isa() {
  Isa best = Isa::generic;
  for (Isa isa : kAllIsas)
    if (isa_supported(isa)) best = isa;
  return best;
}

}  // namespace cpuformer::cpu
