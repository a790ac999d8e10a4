// The int8-activation GEMV on AVX-VNNI (256-bit vpdpbusd: Alder Lake and later, Zen 5): one
// instruction multiplies 32 unsigned bytes by 32 signed bytes and adds groups of four into
// eight 32-bit lanes, replacing vpmaddubsw + vpmaddwd (and their 16-bit intermediate).
#include "gemv/int8act_blocks_x86.h"

namespace ie {
namespace {

struct DotAvxVnni {
  static __m256i pair(__m256i lo, __m256i xl, __m256i hi, __m256i xh) { return _mm256_dpbusd_avx_epi32(_mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), lo, xl), hi, xh); }
  static __m256i quad(__m256i a, __m256i xa, __m256i b, __m256i xb, __m256i c, __m256i xc, __m256i d, __m256i xd) {
    return _mm256_dpbusd_avx_epi32(_mm256_dpbusd_avx_epi32(pair(a, xa, b, xb), c, xc), d, xd);
  }
  static __m256i single(__m256i u, __m256i s) { return _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), u, s); }
  static __m256i signed_single(__m256i w, __m256i x) { return _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), _mm256_abs_epi8(w), _mm256_sign_epi8(x, w)); }
};

void quantize_x_q8_avxvnni(const float* x, int K, int block, int8_t* q, float* d) { Q8Kernels<DotAvxVnni>::quantize_x(x, K, block, q, d); }
void gemv_i8_q8_avxvnni(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) { Q8Kernels<DotAvxVnni>::gemv_i8(w, xq, xd, y, rows, acc); }
void gemv_q4_q8_avxvnni(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) { Q8Kernels<DotAvxVnni>::gemv_q4(w, xq, xd, y, rows, acc); }
void gemv_rows_q4_q8_avxvnni(const WeightRows& w, const int8_t* xq, const float* xd, ptrdiff_t ldq, ptrdiff_t ldd, int M, float* y, ptrdiff_t ldy, int rows, bool acc) {
  Q8Kernels<DotAvxVnni>::gemv_q4_many(w, xq, xd, ldq, ldd, M, y, ldy, rows, acc);
}

void gemv_q4_k_q8_avxvnni(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) { Q8BlockKernels<DotAvxVnni>::k45<false>(w, xq, xd, y, rows, acc); }
void gemv_q5_k_q8_avxvnni(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) { Q8BlockKernels<DotAvxVnni>::k45<true>(w, xq, xd, y, rows, acc); }
void gemv_q6_k_q8_avxvnni(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) { Q8BlockKernels<DotAvxVnni>::q6_k(w, xq, xd, y, rows, acc); }
void gemv_iq4_nl_q8_avxvnni(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) { Q8BlockKernels<DotAvxVnni>::iq4_nl(w, xq, xd, y, rows, acc); }
void gemv_mxfp4_q8_avxvnni(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) { Q8BlockKernels<DotAvxVnni>::mxfp4(w, xq, xd, y, rows, acc); }

}  // namespace

void register_q8_avxvnni(KernelTable& t) {
  t.q8_variant = "avxvnni";
  t.quantize_x = quantize_x_q8_avxvnni;
  t.gemv_q8[(int)WeightType::I8] = gemv_i8_q8_avxvnni;
  t.gemv_q8[(int)WeightType::Q4] = gemv_q4_q8_avxvnni;
  t.gemv_q8_rows[(int)WeightType::Q4] = gemv_rows_q4_q8_avxvnni;
  t.gemv_q8[(int)WeightType::Q4_K] = gemv_q4_k_q8_avxvnni;
  t.gemv_q8[(int)WeightType::Q5_K] = gemv_q5_k_q8_avxvnni;
  t.gemv_q8[(int)WeightType::Q6_K] = gemv_q6_k_q8_avxvnni;
  t.gemv_q8[(int)WeightType::IQ4_NL] = gemv_iq4_nl_q8_avxvnni;
  t.gemv_q8[(int)WeightType::MXFP4] = gemv_mxfp4_q8_avxvnni;
}

}  // namespace ie
