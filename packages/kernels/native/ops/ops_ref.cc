// Scalar reference vector ops of a decode step.
#include <cmath>

#include "cpu/fp16.h"
#include "cpu/kernel_table.h"

namespace ie {
namespace {

float dot_ref(const float* a, const float* b, int n) {
  float s = 0.f;
  for (int i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}
void axpy_ref(float a, const float* x, float* y, int n) {
  for (int i = 0; i < n; i++) y[i] += a * x[i];
}
inline float kv_at(const float* p) { return *p; }
inline float kv_at(const uint16_t* p) { return f16_to_f32(*p); }
template <typename KT>
void attn_scores_ref(const float* q, int nq, int d, const KT* k, ptrdiff_t ld, int n, float scale, float* s, ptrdiff_t lds) {
  for (int h = 0; h < nq; h++)
    for (int j = 0; j < n; j++) {
      float t = 0.f;
      for (int c = 0; c < d; c++) t += q[h * d + c] * kv_at(k + j * ld + c);
      s[h * lds + j] = scale * t;
    }
}
template <typename KT>
void attn_mix_ref(const float* p, ptrdiff_t ldp, int nq, int d, const KT* v, ptrdiff_t ld, int n, float* out) {
  for (int h = 0; h < nq; h++)
    for (int j = 0; j < n; j++)
      for (int c = 0; c < d; c++) out[h * d + c] += p[h * ldp + j] * kv_at(v + j * ld + c);
}
void scale_ref(float* x, float s, int n) {
  for (int i = 0; i < n; i++) x[i] *= s;
}
void add_ref(const float* a, const float* b, float* out, int n) {
  for (int i = 0; i < n; i++) out[i] = a[i] + b[i];
}
void rmsnorm_ref(const float* x, const float* w, int n, float eps, float* out) {
  float ss = 0.f;
  for (int i = 0; i < n; i++) ss += x[i] * x[i];
  const float inv = 1.0f / std::sqrt(ss / (float)n + eps);
  for (int i = 0; i < n; i++) out[i] = w[i] * (inv * x[i]);
}
void softmax_ref(float* x, int n, float extra) {
  float mx = extra;
  for (int i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
  float sum = extra == -INFINITY ? 0.f : std::exp(extra - mx);
  for (int i = 0; i < n; i++) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = 1.0f / sum;
  for (int i = 0; i < n; i++) x[i] *= inv;
}
void swiglu_ref(const float* g, const float* u, float* out, int n) {
  for (int i = 0; i < n; i++) out[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}
void swiglu_clamped_ref(const float* g, const float* u, float* out, int n, float alpha, float limit) {
  for (int i = 0; i < n; i++) {
    const float gg = std::min(g[i], limit), uu = std::min(std::max(u[i], -limit), limit);
    out[i] = gg / (1.0f + std::exp(-alpha * gg)) * (uu + 1.0f);
  }
}
int argmax_ref(const float* x, int n) {
  int best = 0;
  for (int i = 1; i < n; i++) if (x[i] > x[best]) best = i;
  return best;
}
void rope_ref(float* x, int n_heads, int hd, const float* c, const float* s, int style) {
  const int half = hd / 2;
  for (int h = 0; h < n_heads; h++) {
    float* v = x + h * hd;
    for (int i = 0; i < half; i++) {
      const bool adjacent = style == (int)RopeStyle::Adjacent;
      const int a = adjacent ? 2 * i : i, b = adjacent ? 2 * i + 1 : i + half;
      const float v0 = v[a], v1 = v[b];
      v[a] = v0 * c[i] - v1 * s[i];
      v[b] = v0 * s[i] + v1 * c[i];
    }
  }
}
void f32_to_f16_ref(const float* x, uint16_t* out, int n) {
  for (int i = 0; i < n; i++) out[i] = f32_to_f16(x[i]);
}
void f16_to_f32_ref(const uint16_t* x, float* out, int n) {
  for (int i = 0; i < n; i++) out[i] = f16_to_f32(x[i]);
}

}  // namespace

void register_ops_ref(KernelTable& t) {
  t.dot = dot_ref;
  t.axpy = axpy_ref;
  t.attn_scores = attn_scores_ref<float>;
  t.attn_scores_f16 = attn_scores_ref<uint16_t>;
  t.attn_mix = attn_mix_ref<float>;
  t.attn_mix_f16 = attn_mix_ref<uint16_t>;
  t.scale = scale_ref;
  t.add = add_ref;
  t.rmsnorm = rmsnorm_ref;
  t.softmax = softmax_ref;
  t.swiglu = swiglu_ref;
  t.swiglu_clamped = swiglu_clamped_ref;
  t.argmax = argmax_ref;
  t.rope = rope_ref;
  t.f32_to_f16 = f32_to_f16_ref;
  t.f16_to_f32 = f16_to_f32_ref;
}

}  // namespace ie
