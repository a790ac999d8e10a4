// Helpers for the AVX-512 variants only (included by *_avx512.cc, compiled with -mavx512*).
#pragma once
#include <immintrin.h>

#include <cstring>

#include "cpu/kernel_table.h"
#include "cpu/simd_common.h"

namespace ie::avx512 {

inline __mmask16 tail_mask(int n) { return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1); }

// 16 floats from x[0..n) (n may be < 16; missing lanes are 0, nothing past n is read).
inline __m512 load_f32(const float* x, int n) { return n >= 16 ? _mm512_loadu_ps(x) : _mm512_maskz_loadu_ps(tail_mask(n), x); }

inline __m512 load_f16(const uint8_t* p, int n) {
  const __m256i h = n >= 16 ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)) : _mm256_maskz_loadu_epi16(tail_mask(n), p);
  return _mm512_cvtph_ps(h);
}

inline __m512 load_bf16(const uint8_t* p, int n) {
  const __m256i h = n >= 16 ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)) : _mm256_maskz_loadu_epi16(tail_mask(n), p);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

using simd::scale_at;

}  // namespace ie::avx512
