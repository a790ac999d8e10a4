// Vector traits: the handful of f32 operations that width-generic kernels (the decode ops, the
// packed GEMM micro-kernel) are written over, for AVX2 (8 lanes) and AVX-512 (16 lanes). A kernel
// written once over V is instantiated in each ISA's translation unit; everything here has internal
// linkage, so code compiled with -mavx512f never stands in for the AVX2 copy at link time.
#pragma once
#include <immintrin.h>

#include <cstring>

// Unrolls a loop over a register block completely, early enough that arrays of vector registers
// stay in registers (GCC spills them to the stack when it unrolls such loops late).
#define IE_UNROLL _Pragma("GCC unroll 32")

namespace ie {
namespace {

// e^r for r = x - n ln 2 (ln 2 split in two for accuracy), |r| <= ln2/2: a degree-6 polynomial,
// ~2 ulp. Shared by the traits' exp; each scales the result by 2^n its own way.
template <class V>
typename V::reg exp_reduced(V, typename V::reg x, typename V::reg n) {
  typename V::reg r = V::fmadd(n, V::set1(-0.693359375f), x);
  r = V::fmadd(n, V::set1(2.12194440e-4f), r);
  typename V::reg p = V::set1(1.9875691500e-4f);
  p = V::fmadd(p, r, V::set1(1.3981999507e-3f));
  p = V::fmadd(p, r, V::set1(8.3334519073e-3f));
  p = V::fmadd(p, r, V::set1(4.1665795894e-2f));
  p = V::fmadd(p, r, V::set1(1.6666665459e-1f));
  p = V::fmadd(p, r, V::set1(5.0000001201e-1f));
  return V::fmadd(p, V::mul(r, r), V::add(r, V::set1(1.0f)));
}

#if defined(__AVX2__) && defined(__FMA__)
struct VecAvx2 {
  using reg = __m256;
  static constexpr int lanes = 8;
  static reg zero() { return _mm256_setzero_ps(); }
  static reg set1(float v) { return _mm256_set1_ps(v); }
  static reg broadcast(const float* p) { return _mm256_broadcast_ss(p); }
  static reg load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, reg v) { _mm256_storeu_ps(p, v); }
  // Lanes past n are 0; nothing past p[n - 1] is read or written.
  static reg load_part(const float* p, int n) {
    if (n >= lanes) return load(p);
    float tmp[lanes] = {};
    if (n > 0) std::memcpy(tmp, p, sizeof(float) * n);
    return load(tmp);
  }
  static void store_part(float* p, reg v, int n) {
    if (n >= lanes) return store(p, v);
    float tmp[lanes];
    store(tmp, v);
    if (n > 0) std::memcpy(p, tmp, sizeof(float) * n);
  }
  static reg keep_part(reg v, int n) {
    if (n >= lanes) return v;
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_and_ps(v, _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(n), idx)));
  }
  // 8 f16 values (F16C), or the first n of them.
  static reg load_f16(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
  static reg load_f16_part(const uint16_t* p, int n) {
    if (n >= lanes) return load_f16(p);
    uint16_t tmp[lanes] = {};
    if (n > 0) std::memcpy(tmp, p, 2 * n);
    return load_f16(tmp);
  }
  static void store_f16_part(uint16_t* p, reg v, int n) {
    const __m128i h = _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    if (n >= lanes) return _mm_storeu_si128(reinterpret_cast<__m128i*>(p), h);
    uint16_t tmp[lanes];
    _mm_storeu_si128(reinterpret_cast<__m128i*>(tmp), h);
    if (n > 0) std::memcpy(p, tmp, 2 * n);
  }
  static reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
  static reg sub(reg a, reg b) { return _mm256_sub_ps(a, b); }
  static reg mul(reg a, reg b) { return _mm256_mul_ps(a, b); }
  static reg div(reg a, reg b) { return _mm256_div_ps(a, b); }
  static reg max(reg a, reg b) { return _mm256_max_ps(a, b); }
  static reg min(reg a, reg b) { return _mm256_min_ps(a, b); }
  static reg fmadd(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
  static float hsum(reg v) {
    const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
  }
  static float hmax(reg v) {
    const __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 t = _mm_max_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_max_ss(t, _mm_movehdup_ps(t)));
  }
  // exp(x): range reduction by ln 2, degree-6 polynomial, 2^n built in the exponent bits; 0 below
  // about -87.3 (the smallest normal float), ~2 ulp elsewhere.
  static reg exp(reg x) {
    const reg keep = _mm256_cmp_ps(x, set1(-87.3365447504f), _CMP_GE_OQ);
    x = _mm256_max_ps(_mm256_min_ps(x, set1(88.3762626647949f)), set1(-87.3365447504f));
    const reg n = _mm256_round_ps(mul(x, set1(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const reg p = exp_reduced(VecAvx2{}, x, n);
    // 2^n for n in [-126, 128]: split in two halves so n = 128 at the clamp stays representable.
    const __m256i ni = _mm256_cvtps_epi32(n);
    const __m256i half = _mm256_srai_epi32(ni, 1);
    const reg p1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(half, _mm256_set1_epi32(127)), 23));
    const reg p2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(ni, half), _mm256_set1_epi32(127)), 23));
    return _mm256_and_ps(mul(mul(p, p1), p2), keep);
  }
};
#endif

