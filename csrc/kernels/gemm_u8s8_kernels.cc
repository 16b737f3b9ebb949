// gemm_u8s8_kernels.cc — int8 compute for this ISA without VNNI: the nibble kernel (AVX2, AVX-512) or plain int32
// loops (generic), and the activation quantizer. The body is gemm_u8s8_tile.h, shared with the VNNI levels.
#include "kernels/gemm_u8s8_tile.h"
