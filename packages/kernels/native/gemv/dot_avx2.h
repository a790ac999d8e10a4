// The AVX2 four-byte dot products of the int8-activation kernels: vpmaddubsw (unsigned codes x
// signed activations, pairs summed into 16 bits) then vpmaddwd against ones (into 32 bits), as
// llama.cpp's Q4_0 x Q8_0. Shared by the GEMVs (int8act_avx2.cc) and the prefill GEMM
// (gemm_q8_avx2.cc); include only from translation units built for AVX2.
#pragma once
#include <immintrin.h>

namespace ie {
namespace {

struct DotAvx2 {
  // The GEMM's q4 products summed in 16 bits for this many 4-byte steps before one widening: a
  // vpmaddubsw pair of codes 0..15 and x in -128..127 is at most 3840 in magnitude, eight 30720.
  static constexpr int kSteps16 = 8;
  static __m256i products16(__m256i w, __m256i x) { return _mm256_maddubs_epi16(w, x); }
  static __m256i add16(__m256i a, __m256i b) { return _mm256_add_epi16(a, b); }
  static __m256i widen_add(__m256i acc, __m256i p16) { return _mm256_add_epi32(acc, widen(p16)); }
  // acc + the products of two 16-bit pairs per 32-bit lane (the GEMM's i8 weights, widened).
  static __m256i add_pairs16(__m256i acc, __m256i w16, __m256i x16) { return _mm256_add_epi32(acc, _mm256_madd_epi16(w16, x16)); }
  static __m256i widen(__m256i p16) { return _mm256_madd_epi16(p16, _mm256_set1_epi16(1)); }
  // Sum of 8 products per 32-bit lane: 4 from (lo, xl) and 4 from (hi, xh); 16-bit partials stay below 2 * 2 * 15 * 127.
  static __m256i pair(__m256i lo, __m256i xl, __m256i hi, __m256i xh) { return widen(_mm256_add_epi16(_mm256_maddubs_epi16(lo, xl), _mm256_maddubs_epi16(hi, xh))); }
  // Four such pairs: 16-bit partials stay below 4 * 2 * 15 * 127 = 15240.
  static __m256i quad(__m256i a, __m256i xa, __m256i b, __m256i xb, __m256i c, __m256i xc, __m256i d, __m256i xd) {
    return widen(_mm256_add_epi16(_mm256_add_epi16(_mm256_maddubs_epi16(a, xa), _mm256_maddubs_epi16(b, xb)), _mm256_add_epi16(_mm256_maddubs_epi16(c, xc), _mm256_maddubs_epi16(d, xd))));
  }
  static __m256i single(__m256i u, __m256i s) { return widen(_mm256_maddubs_epi16(u, s)); }
  // acc + single(w, x): the GEMM's accumulating form (gemm_q8_x86.h).
  static __m256i dot(__m256i acc, __m256i w, __m256i x) { return _mm256_add_epi32(acc, single(w, x)); }
  // Signed weights: |w| as the unsigned operand, the sign moved onto x (|w| <= 128, so pairs stay below 2^15).
  static __m256i signed_single(__m256i w, __m256i x) { return widen(_mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(x, w))); }
  // s + the sums of four such products (a, xa) .. (d, xd): 16-bit partials below 4 * 2 * 15 * 127, one widening.
  static __m256i acc_quad(__m256i s, __m256i a, __m256i xa, __m256i b, __m256i xb, __m256i c, __m256i xc, __m256i d, __m256i xd) {
    return _mm256_add_epi32(s, quad(a, xa, b, xb, c, xc, d, xd));
  }
};

}  // namespace
}  // namespace ie
