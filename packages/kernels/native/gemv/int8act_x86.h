// The int8-activation GEMV on 256-bit x86, written once over the integer dot product:
// int8act_avx2.cc instantiates it with vpmaddubsw + vpmaddwd (every AVX2 CPU), int8act_avxvnni.cc with
// vpdpbusd (AVX-VNNI: Alder Lake and later, Zen 5). Everything here has internal linkage, so the
// two translation units, compiled with different -m flags, never share a function.
//
// i8 rows run one at a time in memory order (see gemv_avx2.cc: interleaved adjacent rows cost an
// AVX2 core half its bandwidth), or for a lone activation row in far-apart pairs where one stream
// stays below the bus (gemv_i8_far, i8_rows_in_far_pairs in cpu/cpu_features.h); q4 rows run two
// at a time, rows far apart (row_streams). x is
// quantized per call exactly as quantize_x_ref does (in blocks of q8_x_block: a q4 group of 64 or
// 128 meets one scale of x, so its integer sums add up before they become floats); the zero
// points come off once per row through per-group sums of the quantized x, so codes stay unsigned
// 0..15 and feed the unsigned operand of the dot product directly.
//
// q4 rows are read 32 bytes (64 weights) at a time: the low nibbles of the 32 bytes meet the
// activations `xl`, the high nibbles `xh`, laid out per call to match the IEBIN nibble order.
// With group 32 the 32 bytes are two groups and each 128-bit lane stays inside one 32-element
// block of x, so the two halves add up in integers (at most 2 * 2 * 15 * 127 per 16-bit lane);
// groups of 64 and 128 add up whole (at most 4 * 2 * 15 * 127).
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "cpu/kernel_table.h"
#include "cpu/simd_common.h"
#include "cpu/vec.h"
#include "gemv/row_streams.h"
#include "mem/aligned.h"

namespace ie {
namespace {

inline float q8_hsum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

inline __m256 q8_load_f32(const float* x, int n) {
  if (n >= 8) return _mm256_loadu_ps(x);
  float tmp[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  if (n > 0) std::memcpy(tmp, x, sizeof(float) * n);
  return _mm256_loadu_ps(tmp);
}

inline __m256i q8_load_bytes32(const void* p, int n) {
  if (n >= 32) return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  alignas(32) uint8_t tmp[32] = {0};
  std::memcpy(tmp, p, n);
  return _mm256_load_si256(reinterpret_cast<const __m256i*>(tmp));
}

// x[0..K) -> q (q8_padded(K) bytes) and d (one per 32), zero past K, `block` elements (32, 64,
// 128 or 256) sharing a scale: bit-identical to quantize_x_ref. First each 32-chunk's max |x| into d,
// then q8_block_scales.
inline void q8_quantize_x(const float* x, int K, int block, int8_t* q, float* d) {
  const int P = q8_padded(K);
  const __m256 sign = _mm256_set1_ps(-0.0f), hi = _mm256_set1_ps(127.0f), lo = _mm256_set1_ps(-127.0f);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  auto chunk = [&](int k0, __m256 v[4]) {
    for (int i = 0; i < 4; i++) v[i] = q8_load_f32(x + k0 + 8 * i, std::clamp(K - k0 - 8 * i, 0, 8));
  };
  for (int k0 = 0; k0 < P; k0 += kQ8Block) {
    if (k0 >= K) {
      std::memset(q + k0, 0, kQ8Block);
      d[k0 / kQ8Block] = 0.f;
      continue;
    }
    __m256 v[4];
    chunk(k0, v);
    const __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v[0]), _mm256_andnot_ps(sign, v[1])),
                                   _mm256_max_ps(_mm256_andnot_ps(sign, v[2]), _mm256_andnot_ps(sign, v[3])));
    const __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    const __m128 m2 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    d[k0 / kQ8Block] = _mm_cvtss_f32(_mm_max_ss(m2, _mm_movehdup_ps(m2)));
  }
  q8_block_scales(K, block, d, [&](int c, float id) {
    const __m256 iv = _mm256_set1_ps(id);
    __m256 v[4];
    chunk(c * kQ8Block, v);
    __m256i e[4];
    // Round half to even (the default MXCSR mode), as nearbyint in the reference.
    for (int i = 0; i < 4; i++) e[i] = _mm256_cvtps_epi32(_mm256_min_ps(hi, _mm256_max_ps(lo, _mm256_mul_ps(v[i], iv))));
    const __m256i b = _mm256_packs_epi16(_mm256_packs_epi32(e[0], e[1]), _mm256_packs_epi32(e[2], e[3]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + c * kQ8Block), _mm256_permutevar8x32_epi32(b, order));
  });
}

