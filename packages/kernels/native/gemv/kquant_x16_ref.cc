// Scalar reference of Q4_K, Q5_K and Q6_K in 16-row records (kernel_table.h, kQ4kRecordBytes,
// kQ5kRecordBytes, kQ6kRecordBytes), at every ISA for the FP32-activation GEMV and the dequantization. The
// dequantization gives the bits of the row layout's (blocks.h); the FP32 GEMV sums each superblock
// apart, so it agrees with the row layout's (blocks_ref.cc) within rounding; the int8-activation
// kernels give the SIMD variant's
// (kquant_x16_avx2.cc): per (row, activation row) one float accumulator, and per superblock its exact
// integer sums converted and multiplied into it with fused multiply-adds, in superblock order. Q6_K:
// one sum, each group's sum of codes x x times its scale less 32 x its scale x the group's sum of x,
// by d * x's scale. Q4_K: the scales' sum (each sub-block's sum of codes x x times its scale) by
// d * x's scale, then the mins' (each sub-block's sum of x times its min) by -(dmin * x's scale).
#include <cmath>

#include "cpu/kernel_table.h"
#include "gemv/weights.h"

namespace ie {
namespace {

struct Q6kRecords {
  static float fp32_superblock(const uint8_t* rec, const WeightRows& w, int r, const float* xb) {
    const float d = q6kx16_d(rec, w, r);
    float total = 0.f;
    for (int g = 0; g < 16; g++) {
      float dot = 0.f;
      for (int j = 16 * g; j < 16 * g + 16; j++) dot += (float)(q6kx16_code(rec, w, r, j) - 32) * xb[j];
      total += d * (float)q6kx16_scale(rec, w, r, g) * dot;
    }
    return total;
  }
  static float q8_superblock(const uint8_t* rec, const WeightRows& w, int r, const int8_t* q, float dx, float total) {
    int32_t s = 0;
    for (int g = 0; g < 16; g++) {
      int32_t dot = 0;
      for (int j = 16 * g; j < 16 * g + 16; j++) dot += (q6kx16_code(rec, w, r, j) - 32) * (int32_t)q[j];
      s += q6kx16_scale(rec, w, r, g) * dot;
    }
    return std::fma((float)s, q6kx16_d(rec, w, r) * dx, total);
  }
  static float value(const uint8_t* rec, const WeightRows& w, int r, int j) {
    return (q6kx16_d(rec, w, r) * (float)q6kx16_scale(rec, w, r, j / 16)) * (float)(q6kx16_code(rec, w, r, j) - 32);
  }
  static const uint8_t* record(const WeightRows& w, int r, int i) { return q6kx16_record(w, r, i); }
};

template <bool Five = false>
struct Q4kRecords {
  static int code(const uint8_t* rec, const WeightRows& w, int r, int j) { return Five ? q5kx16_code(rec, w, r, j) : q4kx16_code(rec, w, r, j); }
  static float fp32_superblock(const uint8_t* rec, const WeightRows& w, int r, const float* xb) {
    const float d = q4kx16_d(rec, w, r), dmin = q4kx16_dmin(rec, w, r);
    float total = 0.f;
    for (int s = 0; s < 8; s++) {
      float dot = 0.f, xs = 0.f;
      for (int j = 32 * s; j < 32 * s + 32; j++) {
        dot += (float)code(rec, w, r, j) * xb[j];
        xs += xb[j];
      }
      total += d * (float)q4kx16_scale(rec, w, r, s) * dot - dmin * (float)q4kx16_min(rec, w, r, s) * xs;
    }
    return total;
  }
  static float q8_superblock(const uint8_t* rec, const WeightRows& w, int r, const int8_t* q, float dx, float total) {
    int32_t sq = 0, sm = 0;
    for (int s = 0; s < 8; s++) {
      int32_t dot = 0, xs = 0;
      for (int j = 32 * s; j < 32 * s + 32; j++) {
        dot += code(rec, w, r, j) * (int32_t)q[j];
        xs += q[j];
      }
      sq += q4kx16_scale(rec, w, r, s) * dot;
      sm += q4kx16_min(rec, w, r, s) * xs;
    }
    total = std::fma((float)sq, q4kx16_d(rec, w, r) * dx, total);
    return std::fma((float)sm, -(q4kx16_dmin(rec, w, r) * dx), total);
  }
  static float value(const uint8_t* rec, const WeightRows& w, int r, int j) {
    const int s = j / 32;
    return q4kx16_d(rec, w, r) * (float)q4kx16_scale(rec, w, r, s) * (float)code(rec, w, r, j) -
           q4kx16_dmin(rec, w, r) * (float)q4kx16_min(rec, w, r, s);
  }
  static const uint8_t* record(const WeightRows& w, int r, int i) { return Five ? q5kx16_record(w, r, i) : q4kx16_record(w, r, i); }
};

template <class F>
void gemv_ref(const WeightRows& w, const float* x, float* y, int rows, bool acc) {
  const int nb = w.K / kSuperBlock;
  for (int r = 0; r < rows; r++) {
    float total = 0.f;
    for (int i = 0; i < nb; i++) total += F::fp32_superblock(F::record(w, r, i), w, r, x + i * kSuperBlock);
    y[r] = acc ? y[r] + total : total;
  }
}

template <class F>
void gemv_rows_q8_ref(const WeightRows& w, const int8_t* xq, const float* xd, ptrdiff_t ldq, ptrdiff_t ldd, int M, float* y, ptrdiff_t ldy, int rows, bool acc) {
  const int nb = w.K / kSuperBlock;
  for (int m = 0; m < M; m++)
    for (int r = 0; r < rows; r++) {
      float total = 0.f;
      for (int i = 0; i < nb; i++)
        total = F::q8_superblock(F::record(w, r, i), w, r, xq + m * ldq + i * kSuperBlock, xd[m * ldd + i * kSuperBlock / kQ8Block], total);
      float& out = y[m * ldy + r];
      out = acc ? out + total : total;
    }
}

template <class F>
void gemv_q8_ref(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) {
  gemv_rows_q8_ref<F>(w, xq, xd, 0, 0, 1, y, 0, rows, acc);
}

template <class F>
void dequant_ref(const WeightRows& w, int rows, float* out, ptrdiff_t ld) {
  for (int r = 0; r < rows; r++)
    for (int k = 0; k < w.K; k++) out[r * ld + k] = F::value(F::record(w, r, k / kSuperBlock), w, r, k % kSuperBlock);
}

template <class F>
void register_records(Records16Kernels& k) {
  k.gemv = gemv_ref<F>;
  k.gemv_q8 = gemv_q8_ref<F>;
  k.gemv_q8_rows = gemv_rows_q8_ref<F>;
  k.dequant = dequant_ref<F>;
  k.worth = "none";
}

}  // namespace

void register_kquant_x16_ref(KernelTable& t) {
  register_records<Q6kRecords>(t.q6kx16);
  register_records<Q4kRecords<>>(t.q4kx16);
  register_records<Q4kRecords<true>>(t.q5kx16);
}

}  // namespace ie
