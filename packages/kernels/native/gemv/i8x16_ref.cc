// Scalar reference of i8 in 16-row records (kernel_table.h, Records16Kernels). The int8-activation
// kernel gives the SIMD variant's bits: per (row, activation row) one float accumulator, and per
// block of 32 columns one exact integer sum converted and multiplied into it by (row scale x d_x)
// with one fused multiply-add, in column order.
#include <cmath>

#include "cpu/kernel_table.h"
#include "gemv/weights.h"

namespace ie {
namespace {

void gemv_i8x16_ref(const WeightRows& w, const float* x, float* y, int rows, bool acc) {
  for (int r = 0; r < rows; r++) {
    float total = 0.f, part = 0.f;
    for (int k = 0; k < w.K; k++) {
      const uint8_t* rec = i8x16_record(w, r, k);
      part += (float)i8x16_code(rec, w, r, k) * x[k];
      if ((w.col0 + k + 1) % w.group == 0 || k + 1 == w.K) {  // a record's last column: its scale
        total += i8x16_scale(rec, w, r) * part;
        part = 0.f;
      }
    }
    y[r] = acc ? y[r] + total : total;
  }
}

void gemv_rows_i8x16_q8_ref(const WeightRows& w, const int8_t* xq, const float* xd, ptrdiff_t ldq, ptrdiff_t ldd, int M, float* y, ptrdiff_t ldy, int rows,
                            bool acc) {
  for (int m = 0; m < M; m++) {
    const int8_t* q = xq + m * ldq;
    for (int r = 0; r < rows; r++) {
      float total = 0.f;
      for (int b = 0; b < w.K / kQ8Block; b++) {
        const uint8_t* rec = i8x16_record(w, r, kQ8Block * b);
        int32_t s = 0;
        for (int k = kQ8Block * b; k < kQ8Block * (b + 1); k++) s += i8x16_code(rec, w, r, k) * (int32_t)q[k];
        total = std::fma((float)s, i8x16_scale(rec, w, r) * xd[m * ldd + b], total);
      }
      float& out = y[m * ldy + r];
      out = acc ? out + total : total;
    }
  }
}

void gemv_i8x16_q8_ref(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) {
  gemv_rows_i8x16_q8_ref(w, xq, xd, 0, 0, 1, y, 0, rows, acc);
}

void dequant_i8x16_ref(const WeightRows& w, int rows, float* out, ptrdiff_t ld) {
  for (int r = 0; r < rows; r++)
    for (int k = 0; k < w.K; k++) {
      const uint8_t* rec = i8x16_record(w, r, k);
      out[r * ld + k] = (float)i8x16_code(rec, w, r, k) * i8x16_scale(rec, w, r);
    }
}

}  // namespace

void register_i8x16_ref(KernelTable& t) {
  t.i8x16.gemv = gemv_i8x16_ref;
  t.i8x16.gemv_q8 = gemv_i8x16_q8_ref;
  t.i8x16.gemv_q8_rows = gemv_rows_i8x16_q8_ref;
  t.i8x16.dequant = dequant_i8x16_ref;
  t.i8x16.worth = "none";
}

}  // namespace ie