// Per-group sums of the quantized x, in x's units: xs[g] = sum over the group's blocks of d_b * sum(q).
inline void q8_group_sums(const int8_t* xq, const float* xd, int G, int ng, float* xs) {
  const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
  for (int g = 0; g < ng; g++) {
    float t = 0.f;
    for (int b = g * G; b < (g + 1) * G; b += kQ8Block) {
      // Sum of 32 signed bytes: vpmaddubsw against ones, then vpmaddwd.
      const __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + b))), ones16);
      const __m128i h = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
      const __m128i h2 = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4e));
      t += xd[b / kQ8Block] * (float)_mm_cvtsi128_si32(_mm_add_epi32(h2, _mm_shuffle_epi32(h2, 0xb1)));
    }
    xs[g] = t;
  }
}

// The zero points' term of eight groups, accumulated into zt: scale * zero * (sum of the group's x).
// Symmetric rows (no zero bytes) leave out the zero, 8, and q8_zero_sum multiplies it in once per
// row: scaling by a power of two is exact, so the sum is the same and a multiply per eight groups goes.
static_assert((kQ4SymmetricZero & (kQ4SymmetricZero - 1)) == 0, "the symmetric zero point must be a power of two");
inline __m256 q8_zero_term(__m256 s8, const uint8_t* zrow, int g, const float* xs8, __m256 zt) {
  if (!zrow) return _mm256_fmadd_ps(s8, _mm256_loadu_ps(xs8), zt);
  const __m256 z8 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(zrow + g))));
  return _mm256_fmadd_ps(_mm256_mul_ps(s8, z8), _mm256_loadu_ps(xs8), zt);
}
inline float q8_zero_sum(__m256 zt, const uint8_t* zrow) { return zrow ? q8_hsum(zt) : (float)kQ4SymmetricZero * q8_hsum(zt); }

// A q4 row's result: its two running sums less the zero points' term (zt in eight lanes, zs the
// groups past the last whole eight), stored into out or added to it.
inline void q8_row_result(float& out, __m256 t0, __m256 t1, __m256 zt, const uint8_t* zrow, float zs, bool acc) {
  const float v = q8_hsum(_mm256_add_ps(t0, t1)) - (q8_zero_sum(zt, zrow) + zs);
  out = acc ? out + v : v;
}

// Factors 2u and 2u + 1 of eight consecutive groups (blocks), each in four lanes: a 32-byte chunk's
// two groups, one per 128-bit lane.
inline __m256 q8_pair_factors(__m256 f8, int u) {
  return _mm256_permutevar8x32_ps(f8, _mm256_setr_epi32(2 * u, 2 * u, 2 * u, 2 * u, 2 * u + 1, 2 * u + 1, 2 * u + 1, 2 * u + 1));
}

// [a a a a b b b b]: the scales of a 32-byte chunk's two groups, one per 128-bit lane.
inline __m256 q8_pair_scales2(float a, float b) { return _mm256_insertf128_ps(_mm256_set1_ps(a), _mm_set1_ps(b), 1); }

// Eight consecutive scales of a row as f32.
inline __m256 q8_load_scales8(const uint8_t* s, ScaleType t) {
  if (t == ScaleType::F32) return _mm256_loadu_ps(reinterpret_cast<const float*>(s));
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s));
  return t == ScaleType::F16 ? _mm256_cvtph_ps(h) : _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

