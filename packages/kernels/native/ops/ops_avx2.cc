// The forward pass's vector ops on AVX2 + FMA + F16C (8 lanes): ops_simd.h over VecAvx2.
#include "ops/ops_simd.h"

namespace ie {

void register_ops_avx2(KernelTable& t) { register_ops_simd<VecAvx2>(t); }

}  // namespace ie
