// The int8-activation GEMVs on AVX2 over the dot products of gemv/dot_avx2.h.
#include "gemv/dot_avx2.h"
#include "gemv/int8act_blocks_x86.h"
#include "gemv/q4x16_x86.h"

namespace ie {
namespace {

void quantize_x_q8_avx2(const float* x, int K, int block, int8_t* q, float* d) { Q8Kernels<DotAvx2>::quantize_x(x, K, block, q, d); }
void gemv_i8_q8_avx2(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) { Q8Kernels<DotAvx2>::gemv_i8(w, xq, xd, y, rows, acc); }
void gemv_i8_far_q8_avx2(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) { Q8Kernels<DotAvx2>::gemv_i8_far(w, xq, xd, y, rows, acc); }
void gemv_rows_i8_q8_avx2(const WeightRows& w, const int8_t* xq, const float* xd, ptrdiff_t ldq, ptrdiff_t ldd, int M, float* y, ptrdiff_t ldy, int rows, bool acc) {
  Q8Kernels<DotAvx2>::gemv_i8_many(w, xq, xd, ldq, ldd, M, y, ldy, rows, acc);
}
void gemv_q4_q8_avx2(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) { Q8Kernels<DotAvx2>::gemv_q4(w, xq, xd, y, rows, acc); }
void gemv_rows_q4_q8_avx2(const WeightRows& w, const int8_t* xq, const float* xd, ptrdiff_t ldq, ptrdiff_t ldd, int M, float* y, ptrdiff_t ldy, int rows, bool acc) {
  Q8Kernels<DotAvx2>::gemv_q4_many(w, xq, xd, ldq, ldd, M, y, ldy, rows, acc);
}

void gemv_q4_k_q8_avx2(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) { Q8BlockKernels<DotAvx2>::k45<false>(w, xq, xd, y, rows, acc); }
void gemv_q5_k_q8_avx2(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) { Q8BlockKernels<DotAvx2>::k45<true>(w, xq, xd, y, rows, acc); }
void gemv_q6_k_q8_avx2(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) { Q8BlockKernels<DotAvx2>::q6_k(w, xq, xd, y, rows, acc); }
void gemv_iq4_nl_q8_avx2(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) { Q8BlockKernels<DotAvx2>::iq4_nl(w, xq, xd, y, rows, acc); }
void gemv_mxfp4_q8_avx2(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) { Q8BlockKernels<DotAvx2>::mxfp4(w, xq, xd, y, rows, acc); }

void gemv_rows_q4x16_q8_avx2(const WeightRows& w, const int8_t* xq, const float* xd, ptrdiff_t ldq, ptrdiff_t ldd, int M, float* y, ptrdiff_t ldy, int rows, bool acc) {
  Q4x16Kernels256<DotAvx2>::gemv_rows(w, xq, xd, ldq, ldd, M, y, ldy, rows, acc);
}
void gemv_q4x16_q8_avx2(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) { Q4x16Kernels256<DotAvx2>::gemv(w, xq, xd, y, rows, acc); }
void gemv_rows_iq4x16_q8_avx2(const WeightRows& w, const int8_t* xq, const float* xd, ptrdiff_t ldq, ptrdiff_t ldd, int M, float* y, ptrdiff_t ldy, int rows, bool acc) {
  Q4x16Kernels256<DotAvx2, true>::gemv_rows(w, xq, xd, ldq, ldd, M, y, ldy, rows, acc);
}
void gemv_iq4x16_q8_avx2(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) { Q4x16Kernels256<DotAvx2, true>::gemv(w, xq, xd, y, rows, acc); }

}  // namespace

void register_q8_avx2(KernelTable& t, const CpuFeatures& f) {
  t.q8_variant = "avx2";
  t.quantize_x = quantize_x_q8_avx2;
  t.gemv_q8[(int)WeightType::I8] = i8_rows_in_far_pairs(f) ? gemv_i8_far_q8_avx2 : gemv_i8_q8_avx2;
  t.gemv_q8_rows[(int)WeightType::I8] = gemv_rows_i8_q8_avx2;
  t.gemv_q8[(int)WeightType::Q4] = gemv_q4_q8_avx2;
  t.gemv_q8_rows[(int)WeightType::Q4] = gemv_rows_q4_q8_avx2;
  t.gemv_q8[(int)WeightType::Q4_K] = gemv_q4_k_q8_avx2;
  t.gemv_q8[(int)WeightType::Q5_K] = gemv_q5_k_q8_avx2;
  t.gemv_q8[(int)WeightType::Q6_K] = gemv_q6_k_q8_avx2;
  t.gemv_q8[(int)WeightType::IQ4_NL] = gemv_iq4_nl_q8_avx2;
  t.gemv_q8[(int)WeightType::MXFP4] = gemv_mxfp4_q8_avx2;
  t.q4x16.gemv_q8 = gemv_q4x16_q8_avx2;
  t.q4x16.gemv_q8_rows = gemv_rows_q4x16_q8_avx2;
  t.q4x16.worth = q4_records_for_one_row(f) ? "always" : "batched";
  t.iq4x16.gemv_q8 = gemv_iq4x16_q8_avx2;
  t.iq4x16.gemv_q8_rows = gemv_rows_iq4x16_q8_avx2;
  t.iq4x16.worth = q4_records_for_one_row(f) ? "always" : "none";  // measured on Zen 3 only
}

}  // namespace ie
