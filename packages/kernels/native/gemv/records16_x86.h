// What the 256-bit kernels of the 16-row records (kernel_table.h: q4x16_x86.h, i8x16_avx2.cc) share:
// a record's 64-byte vector is two 256-bit halves of 8 rows each, and so are its 16 scales. Include
// only from translation units built for AVX2.
#pragma once
#include <immintrin.h>

#include "cpu/kernel_table.h"

namespace ie {
namespace {

// Row scales of lanes 8h..8h+7 of the 16 scales at p.
inline __m256 record_half_scales(const uint8_t* p, ScaleType t, int h) {
  if (t == ScaleType::F32) return _mm256_loadu_ps(reinterpret_cast<const float*>(p) + 8 * h);
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * h));
  return t == ScaleType::F16 ? _mm256_cvtph_ps(v) : _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(v), 16));
}

}  // namespace
}  // namespace ie
