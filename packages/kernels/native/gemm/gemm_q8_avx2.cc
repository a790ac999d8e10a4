// The int8-activation prefill GEMM (gemm_q8_x86.h) on AVX2: 8 weight rows per register, the
// four-byte dot product as vpmaddubsw (pairs into int16: at most 2 * 15 * 127, no saturation with
// codes 0..15) then vpmaddwd against ones.
#include "gemm/gemm_q8_x86.h"
#include "gemv/dot_avx2.h"

namespace ie {
namespace {

void gemm_q4_q8_avx2(const WeightRows& w, int rows, const int8_t* xq, ptrdiff_t ldq, const float* xd, ptrdiff_t ldd, const int32_t* xz, ptrdiff_t ldz, int M, float* y,
                     ptrdiff_t ldy, bool acc, uint8_t* scratch) {
  Q8Gemm<Int8x32<DotAvx2>>::run(w, rows, xq, ldq, xd, ldd, xz, ldz, M, y, ldy, acc, scratch);
}

}  // namespace

void register_gemm_q8_avx2(KernelTable& t) {
  t.gemm_q8[(int)WeightType::Q4] = gemm_q4_q8_avx2;
  // No i8 GEMM without vpdpbusd (gemm_q8_x86.h): the FP32 GEMM beats the scalar reference's.
  t.gemm_q8[(int)WeightType::I8] = nullptr;
  t.gemm_q8_name = "8x8 avx2";
}

}  // namespace ie
