// Helpers for the AVX2 variants only (included by *_avx2.cc, compiled with -mavx2 -mfma -mf16c).
#pragma once
#include <immintrin.h>

#include <cstring>

#include "cpu/kernels.h"
#include "cpu/simd_common.h"

namespace ie::avx2 {

// 8 floats from x[0..n): lanes past n are 0 and nothing past n is read.
inline __m256 load_f32(const float* x, int n) {
  if (n >= 8) return _mm256_loadu_ps(x);
  float tmp[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::memcpy(tmp, x, sizeof(float) * n);
  return _mm256_loadu_ps(tmp);
}

inline void store_f32(float* y, __m256 v, int n) {
  if (n >= 8) return _mm256_storeu_ps(y, v);
  float tmp[8];
  _mm256_storeu_ps(tmp, v);
  std::memcpy(y, tmp, sizeof(float) * n);
}

inline __m128i load_bytes(const void* p, int nbytes) {
  if (nbytes >= 16) return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  alignas(16) uint8_t tmp[16] = {0};
  std::memcpy(tmp, p, nbytes);
  return _mm_load_si128(reinterpret_cast<const __m128i*>(tmp));
}

inline __m256 load_f16(const uint8_t* p, int n) { return _mm256_cvtph_ps(load_bytes(p, 2 * (n < 8 ? n : 8))); }
inline __m256 load_bf16(const uint8_t* p, int n) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(load_bytes(p, 2 * (n < 8 ? n : 8))), 16));
}

inline float hsum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

inline float hmax(__m256 v) {
  const __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_max_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_max_ss(t, _mm_movehdup_ps(t)));
}

using simd::scale_at;

// exp(x), 8 lanes: same reduction and polynomial as the AVX-512 variant; 2^n built in the exponent bits.
inline __m256 exp_ps(__m256 x) {
  // Below about -87.3 the result is under the smallest normal float: return 0 there.
  const __m256 keep = _mm256_cmp_ps(x, _mm256_set1_ps(-87.3365447504f), _CMP_GE_OQ);
  x = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(88.3762626647949f)), _mm256_set1_ps(-87.3365447504f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  // 2^n for n in [-126, 128): add n to the exponent field (n = 128 only at the clamp, handled by splitting).
  const __m256i ni = _mm256_cvtps_epi32(n);
  const __m256i half = _mm256_srai_epi32(ni, 1);
  const __m256 p1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(half, _mm256_set1_epi32(127)), 23));
  const __m256 p2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(ni, half), _mm256_set1_epi32(127)), 23));
  return _mm256_and_ps(_mm256_mul_ps(_mm256_mul_ps(p, p1), p2), keep);
}

}  // namespace ie::avx2
