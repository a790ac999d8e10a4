// Symmetric q4 and iq4_nl in 16-row records (kernel_table.h) x int8 activations on 256-bit vectors,
// written once over the four-byte dot products of gemv/dot_avx2.h (vpmaddubsw + vpmaddwd) and
// gemv/dot_avxvnni.h (256-bit vpdpbusd). A record's 64-byte vector is two 256-bit halves of 8 rows
// each; a pass takes one half of a stripe against up to four activation rows (16 registers: two per
// activation row, the rest for codes), so the stripe's records are read once from memory and from L1
// for the other passes. iq4_nl (kIq4) takes each nibble's level by vpshufb: + 128 as vpdpbusd's
// unsigned operand (the offset off through the start, as q4's 8), signed on AVX2 (the sign trick:
// levels + 128 would saturate vpmaddubsw's 16-bit pairs), so each product is widened on its own there.
// Include only from translation units built for AVX2.
#pragma once
#include <immintrin.h>

#include <algorithm>

#include "cpu/kernel_table.h"
#include "cpu/vec.h"
#include "gemv/records16_x86.h"
#include "gemv/row_streams.h"
#include "mem/aligned.h"

namespace ie {
namespace {

template <class Dot, bool kIq4 = false>
struct Q4x16Kernels256 {
  static constexpr bool kSigned = kIq4 && Dot::kSteps16 != 0;  // iq4_nl on AVX2: the levels as they are
  // The value a code's operand stands for is operand - kZero: q4's code - 8, iq4_nl's level + 128 - 128.
  static constexpr int kZero = !kIq4 ? kQ4SymmetricZero : kSigned ? 0 : 128;

  struct ActRow {
    const int8_t* q;
    const float* d;
    const int32_t* n;
  };

