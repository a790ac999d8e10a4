// AVX-512 GEMV: y = W x with FP32 activations, dequantization fused into the inner loop.
//
// Rows go in far-apart pairs (gemv/row_streams.h: adjacent rows read side by side stream at half
// the bandwidth), the float rows of one activation row in fours on Zen 5 (prefers_four_row_streams),
// each activation load serving them all; a row alone runs the same per-row instruction sequence, so every y[r] is bit-identical
// however rows are split between threads. Full vectors take a mask-free path; only the tail
// of a row (or of its last group) uses masked loads, so nothing past K is ever read.
//
// q4: a 16-byte chunk is widened once (vpmovzxbd: byte j -> dword lane j); its low nibbles
// are elements j.., its high nibbles elements j + G/2... Symmetric codes become floats q - 8
// through a 16-entry vpermps table; affine codes are converted unsigned and the zero point comes
// off once per group: sum_j (q_j - z) x_j = sum_j q_j x_j - z * sum_j x_j, with the group sums of
// x computed once per call.
#include <algorithm>
#include <vector>

#include "cpu/avx512_common.h"
#include "cpu/cpu_features.h"
#include "cpu/kernel_table.h"
#include "cpu/vec.h"
#include "gemv/row_streams.h"
#include "mem/aligned.h"

namespace ie {
namespace {
using namespace avx512;

struct LoadF32 {
  static constexpr int esize = 4;
  __m512 operator()(const uint8_t* p) const { return _mm512_loadu_ps(reinterpret_cast<const float*>(p)); }
  __m512 operator()(const uint8_t* p, __mmask16 m) const { return _mm512_maskz_loadu_ps(m, p); }
};
struct LoadF16 {
  static constexpr int esize = 2;
  __m512 operator()(const uint8_t* p) const { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
  __m512 operator()(const uint8_t* p, __mmask16 m) const { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p)); }
};
struct LoadBF16 {
  static constexpr int esize = 2;
  static __m512 widen(__m256i h) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)); }
  __m512 operator()(const uint8_t* p) const { return widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
  __m512 operator()(const uint8_t* p, __mmask16 m) const { return widen(_mm256_maskz_loadu_epi16(m, p)); }
};

// ---- f32 / f16 / bf16: one accumulator per (weight row, activation row), 16 elements a step in
// column order, masked for the tail. NA activation rows at once (the decode rows of several
// sequences) share each weight load and conversion in one pass over the weights; every pair runs
// the lone GEMV's operations in its order, so a row of a batch gets the bits it gets alone. One
// chain per pair leaves room for 24 of them in registers (rows_float_pass); with two chains per
// pair (the earlier layout) eight activation rows took two passes of four over each pair of weight
// rows, the second costing almost what the first did. Zen 5, one core, eight rows of 5632 x 2048, alternated: from DRAM f32
// 28.5-30.8 -> 39.4-42.6 G row-products/s, bf16 39-44 -> 58-59; from L2 f32 54 -> 78, bf16 56 -> 91
// (two FMAs a cycle: 110). A lone row's four far-apart chains stay far from their bound: one decode
// row is bound by the bus.

// The chains s of NR weight rows and NA activation rows over columns [k0, k1) (k0 a multiple of 32;
// k1 the row's end or a multiple of 32), in the lone GEMV's order. Nta: each line of the rows
// prefetched Ahead bytes ahead with Hint (by default non-temporally kFloatStreamAhead ahead, with
// four streams on Zen 5); else the hardware prefetchers alone.
template <int NR, int NA, typename Load, bool Nta, int Ahead = kFloatStreamAhead, int Hint = _MM_HINT_NTA>
__attribute__((always_inline)) inline void rows_float_span(const uint8_t* const (&row)[NR], const float* const* x, int k0, int k1, int K,
                                                           __m512 (&s)[NR][NA]) {
  constexpr int es = Load::esize;
  const Load load;
  // step(k, m): the 16 elements at k (m: the tail's mask) of every row into every chain.
  auto step = [&](int k, auto masked, __mmask16 m) __attribute__((always_inline)) {
    __m512 wv[NR];
    IE_UNROLL for (int r = 0; r < NR; r++) {
      if constexpr (decltype(masked)::value) wv[r] = load(row[r] + k * es, m);
      else wv[r] = load(row[r] + k * es);
    }
    // In registers: GCC otherwise reloads each weight vector for every activation row, or x for
    // every weight row, folded into the FMAs (two loads per FMA).
    if constexpr (NA > 1) IE_UNROLL for (int r = 0; r < NR; r++) __asm__("" : "+v"(wv[r]));
    IE_UNROLL for (int a = 0; a < NA; a++) {
      __m512 xv = decltype(masked)::value ? _mm512_maskz_loadu_ps(m, x[a] + k) : _mm512_loadu_ps(x[a] + k);
      if constexpr (NR > 1) __asm__("" : "+v"(xv));
      IE_UNROLL for (int r = 0; r < NR; r++) s[r][a] = _mm512_fmadd_ps(wv[r], xv, s[r][a]);
    }
  };
  int k = k0;
  for (; k + 32 <= k1; k += 32) {
    if constexpr (Nta) IE_UNROLL for (int r = 0; r < NR; r++) stream_prefetch<Ahead, Hint>(row[r] + k * es, 32 * es);
    step(k, std::false_type{}, 0);
    step(k + 16, std::false_type{}, 0);
  }
  if (k1 < K) return;
  for (; k + 16 <= K; k += 16) step(k, std::false_type{}, 0);
  if (k < K) step(k, std::true_type{}, tail_mask(K - k));
}