#if defined(__AVX512F__)
struct VecAvx512 {
  using reg = __m512;
  static constexpr int lanes = 16;
  static __mmask16 mask(int n) { return n >= 16 ? (__mmask16)0xffff : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1); }
  static reg zero() { return _mm512_setzero_ps(); }
  static reg set1(float v) { return _mm512_set1_ps(v); }
  static reg broadcast(const float* p) { return _mm512_set1_ps(*p); }
  static reg load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, reg v) { _mm512_storeu_ps(p, v); }
  static reg load_part(const float* p, int n) { return n >= lanes ? load(p) : _mm512_maskz_loadu_ps(mask(n), p); }
  static void store_part(float* p, reg v, int n) { n >= lanes ? store(p, v) : _mm512_mask_storeu_ps(p, mask(n), v); }
  static reg keep_part(reg v, int n) { return n >= lanes ? v : _mm512_maskz_mov_ps(mask(n), v); }
  static reg load_f16(const uint16_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
  static reg load_f16_part(const uint16_t* p, int n) { return n >= lanes ? load_f16(p) : _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask(n), p)); }
  static void store_f16_part(uint16_t* p, reg v, int n) {
    const __m256i h = _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    if (n >= lanes) return _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), h);
    _mm256_mask_storeu_epi16(p, mask(n), h);
  }
  static reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
  static reg sub(reg a, reg b) { return _mm512_sub_ps(a, b); }
  static reg mul(reg a, reg b) { return _mm512_mul_ps(a, b); }
  static reg div(reg a, reg b) { return _mm512_div_ps(a, b); }
  static reg max(reg a, reg b) { return _mm512_max_ps(a, b); }
  static reg min(reg a, reg b) { return _mm512_min_ps(a, b); }
  static reg fmadd(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
  static float hsum(reg v) { return _mm512_reduce_add_ps(v); }
  static float hmax(reg v) { return _mm512_reduce_max_ps(v); }
  // exp(x): the same reduction and polynomial as the AVX2 trait, scaled by 2^n with vscalefps.
  static reg exp(reg x) {
    x = _mm512_max_ps(_mm512_min_ps(x, set1(88.3762626647949f)), set1(-103.972084045410f));
    const reg n = _mm512_roundscale_ps(mul(x, set1(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    return _mm512_scalef_ps(exp_reduced(VecAvx512{}, x, n), n);
  }
};
#endif

}  // namespace
}  // namespace ie
