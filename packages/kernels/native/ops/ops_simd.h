// The vector ops of a forward pass (dot products, axpy, norms, softmax, SwiGLU, f16 conversions),
// written once over a vector trait (cpu/vec.h) and instantiated by ops_avx2.cc and ops_avx512.cc.
// Full vectors take unmasked loads; only the tail of a row takes a partial one, and nothing past
// n is read or written.
#pragma once
#include <cmath>

#include "cpu/kernel_table.h"
#include "cpu/vec.h"

namespace ie {
namespace {

template <class V>
struct Ops {
  using reg = typename V::reg;
  static constexpr int L = V::lanes;

  static float dot(const float* a, const float* b, int n) {
    reg s0 = V::zero(), s1 = V::zero();
    int i = 0;
    for (; i + 2 * L <= n; i += 2 * L) {
      s0 = V::fmadd(V::load(a + i), V::load(b + i), s0);
      s1 = V::fmadd(V::load(a + i + L), V::load(b + i + L), s1);
    }
    for (; i < n; i += L) s0 = V::fmadd(V::load_part(a + i, n - i), V::load_part(b + i, n - i), s0);
    return V::hsum(V::add(s0, s1));
  }

  static float dot_f16(const float* a, const uint16_t* b, int n) {
    reg s0 = V::zero(), s1 = V::zero();
    int i = 0;
    for (; i + 2 * L <= n; i += 2 * L) {
      s0 = V::fmadd(V::load(a + i), V::load_f16(b + i), s0);
      s1 = V::fmadd(V::load(a + i + L), V::load_f16(b + i + L), s1);
    }
    for (; i < n; i += L) s0 = V::fmadd(V::load_part(a + i, n - i), V::load_f16_part(b + i, n - i), s0);
    return V::hsum(V::add(s0, s1));
  }

  static void axpy(float a, const float* x, float* y, int n) {
    const reg av = V::set1(a);
    int i = 0;
    for (; i + L <= n; i += L) V::store(y + i, V::fmadd(av, V::load(x + i), V::load(y + i)));
    if (i < n) V::store_part(y + i, V::fmadd(av, V::load_part(x + i, n - i), V::load_part(y + i, n - i)), n - i);
  }

  static void axpy_f16(float a, const uint16_t* x, float* y, int n) {
    const reg av = V::set1(a);
    int i = 0;
    for (; i + L <= n; i += L) V::store(y + i, V::fmadd(av, V::load_f16(x + i), V::load(y + i)));
    if (i < n) V::store_part(y + i, V::fmadd(av, V::load_f16_part(x + i, n - i), V::load_part(y + i, n - i)), n - i);
  }

  static void scale(float* x, float s, int n) {
    const reg sv = V::set1(s);
    int i = 0;
    for (; i + L <= n; i += L) V::store(x + i, V::mul(V::load(x + i), sv));
    if (i < n) V::store_part(x + i, V::mul(V::load_part(x + i, n - i), sv), n - i);
  }

  static void add(const float* a, const float* b, float* out, int n) {
    int i = 0;
    for (; i + L <= n; i += L) V::store(out + i, V::add(V::load(a + i), V::load(b + i)));
    if (i < n) V::store_part(out + i, V::add(V::load_part(a + i, n - i), V::load_part(b + i, n - i)), n - i);
  }

  static void rmsnorm(const float* x, const float* w, int n, float eps, float* out) {
    reg s = V::zero();
    for (int i = 0; i < n; i += L) {
      const reg v = V::load_part(x + i, n - i);
      s = V::fmadd(v, v, s);
    }
    const reg inv = V::set1(1.0f / std::sqrt(V::hsum(s) / (float)n + eps));
    for (int i = 0; i < n; i += L) V::store_part(out + i, V::mul(V::load_part(w + i, n - i), V::mul(inv, V::load_part(x + i, n - i))), n - i);
  }

  // The largest of x[0..n), vectors first, the tail in scalar.
  static float max(const float* x, int n) {
    reg m = V::set1(-INFINITY);
    int i = 0;
    for (; i + L <= n; i += L) m = V::max(V::load(x + i), m);  // a NaN in x yields m: NaNs are skipped, as in the reference
    float best = V::hmax(m);
    for (; i < n; i++) best = x[i] > best ? x[i] : best;
    return best;
  }

  static void softmax(float* x, int n, float extra) {
    const float m = std::fmax(max(x, n), extra);
    const reg mv = V::set1(m);
    reg sum = V::zero();
    for (int i = 0; i < n; i += L) {
      const reg e = V::keep_part(V::exp(V::sub(V::load_part(x + i, n - i), mv)), n - i);
      V::store_part(x + i, e, n - i);
      sum = V::add(sum, e);
    }
    scale(x, 1.0f / (V::hsum(sum) + (extra == -INFINITY ? 0.0f : std::exp(extra - m))), n);
  }

  static void swiglu_clamped(const float* g, const float* u, float* out, int n, float alpha, float limit) {
    const reg one = V::set1(1.0f), hi = V::set1(limit), lo = V::set1(-limit), na = V::set1(-alpha);
    for (int i = 0; i < n; i += L) {
      const reg gv = V::min(V::load_part(g + i, n - i), hi);
      const reg uv = V::min(V::max(V::load_part(u + i, n - i), lo), hi);
      const reg glu = V::div(gv, V::add(one, V::exp(V::mul(na, gv))));
      V::store_part(out + i, V::mul(glu, V::add(uv, one)), n - i);
    }
  }

  static void swiglu(const float* g, const float* u, float* out, int n) {
    const reg one = V::set1(1.0f);
    for (int i = 0; i < n; i += L) {
      const reg gv = V::load_part(g + i, n - i);
      const reg silu = V::div(gv, V::add(one, V::exp(V::sub(V::zero(), gv))));
      V::store_part(out + i, V::mul(silu, V::load_part(u + i, n - i)), n - i);
    }
  }

  // The first index holding the maximum (ties resolve to the lowest index, like the reference).
  static int argmax(const float* x, int n) {
    const float best = max(x, n);
    for (int i = 0; i < n; i++)
      if (x[i] == best) return i;
    return 0;  // all NaN
  }

  static void f32_to_f16(const float* x, uint16_t* out, int n) {
    for (int i = 0; i < n; i += L) V::store_f16_part(out + i, V::load_part(x + i, n - i), n - i);
  }

  static void f16_to_f32(const uint16_t* x, float* out, int n) {
    for (int i = 0; i < n; i += L) V::store_part(out + i, V::load_f16_part(x + i, n - i), n - i);
  }
};

template <class V>
void register_ops_simd(KernelTable& t) {
  t.dot = Ops<V>::dot;
  t.dot_f16 = Ops<V>::dot_f16;
  t.axpy = Ops<V>::axpy;
  t.axpy_f16 = Ops<V>::axpy_f16;
  t.scale = Ops<V>::scale;
  t.add = Ops<V>::add;
  t.rmsnorm = Ops<V>::rmsnorm;
  t.softmax = Ops<V>::softmax;
  t.swiglu = Ops<V>::swiglu;
  t.swiglu_clamped = Ops<V>::swiglu_clamped;
  t.argmax = Ops<V>::argmax;
  t.f32_to_f16 = Ops<V>::f32_to_f16;
  t.f16_to_f32 = Ops<V>::f16_to_f32;
}

}  // namespace
}  // namespace ie