template <int NR, int NA>
inline void store_chains(const __m512 (&s)[NR][NA], const int* rs, float* const* y, bool acc) {
  for (int r = 0; r < NR; r++)
    for (int a = 0; a < NA; a++) {
      const float v = _mm512_reduce_add_ps(s[r][a]);
      y[a][rs[r]] = acc ? y[a][rs[r]] + v : v;
    }
}

// Fetch: each line of the rows prefetched kFloatStreamAhead bytes ahead with that hint (NTA with
// four streams on Zen 5, T0 on Intel); None: the hardware prefetchers alone.
template <int NR, int NA, typename Load, LineFetch Fetch>
inline void rows_float(const WeightRows& w, const int* rs, const float* const* x, float* const* y, bool acc) {
  __m512 s[NR][NA];
  IE_UNROLL for (int r = 0; r < NR; r++)
    IE_UNROLL for (int a = 0; a < NA; a++) s[r][a] = _mm512_setzero_ps();
  const uint8_t* row[NR];
  for (int r = 0; r < NR; r++) row[r] = w.q + rs[r] * w.q_ld;
  rows_float_span<NR, NA, Load, Fetch != LineFetch::None, kFloatStreamAhead, hint_of(Fetch)>(row, x, 0, w.K, w.K, s);
  store_chains(s, rs, y, acc);
}

// f32 rows against seven or eight activation rows: two passes (activation rows 0-3, then the rest)
// taking turns over kFloatPassColumns columns, their chains parked in L1 between turns, so that the
// second pass reads the turn's columns from L1, and prefetches the next turn's into L2 meanwhile
// (the first pass's lines go 1 KiB ahead non-temporally, as every float row's). As two passes over
// whole rows, the second read rows of 8-22 KiB back from memory: one Zen 4 core, eight rows of
// TinyLlama's shapes from DRAM (`ROWS=8 ONLY=fp32 THREADS=1 GIB=1`, alternated, two rounds)
// 52.5-55.4 -> 63.2-66 GFLOP/s with turns of 256 columns (128: 57-58, 512: 58-59); two cores 97-100
// -> 112-115. bf16 and f16 rows (half the bytes) measured alike or slower in turns (the parked
// chains' loads and stores), and keep the two whole passes.
constexpr int kFloatPassColumns = 256;
template <int NR, int NA, typename Load, LineFetch Fetch>
inline void rows_float_turns(const WeightRows& w, const int* rs, const float* const* x, float* const* y, bool acc) {
  static_assert(NA > 4 && NA <= 8);
  const uint8_t* row[NR];
  for (int r = 0; r < NR; r++) row[r] = w.q + rs[r] * w.q_ld;
  __m512 sa[NR][4], sb[NR][NA - 4];
  IE_UNROLL for (int r = 0; r < NR; r++) {
    IE_UNROLL for (int i = 0; i < 4; i++) sa[r][i] = _mm512_setzero_ps();
    IE_UNROLL for (int i = 0; i < NA - 4; i++) sb[r][i] = _mm512_setzero_ps();
  }
  for (int k0 = 0; k0 < w.K; k0 += kFloatPassColumns) {
    const int k1 = std::min(w.K, k0 + kFloatPassColumns);
    rows_float_span<NR, 4, Load, Fetch != LineFetch::None, kFloatStreamAhead, hint_of(Fetch)>(row, x, k0, k1, w.K, sa);
    rows_float_span<NR, NA - 4, Load, true, kFloatPassColumns * Load::esize, _MM_HINT_T0>(row, x + 4, k0, k1, w.K, sb);
  }
  store_chains(sa, rs, y, acc);
  store_chains(sb, rs, y + 4, acc);
}

