// The int8-activation GEMVs on AVX-VNNI over the dot products of gemv/dot_avxvnni.h.
#include "gemv/dot_avxvnni.h"
#include "gemv/int8act_blocks_x86.h"
#include "gemv/q4x16_x86.h"

namespace ie {
namespace {

void quantize_x_q8_avxvnni(const float* x, int K, int block, int8_t* q, float* d) { Q8Kernels<DotAvxVnni>::quantize_x(x, K, block, q, d); }
void gemv_i8_q8_avxvnni(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) { Q8Kernels<DotAvxVnni>::gemv_i8(w, xq, xd, y, rows, acc); }
void gemv_i8_far_q8_avxvnni(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) { Q8Kernels<DotAvxVnni>::gemv_i8_far(w, xq, xd, y, rows, acc); }
void gemv_rows_i8_q8_avxvnni(const WeightRows& w, const int8_t* xq, const float* xd, ptrdiff_t ldq, ptrdiff_t ldd, int M, float* y, ptrdiff_t ldy, int rows, bool acc) {
  Q8Kernels<DotAvxVnni>::gemv_i8_many(w, xq, xd, ldq, ldd, M, y, ldy, rows, acc);
}
void gemv_q4_q8_avxvnni(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) { Q8Kernels<DotAvxVnni>::gemv_q4(w, xq, xd, y, rows, acc); }
void gemv_rows_q4_q8_avxvnni(const WeightRows& w, const int8_t* xq, const float* xd, ptrdiff_t ldq, ptrdiff_t ldd, int M, float* y, ptrdiff_t ldy, int rows, bool acc) {
  Q8Kernels<DotAvxVnni>::gemv_q4_many(w, xq, xd, ldq, ldd, M, y, ldy, rows, acc);
}

void gemv_q4_k_q8_avxvnni(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) { Q8BlockKernels<DotAvxVnni>::k45<false>(w, xq, xd, y, rows, acc); }
void gemv_q5_k_q8_avxvnni(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) { Q8BlockKernels<DotAvxVnni>::k45<true>(w, xq, xd, y, rows, acc); }
void gemv_q6_k_q8_avxvnni(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) { Q8BlockKernels<DotAvxVnni>::q6_k(w, xq, xd, y, rows, acc); }
void gemv_iq4_nl_q8_avxvnni(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) { Q8BlockKernels<DotAvxVnni>::iq4_nl(w, xq, xd, y, rows, acc); }
void gemv_mxfp4_q8_avxvnni(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) { Q8BlockKernels<DotAvxVnni>::mxfp4(w, xq, xd, y, rows, acc); }

void gemv_rows_q4x16_q8_avxvnni(const WeightRows& w, const int8_t* xq, const float* xd, ptrdiff_t ldq, ptrdiff_t ldd, int M, float* y, ptrdiff_t ldy, int rows, bool acc) {
  Q4x16Kernels256<DotAvxVnni>::gemv_rows(w, xq, xd, ldq, ldd, M, y, ldy, rows, acc);
}
void gemv_q4x16_q8_avxvnni(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) { Q4x16Kernels256<DotAvxVnni>::gemv(w, xq, xd, y, rows, acc); }
void gemv_rows_iq4x16_q8_avxvnni(const WeightRows& w, const int8_t* xq, const float* xd, ptrdiff_t ldq, ptrdiff_t ldd, int M, float* y, ptrdiff_t ldy, int rows, bool acc) {
  Q4x16Kernels256<DotAvxVnni, true>::gemv_rows(w, xq, xd, ldq, ldd, M, y, ldy, rows, acc);
}
void gemv_iq4x16_q8_avxvnni(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) { Q4x16Kernels256<DotAvxVnni, true>::gemv(w, xq, xd, y, rows, acc); }

}  // namespace

void register_q8_avxvnni(KernelTable& t, const CpuFeatures& f) {
  t.q8_variant = "avxvnni";
  t.quantize_x = quantize_x_q8_avxvnni;
  t.gemv_q8[(int)WeightType::I8] = i8_rows_in_far_pairs(f) ? gemv_i8_far_q8_avxvnni : gemv_i8_q8_avxvnni;
  t.gemv_q8_rows[(int)WeightType::I8] = gemv_rows_i8_q8_avxvnni;
  t.gemv_q8[(int)WeightType::Q4] = gemv_q4_q8_avxvnni;
  t.gemv_q8_rows[(int)WeightType::Q4] = gemv_rows_q4_q8_avxvnni;
  t.gemv_q8[(int)WeightType::Q4_K] = gemv_q4_k_q8_avxvnni;
  t.gemv_q8[(int)WeightType::Q5_K] = gemv_q5_k_q8_avxvnni;
  t.gemv_q8[(int)WeightType::Q6_K] = gemv_q6_k_q8_avxvnni;
  t.gemv_q8[(int)WeightType::IQ4_NL] = gemv_iq4_nl_q8_avxvnni;
  t.gemv_q8[(int)WeightType::MXFP4] = gemv_mxfp4_q8_avxvnni;
  t.q4x16.gemv_q8 = gemv_q4x16_q8_avxvnni;
  t.q4x16.gemv_q8_rows = gemv_rows_q4x16_q8_avxvnni;
  t.q4x16.worth = "batched";
  t.iq4x16.gemv_q8 = gemv_iq4x16_q8_avxvnni;
  t.iq4x16.gemv_q8_rows = gemv_rows_iq4x16_q8_avxvnni;
  t.iq4x16.worth = "none";  // not measured against the row kernel
}

}  // namespace ie
