// The int8-activation prefill GEMM (gemm_q8_x86.h) on AVX2: 8 weight rows per register, 6 tokens
// per tile. Symmetric q4: the four-byte dot product as vpmaddubsw (pairs into int16: at most
// 2 * 15 * 128, no saturation with codes 0..15), eight of them summed in 16 bits, then vpmaddwd
// against ones. i8: codes and x widened to 16 bits, vpmaddwd.
#include "gemm/gemm_q8_x86.h"
#include "gemv/dot_avx2.h"

namespace ie {
namespace {

void gemm_q4_q8_avx2(const WeightRows& w, int rows, const int8_t* xq, ptrdiff_t ldq, const float* xd, ptrdiff_t ldd, const int32_t* xz, ptrdiff_t ldz, int M, float* y,
                     ptrdiff_t ldy, bool acc, uint8_t* scratch) {
  Q8Gemm<Int8x32<DotAvx2>>::run(w, rows, xq, ldq, xd, ldd, xz, ldz, M, y, ldy, acc, scratch);
}
void gemm_i8_q8_avx2(const WeightRows& w, int rows, const int8_t* xq, ptrdiff_t ldq, const float* xd, ptrdiff_t ldd, const int32_t* xz, ptrdiff_t ldz, int M, float* y,
                     ptrdiff_t ldy, bool acc, uint8_t* scratch) {
  Q8Gemm<Int8x32<DotAvx2>, true>::run(w, rows, xq, ldq, xd, ldd, xz, ldz, M, y, ldy, acc, scratch);
}

void gemm_iq4_nl_q8_avx2(const WeightRows& w, int rows, const int8_t* xq, ptrdiff_t ldq, const float* xd, ptrdiff_t ldd, const int32_t* xz, ptrdiff_t ldz, int M,
                         float* y, ptrdiff_t ldy, bool acc, uint8_t* scratch) {
  Q8Gemm<Int8x32<DotAvx2>, true, Iq4NlBlock>::run(w, rows, xq, ldq, xd, ldd, xz, ldz, M, y, ldy, acc, scratch);
}
void gemm_mxfp4_q8_avx2(const WeightRows& w, int rows, const int8_t* xq, ptrdiff_t ldq, const float* xd, ptrdiff_t ldd, const int32_t* xz, ptrdiff_t ldz, int M,
                       float* y, ptrdiff_t ldy, bool acc, uint8_t* scratch) {
  Q8Gemm<Int8x32<DotAvx2>, true, Mxfp4Block>::run(w, rows, xq, ldq, xd, ldd, xz, ldz, M, y, ldy, acc, scratch);
}

}  // namespace

void register_gemm_q8_avx2(KernelTable& t) {
  t.gemm_q8[(int)WeightType::Q4] = gemm_q4_q8_avx2;
  t.gemm_q8[(int)WeightType::I8] = gemm_i8_q8_avx2;
  t.gemm_q8[(int)WeightType::IQ4_NL] = gemm_iq4_nl_q8_avx2;
  t.gemm_q8[(int)WeightType::MXFP4] = gemm_mxfp4_q8_avx2;
  t.gemm_q8_name = "8x6 avx2";
}

}  // namespace ie
