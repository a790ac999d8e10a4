// Scalar reference of symmetric q4 and of iq4_nl in 16-row records (kernel_table.h, Records16Kernels):
// the same records, a code's value code - 8 (q4) or kIq4NlLevels[code] (iq4_nl). The int8-activation
// kernel is written to give the SIMD variants' bits: per (row, activation row) one float accumulator,
// and per group one exact integer sum converted and multiplied into it by (row scale * x scale) with
// one fused multiply-add, in group order.
#include <algorithm>
#include <cmath>

#include "cpu/kernel_table.h"
#include "gemv/weights.h"

namespace ie {
namespace {

// A code's value: symmetric q4's code - 8, iq4_nl's level.
struct Q4Value {
  static int of(int code) { return code - kQ4SymmetricZero; }
};
struct Iq4NlValue {
  static int of(int code) { return kIq4NlLevels[code]; }
};

template <class Value>
void gemv_q4x16_ref(const WeightRows& w, const float* x, float* y, int rows, bool acc) {
  const int G = w.group, ng = group_count(w);
  for (int r = 0; r < rows; r++) {
    float total = 0.f;
    for (int g = 0; g < ng; g++) {
      const uint8_t* rec = q4x16_record(w, r, g);
      const int k0 = g * G, n = std::min(G, w.K - k0);
      float part = 0.f;
      for (int j = 0; j < n; j++) part += (float)Value::of(q4x16_code(rec, w, r, j)) * x[k0 + j];
      total += q4x16_scale(rec, w, r) * part;
    }
    y[r] = acc ? y[r] + total : total;
  }
}

template <class Value>
void gemv_rows_q4x16_q8_ref(const WeightRows& w, const int8_t* xq, const float* xd, ptrdiff_t ldq, ptrdiff_t ldd, int M, float* y, ptrdiff_t ldy, int rows,
                            bool acc) {
  const int G = w.group, ng = group_count(w);
  for (int m = 0; m < M; m++) {
    const int8_t* q = xq + m * ldq;
    for (int r = 0; r < rows; r++) {
      float total = 0.f;
      for (int g = 0; g < ng; g++) {
        const uint8_t* rec = q4x16_record(w, r, g);
        int32_t s = 0;
        for (int j = 0; j < G; j++) s += Value::of(q4x16_code(rec, w, r, j)) * (int32_t)q[g * G + j];  // x is 0 past K
        total = std::fma((float)s, q4x16_scale(rec, w, r) * xd[m * ldd + g * G / kQ8Block], total);
      }
      float& out = y[m * ldy + r];
      out = acc ? out + total : total;
    }
  }
}

template <class Value>
void gemv_q4x16_q8_ref(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) {
  gemv_rows_q4x16_q8_ref<Value>(w, xq, xd, 0, 0, 1, y, 0, rows, acc);
}

template <class Value>
void dequant_q4x16_ref(const WeightRows& w, int rows, float* out, ptrdiff_t ld) {
  const int G = w.group;
  for (int r = 0; r < rows; r++)
    for (int k = 0; k < w.K; k++) {
      const uint8_t* rec = q4x16_record(w, r, k / G);
      out[r * ld + k] = (float)Value::of(q4x16_code(rec, w, r, k % G)) * q4x16_scale(rec, w, r);
    }
}

template <class Value>
void register_records(Records16Kernels& k) {
  k.gemv = gemv_q4x16_ref<Value>;
  k.gemv_q8 = gemv_q4x16_q8_ref<Value>;
  k.gemv_q8_rows = gemv_rows_q4x16_q8_ref<Value>;
  k.dequant = dequant_q4x16_ref<Value>;
  k.worth = "none";
}

}  // namespace

void register_q4x16_ref(KernelTable& t) {
  register_records<Q4Value>(t.q4x16);
  register_records<Iq4NlValue>(t.iq4x16);
}

}  // namespace ie