// M activation rows (x + m * ldx -> y + m * ldy). Up to six: one pass over four far-apart weight
// rows at a time (NR x NA <= 24 chains in registers), however close a short range puts them
// (row_streams_batched), a lone activation row too: its row has one chain, so a row taken alone
// (where row_streams kept streams 128 KiB apart) ran at the FMA latency. The 48-row ranges of
// TinyLlama's ffn_down in three K-panels (3.75 KiB a panel's row: 12 rows apart in fours) had gone
// one row at a time; a one-stream F16 decode on two Zen 5 cores, switched inside one process
// (eight rounds each, two phases of the VM): 28.57 -> 29.51 and 18.96 -> 19.35 tok/s, BF16 18.61
// -> 18.75. Seven or eight: six far-apart weight rows at a time, activation rows 0-3 then the
// rest, the second pass reading the six rows from cache (f32: in turns, rows_float_turns). Each x
// load feeds six FMAs instead of three (one pass over three rows): with eight activation rows, x
// (64 KiB at 2048 columns) streamed through L1 beside the weights held the kernel at about half its
// rate from L2 (Zen 5, one core, bf16 5632 x 2048 from DRAM: 61 G row-products/s, 95 with eight
// copies of one x row; two passes over six rows 77, seven rows 74 against 60; five or six rows
// run best in one pass: 67-71 against 57-68).
template <int NA, typename Load, LineFetch Fetch>
void rows_float_pass(const WeightRows& w, const float* const* xs, float* const* ys, int rows, bool acc) {
  if constexpr (NA > 6) {
    row_streams_batched<6>(rows, [&](auto n, const int* rs) {
      if constexpr (Load::esize == 4) rows_float_turns<decltype(n)::value, NA, Load, Fetch>(w, rs, xs, ys, acc);
      else {
        rows_float<decltype(n)::value, 4, Load, Fetch>(w, rs, xs, ys, acc);
        rows_float<decltype(n)::value, NA - 4, Load, Fetch>(w, rs, xs + 4, ys + 4, acc);
      }
    });
  } else {
    row_streams_batched<kFloatStreams>(rows, [&](auto n, const int* rs) { rows_float<decltype(n)::value, NA, Load, Fetch>(w, rs, xs, ys, acc); });
  }
}

// A lone activation row: the one-row pass (the chains a batch's row gets, so the same bits), its
// rows read in fours with the CPU's line prefetch (Fetch: NTA on Zen 5, T0 on Intel's f16 / bf16
// rows) or in pairs with none (elsewhere: `Pairs`).
template <typename Load, bool Pairs, LineFetch Fetch>
void gemv_float(const WeightRows& w, const float* x, float* y, int rows, bool acc) {
  if constexpr (Pairs) row_streams<2>(rows, w.q_ld, [&](auto n, const int* rs) { rows_float<decltype(n)::value, 1, Load, LineFetch::None>(w, rs, &x, &y, acc); });
  else rows_float_pass<1, Load, Fetch>(w, &x, &y, rows, acc);
}

template <typename Load, LineFetch Fetch>
void gemv_rows_float(const WeightRows& w, const float* x, ptrdiff_t ldx, int M, float* y, ptrdiff_t ldy, int rows, bool acc) {
  Scratch<const float*, 8> xs((size_t)M);
  Scratch<float*, 8> ys((size_t)M);
  for (int m = 0; m < M; m++) xs.data()[m] = x + m * ldx, ys.data()[m] = y + m * ldy;
  for (int a = 0; a < M; a += 8) {
    const float* const* xa = xs.data() + a;
    float* const* ya = ys.data() + a;
    switch (std::min(8, M - a)) {
      case 1: rows_float_pass<1, Load, Fetch>(w, xa, ya, rows, acc); break;
      case 2: rows_float_pass<2, Load, Fetch>(w, xa, ya, rows, acc); break;
      case 3: rows_float_pass<3, Load, Fetch>(w, xa, ya, rows, acc); break;
      case 4: rows_float_pass<4, Load, Fetch>(w, xa, ya, rows, acc); break;
      case 5: rows_float_pass<5, Load, Fetch>(w, xa, ya, rows, acc); break;
      case 6: rows_float_pass<6, Load, Fetch>(w, xa, ya, rows, acc); break;
      case 7: rows_float_pass<7, Load, Fetch>(w, xa, ya, rows, acc); break;
      default: rows_float_pass<8, Load, Fetch>(w, xa, ya, rows, acc); break;
    }
  }
}

// ---- i8: partial sums, scaled once per group (or per row).
inline __m512 i8x16(const int8_t* p) { return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)))); }
inline __m512 i8x16(const int8_t* p, __mmask16 m) { return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, p))); }

// NR rows' codes, and their ng scales each as f32, converted once into sfmem (per group, a scalar
// f16 conversion cost a fifth of Q8_0's rate).
template <int NR>
inline void i8_rows(const WeightRows& w, const int* rs, int ng, float* sfmem, const int8_t* (&row)[NR], const float* (&sf)[NR]) {
  for (int r = 0; r < NR; r++) {
    row[r] = reinterpret_cast<const int8_t*>(w.q + rs[r] * w.q_ld);
    float* s = sfmem + (size_t)r * ng;
    simd::row_scales_f32(w.s + rs[r] * w.s_ld, w.stype, ng, s);
    sf[r] = s;
  }
}

