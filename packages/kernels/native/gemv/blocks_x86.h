// Block-type helpers shared by the 256-bit x86 kernels (FP32-activation blocks_avx2.cc and the
// int8-activation int8act_blocks_x86.h). Internal linkage: included by translation units built with
// different -m flags.
#pragma once
#include <immintrin.h>

#include <cstring>

#include "gemv/blocks.h"
#include "layout/layout.h"

namespace ie {
namespace {

// A q4_k / q5_k block's eight 6-bit scales and eight mins as bytes (sc[j] in byte j of *sc, m[j]
// of *m), unpacked on 32-bit words: bytes 0-3 hold sc[0..3] (low 6 bits) and the top bits of
// sc[4..7]; 4-7 the same for the mins; 8-11 the low nibbles of sc[4..7] and, above them, of m[4..7].
inline void k_scale_bytes(const uint8_t* s, uint64_t* sc, uint64_t* m) {
  uint32_t a, b, c;
  std::memcpy(&a, s, 4);
  std::memcpy(&b, s + 4, 4);
  std::memcpy(&c, s + 8, 4);
  const uint32_t sc_lo = a & 0x3f3f3f3f, m_lo = b & 0x3f3f3f3f;
  const uint32_t sc_hi = (c & 0x0f0f0f0f) | ((a >> 2) & 0x30303030), m_hi = ((c >> 4) & 0x0f0f0f0f) | ((b >> 2) & 0x30303030);
  *sc = (uint64_t)sc_hi << 32 | sc_lo;
  *m = (uint64_t)m_hi << 32 | m_lo;
}

// A q4_k / q5_k block's eight 6-bit scales and eight mins as f32.
inline void k_scales8(const uint8_t* s, __m256* sc, __m256* m) {
  uint64_t a, b;
  k_scale_bytes(s, &a, &b);
  *sc = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)a)));
  *m = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)b)));
}

inline float f16_at(const uint8_t* p) { return _cvtsh_ss((unsigned short)(p[0] | (p[1] << 8))); }

// Lane i of v in every lane.
inline __m256 lane_of(__m256 v, int i) { return _mm256_permutevar8x32_ps(v, _mm256_set1_epi32(i)); }

// A 32-element table block's levels as int8 (iq4_nl, mxfp4), in element order: lo = elements
// 0..15, hi = 16..31.
inline void iq4_levels(const uint8_t* qs, __m128i* lo, __m128i* hi, const int8_t* levels = kIq4NlLevels) {
  const __m128i table = _mm_loadu_si128(reinterpret_cast<const __m128i*>(levels)), m4 = _mm_set1_epi8(0x0f);
  const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  *lo = _mm_shuffle_epi8(table, _mm_and_si128(q, m4));
  *hi = _mm_shuffle_epi8(table, _mm_and_si128(_mm_srli_epi16(q, 4), m4));
}

// A table block's scale in one load: mxfp4's from the table of E8M0 halves (its levels are doubled
// E2M1 values), iq4_nl's f16 through F16C.
inline float lut4_scale(Mxfp4Block, const uint8_t* b) { return kE8m0Halves.v[b[0]]; }
inline float lut4_scale(Iq4NlBlock, const uint8_t* b) { return f16_at(b); }

}  // namespace
}  // namespace ie
