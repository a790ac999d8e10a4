// The block types' int8-activation GEMV on AVX-512 VNNI CPUs: the K-quants through the 256-bit
// kernels of int8act_blocks_x86.h over the EVEX vpdpbusd (AVX512-VL): a K-quant row's scales come
// every 32 elements, so 256-bit products are the natural unit. The two 32-element blocks of 4-bit
// indices into 16 levels, mxfp4 (gpt-oss's experts) and iq4_nl, share a 512-bit kernel
// (gemv/lut4_q8_avx512.h), here in steps of two blocks; where the CPU has VBMI,
// lut4_q8_avx512vbmi.cc registers its four-block steps over these.
#include "gemv/int8act_blocks_x86.h"
#include "gemv/lut4_q8_avx512.h"

namespace ie {
namespace {

struct DotVnni256 {
  static __m256i single(__m256i u, __m256i s) { return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s); }
  static __m256i signed_single(__m256i w, __m256i x) { return _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_abs_epi8(w), _mm256_sign_epi8(x, w)); }
};

void gemv_q4_k_q8_avx512vnni(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) { Q8BlockKernels<DotVnni256>::k45<false>(w, xq, xd, y, rows, acc); }
void gemv_q5_k_q8_avx512vnni(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) { Q8BlockKernels<DotVnni256>::k45<true>(w, xq, xd, y, rows, acc); }
void gemv_q6_k_q8_avx512vnni(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) { Q8BlockKernels<DotVnni256>::q6_k(w, xq, xd, y, rows, acc); }


}  // namespace

void register_q8_blocks_avx512vnni(KernelTable& t, const CpuFeatures& f) {
  t.gemv_q8[(int)WeightType::Q4_K] = gemv_q4_k_q8_avx512vnni;
  t.gemv_q8[(int)WeightType::Q5_K] = gemv_q5_k_q8_avx512vnni;
  t.gemv_q8[(int)WeightType::Q6_K] = gemv_q6_k_q8_avx512vnni;
  register_lut4_q8<false>(t, f);
}

}  // namespace ie