// One scale per row: two partial sums per row (32 weights per step; one FMA chain per row was
// latency-bound: int8w 19-24 GB/s from DRAM on one Zen 5 core), scaled at the end.
template <int NR>
inline void rows_i8(const WeightRows& w, const int* rs, const float* x, float* sfmem, float* y, bool acc) {
  const int K = w.K;
  const int8_t* row[NR];
  const float* sf[NR];
  i8_rows<NR>(w, rs, 1, sfmem, row, sf);
  __m512 p0[NR], p1[NR];
  for (int r = 0; r < NR; r++) p0[r] = p1[r] = _mm512_setzero_ps();
  int j = 0;
  for (; j + 32 <= K; j += 32) {
    const __m512 x0 = _mm512_loadu_ps(x + j), x1 = _mm512_loadu_ps(x + j + 16);
    if ((j & 63) == 0)
      for (int r = 0; r < NR; r++) stream_prefetch(reinterpret_cast<const uint8_t*>(row[r]) + j, 64);
    for (int r = 0; r < NR; r++) {
      p0[r] = _mm512_fmadd_ps(i8x16(row[r] + j), x0, p0[r]);
      p1[r] = _mm512_fmadd_ps(i8x16(row[r] + j + 16), x1, p1[r]);
    }
  }
  if (j + 16 <= K) {
    const __m512 xv = _mm512_loadu_ps(x + j);
    for (int r = 0; r < NR; r++) p0[r] = _mm512_fmadd_ps(i8x16(row[r] + j), xv, p0[r]);
    j += 16;
  }
  if (j < K) {
    const __mmask16 m = tail_mask(K - j);
    const __m512 xv = _mm512_maskz_loadu_ps(m, x + j);
    for (int r = 0; r < NR; r++) p1[r] = _mm512_fmadd_ps(i8x16(row[r] + j, m), xv, p1[r]);
  }
  for (int r = 0; r < NR; r++) {
    const float v = _mm512_reduce_add_ps(_mm512_fmadd_ps(_mm512_add_ps(p0[r], p1[r]), _mm512_set1_ps(sf[r][0]), _mm512_setzero_ps()));
    y[rs[r]] = acc ? y[rs[r]] + v : v;
  }
}

// Per-group rows (G 32, 64 or 128): 64 weights a step whatever the group, two accumulators per row,
// each half of the step (32 weights, one group) multiplied by its group's scale. A loop per group
// (its branches, a reset and an add per group) ran Q8_0 at half int8w's rate: from cache, one
// Zen 5 core, 20.6 against 39.8 G weights/s.
template <int NR, int G>
inline void rows_i8_grouped(const WeightRows& w, const int* rs, const float* x, float* sfmem, float* y, bool acc) {
  const int K = w.K, ng = (K + G - 1) / G;
  const int8_t* row[NR];
  const float* sf[NR];
  i8_rows<NR>(w, rs, ng, sfmem, row, sf);
  __m512 ta[NR], tb[NR];
  for (int r = 0; r < NR; r++) ta[r] = tb[r] = _mm512_setzero_ps();
  int k = 0;
  for (; k + 64 <= K; k += 64) {
    const __m512 x0 = _mm512_loadu_ps(x + k), x1 = _mm512_loadu_ps(x + k + 16), x2 = _mm512_loadu_ps(x + k + 32), x3 = _mm512_loadu_ps(x + k + 48);
    for (int r = 0; r < NR; r++) stream_prefetch(reinterpret_cast<const uint8_t*>(row[r]) + k, 64);
    for (int r = 0; r < NR; r++) {
      const __m512 pa = _mm512_fmadd_ps(i8x16(row[r] + k + 16), x1, _mm512_mul_ps(i8x16(row[r] + k), x0));
      const __m512 pb = _mm512_fmadd_ps(i8x16(row[r] + k + 48), x3, _mm512_mul_ps(i8x16(row[r] + k + 32), x2));
      ta[r] = _mm512_fmadd_ps(pa, _mm512_set1_ps(sf[r][k / G]), ta[r]);
      tb[r] = _mm512_fmadd_ps(pb, _mm512_set1_ps(sf[r][(k + 32) / G]), tb[r]);
    }
  }
  if (k < K) {  // the last, partial step: lanes past K are 0 in x and in the codes
    const int n = K - k, gb = std::min((k + 32) / G, ng - 1);
    __mmask16 m[4];
    __m512 xv[4];
    for (int i = 0; i < 4; i++) {
      m[i] = tail_mask(std::clamp(n - 16 * i, 0, 16));
      xv[i] = _mm512_maskz_loadu_ps(m[i], x + k + 16 * i);
    }
    for (int r = 0; r < NR; r++) {
      const __m512 pa = _mm512_fmadd_ps(i8x16(row[r] + k + 16, m[1]), xv[1], _mm512_mul_ps(i8x16(row[r] + k, m[0]), xv[0]));
      const __m512 pb = _mm512_fmadd_ps(i8x16(row[r] + k + 48, m[3]), xv[3], _mm512_mul_ps(i8x16(row[r] + k + 32, m[2]), xv[2]));
      ta[r] = _mm512_fmadd_ps(pa, _mm512_set1_ps(sf[r][k / G]), ta[r]);
      tb[r] = _mm512_fmadd_ps(pb, _mm512_set1_ps(sf[r][gb]), tb[r]);
    }
  }
  for (int r = 0; r < NR; r++) {
    const float v = _mm512_reduce_add_ps(_mm512_add_ps(ta[r], tb[r]));
    y[rs[r]] = acc ? y[rs[r]] + v : v;
  }
}

