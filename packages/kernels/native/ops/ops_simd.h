// The vector ops of a forward pass (dot products, axpy, norms, softmax, SwiGLU, f16 conversions),
// written once over a vector trait (cpu/vec.h) and instantiated by ops_avx2.cc and ops_avx512.cc.
// Full vectors take unmasked loads; only the tail of a row takes a partial one, and nothing past
// n is read or written.
#pragma once
#include <algorithm>
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

  static void axpy(float a, const float* x, float* y, int n) {
    const reg av = V::set1(a);
    int i = 0;
    for (; i + L <= n; i += L) V::store(y + i, V::fmadd(av, V::load(x + i), V::load(y + i)));
    if (i < n) V::store_part(y + i, V::fmadd(av, V::load_part(x + i, n - i), V::load_part(y + i, n - i)), n - i);
  }

  // ---- Attention of one query for the H heads that share a KV head (see KernelTable).
  // Cache rows kKvAhead positions on are prefetched: a head's rows lie a whole cache row apart
  // (all KV heads of a position are together), a pattern the hardware prefetchers do not follow.
  static constexpr int kKvAhead = 8;
  template <typename KT>
  static void kv_prefetch(const KT* p, int n) {
    for (int b = 0; b < n * (int)sizeof(KT); b += 64) _mm_prefetch(reinterpret_cast<const char*>(p) + b, _MM_HINT_T0);
  }
  static reg kv_load(const float* p) { return V::load(p); }
  static reg kv_load(const uint16_t* p) { return V::load_f16(p); }
  static reg kv_load_part(const float* p, int n) { return V::load_part(p, n); }
  static reg kv_load_part(const uint16_t* p, int n) { return V::load_f16_part(p, n); }

  // J rows at a time against H heads: J * H independent accumulators keep the FMAs busy whatever
  // the group size (J * H = 8, or 4 for one head). A head's score is the same sum in the same order
  // whatever H and J are, so heads may be split between tasks freely.
  template <typename KT, int H, int J>
  static void scores_tile(const float* q, int d, const KT* k, ptrdiff_t ld, int n, float scale, float* s, ptrdiff_t lds) {
    int j = 0;
    for (; j + J <= n; j += J) {
      IE_UNROLL for (int r = 0; r < J; r++)
        if (j + kKvAhead + r < n) kv_prefetch(k + (j + kKvAhead + r) * ld, d);
      reg a[J][H];
      IE_UNROLL for (int r = 0; r < J; r++) IE_UNROLL for (int h = 0; h < H; h++) a[r][h] = V::zero();
      int c = 0;
      for (; c + L <= d; c += L) {
        IE_UNROLL for (int r = 0; r < J; r++) {
          const reg kv = kv_load(k + (j + r) * ld + c);
          IE_UNROLL for (int h = 0; h < H; h++) a[r][h] = V::fmadd(V::load(q + h * d + c), kv, a[r][h]);
        }
      }
      if (c < d) {
        IE_UNROLL for (int r = 0; r < J; r++) {
          const reg kv = kv_load_part(k + (j + r) * ld + c, d - c);
          IE_UNROLL for (int h = 0; h < H; h++) a[r][h] = V::fmadd(V::load_part(q + h * d + c, d - c), kv, a[r][h]);
        }
      }
      IE_UNROLL for (int r = 0; r < J; r++) IE_UNROLL for (int h = 0; h < H; h++) s[h * lds + j + r] = scale * V::hsum(a[r][h]);
    }
    if (J > 1 && j < n) scores_tile<KT, H, 1>(q, d, k + j * ld, ld, n - j, scale, s + j, lds);
  }

  template <typename KT>
  static void attn_scores(const float* q, int nq, int d, const KT* k, ptrdiff_t ld, int n, float scale, float* s, ptrdiff_t lds) {
    for (int h0 = 0; h0 < nq; h0 += 8) {
      const float* qh = q + h0 * d;
      float* sh = s + h0 * lds;
      switch (std::min(8, nq - h0)) {
        case 8: scores_tile<KT, 8, 1>(qh, d, k, ld, n, scale, sh, lds); break;
        case 7: scores_tile<KT, 7, 1>(qh, d, k, ld, n, scale, sh, lds); break;
        case 6: scores_tile<KT, 6, 1>(qh, d, k, ld, n, scale, sh, lds); break;
        case 5: scores_tile<KT, 5, 1>(qh, d, k, ld, n, scale, sh, lds); break;
        case 4: scores_tile<KT, 4, 2>(qh, d, k, ld, n, scale, sh, lds); break;
        case 3: scores_tile<KT, 3, 2>(qh, d, k, ld, n, scale, sh, lds); break;
        case 2: scores_tile<KT, 2, 4>(qh, d, k, ld, n, scale, sh, lds); break;
        default: scores_tile<KT, 1, 4>(qh, d, k, ld, n, scale, sh, lds); break;
      }
    }
  }

  // out[0, NV * L) += sum_j p[j] v_j[0, NV * L): NV accumulators in registers over the n rows;
  // with Ahead, rows up to `avail` are prefetched kKvAhead on.
  template <typename KT, int NV, bool Ahead>
  static void mix_tile(const float* p, const KT* v, ptrdiff_t ld, int n, int avail, float* out) {
    reg a[NV];
    IE_UNROLL for (int u = 0; u < NV; u++) a[u] = V::load(out + u * L);
    for (int j = 0; j < n; j++) {
      if (Ahead && j + kKvAhead < avail) kv_prefetch(v + (j + kKvAhead) * ld, NV * L);
      const reg b = V::broadcast(p + j);
      IE_UNROLL for (int u = 0; u < NV; u++) a[u] = V::fmadd(b, kv_load(v + j * ld + u * L), a[u]);
    }
    IE_UNROLL for (int u = 0; u < NV; u++) V::store(out + u * L, a[u]);
  }

  // A head's row of weights against rows of V, 8 vectors of columns at a time, then a partial one.
  template <typename KT, bool Ahead>
  static void mix_head(const float* p, int d, const KT* v, ptrdiff_t ld, int n, int avail, float* out) {
    int c = 0;
    for (; c + 8 * L <= d; c += 8 * L) mix_tile<KT, 8, Ahead>(p, v + c, ld, n, avail, out + c);
    switch ((d - c) / L) {
      case 7: mix_tile<KT, 7, Ahead>(p, v + c, ld, n, avail, out + c); break;
      case 6: mix_tile<KT, 6, Ahead>(p, v + c, ld, n, avail, out + c); break;
      case 5: mix_tile<KT, 5, Ahead>(p, v + c, ld, n, avail, out + c); break;
      case 4: mix_tile<KT, 4, Ahead>(p, v + c, ld, n, avail, out + c); break;
      case 3: mix_tile<KT, 3, Ahead>(p, v + c, ld, n, avail, out + c); break;
      case 2: mix_tile<KT, 2, Ahead>(p, v + c, ld, n, avail, out + c); break;
      case 1: mix_tile<KT, 1, Ahead>(p, v + c, ld, n, avail, out + c); break;
      default: break;
    }
    c += (d - c) / L * L;
    if (c < d) {
      reg a = V::load_part(out + c, d - c);
      for (int j = 0; j < n; j++) a = V::fmadd(V::broadcast(p + j), kv_load_part(v + j * ld + c, d - c), a);
      V::store_part(out + c, a, d - c);
    }
  }

  // V rows a block at a time (it stays in L1 for every head); f16 rows converted once per block.
  static constexpr int kMixRows = 32;
  static void attn_mix(const float* p, ptrdiff_t ldp, int nq, int d, const float* v, ptrdiff_t ld, int n, float* out) {
    for (int j0 = 0; j0 < n; j0 += kMixRows) {
      const int rows = std::min(kMixRows, n - j0);
      mix_head<float, true>(p + j0, d, v + j0 * ld, ld, rows, n - j0, out);  // the first head pulls the block in
      for (int h = 1; h < nq; h++) mix_head<float, false>(p + h * ldp + j0, d, v + j0 * ld, ld, rows, 0, out + h * d);
    }
  }
  static void attn_mix_f16(const float* p, ptrdiff_t ldp, int nq, int d, const uint16_t* v, ptrdiff_t ld, int n, float* out) {
    if (d > 256) {
      for (int h = 0; h < nq; h++) mix_head<uint16_t, false>(p + h * ldp, d, v, ld, n, 0, out + h * d);
      return;
    }
    alignas(64) float block[kMixRows * 256];
    for (int j0 = 0; j0 < n; j0 += kMixRows) {
      const int rows = std::min(kMixRows, n - j0);
      for (int j = 0; j < rows; j++) {
        if (j0 + j + kKvAhead < n) kv_prefetch(v + (j0 + j + kKvAhead) * ld, d);
        f16_to_f32(v + (j0 + j) * ld, block + j * d, d);
      }
      for (int h = 0; h < nq; h++) mix_head<float, false>(p + h * ldp + j0, d, block, d, rows, 0, out + h * d);
    }
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
  t.axpy = Ops<V>::axpy;
  t.attn_scores = Ops<V>::template attn_scores<float>;
  t.attn_scores_f16 = Ops<V>::template attn_scores<uint16_t>;
  t.attn_mix = Ops<V>::attn_mix;
  t.attn_mix_f16 = Ops<V>::attn_mix_f16;
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
