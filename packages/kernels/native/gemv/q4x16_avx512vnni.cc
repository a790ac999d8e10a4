// Symmetric q4 in 16-row records (kernel_table.h) x int8 activations on AVX-512 VNNI. A record's
// vector holds four codes of each of 16 rows, one row per lane; the four matching activations are
// broadcast to every lane, so one vpdpbusd does 64 multiply-adds for 16 rows and no lane ever needs
// a horizontal sum. Per group and 16 rows, one conversion and one FMA apply both scales: the row
// layout's kernel pays them per 128 weights of one row, which at eight activation rows left it at
// half the rate of this one (standalone, Zen 5, 2 threads: 438-442 against 897-911 GOP/s).
#include <immintrin.h>

#include <algorithm>

#include "cpu/cpu_features.h"
#include "cpu/kernel_table.h"
#include "cpu/vec.h"
#include "gemv/records16_avx512vnni.h"
#include "gemv/row_streams.h"
#include "mem/aligned.h"

namespace ie {
namespace {

// S consecutive stripes (16·S rows) against NA activation rows, groups [g0, g1): the sums so far in
// t ([S][NA][16] floats; start: none yet), stored back at the end. Each activation broadcast feeds S
// vpdpbusd: one stripe a pass is bound by its loads (a broadcast per vpdpbusd, besides the codes, the
// group sums and the scales) at about 70% of this core's vpdpbusd rate (standalone, Zen 5, from L2,
// eight activation rows: 561-568 G op/s one stripe a pass, 686-716 two or three; one row: 240-246,
// 295-311 four). Every (row, activation row) pair runs the same operations in the same order at every
// S, NA and group range, so a row's result does not depend on the batch or the range it falls in.
template <int G, int S, int NA>
__attribute__((noinline)) void stripes_q8(const uint8_t* recs, ptrdiff_t stripe_bytes, int g0, int g1, ScaleType st, const ActRow* x, float* t, bool start, Fetch fetch) {
  constexpr int V = G / 8;  // code vectors per record
  const int rec_bytes = q4x16_record_bytes(G, st);
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  // Up to 12 float sums stay in registers; more (two stripes of seven or eight rows) live in t,
  // which L1 serves: 2·S·NA registers of integer sums would leave none for the codes.
  constexpr bool kRegs = S * NA <= 12;
  __m512 total[kRegs ? S : 1][kRegs ? NA : 1];
  if constexpr (kRegs) {
    IE_UNROLL for (int j = 0; j < S; j++) IE_UNROLL for (int a = 0; a < NA; a++) total[j][a] = start ? _mm512_setzero_ps() : _mm512_loadu_ps(t + 16 * (j * NA + a));
  } else if (start) {
    for (int j = 0; j < S * NA; j++) _mm512_storeu_ps(t + 16 * j, _mm512_setzero_ps());
  }
  for (int g = g0; g < g1; g++) {
    const uint8_t* rec = recs + (ptrdiff_t)g * rec_bytes;
    if (fetch == Fetch::Pass) prefetch_pass<S>(rec, rec - recs, stripe_bytes, rec_bytes);
    if (fetch == Fetch::Far) IE_UNROLL for (int j = 0; j < S; j++) stream_prefetch(rec + j * stripe_bytes, rec_bytes);
    __m512i s[S][NA];
    IE_UNROLL for (int a = 0; a < NA; a++) {
      const __m512i n = _mm512_set1_epi32(x[a].n[g]);
      IE_UNROLL for (int j = 0; j < S; j++) s[j][a] = n;
    }
    IE_UNROLL for (int i = 0; i < V; i++) {
      __m512i lo[S], hi[S];
      IE_UNROLL for (int j = 0; j < S; j++) {
        const __m512i v = _mm512_loadu_si512(rec + j * stripe_bytes + 64 * i);
        lo[j] = _mm512_and_si512(v, low4);
        hi[j] = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
      }
      IE_UNROLL for (int a = 0; a < NA; a++) {
        const int32_t* xg = reinterpret_cast<const int32_t*>(x[a].q + g * G);
        if constexpr (S == 1) {
          s[0][a] = dpbusd_broadcast(s[0][a], lo[0], xg + i);
          s[0][a] = dpbusd_broadcast(s[0][a], hi[0], xg + V + i);
        } else {
          const __m512i xl = _mm512_set1_epi32(xg[i]), xh = _mm512_set1_epi32(xg[V + i]);
          IE_UNROLL for (int j = 0; j < S; j++) s[j][a] = _mm512_dpbusd_epi32(s[j][a], lo[j], xl);
          IE_UNROLL for (int j = 0; j < S; j++) s[j][a] = _mm512_dpbusd_epi32(s[j][a], hi[j], xh);
        }
      }
    }
    __m512 sc[S];
    IE_UNROLL for (int j = 0; j < S; j++) sc[j] = record_scales(rec + j * stripe_bytes + 8 * G, st);
    IE_UNROLL for (int a = 0; a < NA; a++) {
      const __m512 d = _mm512_set1_ps(x[a].d[g * G / kQ8Block]);
      IE_UNROLL for (int j = 0; j < S; j++) {
        if constexpr (kRegs) {
          total[j][a] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[j][a]), _mm512_mul_ps(sc[j], d), total[j][a]);
        } else {
          float* sum = t + 16 * (j * NA + a);
          _mm512_storeu_ps(sum, _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[j][a]), _mm512_mul_ps(sc[j], d), _mm512_loadu_ps(sum)));
        }
      }
    }
  }
  if constexpr (kRegs) IE_UNROLL for (int j = 0; j < S; j++) IE_UNROLL for (int a = 0; a < NA; a++) _mm512_storeu_ps(t + 16 * (j * NA + a), total[j][a]);
}