// Per-row rows go in four far-apart streams where `FourPerRow` (prefers_four_row_streams: Zen 5),
// else pairs. One Zen 5 core, TinyLlama's shapes from DRAM, both switched inside one process against
// the read probe (three rounds): 79-81% -> 93-96% of it on one thread, 72-74% -> 80-83% on two. The
// per-row fours come from row_streams_batched, so a short range (the 96-row tail ranges of a
// K-panelled ffn_down at two threads: 45 KiB apart in a 1.9 KiB-row panel) goes in fours too
// rather than one row at a time: two threads, in-process, 55-58 -> 59-62 GB/s and 61-62 -> 65 in
// fast phases of the VM, alike in slow ones and on one thread. The per-group rows (Q8_0) stay in
// pairs: alike or slower in fours (compute-bound, 24 G weights/s a core).
template <bool FourPerRow>
void gemv_i8(const WeightRows& w, const float* x, float* y, int rows, bool acc) {
  const int ng = w.group > 0 ? (w.K + w.group - 1) / w.group : 1;
  Scratch<float, 4 * 512> sf((size_t)4 * ng);
  if (FourPerRow && w.group == 0)
    return row_streams_batched<4>(rows, [&](auto n, const int* rs) { rows_i8<decltype(n)::value>(w, rs, x, sf.data(), y, acc); });
  row_streams(rows, w.q_ld, [&](auto n, const int* rs) {
    constexpr int R = decltype(n)::value;
    switch (w.group) {
      case 32: return rows_i8_grouped<R, 32>(w, rs, x, sf.data(), y, acc);
      case 64: return rows_i8_grouped<R, 64>(w, rs, x, sf.data(), y, acc);
      case 128: return rows_i8_grouped<R, 128>(w, rs, x, sf.data(), y, acc);
      default: return rows_i8<R>(w, rs, x, sf.data(), y, acc);
    }
  });
}

// ---- q4
// Sum of x over each group's real elements (the zero-point correction).
inline void group_sums(const float* x, int K, int G, float* out) {
  for (int k0 = 0, g = 0; k0 < K; k0 += G, g++) {
    const int n = std::min(G, K - k0);
    __m512 s = _mm512_setzero_ps();
    for (int j = 0; j < n; j += 16) s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(tail_mask(n - j), x + k0 + j));
    out[g] = _mm512_reduce_add_ps(s);
  }
}

// One 16-byte chunk of a q4 group for NR rows: 32 codes times x_lo (elements j..) and x_hi (j + G/2..),
// into separate sums (one chain per row through both halves was latency-bound: int4w 8-12 GB/s).
// Symmetric rows look their codes up as floats c - 8 (vpermps reads an index's low 4 bits, so the
// low nibble needs no mask and no zero-point correction follows); affine rows convert c. With the
// scales converted once per row, from cache on one Zen 5 core: g64 27 -> 38.5 G weights/s, g32
// 18.6 -> 34.6 (the per-group scalar scale and correction had cost as much as the chunks).
template <int NR, bool Sym>
inline void q4_chunk(const uint8_t* const* grp, int off, __m512 xlo, __m512 xhi, __m512* plo, __m512* phi) {
  const __m512i low4 = _mm512_set1_epi32(0x0f);
  const __m512 centred = _mm512_setr_ps(-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7);
  for (int r = 0; r < NR; r++) {
    const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(grp[r] + off)));
    const __m512 lo = Sym ? _mm512_permutexvar_ps(v, centred) : _mm512_cvtepi32_ps(_mm512_and_si512(v, low4));
    const __m512 hi = Sym ? _mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), centred) : _mm512_cvtepi32_ps(_mm512_srli_epi32(v, 4));
    plo[r] = _mm512_fmadd_ps(lo, xlo, plo[r]);
    phi[r] = _mm512_fmadd_ps(hi, xhi, phi[r]);
  }
}

