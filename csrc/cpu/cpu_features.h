// cpu_features.h — what this CPU and OS can run, read once from CPUID and XGETBV.
#pragma once

namespace cpuformer::cpu {

// The kernel levels, in the order CPUFORMER_ISA caps them: each level's kernel table is its base's plus what the
// level adds (avx2_vnni: int8 compute on 256-bit vpdpbusd; avx512_vnni: on 512-bit vpdpbusd). A CPU may lack a
// level below its best (Cascade Lake has avx512_vnni but not avx2_vnni): isa_supported() tells.
// avx512_bf16: the avx512_vnni table plus bf16 compute on vdpbf16ps; it needs avx512_vnni's bits too (every CPU with
// AVX512_BF16 has them: Cooper Lake, Sapphire / Emerald Rapids, Zen 4 / 5).
enum class Isa : int { generic = 0, avx2 = 1, avx2_vnni = 2, avx512 = 3, avx512_vnni = 4, avx512_bf16 = 5 };
inline constexpr Isa kAllIsas[] = {Isa::generic, Isa::avx2,        Isa::avx2_vnni,
                                   Isa::avx512,  Isa::avx512_vnni, Isa::avx512_bf16};

const char* isa_name(Isa isa);
// Parses "generic" | "avx2" | "avx2_vnni" | "avx512" | "avx512_vnni" | "avx512_bf16"; false on anything else.
bool parse_isa(const char* name, Isa* out);

struct CpuFeatures {
  bool avx2_fma = false;  // AVX2 + FMA3 + OS saves YMM state
  bool avx512 = false;    // AVX-512 F/BW/DQ/VL + OS saves ZMM and opmask state
  // Extensions for the int8 / bf16 kernels (issue 10), each only with the register state above saved by the OS.
  bool avx512_vnni = false;  // vpdpbusd on ZMM (Cascade Lake and later, Zen 4)
  bool avx512_bf16 = false;  // vdpbf16ps, vcvtne2ps2bf16 (Cooper Lake, Sapphire Rapids and later, Zen 4)
  bool avx_vnni = false;     // VEX-encoded vpdpbusd on YMM (Alder Lake, Sapphire Rapids and later, Zen 5)
  char brand[49] = {0};
};

// The names of the features above this CPU and OS can run, as Linux's /proc/cpuinfo spells them
// (avx2, fma, avx512f, avx512bw, avx512dq, avx512vl, avx512_vnni, avx512_bf16, avx_vnni), in that order.
const char* const* cpu_feature_names(int* count);

const CpuFeatures& cpu_features();
// Whether this CPU and OS can run the level's kernels.
bool isa_supported(Isa isa);
// Highest ISA the CPU supports, ignoring any cap.
Isa best_supported_isa();

}  // namespace cpuformer::cpu
