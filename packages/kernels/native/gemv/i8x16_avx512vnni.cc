// i8 in 16-row records (kernel_table.h) x int8 activations on AVX-512 VNNI: the q4 records' kernel
// (q4x16_avx512vnni.cc) without the nibble unpacking. A record's vector holds four codes + 128 of
// each of 16 rows, one row per lane, against four activations broadcast to every lane; each of x's
// blocks of 32 takes eight vpdpbusd from a start of -128 x the block's sum of x, then one conversion
// and one FMA by (row scale x d_x) for 16 rows. The row layout's kernels pay that float work per row
// and block (Q8_0), or widen x per row (Zen 4 keeps the 256-bit sign trick: four operations per 32
// products), which left eight decode rows at 1.2-1.7x one.
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

constexpr int kI8Zero = 128;

// S consecutive stripes (16·S rows) against NA activation rows over x's blocks [b0, b1) of 32
// columns, records of G columns: the sums so far in t ([S][NA][16] floats; start: none yet), stored
// back at the end. Every (row, activation row) pair runs the same operations in the same order at
// every S, NA and block range, so a row's result does not depend on the batch or the range.
template <int S, int NA>
__attribute__((noinline)) void stripes_i8(const uint8_t* recs, ptrdiff_t stripe_bytes, int G, int b0, int b1, ScaleType st, const ActRow* x, float* t, bool start,
                                          Fetch fetch) {
  const int per = G / kQ8Block, rec_bytes = i8x16_record_bytes(G, st);
  constexpr bool kRegs = S * NA <= 12;  // as in stripes_q8: more float sums live in t (L1)
  __m512 total[kRegs ? S : 1][kRegs ? NA : 1];
  if constexpr (kRegs) {
    IE_UNROLL for (int j = 0; j < S; j++) IE_UNROLL for (int a = 0; a < NA; a++) total[j][a] = start ? _mm512_setzero_ps() : _mm512_loadu_ps(t + 16 * (j * NA + a));
  } else if (start) {
    for (int j = 0; j < S * NA; j++) _mm512_storeu_ps(t + 16 * j, _mm512_setzero_ps());
  }
  __m512 sc[S];
  // Block b is block k of record g; the record's scales load once, when the range meets it, after
  // the block's codes.
  const uint8_t* rec = recs + (ptrdiff_t)(b0 / per) * rec_bytes;
  for (int b = b0, k = b0 % per; b < b1; b++, k++) {
    if (k == per) {
      rec += rec_bytes;
      k = 0;
    }
    const uint8_t* codes = rec + 512 * k;
    // This block's bytes in the stripe: its codes, and after the record's last block its scales (a
    // prefetch of the codes alone left one Zen 4 core at 78-89 G multiply-adds/s with eight rows of
    // TinyLlama's Q8_0 records from DRAM; with the scales 101-106).
    const int bytes = k + 1 == per ? rec_bytes - 512 * k : 512;
    if (fetch == Fetch::Pass) prefetch_pass<S>(codes, codes - recs, stripe_bytes, bytes);
    __m512i s[S][NA];
    IE_UNROLL for (int a = 0; a < NA; a++) {
      const __m512i n = _mm512_set1_epi32(x[a].n[b]);
      IE_UNROLL for (int j = 0; j < S; j++) s[j][a] = n;
    }
    IE_UNROLL for (int i = 0; i < 8; i++) {
      __m512i v[S];
      IE_UNROLL for (int j = 0; j < S; j++) v[j] = _mm512_loadu_si512(codes + j * stripe_bytes + 64 * i);
      IE_UNROLL for (int a = 0; a < NA; a++) {
        const int32_t* xb = reinterpret_cast<const int32_t*>(x[a].q + kQ8Block * b);
        if constexpr (S == 1) {
          s[0][a] = dpbusd_broadcast(s[0][a], v[0], xb + i);
        } else {
          const __m512i xv = _mm512_set1_epi32(xb[i]);
          IE_UNROLL for (int j = 0; j < S; j++) s[j][a] = _mm512_dpbusd_epi32(s[j][a], v[j], xv);
        }
      }
    }
    // The scales follow the codes in memory and are read after them: read first (a jump back after
    // each record of Q8_0's 544 bytes), a lone Q8_0 row streamed 24-27 GB/s from DRAM on one Zen 4
    // core, read after, 33-34 (a standalone copy of the loop).
    if (k == 0 || b == b0) IE_UNROLL for (int j = 0; j < S; j++) sc[j] = record_scales(rec + j * stripe_bytes + 16 * G, st);
    IE_UNROLL for (int a = 0; a < NA; a++) {
      const __m512 d = _mm512_set1_ps(x[a].d[b]);
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

template <int S, int Most, int NA = 1, class... Args>
void stripes_na(int na, Args... args) {
  if constexpr (NA < Most)
    if (na > NA) return stripes_na<S, Most, NA + 1>(na, args...);
  stripes_i8<S, NA>(args...);
}

void stripes_pass(int S, int na, const uint8_t* recs, ptrdiff_t stripe_bytes, int G, int b0, int b1, ScaleType st, const ActRow* x, float* t, bool start, Fetch fetch) {
  if (S == 4) return stripes_na<4, 2>(na, recs, stripe_bytes, G, b0, b1, st, x, t, start, fetch);
  if (S == 2) return stripes_na<2, 8>(na, recs, stripe_bytes, G, b0, b1, st, x, t, start, fetch);
  stripes_na<1, 8>(na, recs, stripe_bytes, G, b0, b1, st, x, t, start, fetch);
}

template <bool FullWidth>
void gemv_rows_i8x16_q8_avx512vnni(const WeightRows& w, const int8_t* xq, const float* xd, ptrdiff_t ldq, ptrdiff_t ldd, int M, float* y, ptrdiff_t ldy, int rows,
                                   bool acc) {
  // The SIMD kernels take whole records (col0 0; a K-slice inside a record is the FP32 GEMM's).
  const int nb = w.K / kQ8Block, G = w.group;
  Scratch<int32_t, 8 * 256> sums((size_t)M * nb);
  Scratch<ActRow, 8> act((size_t)M);
  for (int m = 0; m < M; m++) {
    group_sums<kQ8Block, kI8Zero>(xq + m * ldq, nb, sums.data() + (size_t)m * nb);
    act.data()[m] = {xq + m * ldq, xd + m * ldd, sums.data() + (size_t)m * nb};
  }
  const ptrdiff_t stripe_bytes = (ptrdiff_t)16 * w.q_ld;
  // A lone row's pairs read without software prefetch (the hardware's alone keeps up with this light
  // loop; with every line fetched 2 KiB ahead, one Zen 4 core read int8w's records at 22-24 GB/s,
  // without at 27-28, as fast as the row layout, and a TinyLlama Q8_0 decode stream in records took
  // 43-46 ms a step, without 31-33).
  const int r = M != 1 ? 0 : lone_row_pairs(w, y, rows, acc, [&](const uint8_t* recs, ptrdiff_t gap, float* t) {
    stripes_i8<2, 1>(recs, gap, G, 0, nb, w.stype, act.data(), t, true, Fetch::None);
  });
  const StripePlan plan = stripe_plan(M, FullWidth);
  Scratch<float, 4 * 8 * 16> sums_((size_t)16 * plan.stripes * M);
  stripe_passes(w, M, plan, y, ldy, r, rows, nb, 16, sums_.data(), acc,
                [&](int S, int na, const uint8_t* recs, int b0, int b1, int a, float* t, bool start, Fetch fetch) {
                  stripes_pass(S, na, recs, stripe_bytes, G, b0, b1, w.stype, act.data() + a, t, start, fetch);
                });
}

void gemv_i8x16_q8_avx512vnni(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) {
  gemv_rows_i8x16_q8_avx512vnni<true>(w, xq, xd, 0, 0, 1, y, 0, rows, acc);  // M 1: the same plan on every core
}

}  // namespace

void register_i8x16_avx512vnni(KernelTable& t, const CpuFeatures& f) {
  t.i8x16.gemv_q8 = gemv_i8x16_q8_avx512vnni;
  t.i8x16.gemv_q8_rows = avx512_full_width(f) ? gemv_rows_i8x16_q8_avx512vnni<true> : gemv_rows_i8x16_q8_avx512vnni<false>;
  t.i8x16.worth = i8_records_for_one_row(f) ? "always" : "batched";
}

}  // namespace ie
