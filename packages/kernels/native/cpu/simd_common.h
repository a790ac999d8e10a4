// Helpers shared by the SIMD variants (AVX2 and AVX-512 targets are both built with -mf16c).
#pragma once
#include <immintrin.h>

#include <cstring>

#include "cpu/kernel_table.h"

namespace ie::simd {
// Internal linkage: this header is compiled into translation units with different -m flags, and
// an inline function with external linkage could be resolved to the AVX-512 copy from AVX2 code.
namespace {

// One scale of a quantized group, as f32 (F16C for f16).
inline float scale_at(const uint8_t* p, ScaleType t) {
  if (t == ScaleType::F32) {
    float f;
    std::memcpy(&f, p, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, p, 2);
  if (t == ScaleType::F16) return _cvtsh_ss(h);
  uint32_t u = (uint32_t)h << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// A row's n scales as f32 (f16 eight at a time through F16C).
inline void row_scales_f32(const uint8_t* s, ScaleType t, int n, float* out) {
  int g = 0;
  if (t == ScaleType::F16)
    for (; g + 8 <= n; g += 8) _mm256_storeu_ps(out + g, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 2 * g))));
  const int sb = scale_bytes(t);
  for (; g < n; g++) out[g] = scale_at(s + g * sb, t);
}

}  // namespace
}  // namespace ie::simd
