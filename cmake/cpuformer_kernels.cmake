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

# cpuformer_add_vnni_kernels(<target> <level> <base> <flags>)
# A VNNI level (avx2_vnni, avx512_vnni): only csrc/kernels/vnni/*.cc, compiled with the base ISA's vectors plus
# the VNNI flag, in the level's own namespace; its kernel table starts from the base level's table.
function(cpuformer_add_vnni_kernels target level base flags)
  file(GLOB vnni_sources CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/csrc/kernels/vnni/*.cc)
  add_library(${target} OBJECT ${vnni_sources})
  target_include_directories(${target} PRIVATE ${PROJECT_SOURCE_DIR}/csrc)
  string(TOUPPER ${base} base_upper)
  target_compile_definitions(${target} PRIVATE CPUFORMER_KERNEL_ISA=${level} CPUFORMER_KERNEL_ISA_${base_upper}=1
    CPUFORMER_KERNEL_BASE=${base} CPUFORMER_KERNEL_VNNI=1)
  target_compile_options(${target} PRIVATE -O3 -fno-math-errno -ffp-contract=fast ${flags})
  set_target_properties(${target} PROPERTIES POSITION_INDEPENDENT_CODE ON)
endfunction()
