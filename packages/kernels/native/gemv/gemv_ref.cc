// Scalar reference GEMV and dequantization for every weight type. The SIMD variants keep
// the same arithmetic structure (per-group partial sums scaled once per group) so their
// results stay within float rounding of these.
#include <algorithm>

#include "cpu/fp16.h"
#include "cpu/kernel_table.h"
#include "gemv/weights.h"

namespace ie {
namespace {

template <typename Load>
void gemv_float_ref(const WeightRows& w, const float* x, float* y, int rows, bool acc, Load load) {
  for (int r = 0; r < rows; r++) {
    const uint8_t* row = w.q + r * w.q_ld;
    float sum = 0.f;
    for (int k = 0; k < w.K; k++) sum += load(row, k) * x[k];
    y[r] = acc ? y[r] + sum : sum;
  }
}

float ld_f32(const uint8_t* row, int k) { float f; std::memcpy(&f, row + 4 * k, 4); return f; }
float ld_f16(const uint8_t* row, int k) { uint16_t h; std::memcpy(&h, row + 2 * k, 2); return f16_to_f32(h); }
float ld_bf16(const uint8_t* row, int k) { uint16_t h; std::memcpy(&h, row + 2 * k, 2); return bf16_to_f32(h); }

void gemv_f32_ref(const WeightRows& w, const float* x, float* y, int rows, bool acc) { gemv_float_ref(w, x, y, rows, acc, ld_f32); }
void gemv_f16_ref(const WeightRows& w, const float* x, float* y, int rows, bool acc) { gemv_float_ref(w, x, y, rows, acc, ld_f16); }
void gemv_bf16_ref(const WeightRows& w, const float* x, float* y, int rows, bool acc) { gemv_float_ref(w, x, y, rows, acc, ld_bf16); }

void gemv_i8_ref(const WeightRows& w, const float* x, float* y, int rows, bool acc) {
  const int G = group_size(w), ng = group_count(w);
  for (int r = 0; r < rows; r++) {
    const int8_t* row = reinterpret_cast<const int8_t*>(w.q + r * w.q_ld);
    float total = 0.f;
    for (int g = 0; g < ng; g++) {
      const int k0 = g * G, n = std::min(G, w.K - k0);
      float part = 0.f;
      for (int j = 0; j < n; j++) part += (float)row[k0 + j] * x[k0 + j];
      total += row_scale(w, r, g) * part;
    }
    y[r] = acc ? y[r] + total : total;
  }
}

void gemv_q4_ref(const WeightRows& w, const float* x, float* y, int rows, bool acc) {
  const int G = w.group, ng = group_count(w);
  for (int r = 0; r < rows; r++) {
    const uint8_t* row = w.q + r * w.q_ld;
    float total = 0.f;
    for (int g = 0; g < ng; g++) {
      const int k0 = g * G, n = std::min(G, w.K - k0), z = q4_zero(w, r, g);
      const uint8_t* grp = row + g * (G / 2);
      float part = 0.f;
      for (int j = 0; j < n; j++) part += (float)(q4_code(grp, G, j) - z) * x[k0 + j];
      total += row_scale(w, r, g) * part;
    }
    y[r] = acc ? y[r] + total : total;
  }
}

template <typename Load>
void dequant_float_ref(const WeightRows& w, int rows, float* out, ptrdiff_t ld, Load load) {
  for (int r = 0; r < rows; r++)
    for (int k = 0; k < w.K; k++) out[r * ld + k] = load(w.q + r * w.q_ld, k);
}
void dequant_f32_ref(const WeightRows& w, int rows, float* out, ptrdiff_t ld) { dequant_float_ref(w, rows, out, ld, ld_f32); }
void dequant_f16_ref(const WeightRows& w, int rows, float* out, ptrdiff_t ld) { dequant_float_ref(w, rows, out, ld, ld_f16); }
void dequant_bf16_ref(const WeightRows& w, int rows, float* out, ptrdiff_t ld) { dequant_float_ref(w, rows, out, ld, ld_bf16); }

void dequant_i8_ref(const WeightRows& w, int rows, float* out, ptrdiff_t ld) {
  const int G = group_size(w);
  for (int r = 0; r < rows; r++) {
    const int8_t* row = reinterpret_cast<const int8_t*>(w.q + r * w.q_ld);
    for (int k = 0; k < w.K; k++) out[r * ld + k] = (float)row[k] * row_scale(w, r, k / G);
  }
}

void dequant_q4_ref(const WeightRows& w, int rows, float* out, ptrdiff_t ld) {
  const int G = w.group;
  for (int r = 0; r < rows; r++) {
    const uint8_t* row = w.q + r * w.q_ld;
    for (int k = 0; k < w.K; k++) {
      const int g = k / G;
      out[r * ld + k] = (float)(q4_code(row + g * (G / 2), G, k - g * G) - q4_zero(w, r, g)) * row_scale(w, r, g);
    }
  }
}

template <typename Load>
void gemv_t_ref(const uint8_t* wt, ptrdiff_t ld, const float* x, int K, float* y, int ncols, bool acc, Load load) {
  if (!acc) for (int n = 0; n < ncols; n++) y[n] = 0.f;
  for (int k = 0; k < K; k++) {
    const float a = x[k];
    for (int n = 0; n < ncols; n++) y[n] += a * load(wt + k * ld, n);
  }
}
void gemv_t_f32_ref(const uint8_t* wt, ptrdiff_t ld, const float* x, int K, float* y, int n, bool acc) { gemv_t_ref(wt, ld, x, K, y, n, acc, ld_f32); }
void gemv_t_f16_ref(const uint8_t* wt, ptrdiff_t ld, const float* x, int K, float* y, int n, bool acc) { gemv_t_ref(wt, ld, x, K, y, n, acc, ld_f16); }
void gemv_t_bf16_ref(const uint8_t* wt, ptrdiff_t ld, const float* x, int K, float* y, int n, bool acc) { gemv_t_ref(wt, ld, x, K, y, n, acc, ld_bf16); }

}  // namespace

void register_gemv_ref(KernelTable& t) {
  t.gemv[(int)WeightType::F32] = gemv_f32_ref;
  t.gemv[(int)WeightType::F16] = gemv_f16_ref;
  t.gemv[(int)WeightType::BF16] = gemv_bf16_ref;
  t.gemv[(int)WeightType::I8] = gemv_i8_ref;
  t.gemv[(int)WeightType::Q4] = gemv_q4_ref;
  t.dequant[(int)WeightType::F32] = dequant_f32_ref;
  t.dequant[(int)WeightType::F16] = dequant_f16_ref;
  t.dequant[(int)WeightType::BF16] = dequant_bf16_ref;
  t.dequant[(int)WeightType::I8] = dequant_i8_ref;
  t.dequant[(int)WeightType::Q4] = dequant_q4_ref;
  t.gemv_t[0] = gemv_t_f32_ref;
  t.gemv_t[1] = gemv_t_f16_ref;
  t.gemv_t[2] = gemv_t_bf16_ref;
}

}  // namespace ie
