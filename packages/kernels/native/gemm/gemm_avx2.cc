// The packed GEMM on AVX2 + FMA: a 6x16 register block (12 accumulators, 2 weight vectors and one
// broadcast: 15 of the 16 ymm registers), K blocks of 256 so a 16 KiB weight panel stays in L1.
#include "gemm/gemm_packed.h"

namespace ie {

void register_gemm_q8_avx2(KernelTable& t);  // gemm_q8_avx2.cc

void register_gemm_avx2(KernelTable& t) {
  register_gemm_packed<VecAvx2, 6, 2, 256>(t, "6x16 avx2");
  register_gemm_q8_avx2(t);
}

}  // namespace ie
