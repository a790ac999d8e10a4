// Scalar reference of the int8-activation mode: x quantized in blocks (kernel_table.h), integer products
// summed exactly per (group, block), scaled once per block. The SIMD variants compute the same
// integer sums, so they differ from this only in the final float additions.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "cpu/kernel_table.h"
#include "gemv/weights.h"

namespace ie {
namespace {

void quantize_x_ref(const float* x, int K, int block, int8_t* q, float* d) {
  const int P = q8_padded(K);
  std::memset(q, 0, (size_t)P);
  std::fill(d, d + P / kQ8Block, 0.0f);
  for (int k0 = 0; k0 < K; k0 += block) {
    const int n = std::min(block, K - k0);
    float amax = 0.f;
    for (int j = 0; j < n; j++) amax = std::max(amax, std::fabs(x[k0 + j]));
    const float db = amax / 127.0f;
    const float id = db != 0.f ? 1.0f / db : 0.f;
    for (int b = 0; b < block / kQ8Block && k0 + b * kQ8Block < K; b++) d[k0 / kQ8Block + b] = db;
    // nearbyint: round half to even, as the SIMD variants' conversion does.
    for (int j = 0; j < n; j++) q[k0 + j] = (int8_t)std::max(-127.0f, std::min(127.0f, std::nearbyint(x[k0 + j] * id)));
  }
}

// sum over blocks b of the group's elements: d[b] * sum_{j in b} (code_j - zero) * q_j
template <typename Code>
float group_dot(int k0, int n, const int8_t* xq, const float* xd, Code code) {
  float sum = 0.f;
  for (int b0 = 0; b0 < n; b0 += kQ8Block) {
    int32_t isum = 0;
    for (int j = b0; j < std::min(n, b0 + kQ8Block); j++) isum += code(j) * (int32_t)xq[k0 + j];
    sum += xd[(k0 + b0) / kQ8Block] * (float)isum;
  }
  return sum;
}

void gemv_q4_q8_ref(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) {
  const int G = w.group, ng = group_count(w);
  for (int r = 0; r < rows; r++) {
    float total = 0.f;
    for (int g = 0; g < ng; g++) {
      const int k0 = g * G, n = std::min(G, w.K - k0), z = q4_zero(w, r, g);
      const uint8_t* grp = w.q + r * w.q_ld + g * (G / 2);
      total += row_scale(w, r, g) * group_dot(k0, n, xq, xd, [&](int j) { return q4_code(grp, G, j) - z; });
    }
    y[r] = acc ? y[r] + total : total;
  }
}

void gemv_i8_q8_ref(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) {
  const int G = group_size(w), ng = group_count(w);
  for (int r = 0; r < rows; r++) {
    const int8_t* row = reinterpret_cast<const int8_t*>(w.q + r * w.q_ld);
    float total = 0.f;
    for (int g = 0; g < ng; g++) {
      const int k0 = g * G, n = std::min(G, w.K - k0);
      total += row_scale(w, r, g) * group_dot(k0, n, xq, xd, [&](int j) { return (int32_t)row[k0 + j]; });
    }
    y[r] = acc ? y[r] + total : total;
  }
}

}  // namespace

void register_q8_ref(KernelTable& t) {
  t.q8_variant = "scalar";
  t.quantize_x = quantize_x_ref;
  t.gemv_q8[(int)WeightType::I8] = gemv_i8_q8_ref;
  t.gemv_q8[(int)WeightType::Q4] = gemv_q4_q8_ref;
}

}  // namespace ie
