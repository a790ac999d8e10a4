// The packed GEMM on AVX2 + FMA: a 6x16 register block (12 accumulators, 2 weight vectors and one
// broadcast: 15 of the 16 ymm registers), K blocks of 256 so a 16 KiB weight panel stays in L1.
#include "gemm/gemm_packed.h"

namespace ie {

void register_gemm_avx2(KernelTable& t) {
  register_gemm_packed<VecAvx2, 6, 2, 256>(t, "6x16 avx2");
  // No 256-bit int8 GEMM yet: the FP32 GEMM beats the scalar int8 reference by far.
  t.gemm_q8[(int)WeightType::Q4] = nullptr;
  t.gemm_q8_name = "none";
}

}  // namespace ie