template <int NR, int G, bool Sym>
inline void rows_q4(const WeightRows& w, const int* rs, const float* x, const float* xsum, float* sfmem, float* y, bool acc) {
  constexpr int half = G / 2;
  const int K = w.K, full = K / G, ng = (K + G - 1) / G;
  const uint8_t* row[NR];
  const float* sf[NR];  // the row's scales as f32, converted once
  for (int r = 0; r < NR; r++) {
    row[r] = w.q + rs[r] * w.q_ld;
    float* s = sfmem + (size_t)r * ng;
    simd::row_scales_f32(w.s + rs[r] * w.s_ld, w.stype, ng, s);
    sf[r] = s;
  }
  __m512 total[NR];
  float corr[NR];
  for (int r = 0; r < NR; r++) {
    total[r] = _mm512_setzero_ps();
    corr[r] = 0.f;
  }
  for (int g = 0; g < ng; g++) {
    const int k0 = g * G;
    const uint8_t* grp[NR];
    for (int r = 0; r < NR; r++) grp[r] = row[r] + g * half;
    if (((g * half) & 63) == 0)
      for (int r = 0; r < NR; r++) stream_prefetch(grp[r], 64);
    __m512 plo[NR], phi[NR];
    for (int r = 0; r < NR; r++) plo[r] = phi[r] = _mm512_setzero_ps();
    if (g < full) {
      for (int c = 0; c < half; c += 16) q4_chunk<NR, Sym>(grp, c, _mm512_loadu_ps(x + k0 + c), _mm512_loadu_ps(x + k0 + half + c), plo, phi);
    } else {
      // The last, partial group: padded codes are the zero point, masked x lanes are 0.
      const int n = K - k0;
      for (int c = 0; c < half; c += 16) {
        const int nlo = std::clamp(n - c, 0, 16), nhi = std::clamp(n - half - c, 0, 16);
        q4_chunk<NR, Sym>(grp, c, _mm512_maskz_loadu_ps(tail_mask(nlo), x + k0 + c), nhi ? _mm512_maskz_loadu_ps(tail_mask(nhi), x + k0 + half + c) : _mm512_setzero_ps(), plo, phi);
      }
    }
    for (int r = 0; r < NR; r++) {
      total[r] = _mm512_fmadd_ps(_mm512_add_ps(plo[r], phi[r]), _mm512_set1_ps(sf[r][g]), total[r]);
      if (!Sym) corr[r] += sf[r][g] * (float)w.z[rs[r] * w.z_ld + g] * xsum[g];
    }
  }
  for (int r = 0; r < NR; r++) {
    const float v = _mm512_reduce_add_ps(total[r]) - corr[r];
    y[rs[r]] = acc ? y[rs[r]] + v : v;
  }
}

template <int G>
void gemv_q4_g(const WeightRows& w, const float* x, float* y, int rows, bool acc) {
  const int ng = (w.K + G - 1) / G;
  Scratch<float, 512> xsum((size_t)ng);
  Scratch<float, 2 * 512> sf((size_t)2 * ng);
  if (w.z) group_sums(x, w.K, G, xsum.data());
  row_streams(rows, w.q_ld, [&](auto n, const int* rs) {
    if (w.z) rows_q4<decltype(n)::value, G, false>(w, rs, x, xsum.data(), sf.data(), y, acc);
    else rows_q4<decltype(n)::value, G, true>(w, rs, x, xsum.data(), sf.data(), y, acc);
  });
}

void gemv_q4(const WeightRows& w, const float* x, float* y, int rows, bool acc) {
  switch (w.group) {
    case 32: return gemv_q4_g<32>(w, x, y, rows, acc);
    case 64: return gemv_q4_g<64>(w, x, y, rows, acc);
    default: return gemv_q4_g<128>(w, x, y, rows, acc);
  }
}

// ---- dequantization to f32 rows (GEMM scratch, embedding lookups).
template <typename Load>
void dequant_float(const WeightRows& w, int rows, float* out, ptrdiff_t ld) {
  const Load load;
  for (int r = 0; r < rows; r++)
    for (int k = 0; k < w.K; k += 16) {
      const __mmask16 m = tail_mask(w.K - k);
      _mm512_mask_storeu_ps(out + r * ld + k, m, load(w.q + r * w.q_ld + k * Load::esize, m));
    }
}