// The loop nest of the q4 kernels over M activation rows: one activation row runs its weight rows
// through row_streams; several run weight rows one at a time (the arithmetic, not the bus, is the
// limit then), each against the activation rows kActsPerPass at a time.
// run(integral_constant R, rows[R], integral_constant A, acts[A]).
template <class Act, class Run>
inline void q8_many_rows(int rows, ptrdiff_t ld, int M, const Act* act, Run&& run) {
  if (M == 1) {
    row_streams(rows, ld, [&](auto n_rows, const int* rs) { run(n_rows, rs, std::integral_constant<int, 1>{}, act); });
    return;
  }
  for (int r = 0; r < rows; r++) act_passes(M, [&](auto n_acts, int m) { run(std::integral_constant<int, 1>{}, &r, n_acts, act + m); });
}

// 32 bytes of q4 codes (64 weights) split into the low and the high nibbles, from one load.
inline void q4_nibbles(const uint8_t* p, __m256i low4, __m256i& lo, __m256i& hi) {
  __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  __asm__("" : "+x"(v));  // one load for both nibble halves (GCC otherwise loads the codes twice)
  lo = _mm256_and_si256(v, low4);
  hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
}

// Codes, scales and zero points (null for symmetric rows) of R rows of a q4 panel.
template <int R>
struct Q4Rows {
  const uint8_t *q[R], *s[R], *z[R];
  Q4Rows(const WeightRows& w, const int* rs) {
    for (int i = 0; i < R; i++) {
      q[i] = w.q + rs[i] * w.q_ld;
      s[i] = w.s + rs[i] * w.s_ld;
      z[i] = w.z ? w.z + rs[i] * w.z_ld : nullptr;
    }
  }
};

template <class Dot>
struct Q8Kernels {
  // ---- q4 x q8, group 32: one 32-byte load is two whole groups. The row's scales are read eight
  // groups (four chunks) at a time and spread over the chunk's lanes with a permute; the zero
  // points' term accumulates beside, so a row is one pass over its codes and scales.
  static void q4_g32(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) { q4_g32_many(w, xq, xd, 0, 0, 1, y, 0, rows, acc); }

