// Helpers for the AVX2 variants only (included by *_avx2.cc, compiled with -mavx2 -mfma -mf16c).
#pragma once
#include <immintrin.h>

#include <cstring>

#include "cpu/kernel_table.h"
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


using simd::scale_at;

}  // namespace ie::avx2
