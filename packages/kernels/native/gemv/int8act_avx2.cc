// The int8-activation GEMV on AVX2: vpmaddubsw (unsigned codes x signed activations, pairs
// summed into 16 bits) then vpmaddwd against ones (into 32 bits), as llama.cpp's Q4_0 x Q8_0.
#include "gemv/int8act_blocks_x86.h"

namespace ie {
namespace {

struct DotAvx2 {
  static __m256i widen(__m256i p16) { return _mm256_madd_epi16(p16, _mm256_set1_epi16(1)); }
  // Sum of 8 products per 32-bit lane: 4 from (lo, xl) and 4 from (hi, xh); 16-bit partials stay below 2 * 2 * 15 * 127.
  static __m256i pair(__m256i lo, __m256i xl, __m256i hi, __m256i xh) { return widen(_mm256_add_epi16(_mm256_maddubs_epi16(lo, xl), _mm256_maddubs_epi16(hi, xh))); }
  // Four such pairs: 16-bit partials stay below 4 * 2 * 15 * 127 = 15240.
  static __m256i quad(__m256i a, __m256i xa, __m256i b, __m256i xb, __m256i c, __m256i xc, __m256i d, __m256i xd) {
    return widen(_mm256_add_epi16(_mm256_add_epi16(_mm256_maddubs_epi16(a, xa), _mm256_maddubs_epi16(b, xb)), _mm256_add_epi16(_mm256_maddubs_epi16(c, xc), _mm256_maddubs_epi16(d, xd))));
  }
  static __m256i single(__m256i u, __m256i s) { return widen(_mm256_maddubs_epi16(u, s)); }
  // Signed weights: |w| as the unsigned operand, the sign moved onto x (|w| <= 128, so pairs stay below 2^15).
  static __m256i signed_single(__m256i w, __m256i x) { return widen(_mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(x, w))); }
};

void quantize_x_q8_avx2(const float* x, int K, int block, int8_t* q, float* d) { Q8Kernels<DotAvx2>::quantize_x(x, K, block, q, d); }
void gemv_i8_q8_avx2(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) { Q8Kernels<DotAvx2>::gemv_i8(w, xq, xd, y, rows, acc); }
void gemv_q4_q8_avx2(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) { Q8Kernels<DotAvx2>::gemv_q4(w, xq, xd, y, rows, acc); }
void gemv_rows_q4_q8_avx2(const WeightRows& w, const int8_t* xq, const float* xd, ptrdiff_t ldq, ptrdiff_t ldd, int M, float* y, ptrdiff_t ldy, int rows, bool acc) {
  Q8Kernels<DotAvx2>::gemv_q4_many(w, xq, xd, ldq, ldd, M, y, ldy, rows, acc);
}

void gemv_q4_k_q8_avx2(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) { Q8BlockKernels<DotAvx2>::k45<false>(w, xq, xd, y, rows, acc); }
void gemv_q5_k_q8_avx2(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) { Q8BlockKernels<DotAvx2>::k45<true>(w, xq, xd, y, rows, acc); }
void gemv_q6_k_q8_avx2(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) { Q8BlockKernels<DotAvx2>::q6_k(w, xq, xd, y, rows, acc); }
void gemv_iq4_nl_q8_avx2(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) { Q8BlockKernels<DotAvx2>::iq4_nl(w, xq, xd, y, rows, acc); }
void gemv_mxfp4_q8_avx2(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) { Q8BlockKernels<DotAvx2>::mxfp4(w, xq, xd, y, rows, acc); }

}  // namespace

void register_q8_avx2(KernelTable& t) {
  t.q8_variant = "avx2";
  t.quantize_x = quantize_x_q8_avx2;
  t.gemv_q8[(int)WeightType::I8] = gemv_i8_q8_avx2;
  t.gemv_q8[(int)WeightType::Q4] = gemv_q4_q8_avx2;
  t.gemv_q8_rows[(int)WeightType::Q4] = gemv_rows_q4_q8_avx2;
  t.gemv_q8[(int)WeightType::Q4_K] = gemv_q4_k_q8_avx2;
  t.gemv_q8[(int)WeightType::Q5_K] = gemv_q5_k_q8_avx2;
  t.gemv_q8[(int)WeightType::Q6_K] = gemv_q6_k_q8_avx2;
  t.gemv_q8[(int)WeightType::IQ4_NL] = gemv_iq4_nl_q8_avx2;
  t.gemv_q8[(int)WeightType::MXFP4] = gemv_mxfp4_q8_avx2;
}

}  // namespace ie