  // M activation rows (xq + m * ldq, xd + m * ldd -> y + m * ldy): each weight row's codes are
  // loaded and split into nibbles once for up to kActsPerPass activation rows. Every (weight row,
  // activation row) pair goes through the same operations in the same order as with M = 1, so
  // each activation row's result is bit for bit its lone GEMV's.
  static void q4_g32_many(const WeightRows& w, const int8_t* xq, const float* xd, ptrdiff_t ldq, ptrdiff_t ldd, int M, float* y, ptrdiff_t ldy, int rows, bool acc) {
    const int ng = (w.K + 31) / 32, chunks = (ng + 1) / 2, full = ng / 2;
    const int xn = chunks * 64, dn = chunks * 8, sn = ng + 8;
    Scratch<int8_t, 64 * 128> xt((size_t)M * xn);
    Scratch<float, 8 * 128> dt((size_t)M * dn);
    Scratch<float, 256> xst((size_t)M * sn);
    // Per activation row: x laid out per chunk (the low nibbles' 32 activations, then the high
    // nibbles'), the chunk's two block scales one per 128-bit lane, and the per-group sums.
    struct Act {
      const int8_t* xl;
      const float* dl;
      const float* xs;
      const float* xd;
      float* y;
    };
    Scratch<Act, 8> act((size_t)M);
    for (int m = 0; m < M; m++) {
      const int8_t* q = xq + m * ldq;
      const float* d = xd + m * ldd;
      int8_t* xl = xt.data() + (size_t)m * xn;
      float* dl = dt.data() + (size_t)m * dn;
      float* xs = xst.data() + (size_t)m * sn;
      for (int c = 0; c < chunks; c++) {
        const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 64 * c));
        const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 64 * c + 32));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(xl + 64 * c), _mm256_permute2x128_si256(a, b, 0x20));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(xl + 64 * c + 32), _mm256_permute2x128_si256(a, b, 0x31));
        _mm256_storeu_ps(dl + 8 * c, _mm256_insertf128_ps(_mm256_set1_ps(d[2 * c]), _mm_set1_ps(d[2 * c + 1]), 1));
      }
      q8_group_sums(q, d, 32, ng, xs);
      act.data()[m] = Act{xl, dl, xs, d, y + m * ldy};
    }
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    const int sb = scale_bytes(w.stype);
    // One chunk's codes (already split into nibbles) against an activation row's x for them (xlo,
    // xhi: x_at) into t; f holds the chunk's two products d_x * d_w, one per 128-bit lane.
    auto chunk = [&](__m256i lo, __m256i hi, __m256i xlo, __m256i xhi, __m256 f, __m256& t) { t = _mm256_fmadd_ps(_mm256_cvtepi32_ps(Dot::pair(lo, xlo, hi, xhi)), f, t); };
    auto x_at = [](const int8_t* xl, int c, int half) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xl + 64 * c + 32 * half)); };
    // R weight rows x A activation rows at once (see row_streams for R).
    auto run = [&](auto n_rows, const int* rs, auto n_acts, const Act* as) {
      constexpr int R = decltype(n_rows)::value, A = decltype(n_acts)::value;
      const Q4Rows<R> rows_in(w, rs);
      const auto &row = rows_in.q, &srow = rows_in.s, &zrow = rows_in.z;
      __m256 t[R][A][2], zt[R][A];
      IE_UNROLL for (int i = 0; i < R; i++) IE_UNROLL for (int a = 0; a < A; a++) t[i][a][0] = t[i][a][1] = zt[i][a] = _mm256_setzero_ps();
      int c = 0;
      for (; c + 4 <= full; c += 4) {
        __m256 f8[R][A];
        IE_UNROLL for (int i = 0; i < R; i++) {
          stream_prefetch(row[i] + 32 * c, 128);
          const __m256 s8 = q8_load_scales8(srow[i] + 2 * c * sb, w.stype);
          IE_UNROLL for (int a = 0; a < A; a++) {
            zt[i][a] = q8_zero_term(s8, zrow[i], 2 * c, as[a].xs + 2 * c, zt[i][a]);
            // Eight groups' d_x * d_w in one multiply (x's scales are consecutive per group), spread per chunk.
            f8[i][a] = _mm256_mul_ps(_mm256_loadu_ps(as[a].xd + 2 * c), s8);
          }
        }
        IE_UNROLL for (int u = 0; u < 4; u++) {
          __m256i xlo[A], xhi[A];  // loaded once for the R weight rows
          IE_UNROLL for (int a = 0; a < A; a++) xlo[a] = x_at(as[a].xl, c + u, 0), xhi[a] = x_at(as[a].xl, c + u, 1);
          IE_UNROLL for (int i = 0; i < R; i++) {
            __m256i lo, hi;
            q4_nibbles(row[i] + 32 * (c + u), low4, lo, hi);
            IE_UNROLL for (int a = 0; a < A; a++) chunk(lo, hi, xlo[a], xhi[a], q8_pair_factors(f8[i][a], u), t[i][a][u & 1]);
          }
        }
      }
      // The chunks past the last whole four, scales one by one, and the zero term in scalar.
      for (int i = 0; i < R; i++)
        for (int a = 0; a < A; a++) {
          const Act& x = as[a];
          float zs = 0.f;
          for (int g = 2 * c; g < ng; g++) zs += simd::scale_at(srow[i] + g * sb, w.stype) * (float)(zrow[i] ? zrow[i][g] : kQ4SymmetricZero) * x.xs[g];
          int ct = c;
          for (; ct < full; ct++) {
            __m256i lo, hi;
            q4_nibbles(row[i] + 32 * ct, low4, lo, hi);
            chunk(lo, hi, x_at(x.xl, ct, 0), x_at(x.xl, ct, 1), _mm256_mul_ps(_mm256_loadu_ps(x.dl + 8 * ct), q8_pair_scales2(simd::scale_at(srow[i] + 2 * ct * sb, w.stype), simd::scale_at(srow[i] + (2 * ct + 1) * sb, w.stype))),
                  t[i][a][0]);
          }
          if (ct < chunks) {  // an odd group count: the last 16 bytes, one group
            const __m256i v = _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row[i] + 32 * ct)));
            const __m256i lo = _mm256_and_si256(v, _mm256_castsi128_si256(_mm_set1_epi8(0x0f)));
            const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), _mm256_castsi128_si256(_mm_set1_epi8(0x0f)));
            chunk(lo, hi, x_at(x.xl, ct, 0), x_at(x.xl, ct, 1), _mm256_mul_ps(_mm256_loadu_ps(x.dl + 8 * ct), q8_pair_scales2(simd::scale_at(srow[i] + 2 * ct * sb, w.stype), 0.f)), t[i][a][0]);
          }
          q8_row_result(x.y[rs[i]], t[i][a][0], t[i][a][1], zt[i][a], zrow[i], zs, acc);
        }
    };
    q8_many_rows(rows, w.q_ld, M, act.data(), run);
  }

  // ---- q4 x q8, group 64 or 128: 32 bytes are one group or half of one; the low and high nibbles
  // each meet a 32-element block of x, read in place. x comes quantized with one scale per group
  // (q8_x_block), so a group's integer products add up before one conversion and one FMA by
  // d_x * d_w: 2 maddubsw + 1 maddwd per 64 weights where x in blocks of 32 took 2 + 2, one int ->
  // float instead of two, and no multiply (the kernel is compute-bound on AVX2). Scales and the zero
  // term go eight groups at a time, as in q4_g32.
  template <int G>
  static void q4_wide(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) { q4_wide_many<G>(w, xq, xd, 0, 0, 1, y, 0, rows, acc); }

  // M activation rows, as q4_g32_many: each weight row's codes split once for kActsPerPass activation
  // rows, every pair with the lone kernel's operations in its order.
  template <int G>
  static void q4_wide_many(const WeightRows& w, const int8_t* xq, const float* xd, ptrdiff_t ldq, ptrdiff_t ldd, int M, float* y, ptrdiff_t ldy, int rows, bool acc) {
    constexpr int cpg = G / 64;  // 32-byte chunks per group
    const int ng = (w.K + G - 1) / G, sn = ng + 8;
    Scratch<float, 256> xst((size_t)M * sn);
    Scratch<float, 256> xgt((size_t)M * sn);
    struct Act {
      const int8_t* xq;
      const float* xg;  // x's scale per group, consecutive
      const float* xs;
      float* y;
    };
    Scratch<Act, 8> act((size_t)M);
    for (int m = 0; m < M; m++) {
      float* xs = xst.data() + (size_t)m * sn;
      float* xg = xgt.data() + (size_t)m * sn;
      const float* d = xd + m * ldd;
      q8_group_sums(xq + m * ldq, d, G, ng, xs);
      for (int g = 0; g < ng; g++) xg[g] = d[g * (G / kQ8Block)];
      act.data()[m] = Act{xq + m * ldq, xg, xs, y + m * ldy};
    }
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    const int sb = scale_bytes(w.stype);
    auto run = [&](auto n_rows, const int* rs, auto n_acts, const Act* as) {
      constexpr int R = decltype(n_rows)::value, A = decltype(n_acts)::value;
      const Q4Rows<R> rows_in(w, rs);
      const auto &row = rows_in.q, &srow = rows_in.s, &zrow = rows_in.z;
      __m256 t[R][A][2], zt[R][A];
      IE_UNROLL for (int i = 0; i < R; i++) IE_UNROLL for (int a = 0; a < A; a++) t[i][a][0] = t[i][a][1] = zt[i][a] = _mm256_setzero_ps();
      // Group g's integer sum for each pair, times f[i][a] (d_x * d_w) into t[.][.][acc_i].
      auto group = [&](int g, const __m256 (*f)[A], int acc_i) {
        __m256i xv[A][2 * cpg];  // x's blocks for the group, loaded once for the R weight rows
        IE_UNROLL for (int a = 0; a < A; a++) IE_UNROLL for (int j = 0; j < 2 * cpg; j++) xv[a][j] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(as[a].xq + g * G + 32 * j));
        IE_UNROLL for (int i = 0; i < R; i++) {
          __m256i lo[cpg], hi[cpg];
          IE_UNROLL for (int part = 0; part < cpg; part++) q4_nibbles(row[i] + (g * cpg + part) * 32, low4, lo[part], hi[part]);
          IE_UNROLL for (int a = 0; a < A; a++) {
            // Low nibbles of chunk `part` meet x's block `part`, the high ones block `part + cpg` (G / 2 on).
            const __m256i p = cpg == 1 ? Dot::pair(lo[0], xv[a][0], hi[0], xv[a][1]) : Dot::quad(lo[0], xv[a][0], hi[0], xv[a][cpg], lo[cpg - 1], xv[a][cpg - 1], hi[cpg - 1], xv[a][2 * cpg - 1]);
            t[i][a][acc_i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), f[i][a], t[i][a][acc_i]);
          }
        }
      };
      int g = 0;
      for (; g + 8 <= ng; g += 8) {
        __m256 f8[R][A];
        IE_UNROLL for (int i = 0; i < R; i++) {
          stream_prefetch(row[i] + g * G / 2, 4 * G);
          const __m256 s8 = q8_load_scales8(srow[i] + g * sb, w.stype);
          IE_UNROLL for (int a = 0; a < A; a++) {
            zt[i][a] = q8_zero_term(s8, zrow[i], g, as[a].xs + g, zt[i][a]);
            f8[i][a] = _mm256_mul_ps(_mm256_loadu_ps(as[a].xg + g), s8);
          }
        }
        IE_UNROLL for (int u = 0; u < 8; u++) {
          __m256 fu[R][A];
          IE_UNROLL for (int i = 0; i < R; i++) IE_UNROLL for (int a = 0; a < A; a++) fu[i][a] = _mm256_permutevar8x32_ps(f8[i][a], _mm256_set1_epi32(u));
          group(g + u, fu, u & 1);
        }
      }
      float zs[R][A] = {};
      for (; g < ng; g++) {
        __m256 fu[R][A];
        for (int i = 0; i < R; i++) {
          const float sg = simd::scale_at(srow[i] + g * sb, w.stype);
          for (int a = 0; a < A; a++) {
            zs[i][a] += sg * (float)(zrow[i] ? zrow[i][g] : kQ4SymmetricZero) * as[a].xs[g];
            fu[i][a] = _mm256_set1_ps(as[a].xg[g] * sg);
          }
        }
        group(g, fu, g & 1);
      }
      for (int i = 0; i < R; i++)
        for (int a = 0; a < A; a++) q8_row_result(as[a].y[rs[i]], t[i][a][0], t[i][a][1], zt[i][a], zrow[i], zs[i][a], acc);
    };
    q8_many_rows(rows, w.q_ld, M, act.data(), run);
  }

  static void gemv_q4(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) {
    switch (w.group) {
      case 32: return q4_g32(w, xq, xd, y, rows, acc);
      case 64: return q4_wide<64>(w, xq, xd, y, rows, acc);
      default: return q4_wide<128>(w, xq, xd, y, rows, acc);
    }
  }

  // M activation rows (decode rows of several sequences), each bit for bit its lone gemv_q4.
  static void gemv_q4_many(const WeightRows& w, const int8_t* xq, const float* xd, ptrdiff_t ldq, ptrdiff_t ldd, int M, float* y, ptrdiff_t ldy, int rows, bool acc) {
    switch (w.group) {
      case 32: return q4_g32_many(w, xq, xd, ldq, ldd, M, y, ldy, rows, acc);
      case 64: return q4_wide_many<64>(w, xq, xd, ldq, ldd, M, y, ldy, rows, acc);
      default: return q4_wide_many<128>(w, xq, xd, ldq, ldd, M, y, ldy, rows, acc);
    }
  }

  // ---- i8 x q8: one 32-element block per step, scaled by d_x[b] * s_w[group of b]; per-row scales
  // multiply once at the end (G = 0). NA activation rows (the decode rows of several sequences) meet
  // each weight load; every (row, activation row) pair runs the lone GEMV's operations in its order,
  // so a batch's row gets its lone GEMV's bits and the weights are read once for all of them.
  // The factors of one row's blocks against x: d_x[b] * s_w[b * 32 / G] into f, eight blocks at a
  // time (returned); a per-row scale (G = 0) is applied once at the end, so x's own scales serve.
  template <int G>
  static const float* i8_block_scales(const float* xd, const float* sw, int blocks, float* f) {
    if constexpr (G == 0) return xd;
    constexpr int bpg = G > 0 ? G / kQ8Block : 1;
    int b = 0;
    if (bpg == 1)
      for (; b + 8 <= blocks; b += 8) _mm256_storeu_ps(f + b, _mm256_mul_ps(_mm256_loadu_ps(xd + b), _mm256_loadu_ps(sw + b)));
    for (; b < blocks; b++) f[b] = xd[b] * sw[b / bpg];
    return f;
  }

  template <int G, int NA>
  static void i8_rows(const WeightRows& w, const int8_t* const* xq, const float* const* xd, float* const* y, int rows, bool acc) {
    const int K = w.K, blocks = (K + kQ8Block - 1) / kQ8Block;
    const int ng = G > 0 ? (K + G - 1) / G : 1;
    Scratch<float, 256> s((size_t)ng);
    Scratch<float, 4 * 256> f((size_t)NA * blocks);
    for (int r = 0; r < rows; r++) {
      const int8_t* row = reinterpret_cast<const int8_t*>(w.q + r * w.q_ld);
      simd::row_scales_f32(w.s + r * w.s_ld, w.stype, ng, s.data());
      const float* fb[NA];
      for (int a = 0; a < NA; a++) fb[a] = i8_block_scales<G>(xd[a], s.data(), blocks, f.data() + (size_t)a * blocks);
      __m256 t0[NA], t1[NA];
      for (int a = 0; a < NA; a++) t0[a] = t1[a] = _mm256_setzero_ps();
      int b = 0;
      // Per-group rows are padded to whole groups; per-row rows end at K, so the last block may be partial.
      const int whole = G > 0 ? blocks : K / kQ8Block;
      for (; b + 1 < whole; b += 2) {
        const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 32 * b));
        const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 32 * b + 32));
        for (int a = 0; a < NA; a++) {
          const __m256i p0 = Dot::signed_single(w0, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq[a] + 32 * b)));
          const __m256i p1 = Dot::signed_single(w1, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq[a] + 32 * b + 32)));
          t0[a] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_broadcast_ss(fb[a] + b), t0[a]);
          t1[a] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p1), _mm256_broadcast_ss(fb[a] + b + 1), t1[a]);
        }
      }
      for (; b < blocks; b++) {
        const __m256i wv = b < whole ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 32 * b)) : q8_load_bytes32(row + 32 * b, K - 32 * b);
        for (int a = 0; a < NA; a++) {
          const __m256i p = Dot::signed_single(wv, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq[a] + 32 * b)));
          t0[a] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_broadcast_ss(fb[a] + b), t0[a]);
        }
      }
      for (int a = 0; a < NA; a++) {
        float v = q8_hsum(_mm256_add_ps(t0[a], t1[a]));
        if (G == 0) v *= s.data()[0];
        y[a][r] = acc ? y[a][r] + v : v;
      }
    }
  }

  template <int G>
  static void i8_many(const WeightRows& w, const int8_t* xq, const float* xd, ptrdiff_t ldq, ptrdiff_t ldd, int M, float* y, ptrdiff_t ldy, int rows, bool acc) {
    act_passes(M, [&](auto na, int a0) {
      constexpr int NA = decltype(na)::value;
      const int8_t* q[NA];
      const float* d[NA];
      float* out[NA];
      for (int a = 0; a < NA; a++) q[a] = xq + (a0 + a) * ldq, d[a] = xd + (a0 + a) * ldd, out[a] = y + (a0 + a) * ldy;
      i8_rows<G, NA>(w, q, d, out, rows, acc);
    });
  }

  static void gemv_i8_many(const WeightRows& w, const int8_t* xq, const float* xd, ptrdiff_t ldq, ptrdiff_t ldd, int M, float* y, ptrdiff_t ldy, int rows, bool acc) {
    switch (w.group) {
      case 0: return i8_many<0>(w, xq, xd, ldq, ldd, M, y, ldy, rows, acc);
      case 32: return i8_many<32>(w, xq, xd, ldq, ldd, M, y, ldy, rows, acc);
      case 64: return i8_many<64>(w, xq, xd, ldq, ldd, M, y, ldy, rows, acc);
      default: return i8_many<128>(w, xq, xd, ldq, ldd, M, y, ldy, rows, acc);
    }
  }

  static void gemv_i8(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) { gemv_i8_many(w, xq, xd, 0, 0, 1, y, 0, rows, acc); }

  // A lone activation row against NR far-apart weight rows (row_streams), each x load serving all
  // of them, each row's next line prefetched kStreamAhead ahead: the per-CPU alternative to rows in
  // memory order (gemv_i8), for cores whose one sequential stream stays below the bus (Zen 5, Zen 3).
  template <int G, int NR>
  static void i8_far_rows(const WeightRows& w, const int* rs, const int8_t* xq, const float* xd, float* s, float* f, float* y, bool acc) {
    const int K = w.K, blocks = (K + kQ8Block - 1) / kQ8Block;
    const int ng = G > 0 ? (K + G - 1) / G : 1;
    const int8_t* row[NR];
    const float* fb[NR];
    for (int r = 0; r < NR; r++) {
      row[r] = reinterpret_cast<const int8_t*>(w.q + rs[r] * w.q_ld);
      float* sr = s + (size_t)r * ng;
      simd::row_scales_f32(w.s + rs[r] * w.s_ld, w.stype, ng, sr);
      fb[r] = i8_block_scales<G>(xd, sr, blocks, f + (size_t)r * blocks);
    }
    __m256 t0[NR], t1[NR];
    for (int r = 0; r < NR; r++) t0[r] = t1[r] = _mm256_setzero_ps();
    int b = 0;
    const int whole = G > 0 ? blocks : K / kQ8Block;
    for (; b + 1 < whole; b += 2) {
      const __m256i x0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + 32 * b));
      const __m256i x1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + 32 * b + 32));
      for (int r = 0; r < NR; r++) {
        if constexpr (NR > 1) stream_prefetch(reinterpret_cast<const uint8_t*>(row[r] + 32 * b), 64);
        const __m256i p0 = Dot::signed_single(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row[r] + 32 * b)), x0);
        const __m256i p1 = Dot::signed_single(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row[r] + 32 * b + 32)), x1);
        t0[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_broadcast_ss(fb[r] + b), t0[r]);
        t1[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p1), _mm256_broadcast_ss(fb[r] + b + 1), t1[r]);
      }
    }
    for (; b < blocks; b++) {
      const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + 32 * b));
      for (int r = 0; r < NR; r++) {
        const __m256i wv = b < whole ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row[r] + 32 * b)) : q8_load_bytes32(row[r] + 32 * b, K - 32 * b);
        t0[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(Dot::signed_single(wv, xv)), _mm256_broadcast_ss(fb[r] + b), t0[r]);
      }
    }
    for (int r = 0; r < NR; r++) {
      float v = q8_hsum(_mm256_add_ps(t0[r], t1[r]));
      if (G == 0) v *= s[(size_t)r * ng];
      y[rs[r]] = acc ? y[rs[r]] + v : v;
    }
  }

  template <int G>
  static void i8_far(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) {
    const int blocks = (w.K + kQ8Block - 1) / kQ8Block;
    const int ng = G > 0 ? (w.K + G - 1) / G : 1;
    Scratch<float, 2 * 256> s((size_t)2 * ng);
    Scratch<float, 2 * 256> f((size_t)2 * blocks);
    row_streams<2>(rows, w.q_ld, [&](auto n, const int* rs) { i8_far_rows<G, decltype(n)::value>(w, rs, xq, xd, s.data(), f.data(), y, acc); });
  }

  static void gemv_i8_far(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) {
    switch (w.group) {
      case 0: return i8_far<0>(w, xq, xd, y, rows, acc);
      case 32: return i8_far<32>(w, xq, xd, y, rows, acc);
      case 64: return i8_far<64>(w, xq, xd, y, rows, acc);
      default: return i8_far<128>(w, xq, xd, y, rows, acc);
    }
  }

  static void quantize_x(const float* x, int K, int block, int8_t* q, float* d) { q8_quantize_x(x, K, block, q, d); }
};

}  // namespace
}  // namespace ie
