// AVX2 vector ops of a decode step.
#include <algorithm>
#include <cmath>

#include "cpu/avx2_common.h"
#include "cpu/kernels.h"

namespace ie {
namespace {
using namespace avx2;

float dot(const float* a, const float* b, int n) {
  __m256 s = _mm256_setzero_ps();
  for (int i = 0; i < n; i += 8) {
    const int m = std::min(8, n - i);
    s = _mm256_fmadd_ps(load_f32(a + i, m), load_f32(b + i, m), s);
  }
  return hsum(s);
}

float dot_f16(const float* a, const uint16_t* b, int n) {
  __m256 s = _mm256_setzero_ps();
  for (int i = 0; i < n; i += 8) {
    const int m = std::min(8, n - i);
    s = _mm256_fmadd_ps(load_f32(a + i, m), load_f16(reinterpret_cast<const uint8_t*>(b + i), m), s);
  }
  return hsum(s);
}

void axpy(float a, const float* x, float* y, int n) {
  const __m256 av = _mm256_set1_ps(a);
  for (int i = 0; i < n; i += 8) {
    const int m = std::min(8, n - i);
    store_f32(y + i, _mm256_fmadd_ps(av, load_f32(x + i, m), load_f32(y + i, m)), m);
  }
}

void axpy_f16(float a, const uint16_t* x, float* y, int n) {
  const __m256 av = _mm256_set1_ps(a);
  for (int i = 0; i < n; i += 8) {
    const int m = std::min(8, n - i);
    store_f32(y + i, _mm256_fmadd_ps(av, load_f16(reinterpret_cast<const uint8_t*>(x + i), m), load_f32(y + i, m)), m);
  }
}

void scale(float* x, float s, int n) {
  const __m256 sv = _mm256_set1_ps(s);
  for (int i = 0; i < n; i += 8) {
    const int m = std::min(8, n - i);
    store_f32(x + i, _mm256_mul_ps(load_f32(x + i, m), sv), m);
  }
}

void add(const float* a, const float* b, float* out, int n) {
  for (int i = 0; i < n; i += 8) {
    const int m = std::min(8, n - i);
    store_f32(out + i, _mm256_add_ps(load_f32(a + i, m), load_f32(b + i, m)), m);
  }
}

void rmsnorm(const float* x, const float* w, int n, float eps, float* out) {
  __m256 s = _mm256_setzero_ps();
  for (int i = 0; i < n; i += 8) {
    const __m256 v = load_f32(x + i, std::min(8, n - i));
    s = _mm256_fmadd_ps(v, v, s);
  }
  const __m256 inv = _mm256_set1_ps(1.0f / std::sqrt(hsum(s) / (float)n + eps));
  for (int i = 0; i < n; i += 8) {
    const int m = std::min(8, n - i);
    store_f32(out + i, _mm256_mul_ps(load_f32(w + i, m), _mm256_mul_ps(inv, load_f32(x + i, m))), m);
  }
}

void softmax(float* x, int n) {
  float mx = -INFINITY;
  for (int i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
  const __m256 mv = _mm256_set1_ps(mx);
  __m256 sum = _mm256_setzero_ps();
  for (int i = 0; i < n; i += 8) {
    const int m = std::min(8, n - i);
    __m256 e = exp_ps(_mm256_sub_ps(load_f32(x + i, m), mv));
    if (m < 8) {
      float tmp[8];
      _mm256_storeu_ps(tmp, e);
      for (int j = m; j < 8; j++) tmp[j] = 0.f;
      e = _mm256_loadu_ps(tmp);
    }
    store_f32(x + i, e, m);
    sum = _mm256_add_ps(sum, e);
  }
  scale(x, 1.0f / hsum(sum), n);
}

void swiglu(const float* g, const float* u, float* out, int n) {
  const __m256 one = _mm256_set1_ps(1.0f);
  for (int i = 0; i < n; i += 8) {
    const int m = std::min(8, n - i);
    const __m256 gv = load_f32(g + i, m);
    const __m256 silu = _mm256_div_ps(gv, _mm256_add_ps(one, exp_ps(_mm256_sub_ps(_mm256_setzero_ps(), gv))));
    store_f32(out + i, _mm256_mul_ps(silu, load_f32(u + i, m)), m);
  }
}

void f32_to_f16(const float* x, uint16_t* out, int n) {
  for (int i = 0; i < n; i += 8) {
    const int m = std::min(8, n - i);
    const __m128i h = _mm256_cvtps_ph(load_f32(x + i, m), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    if (m == 8) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), h);
    } else {
      uint16_t tmp[8];
      _mm_storeu_si128(reinterpret_cast<__m128i*>(tmp), h);
      std::memcpy(out + i, tmp, 2 * m);
    }
  }
}

void f16_to_f32(const uint16_t* x, float* out, int n) {
  for (int i = 0; i < n; i += 8) {
    const int m = std::min(8, n - i);
    store_f32(out + i, load_f16(reinterpret_cast<const uint8_t*>(x + i), m), m);
  }
}

}  // namespace

void register_ops_avx2(KernelTable& t) {
  t.dot = dot;
  t.dot_f16 = dot_f16;
  t.axpy = axpy;
  t.axpy_f16 = axpy_f16;
  t.scale = scale;
  t.add = add;
  t.rmsnorm = rmsnorm;
  t.softmax = softmax;
  t.swiglu = swiglu;
  t.f32_to_f16 = f32_to_f16;
  t.f16_to_f32 = f16_to_f32;
}

}  // namespace ie
