// Scalar reference of Q6_K in 16-row records (kernel_table.h, kQ6kRecordBytes). The FP32-activation
// GEMV and the dequantization give the bits of the row layout's (blocks_ref.cc, blocks.h); the
// int8-activation kernels give the SIMD variant's (q6kx16_avx2.cc): per (row, activation row) one
// float accumulator, and per superblock one exact integer sum (each group's sum of codes x x times its
// scale, less 32 x its scale x the group's sum of x) converted and multiplied into it by (d * x's
// scale) with one fused multiply-add, in superblock order.
#include <cmath>

#include "cpu/kernel_table.h"
#include "gemv/weights.h"

namespace ie {
namespace {

void gemv_q6kx16_ref(const WeightRows& w, const float* x, float* y, int rows, bool acc) {
  const int nb = w.K / kSuperBlock;
  for (int r = 0; r < rows; r++) {
    float total = 0.f;
    for (int i = 0; i < nb; i++) {
      const uint8_t* rec = q6kx16_record(w, r, i);
      const float d = q6kx16_d(rec, w, r);
      const float* xb = x + i * kSuperBlock;
      for (int g = 0; g < 16; g++) {
        float dot = 0.f;
        for (int j = 16 * g; j < 16 * g + 16; j++) dot += (float)(q6kx16_code(rec, w, r, j) - 32) * xb[j];
        total += d * (float)q6kx16_scale(rec, w, r, g) * dot;
      }
    }
    y[r] = acc ? y[r] + total : total;
  }
}

void gemv_rows_q6kx16_q8_ref(const WeightRows& w, const int8_t* xq, const float* xd, ptrdiff_t ldq, ptrdiff_t ldd, int M, float* y, ptrdiff_t ldy, int rows,
                             bool acc) {
  const int nb = w.K / kSuperBlock;
  for (int m = 0; m < M; m++) {
    const int8_t* q = xq + m * ldq;
    for (int r = 0; r < rows; r++) {
      float total = 0.f;
      for (int i = 0; i < nb; i++) {
        const uint8_t* rec = q6kx16_record(w, r, i);
        int32_t s = 0;
        for (int g = 0; g < 16; g++) {
          int32_t dot = 0;
          for (int j = 16 * g; j < 16 * g + 16; j++) dot += (q6kx16_code(rec, w, r, j) - 32) * (int32_t)q[i * kSuperBlock + j];
          s += q6kx16_scale(rec, w, r, g) * dot;
        }
        total = std::fma((float)s, q6kx16_d(rec, w, r) * xd[m * ldd + i * kSuperBlock / kQ8Block], total);
      }
      float& out = y[m * ldy + r];
      out = acc ? out + total : total;
    }
  }
}

void gemv_q6kx16_q8_ref(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) {
  gemv_rows_q6kx16_q8_ref(w, xq, xd, 0, 0, 1, y, 0, rows, acc);
}

void dequant_q6kx16_ref(const WeightRows& w, int rows, float* out, ptrdiff_t ld) {
  for (int r = 0; r < rows; r++)
    for (int k = 0; k < w.K; k++) {
      const uint8_t* rec = q6kx16_record(w, r, k / kSuperBlock);
      const int j = k % kSuperBlock;
      out[r * ld + k] = (q6kx16_d(rec, w, r) * (float)q6kx16_scale(rec, w, r, j / 16)) * (float)(q6kx16_code(rec, w, r, j) - 32);
    }
}

}  // namespace

void register_q6kx16_ref(KernelTable& t) {
  Records16Kernels& k = t.q6kx16;
  k.gemv = gemv_q6kx16_ref;
  k.gemv_q8 = gemv_q6kx16_q8_ref;
  k.gemv_q8_rows = gemv_rows_q6kx16_q8_ref;
  k.dequant = dequant_q6kx16_ref;
  k.worth = "none";
}

}  // namespace ie
