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

}  // namespace
}  // namespace ie::simd
