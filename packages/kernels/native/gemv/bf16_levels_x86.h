// 4-bit codes times FP32 activations without an int -> float conversion, for the AVX2 kernels
// whose codes index a 16-entry table of small integers (iq4_nl and mxfp4 levels). Every such
// level is exact in bf16 (at most 8 significant bits), so two vpshufb byte tables give each
// level's bf16 high and low bytes, an unpack pairs them into words, and a shift or a mask puts
// each word in the high half of a 32-bit lane: an f32. Lanes then hold the elements 2j (shifted)
// and 2j + 1 (masked), so x is staged once per call in that order (stage_pairs). On Zen 3: 15
// vector operations per 32 weights where the lookup, sign extension and conversion took 22 (mxfp4:
// 1.37-1.40x on one core, from L3). q4's codes need no lookup: there zero extension and
// conversion (14 operations per 32 weights) measured 1.06x this, so q4 keeps them. Internal
// linkage: included by translation units built with AVX2 flags.
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace ie {
namespace {

// The bf16 bits of a small integer (|v| < 256: exact).
constexpr uint16_t bf16_of_int(int v) {
  if (v == 0) return 0;
  const uint16_t sign = v < 0 ? 0x8000 : 0;
  const int a = v < 0 ? -v : v;
  int e = 0;
  while ((a >> (e + 1)) != 0) e++;
  return (uint16_t)(sign | (e + 127) << 7 | ((a << (7 - e)) & 0x7f));
}

// A level table's bf16 bytes, low and high, repeated in both 128-bit lanes for vpshufb.
struct Bf16Bytes {
  alignas(32) uint8_t lo[32], hi[32];
};
template <typename Level>
constexpr Bf16Bytes bf16_bytes(const Level* levels) {
  Bf16Bytes t{};
  for (int i = 0; i < 32; i++) {
    const uint16_t b = bf16_of_int(levels[i & 15]);
    t.lo[i] = (uint8_t)(b & 0xff);
    t.hi[i] = (uint8_t)(b >> 8);
  }
  return t;
}

// 32 elements' x (16 met by the low nibbles of 16 code bytes, 16 by the high ones) in the lane
// order of Bf16Levels::dot: low elements 0 2 4 6, high 0 2 4 6, then the odd ones after each, then
// the same from 8.
inline void stage_pairs(const float* low, const float* high, float* out) {
  for (int h = 0; h < 2; h++) {
    const __m256 a = _mm256_loadu_ps(low + 8 * h), c = _mm256_loadu_ps(high + 8 * h);
    const __m256 lo = _mm256_permute2f128_ps(a, c, 0x20), hi = _mm256_permute2f128_ps(a, c, 0x31);
    _mm256_store_ps(out + 16 * h, _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0)));
    _mm256_store_ps(out + 16 * h + 8, _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1)));
  }
}

class Bf16Levels {
 public:
  explicit Bf16Levels(const Bf16Bytes& t)
      : lo_(_mm256_load_si256(reinterpret_cast<const __m256i*>(t.lo))), hi_(_mm256_load_si256(reinterpret_cast<const __m256i*>(t.hi))) {}

  // The 32 products of 16 code bytes' levels with their staged x (stage_pairs), in 8 lanes: the
  // bytes in both 128-bit lanes, the high lane shifted to the high nibbles.
  __m256 dot(const uint8_t* codes, const float* xs) const {
    const __m256i q = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(codes)));
    const __m256i n = _mm256_and_si256(_mm256_srlv_epi32(q, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4)), _mm256_set1_epi8(0x0f));
    const __m256i lo = _mm256_shuffle_epi8(lo_, n), hi = _mm256_shuffle_epi8(hi_, n);
    const __m256i p0 = _mm256_unpacklo_epi8(lo, hi), p1 = _mm256_unpackhi_epi8(lo, hi), high = _mm256_set1_epi32((int)0xffff0000u);
    __m256 a = _mm256_mul_ps(_mm256_castsi256_ps(_mm256_slli_epi32(p0, 16)), _mm256_load_ps(xs));
    a = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_and_si256(p0, high)), _mm256_load_ps(xs + 8), a);
    a = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(p1, 16)), _mm256_load_ps(xs + 16), a);
    return _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_and_si256(p1, high)), _mm256_load_ps(xs + 24), a);
  }

 private:
  __m256i lo_, hi_;
};

}  // namespace
}  // namespace ie