// stripes_q8<G, S, na> for a run-time na in [1, Most].
template <int G, int S, int Most, int NA = 1, class... Args>
void stripes_na(int na, Args... args) {
  if constexpr (NA < Most)
    if (na > NA) return stripes_na<G, S, Most, NA + 1>(na, args...);
  stripes_q8<G, S, NA>(args...);
}

template <int G>
void stripes_pass(int S, int na, const uint8_t* recs, ptrdiff_t stripe_bytes, int g0, int g1, ScaleType st, const ActRow* x, float* t, bool start, Fetch fetch) {
  if (S == 4) return stripes_na<G, 4, 2>(na, recs, stripe_bytes, g0, g1, st, x, t, start, fetch);
  if (S == 2) return stripes_na<G, 2, 8>(na, recs, stripe_bytes, g0, g1, st, x, t, start, fetch);
  stripes_na<G, 1, 8>(na, recs, stripe_bytes, g0, g1, st, x, t, start, fetch);
}

template <int G, bool FullWidth>
void gemv_rows_q4x16_q8(const WeightRows& w, const int8_t* xq, const float* xd, ptrdiff_t ldq, ptrdiff_t ldd, int M, float* y, ptrdiff_t ldy, int rows, bool acc) {
  const int ng = (w.K + G - 1) / G;
  Scratch<int32_t, 8 * 256> sums((size_t)M * ng);
  Scratch<ActRow, 8> act((size_t)M);
  for (int m = 0; m < M; m++) {
    group_sums<G>(xq + m * ldq, ng, sums.data() + (size_t)m * ng);
    act.data()[m] = {xq + m * ldq, xd + m * ldd, sums.data() + (size_t)m * ng};
  }
  const ptrdiff_t stripe_bytes = (ptrdiff_t)16 * w.q_ld;
  const StripePlan plan = stripe_plan(M, FullWidth);
  Scratch<float, 4 * 8 * 16> sums_((size_t)16 * plan.stripes * M);
  // A lone row's pairs: TinyLlama Q4_0, one decode stream, Zen 5, 2 threads, alternated with one stripe
  // a pass (three rounds): 82-89 -> 92-96 tok/s; four far-apart stripes measured alike.
  const int r = M != 1 ? 0 : lone_row_pairs(w, y, rows, acc, [&](const uint8_t* recs, ptrdiff_t gap, float* t) {
    stripes_q8<G, 2, 1>(recs, gap, 0, ng, w.stype, act.data(), t, true, Fetch::Far);
  });
  stripe_passes(w, M, plan, y, ldy, r, rows, ng, std::max(1, 512 / G), sums_.data(), acc,
                [&](int S, int na, const uint8_t* recs, int g0, int g1, int a, float* t, bool start, Fetch fetch) {
                  stripes_pass<G>(S, na, recs, stripe_bytes, g0, g1, w.stype, act.data() + a, t, start, fetch);
                });
}

template <bool FullWidth>
void gemv_rows_q4x16_q8_avx512vnni(const WeightRows& w, const int8_t* xq, const float* xd, ptrdiff_t ldq, ptrdiff_t ldd, int M, float* y, ptrdiff_t ldy, int rows,
                                   bool acc) {
  switch (w.group) {
    case 32: return gemv_rows_q4x16_q8<32, FullWidth>(w, xq, xd, ldq, ldd, M, y, ldy, rows, acc);
    case 64: return gemv_rows_q4x16_q8<64, FullWidth>(w, xq, xd, ldq, ldd, M, y, ldy, rows, acc);
    default: return gemv_rows_q4x16_q8<128, FullWidth>(w, xq, xd, ldq, ldd, M, y, ldy, rows, acc);
  }
}

// One activation row: the plan for M 1 is the same on every core.
void gemv_q4x16_q8_avx512vnni(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) {
  gemv_rows_q4x16_q8_avx512vnni<true>(w, xq, xd, 0, 0, 1, y, 0, rows, acc);
}

}  // namespace

void register_q4x16_avx512vnni(KernelTable& t, const CpuFeatures& f) {
  t.q4x16.gemv_q8 = gemv_q4x16_q8_avx512vnni;
  t.q4x16.gemv_q8_rows = avx512_full_width(f) ? gemv_rows_q4x16_q8_avx512vnni<true> : gemv_rows_q4x16_q8_avx512vnni<false>;
  t.q4x16.worth = "always";
}

}  // namespace ie
