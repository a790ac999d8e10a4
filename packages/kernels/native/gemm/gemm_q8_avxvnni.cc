// The int8-activation prefill GEMM (gemm_q8_x86.h) on AVX-VNNI: 8 weight rows per register,
// 256-bit vpdpbusd.
#include "gemm/gemm_q8_x86.h"
#include "gemv/dot_avxvnni.h"

namespace ie {
namespace {

void gemm_q4_q8_avxvnni(const WeightRows& w, int rows, const int8_t* xq, ptrdiff_t ldq, const float* xd, ptrdiff_t ldd, const int32_t* xz, ptrdiff_t ldz, int M,
                        float* y, ptrdiff_t ldy, bool acc, uint8_t* scratch) {
  Q8Gemm<Int8x32<DotAvxVnni>>::run(w, rows, xq, ldq, xd, ldd, xz, ldz, M, y, ldy, acc, scratch);
}
void gemm_i8_q8_avxvnni(const WeightRows& w, int rows, const int8_t* xq, ptrdiff_t ldq, const float* xd, ptrdiff_t ldd, const int32_t* xz, ptrdiff_t ldz, int M, float* y,
                     ptrdiff_t ldy, bool acc, uint8_t* scratch) {
  Q8Gemm<Int8x32<DotAvxVnni>, true>::run(w, rows, xq, ldq, xd, ldd, xz, ldz, M, y, ldy, acc, scratch);
}

void gemm_iq4_nl_q8_avxvnni(const WeightRows& w, int rows, const int8_t* xq, ptrdiff_t ldq, const float* xd, ptrdiff_t ldd, const int32_t* xz, ptrdiff_t ldz, int M,
                         float* y, ptrdiff_t ldy, bool acc, uint8_t* scratch) {
  Q8Gemm<Int8x32<DotAvxVnni>, true, Iq4NlBlock>::run(w, rows, xq, ldq, xd, ldd, xz, ldz, M, y, ldy, acc, scratch);
}
void gemm_mxfp4_q8_avxvnni(const WeightRows& w, int rows, const int8_t* xq, ptrdiff_t ldq, const float* xd, ptrdiff_t ldd, const int32_t* xz, ptrdiff_t ldz, int M,
                       float* y, ptrdiff_t ldy, bool acc, uint8_t* scratch) {
  Q8Gemm<Int8x32<DotAvxVnni>, true, Mxfp4Block>::run(w, rows, xq, ldq, xd, ldd, xz, ldz, M, y, ldy, acc, scratch);
}

}  // namespace

void register_gemm_q8_avxvnni(KernelTable& t) {
  t.gemm_q8[(int)WeightType::Q4] = gemm_q4_q8_avxvnni;
  t.gemm_q8[(int)WeightType::I8] = gemm_i8_q8_avxvnni;
  t.gemm_q8[(int)WeightType::IQ4_NL] = gemm_iq4_nl_q8_avxvnni;
  t.gemm_q8[(int)WeightType::MXFP4] = gemm_mxfp4_q8_avxvnni;
  t.gemm_q8_name = "8x8 avxvnni";
}

}  // namespace ie