void dequant_q4(const WeightRows& w, int rows, float* out, ptrdiff_t ld) {
  const int G = w.group, half = G / 2, K = w.K, ng = (K + G - 1) / G, sb = scale_bytes(w.stype);
  const __m512i low4 = _mm512_set1_epi32(0x0f);
  for (int r = 0; r < rows; r++) {
    for (int g = 0; g < ng; g++) {
      const int k0 = g * G, n = std::min(G, K - k0);
      const __m512i zero = _mm512_set1_epi32(w.z ? w.z[r * w.z_ld + g] : kQ4SymmetricZero);
      const __m512 s = _mm512_set1_ps(scale_at(w.s + r * w.s_ld + g * sb, w.stype));
      for (int c = 0; c < half; c += 16) {
        const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w.q + r * w.q_ld + g * half + c)));
        const __m512 lo = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_and_si512(v, low4), zero)), s);
        const __m512 hi = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_srli_epi32(v, 4), zero)), s);
        const int nlo = std::clamp(n - c, 0, 16), nhi = std::clamp(n - half - c, 0, 16);
        if (nlo) _mm512_mask_storeu_ps(out + r * ld + k0 + c, tail_mask(nlo), lo);
        if (nhi) _mm512_mask_storeu_ps(out + r * ld + k0 + half + c, tail_mask(nhi), hi);
      }
    }
  }
}

void dequant_i8(const WeightRows& w, int rows, float* out, ptrdiff_t ld) {
  const int K = w.K, G = w.group > 0 ? w.group : K, sb = scale_bytes(w.stype);
  for (int r = 0; r < rows; r++) {
    const int8_t* row = reinterpret_cast<const int8_t*>(w.q + r * w.q_ld);
    for (int k0 = 0, g = 0; k0 < K; k0 += G, g++) {
      const __m512 s = _mm512_set1_ps(scale_at(w.s + r * w.s_ld + g * sb, w.stype));
      const int n = std::min(G, K - k0);
      for (int j = 0; j < n; j += 16) {
        const __mmask16 m = tail_mask(n - j);
        _mm512_mask_storeu_ps(out + r * ld + k0 + j, m, _mm512_mul_ps(i8x16(row + k0 + j, m), s));
      }
    }
  }
}

// ---- pretransposed: y[n] += x[k] * Wt[k][n], 64 columns in registers.
template <typename Load>
void gemv_t(const uint8_t* wt, ptrdiff_t ld, const float* x, int K, float* y, int ncols, bool acc) {
  const Load load;
  constexpr int es = Load::esize;
  for (int n0 = 0; n0 < ncols; n0 += 64) {
    const int nn = std::min(64, ncols - n0);
    __mmask16 m[4];
    __m512 a[4];
    for (int i = 0; i < 4; i++) {
      m[i] = tail_mask(std::clamp(nn - 16 * i, 0, 16));
      a[i] = acc ? _mm512_maskz_loadu_ps(m[i], y + n0 + 16 * i) : _mm512_setzero_ps();
    }
    for (int k = 0; k < K; k++) {
      const __m512 xk = _mm512_set1_ps(x[k]);
      const uint8_t* row = wt + k * ld + (ptrdiff_t)n0 * es;
      for (int i = 0; i < 4; i++)
        if (m[i]) a[i] = _mm512_fmadd_ps(xk, load(row + 16 * i * es, m[i]), a[i]);
    }
    for (int i = 0; i < 4; i++)
      if (m[i]) _mm512_mask_storeu_ps(y + n0 + 16 * i, m[i], a[i]);
  }
}

