// AVX-512 vector ops of a decode step.
#include <algorithm>
#include <cmath>

#include "cpu/avx512_common.h"
#include "cpu/kernels.h"

namespace ie {
namespace {
using namespace avx512;

float dot(const float* a, const float* b, int n) {
  __m512 s = _mm512_setzero_ps();
  for (int i = 0; i < n; i += 16) {
    const int m = std::min(16, n - i);
    s = _mm512_fmadd_ps(load_f32(a + i, m), load_f32(b + i, m), s);
  }
  return _mm512_reduce_add_ps(s);
}

float dot_f16(const float* a, const uint16_t* b, int n) {
  __m512 s = _mm512_setzero_ps();
  for (int i = 0; i < n; i += 16) {
    const int m = std::min(16, n - i);
    s = _mm512_fmadd_ps(load_f32(a + i, m), load_f16(reinterpret_cast<const uint8_t*>(b + i), m), s);
  }
  return _mm512_reduce_add_ps(s);
}

void axpy(float a, const float* x, float* y, int n) {
  const __m512 av = _mm512_set1_ps(a);
  for (int i = 0; i < n; i += 16) {
    const int m = std::min(16, n - i);
    _mm512_mask_storeu_ps(y + i, tail_mask(m), _mm512_fmadd_ps(av, load_f32(x + i, m), load_f32(y + i, m)));
  }
}

void axpy_f16(float a, const uint16_t* x, float* y, int n) {
  const __m512 av = _mm512_set1_ps(a);
  for (int i = 0; i < n; i += 16) {
    const int m = std::min(16, n - i);
    _mm512_mask_storeu_ps(y + i, tail_mask(m), _mm512_fmadd_ps(av, load_f16(reinterpret_cast<const uint8_t*>(x + i), m), load_f32(y + i, m)));
  }
}

void scale(float* x, float s, int n) {
  const __m512 sv = _mm512_set1_ps(s);
  for (int i = 0; i < n; i += 16) {
    const int m = std::min(16, n - i);
    _mm512_mask_storeu_ps(x + i, tail_mask(m), _mm512_mul_ps(load_f32(x + i, m), sv));
  }
}

void add(const float* a, const float* b, float* out, int n) {
  for (int i = 0; i < n; i += 16) {
    const int m = std::min(16, n - i);
    _mm512_mask_storeu_ps(out + i, tail_mask(m), _mm512_add_ps(load_f32(a + i, m), load_f32(b + i, m)));
  }
}

void rmsnorm(const float* x, const float* w, int n, float eps, float* out) {
  __m512 s = _mm512_setzero_ps();
  for (int i = 0; i < n; i += 16) {
    const __m512 v = load_f32(x + i, std::min(16, n - i));
    s = _mm512_fmadd_ps(v, v, s);
  }
  const __m512 inv = _mm512_set1_ps(1.0f / std::sqrt(_mm512_reduce_add_ps(s) / (float)n + eps));
  for (int i = 0; i < n; i += 16) {
    const int m = std::min(16, n - i);
    _mm512_mask_storeu_ps(out + i, tail_mask(m), _mm512_mul_ps(load_f32(w + i, m), _mm512_mul_ps(inv, load_f32(x + i, m))));
  }
}

void softmax(float* x, int n) {
  __m512 mx = _mm512_set1_ps(-INFINITY);
  for (int i = 0; i < n; i += 16) {
    const int m = std::min(16, n - i);
    mx = _mm512_mask_max_ps(mx, tail_mask(m), mx, load_f32(x + i, m));
  }
  const __m512 mv = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
  __m512 sum = _mm512_setzero_ps();
  for (int i = 0; i < n; i += 16) {
    const int m = std::min(16, n - i);
    const __m512 e = _mm512_maskz_mov_ps(tail_mask(m), exp_ps(_mm512_sub_ps(load_f32(x + i, m), mv)));
    _mm512_mask_storeu_ps(x + i, tail_mask(m), e);
    sum = _mm512_add_ps(sum, e);
  }
  scale(x, 1.0f / _mm512_reduce_add_ps(sum), n);
}

void swiglu(const float* g, const float* u, float* out, int n) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int i = 0; i < n; i += 16) {
    const int m = std::min(16, n - i);
    const __m512 gv = load_f32(g + i, m);
    const __m512 silu = _mm512_div_ps(gv, _mm512_add_ps(one, exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), gv))));
    _mm512_mask_storeu_ps(out + i, tail_mask(m), _mm512_mul_ps(silu, load_f32(u + i, m)));
  }
}

int argmax(const float* x, int n) {
  // Vector max first, then the first index holding it (ties resolve to the lowest index, like the reference).
  __m512 mx = _mm512_set1_ps(-INFINITY);
  for (int i = 0; i < n; i += 16) {
    const int m = std::min(16, n - i);
    mx = _mm512_mask_max_ps(mx, tail_mask(m), mx, load_f32(x + i, m));
  }
  const float best = _mm512_reduce_max_ps(mx);
  for (int i = 0; i < n; i++) if (x[i] == best) return i;
  return 0;  // all NaN
}

void f32_to_f16(const float* x, uint16_t* out, int n) {
  for (int i = 0; i < n; i += 16) {
    const int m = std::min(16, n - i);
    const __m256i h = _mm512_cvtps_ph(load_f32(x + i, m), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm256_mask_storeu_epi16(out + i, tail_mask(m), h);
  }
}

void f16_to_f32(const uint16_t* x, float* out, int n) {
  for (int i = 0; i < n; i += 16) {
    const int m = std::min(16, n - i);
    _mm512_mask_storeu_ps(out + i, tail_mask(m), load_f16(reinterpret_cast<const uint8_t*>(x + i), m));
  }
}

}  // namespace

void register_ops_avx512(KernelTable& t) {
  t.dot = dot;
  t.dot_f16 = dot_f16;
  t.axpy = axpy;
  t.axpy_f16 = axpy_f16;
  t.scale = scale;
  t.add = add;
  t.rmsnorm = rmsnorm;
  t.softmax = softmax;
  t.swiglu = swiglu;
  t.argmax = argmax;
  t.f32_to_f16 = f32_to_f16;
  t.f16_to_f32 = f16_to_f32;
}

}  // namespace ie
