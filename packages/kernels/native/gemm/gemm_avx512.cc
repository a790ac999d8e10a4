// The packed GEMM on AVX-512: a 14x32 register block (28 accumulators, 2 weight vectors and one
// broadcast: 31 of the 32 zmm registers), K blocks of 256 (a 32 KiB weight panel).
#include "gemm/gemm_packed.h"

namespace ie {

void register_gemm_avx512(KernelTable& t) { register_gemm_packed<VecAvx512, 14, 2, 256>(t, "14x32 avx512"); }

}  // namespace ie