// The entry points, named by weight type, activation type and ISA (what a profile shows).
template <LineFetch Fetch>
void gemv_f32_f32_avx512(const WeightRows& w, const float* x, float* y, int rows, bool acc) { gemv_float<LoadF32, false, Fetch>(w, x, y, rows, acc); }
template <LineFetch Fetch>
void gemv_f16_f32_avx512(const WeightRows& w, const float* x, float* y, int rows, bool acc) { gemv_float<LoadF16, false, Fetch>(w, x, y, rows, acc); }
template <LineFetch Fetch>
void gemv_bf16_f32_avx512(const WeightRows& w, const float* x, float* y, int rows, bool acc) { gemv_float<LoadBF16, false, Fetch>(w, x, y, rows, acc); }
void gemv_f32_f32_avx512_pairs(const WeightRows& w, const float* x, float* y, int rows, bool acc) { gemv_float<LoadF32, true, LineFetch::None>(w, x, y, rows, acc); }
void gemv_f16_f32_avx512_pairs(const WeightRows& w, const float* x, float* y, int rows, bool acc) { gemv_float<LoadF16, true, LineFetch::None>(w, x, y, rows, acc); }
void gemv_bf16_f32_avx512_pairs(const WeightRows& w, const float* x, float* y, int rows, bool acc) { gemv_float<LoadBF16, true, LineFetch::None>(w, x, y, rows, acc); }
template <LineFetch Fetch>
void gemv_rows_f32_f32_avx512(const WeightRows& w, const float* x, ptrdiff_t ldx, int M, float* y, ptrdiff_t ldy, int rows, bool acc) {
  gemv_rows_float<LoadF32, Fetch>(w, x, ldx, M, y, ldy, rows, acc);
}
template <LineFetch Fetch>
void gemv_rows_f16_f32_avx512(const WeightRows& w, const float* x, ptrdiff_t ldx, int M, float* y, ptrdiff_t ldy, int rows, bool acc) {
  gemv_rows_float<LoadF16, Fetch>(w, x, ldx, M, y, ldy, rows, acc);
}
template <LineFetch Fetch>
void gemv_rows_bf16_f32_avx512(const WeightRows& w, const float* x, ptrdiff_t ldx, int M, float* y, ptrdiff_t ldy, int rows, bool acc) {
  gemv_rows_float<LoadBF16, Fetch>(w, x, ldx, M, y, ldy, rows, acc);
}
void gemv_i8_f32_avx512(const WeightRows& w, const float* x, float* y, int rows, bool acc) { gemv_i8<false>(w, x, y, rows, acc); }
void gemv_i8_f32_avx512_fours(const WeightRows& w, const float* x, float* y, int rows, bool acc) { gemv_i8<true>(w, x, y, rows, acc); }
void gemv_q4_f32_avx512(const WeightRows& w, const float* x, float* y, int rows, bool acc) { gemv_q4(w, x, y, rows, acc); }
void dequant_f32_avx512(const WeightRows& w, int rows, float* out, ptrdiff_t ld) { dequant_float<LoadF32>(w, rows, out, ld); }
void dequant_f16_avx512(const WeightRows& w, int rows, float* out, ptrdiff_t ld) { dequant_float<LoadF16>(w, rows, out, ld); }
void dequant_bf16_avx512(const WeightRows& w, int rows, float* out, ptrdiff_t ld) { dequant_float<LoadBF16>(w, rows, out, ld); }
void dequant_i8_avx512(const WeightRows& w, int rows, float* out, ptrdiff_t ld) { dequant_i8(w, rows, out, ld); }
void dequant_q4_avx512(const WeightRows& w, int rows, float* out, ptrdiff_t ld) { dequant_q4(w, rows, out, ld); }
void gemv_t_f32_f32_avx512(const uint8_t* wt, ptrdiff_t ld, const float* x, int K, float* y, int n, bool acc) { gemv_t<LoadF32>(wt, ld, x, K, y, n, acc); }
void gemv_t_f16_f32_avx512(const uint8_t* wt, ptrdiff_t ld, const float* x, int K, float* y, int n, bool acc) { gemv_t<LoadF16>(wt, ld, x, K, y, n, acc); }
void gemv_t_bf16_f32_avx512(const uint8_t* wt, ptrdiff_t ld, const float* x, int K, float* y, int n, bool acc) { gemv_t<LoadBF16>(wt, ld, x, K, y, n, acc); }

template <LineFetch Fetch>
void register_float(KernelTable& t, bool four, bool four16) {
  t.gemv[(int)WeightType::F32] = four ? gemv_f32_f32_avx512<Fetch> : gemv_f32_f32_avx512_pairs;
  t.gemv[(int)WeightType::F16] = four16 ? gemv_f16_f32_avx512<Fetch> : gemv_f16_f32_avx512_pairs;
  t.gemv[(int)WeightType::BF16] = four16 ? gemv_bf16_f32_avx512<Fetch> : gemv_bf16_f32_avx512_pairs;
  t.gemv_rows[0] = gemv_rows_f32_f32_avx512<Fetch>;
  t.gemv_rows[1] = gemv_rows_f16_f32_avx512<Fetch>;
  t.gemv_rows[2] = gemv_rows_bf16_f32_avx512<Fetch>;
}

}  // namespace

void register_gemv_avx512(KernelTable& t, const CpuFeatures& f) {
  const bool four = prefers_four_row_streams(f), four16 = avx512_half_floats_in_four_rows(f);
  if (weight_line_fetch(f) == LineFetch::Nta) register_float<LineFetch::Nta>(t, four, four16);
  else register_float<LineFetch::T0>(t, four, four16);
  t.gemv[(int)WeightType::I8] = four ? gemv_i8_f32_avx512_fours : gemv_i8_f32_avx512;
  t.gemv[(int)WeightType::Q4] = gemv_q4_f32_avx512;
  t.dequant[(int)WeightType::F32] = dequant_f32_avx512;
  t.dequant[(int)WeightType::F16] = dequant_f16_avx512;
  t.dequant[(int)WeightType::BF16] = dequant_bf16_avx512;
  t.dequant[(int)WeightType::I8] = dequant_i8_avx512;
  t.dequant[(int)WeightType::Q4] = dequant_q4_avx512;
  t.gemv_t[0] = gemv_t_f32_f32_avx512;
  t.gemv_t[1] = gemv_t_f16_f32_avx512;
  t.gemv_t[2] = gemv_t_bf16_f32_avx512;
}

}  // namespace ie
