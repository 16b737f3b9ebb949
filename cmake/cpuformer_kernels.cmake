# cpuformer_add_isa_kernels(<target> <isa> <flags>)
# Compiles every csrc/kernels/*.cc once for one ISA. The ISA name becomes the C++ namespace
# (cpuformer::kernels::<isa>), so inline helpers built with AVX flags never merge with generic
# ones at link time.
function(cpuformer_add_isa_kernels target isa flags)
  file(GLOB kernel_sources CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/csrc/kernels/*.cc)
  add_library(${target} OBJECT ${kernel_sources})
  target_include_directories(${target} PRIVATE ${PROJECT_SOURCE_DIR}/csrc)
  string(TOUPPER ${isa} isa_upper)
  target_compile_definitions(${target} PRIVATE
    CPUFORMER_KERNEL_ISA=${isa} CPUFORMER_KERNEL_ISA_${isa_upper}=1)
  target_compile_options(${target} PRIVATE -O3 -fno-math-errno -ffp-contract=fast ${flags})
  # GCC 12's partial redundancy elimination left the nibble int8 kernel a register copy per int16 accumulator per
  # k4 step (12 extra zmm moves on the vpmaddubsw ports); without it the loop is maddubs + add only.
  set_source_files_properties(${PROJECT_SOURCE_DIR}/csrc/kernels/gemm_u8s8_kernels.cc PROPERTIES
    COMPILE_OPTIONS -fno-tree-pre)
  set_target_properties(${target} PROPERTIES POSITION_INDEPENDENT_CODE ON)
endfunction()

# cpuformer_add_level_kernels(<target> <level> <base> <vectors> <subdir> <define> <flags>)
# A level on top of a base level's table (avx2_vnni, avx512_vnni, avx512_bf16): only csrc/kernels/<subdir>/*.cc,
# compiled with the <vectors> ISA's Vec plus the level's extra flags, in the level's own namespace, with
# CPUFORMER_KERNEL_BASE naming the base table's namespace and <define> set to 1.
function(cpuformer_add_level_kernels target level base vectors subdir define flags)
  file(GLOB level_sources CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/csrc/kernels/${subdir}/*.cc)
  add_library(${target} OBJECT ${level_sources})
  target_include_directories(${target} PRIVATE ${PROJECT_SOURCE_DIR}/csrc)
  string(TOUPPER ${vectors} vectors_upper)
  target_compile_definitions(${target} PRIVATE CPUFORMER_KERNEL_ISA=${level} CPUFORMER_KERNEL_ISA_${vectors_upper}=1
    CPUFORMER_KERNEL_BASE=${base} ${define}=1)
  target_compile_options(${target} PRIVATE -O3 -fno-math-errno -ffp-contract=fast ${flags})
  set_target_properties(${target} PROPERTIES POSITION_INDEPENDENT_CODE ON)
endfunction()

# cpuformer_add_vnni_kernels(<target> <level> <base> <flags>)
# A VNNI level (avx2_vnni, avx512_vnni): csrc/kernels/vnni/*.cc with the base ISA's vectors plus the VNNI flag; its
# kernel table starts from the base level's table.
function(cpuformer_add_vnni_kernels target level base flags)
  cpuformer_add_level_kernels(${target} ${level} ${base} ${base} vnni CPUFORMER_KERNEL_VNNI "${flags}")
endfunction()

# cpuformer_add_bf16_kernels(<target> <level> <base> <flags>)
# The avx512_bf16 level: csrc/kernels/bf16/*.cc with the AVX-512 vectors plus -mavx512bf16; its kernel table starts
# from <base> (avx512_vnni: every CPU with AVX512_BF16 has VNNI).
function(cpuformer_add_bf16_kernels target level base flags)
  cpuformer_add_level_kernels(${target} ${level} ${base} avx512 bf16 CPUFORMER_KERNEL_BF16 "${flags}")
endfunction()
