// The forward pass's vector ops on AVX-512 (16 lanes): ops_simd.h over VecAvx512.
#include "ops/ops_simd.h"

namespace ie {

void register_ops_avx512(KernelTable& t) { register_ops_simd<VecAvx512>(t); }

}  // namespace ie
