// The int8-activation prefill GEMM (gemm_q8_x86.h: symmetric q4 and i8) on AVX-512 VNNI: 16 weight rows per register,
// 512-bit vpdpbusd.
#include "cpu/avx512_common.h"
#include "gemm/gemm_q8_x86.h"

namespace ie {
namespace {

struct Vnni512 {
  using V = __m512i;
  using F = __m512;
  static constexpr int kLanes = 16;
  static V from_lanes(const __m128i* l) { return _mm512_inserti32x4(_mm512_inserti32x4(_mm512_inserti32x4(_mm512_castsi128_si512(l[0]), l[1], 1), l[2], 2), l[3], 3); }
  static V unpacklo32(V a, V b) { return _mm512_unpacklo_epi32(a, b); }
  static V unpackhi32(V a, V b) { return _mm512_unpackhi_epi32(a, b); }
  static V unpacklo64(V a, V b) { return _mm512_unpacklo_epi64(a, b); }
  static V unpackhi64(V a, V b) { return _mm512_unpackhi_epi64(a, b); }
  static V set1_8(char c) { return _mm512_set1_epi8(c); }
  static V set1_32(int32_t v) { return _mm512_set1_epi32(v); }
  static V load(const void* p) { return _mm512_loadu_si512(p); }
  static void store(void* p, V v) { _mm512_storeu_si512(p, v); }
  static V and_(V a, V b) { return _mm512_and_si512(a, b); }
  static V xor_(V a, V b) { return _mm512_xor_si512(a, b); }
  static V srli32_4(V a) { return _mm512_srli_epi32(a, 4); }
  static V dot(V acc, V w, V x) { return _mm512_dpbusd_epi32(acc, w, x); }
  static constexpr int kSteps16 = 0;  // vpdpbusd sums into 32 bits itself
  static F zerof() { return _mm512_setzero_ps(); }
  static F loadf(const float* p) { return _mm512_loadu_ps(p); }
  static F set1f(float v) { return _mm512_set1_ps(v); }
  static F cvt(V v) { return _mm512_cvtepi32_ps(v); }
  static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F fmadd(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static void store_rows(float* c, F v, int n, bool acc) {
    const __mmask16 m = avx512::tail_mask(n);
    _mm512_mask_storeu_ps(c, m, acc ? _mm512_add_ps(_mm512_maskz_loadu_ps(m, c), v) : v);
  }
};

void gemm_q4_q8_avx512vnni(const WeightRows& w, int rows, const int8_t* xq, ptrdiff_t ldq, const float* xd, ptrdiff_t ldd, const int32_t* xz, ptrdiff_t ldz, int M,
                           float* y, ptrdiff_t ldy, bool acc, uint8_t* scratch) {
  Q8Gemm<Vnni512>::run(w, rows, xq, ldq, xd, ldd, xz, ldz, M, y, ldy, acc, scratch);
}
void gemm_i8_q8_avx512vnni(const WeightRows& w, int rows, const int8_t* xq, ptrdiff_t ldq, const float* xd, ptrdiff_t ldd, const int32_t* xz, ptrdiff_t ldz, int M,
                           float* y, ptrdiff_t ldy, bool acc, uint8_t* scratch) {
  Q8Gemm<Vnni512, true>::run(w, rows, xq, ldq, xd, ldd, xz, ldz, M, y, ldy, acc, scratch);
}

void gemm_iq4_nl_q8_avx512vnni(const WeightRows& w, int rows, const int8_t* xq, ptrdiff_t ldq, const float* xd, ptrdiff_t ldd, const int32_t* xz, ptrdiff_t ldz, int M,
                         float* y, ptrdiff_t ldy, bool acc, uint8_t* scratch) {
  Q8Gemm<Vnni512, true, Iq4NlBlock>::run(w, rows, xq, ldq, xd, ldd, xz, ldz, M, y, ldy, acc, scratch);
}
void gemm_mxfp4_q8_avx512vnni(const WeightRows& w, int rows, const int8_t* xq, ptrdiff_t ldq, const float* xd, ptrdiff_t ldd, const int32_t* xz, ptrdiff_t ldz, int M,
                       float* y, ptrdiff_t ldy, bool acc, uint8_t* scratch) {
  Q8Gemm<Vnni512, true, Mxfp4Block>::run(w, rows, xq, ldq, xd, ldd, xz, ldz, M, y, ldy, acc, scratch);
}

}  // namespace

void register_gemm_q8_avx512vnni(KernelTable& t) {
  t.gemm_q8[(int)WeightType::Q4] = gemm_q4_q8_avx512vnni;
  t.gemm_q8[(int)WeightType::I8] = gemm_i8_q8_avx512vnni;
  t.gemm_q8[(int)WeightType::IQ4_NL] = gemm_iq4_nl_q8_avx512vnni;
  t.gemm_q8[(int)WeightType::MXFP4] = gemm_mxfp4_q8_avx512vnni;
  t.gemm_q8_name = "16x8 avx512vnni";
}

}  // namespace ie
