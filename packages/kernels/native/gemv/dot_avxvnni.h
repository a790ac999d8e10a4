// The AVX-VNNI four-byte dot products of the int8-activation kernels: 256-bit vpdpbusd (Alder Lake
// and later, Zen 5). Shared by the GEMVs (int8act_avxvnni.cc) and the prefill GEMM
// (gemm_q8_avxvnni.cc); include only from translation units built for AVX-VNNI.
#pragma once
#include <immintrin.h>

namespace ie {
namespace {

struct DotAvxVnni {
  static constexpr int kSteps16 = 0;  // vpdpbusd sums into 32 bits itself (gemm_q8_x86.h)
  static __m256i pair(__m256i lo, __m256i xl, __m256i hi, __m256i xh) { return _mm256_dpbusd_avx_epi32(_mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), lo, xl), hi, xh); }
  static __m256i quad(__m256i a, __m256i xa, __m256i b, __m256i xb, __m256i c, __m256i xc, __m256i d, __m256i xd) {
    return _mm256_dpbusd_avx_epi32(_mm256_dpbusd_avx_epi32(pair(a, xa, b, xb), c, xc), d, xd);
  }
  static __m256i single(__m256i u, __m256i s) { return _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), u, s); }
  // acc + single(w, x) in one instruction: the GEMM's accumulating form (gemm_q8_x86.h).
  static __m256i dot(__m256i acc, __m256i w, __m256i x) { return _mm256_dpbusd_avx_epi32(acc, w, x); }
  static __m256i signed_single(__m256i w, __m256i x) { return _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), _mm256_abs_epi8(w), _mm256_sign_epi8(x, w)); }
  // s + the sums of four such products: four accumulating vpdpbusd.
  static __m256i acc_quad(__m256i s, __m256i a, __m256i xa, __m256i b, __m256i xb, __m256i c, __m256i xc, __m256i d, __m256i xd) {
    return dot(dot(dot(dot(s, a, xa), b, xb), c, xc), d, xd);
  }
};

}  // namespace
}  // namespace ie