  // H halves of one stripe, from half h (rows 8h..8h + 8H), against NA activation rows over groups
  // [g0, g1): the sums so far of activation row a's half h + k at t + 16·a + 8·k (start: none yet),
  // stored back at the end. One activation row takes both halves in one pass (H 2): each broadcast
  // feeds both and the stripe streams from memory once, where as two passes of one half the second
  // came from cache only after the first had waited on memory. Each (row, activation row) pair runs
  // the same operations at every H, so the results are the same bits.
  //
  // P 2 (one activation row): the same for two stripes `far` bytes apart, the second's sums at t + 16.
  template <int G, int NA, int H = 1, int P = 1>
  __attribute__((noinline)) static void halves(const uint8_t* recs, int g0, int g1, ScaleType st, int h, const ActRow* x, float* t, bool start, bool fetch,
                                               ptrdiff_t far = 0) {
    static_assert(P == 1 || (NA == 1 && H == 2), "two stripes a pass: one activation row, both halves");
    constexpr int V = G / 8, HP = H * P;
    const int rec_bytes = q4x16_record_bytes(G, st);
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    const __m128i levels = _mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4NlLevels));
    const __m256i table = _mm256_broadcastsi128_si256(kZero ? _mm_add_epi8(levels, _mm_set1_epi8((char)kZero)) : levels);
    // Half k of stripe p is hp = p·H + k; activation row a's sums of it at t + 16·a + 8·hp.
    __m256 total[HP][NA];
    IE_UNROLL for (int k = 0; k < HP; k++) IE_UNROLL for (int a = 0; a < NA; a++) total[k][a] = start ? _mm256_setzero_ps() : _mm256_loadu_ps(t + 16 * a + 8 * k);
    for (int g = g0; g < g1; g++) {
      const uint8_t* rec = recs + (ptrdiff_t)g * rec_bytes;
      if (fetch) IE_UNROLL for (int p = 0; p < P; p++) stream_prefetch(rec + p * far, rec_bytes);
      __m256i s[HP][NA];
      IE_UNROLL for (int k = 0; k < HP; k++) IE_UNROLL for (int a = 0; a < NA; a++) s[k][a] = _mm256_set1_epi32(x[a].n[g]);
      for (int i = 0; i < V; i += 2) {
        IE_UNROLL for (int k = 0; k < HP; k++) {
          const uint8_t* half = rec + (k / H) * far + 32 * (h + k % H);
          const __m256i v0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(half + 64 * i));
          const __m256i v1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(half + 64 * (i + 1)));
          __m256i lo0 = _mm256_and_si256(v0, low4), hi0 = _mm256_and_si256(_mm256_srli_epi16(v0, 4), low4);
          __m256i lo1 = _mm256_and_si256(v1, low4), hi1 = _mm256_and_si256(_mm256_srli_epi16(v1, 4), low4);
          if constexpr (kIq4) {
            lo0 = _mm256_shuffle_epi8(table, lo0), hi0 = _mm256_shuffle_epi8(table, hi0);
            lo1 = _mm256_shuffle_epi8(table, lo1), hi1 = _mm256_shuffle_epi8(table, hi1);
          }
          IE_UNROLL for (int a = 0; a < NA; a++) {
            const int32_t* xg = reinterpret_cast<const int32_t*>(x[a].q + g * G);
            const __m256i x0 = _mm256_set1_epi32(xg[i]), x1 = _mm256_set1_epi32(xg[V + i]), x2 = _mm256_set1_epi32(xg[i + 1]), x3 = _mm256_set1_epi32(xg[V + i + 1]);
            if constexpr (kSigned)
              s[k][a] = _mm256_add_epi32(s[k][a], _mm256_add_epi32(_mm256_add_epi32(Dot::signed_single(lo0, x0), Dot::signed_single(hi0, x1)),
                                                                   _mm256_add_epi32(Dot::signed_single(lo1, x2), Dot::signed_single(hi1, x3))));
            else
              s[k][a] = Dot::acc_quad(s[k][a], lo0, x0, hi0, x1, lo1, x2, hi1, x3);
          }
        }
      }
      IE_UNROLL for (int k = 0; k < HP; k++) {
        const __m256 sc = record_half_scales(rec + (k / H) * far + 8 * G, st, h + k % H);
        IE_UNROLL for (int a = 0; a < NA; a++)
          total[k][a] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[k][a]), _mm256_mul_ps(sc, _mm256_set1_ps(x[a].d[g * G / kQ8Block])), total[k][a]);
      }
    }
    IE_UNROLL for (int k = 0; k < HP; k++) IE_UNROLL for (int a = 0; a < NA; a++) _mm256_storeu_ps(t + 16 * a + 8 * k, total[k][a]);
  }

  // -kZero * sum of each group's codes (none for iq4_nl on AVX2). Groups of 32 go four at a time (vpsadbw of the codes offset to
  // unsigned, then pairwise lane sums; the same integers), as in the AVX-512 kernel: per call and
  // activation row, a horizontal sum per group weighed on short ranges.
  template <int G>
  static void group_sums(const int8_t* xq, int ng, int32_t* n) {
    if constexpr (kZero == 0) {
      std::fill(n, n + ng, 0);
      return;
    }
    const __m256i ones = _mm256_set1_epi8(1);
    int g = 0;
    if constexpr (G == 32) {
      const __m256i bias = _mm256_set1_epi8((char)0x80), zero = _mm256_setzero_si256();
      const __m256i low_dwords = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
      for (; g + 4 <= ng; g += 4) {
        __m256i q[4];  // group g + i's four 8-byte sums, each offset by 8 * 128
        for (int i = 0; i < 4; i++)
          q[i] = _mm256_sad_epu8(_mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + (g + i) * 32)), bias), zero);
        const __m256i ab = _mm256_add_epi64(_mm256_unpacklo_epi64(q[0], q[1]), _mm256_unpackhi_epi64(q[0], q[1]));  // a01 b01 | a23 b23
        const __m256i cd = _mm256_add_epi64(_mm256_unpacklo_epi64(q[2], q[3]), _mm256_unpackhi_epi64(q[2], q[3]));
        const __m256i sum = _mm256_add_epi64(_mm256_permute2x128_si256(ab, cd, 0x20), _mm256_permute2x128_si256(ab, cd, 0x31));  // a b c d
        const __m128i s4 = _mm_sub_epi32(_mm256_castsi256_si128(_mm256_permutevar8x32_epi32(sum, low_dwords)), _mm_set1_epi32(32 * 128));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(n + g), _mm_mullo_epi32(s4, _mm_set1_epi32(-kZero)));
      }
    }
    for (; g < ng; g++) {
      __m256i s = _mm256_setzero_si256();
      for (int k = 0; k < G; k += 32) s = Dot::dot(s, ones, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + g * G + k)));
      alignas(32) int32_t l[8];
      _mm256_store_si256(reinterpret_cast<__m256i*>(l), s);
      n[g] = -kZero * (l[0] + l[1] + l[2] + l[3] + l[4] + l[5] + l[6] + l[7]);
    }
  }

  template <int G>
  static void rows(const WeightRows& w, const int8_t* xq, const float* xd, ptrdiff_t ldq, ptrdiff_t ldd, int M, float* y, ptrdiff_t ldy, int nrows, bool acc) {
    const int ng = (w.K + G - 1) / G;
    Scratch<int32_t, 8 * 256> sums((size_t)M * ng);
    Scratch<ActRow, 8> act((size_t)M);
    Scratch<float, 8 * 16> sums_((size_t)16 * M);  // activation row a's sums of the stripe at t + 16·a
    float* t = sums_.data();
    for (int m = 0; m < M; m++) {
      group_sums<G>(xq + m * ldq, ng, sums.data() + (size_t)m * ng);
      act.data()[m] = {xq + m * ldq, xd + m * ldd, sums.data() + (size_t)m * ng};
    }
    const ActRow* x = act.data();
    records_rows(
        w, M, ng, std::max(1, 512 / G), t, y, ldy, nrows, acc,
        [&](const uint8_t* recs, ptrdiff_t gap, float* u) { halves<G, 1, 2, 2>(recs, 0, ng, w.stype, 0, x, u, true, true, gap); },
        [&](const uint8_t* recs, float* u) { halves<G, 1, 2>(recs, 0, ng, w.stype, 0, x, u, true, true); },
        [&](auto na, const uint8_t* recs, int g0, int g1, int h, int a, float* u, bool start, bool first) {
          halves<G, decltype(na)::value>(recs, g0, g1, w.stype, h, x + a, u, start, first);
        });
  }

  static void gemv_rows(const WeightRows& w, const int8_t* xq, const float* xd, ptrdiff_t ldq, ptrdiff_t ldd, int M, float* y, ptrdiff_t ldy, int nrows, bool acc) {
    if constexpr (kIq4) return rows<32>(w, xq, xd, ldq, ldd, M, y, ldy, nrows, acc);
    switch (w.group) {
      case 32: return rows<32>(w, xq, xd, ldq, ldd, M, y, ldy, nrows, acc);
      case 64: return rows<64>(w, xq, xd, ldq, ldd, M, y, ldy, nrows, acc);
      default: return rows<128>(w, xq, xd, ldq, ldd, M, y, ldy, nrows, acc);
    }
  }
  static void gemv(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int nrows, bool acc) { gemv_rows(w, xq, xd, 0, 0, 1, y, 0, nrows, acc); }
};

}  // namespace
}  // namespace ie
