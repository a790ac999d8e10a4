// What the AVX-512 VNNI kernels of the 16-row records (kernel_table.h: q4x16_avx512vnni.cc,
// i8x16_avx512vnni.cc) share: the scales of a record, an activation row as they read it, the zero
// point's sums of x, the broadcasting vpdpbusd and how many stripes a pass takes. Include only from
// translation units built for AVX-512 VNNI.
#pragma once
#include <immintrin.h>

#include <algorithm>

#include "cpu/kernel_table.h"
#include "gemv/row_streams.h"

namespace ie {
namespace {

inline __m512 record_scales(const uint8_t* p, ScaleType t) {
  if (t == ScaleType::F32) return _mm512_loadu_ps(p);
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return t == ScaleType::F16 ? _mm512_cvtph_ps(h) : _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

// One activation row as the kernel reads it: codes, the scale of each group (x is quantized in blocks
// of the group; of 32 for i8), and each group's (block's) -zero * sum of codes (the zero point's term,
// the sums' start).
struct ActRow {
  const int8_t* q;
  const float* d;
  const int32_t* n;
};

// A kernel's software prefetch: none, a pass over consecutive stripes (prefetch_pass), or far-apart
// stripes, each stream kStreamAhead bytes ahead in its own stripe.
enum class Fetch { None, Pass, Far };

// s + the products of u's unsigned bytes and the four signed bytes at p, broadcast to every lane.
// The broadcast rides in the instruction's memory operand: GCC loads it into a register first, a
// vector operation per vpdpbusd more, which at eight activation rows of one stripe left the kernel at
// about half of this core's vpdpbusd rate. (With several stripes a register broadcast feeds them all.)
inline __m512i dpbusd_broadcast(__m512i s, __m512i u, const int32_t* p) {
  __asm__("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(s) : "v"(u), "m"(*p));
  return s;
}

// The sums of the eight 8-byte runs of the 64 signed codes at p, each + 8 x 128: vpsadbw of the
// codes offset to unsigned, one 64-bit lane a run.
inline __m512i sums_of_8(const int8_t* p) {
  return _mm512_sad_epu8(_mm512_xor_si512(_mm512_loadu_si512(p), _mm512_set1_epi8((char)0x80)), _mm512_setzero_si512());
}
// Lanes 2i and 2i + 1 summed into lane i: a's pairs in lanes 0-3, b's in 4-7.
inline __m512i pair_lanes(__m512i a, __m512i b) {
  const __m512i even = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14), odd = _mm512_setr_epi64(1, 3, 5, 7, 9, 11, 13, 15);
  return _mm512_add_epi64(_mm512_permutex2var_epi64(a, even, b), _mm512_permutex2var_epi64(a, odd, b));
}

// -Zero * sum of each group's codes (q4: -8; i8 records: -128), ng groups of G (x is zero-padded to whole 128-element chunks).
// Computed per call, for every activation row: with several rows and short ranges (RowSplit::
// Shrinking) a horizontal sum per group took as long as the kernel over a 64-row range, so groups
// of 32 go eight at a time: vpsadbw of the codes offset to unsigned (eight bytes a lane), then two
// rounds of pairwise lane sums. The sums are the same integers.
template <int G, int Zero = kQ4SymmetricZero>
void group_sums(const int8_t* xq, int ng, int32_t* n) {
  const __m512i ones = _mm512_set1_epi8(1);
  int g = 0;
  if constexpr (G == 32) {
    for (; g + 8 <= ng; g += 8) {
      __m512i s[4];
      for (int i = 0; i < 4; i++) s[i] = sums_of_8(xq + (g + 2 * i) * 32);
      // Each group's unsigned sum is its signed sum + 32 * 128.
      const __m512i u = pair_lanes(pair_lanes(s[0], s[1]), pair_lanes(s[2], s[3]));
      const __m256i sum = _mm256_sub_epi32(_mm512_cvtepi64_epi32(u), _mm256_set1_epi32(32 * 128));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(n + g), _mm256_mullo_epi32(sum, _mm256_set1_epi32(-Zero)));
    }
  }
  for (; g < ng; g++) {
    __m512i s = _mm512_setzero_si512();
    for (int k = 0; k < G; k += 64) {
      const __m512i v = G == 32 ? _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + g * G))) : _mm512_loadu_si512(xq + g * G + k);
      s = _mm512_dpbusd_epi32(s, ones, G == 32 ? _mm512_maskz_mov_epi32(0x00ff, v) : v);
    }
    n[g] = -Zero * _mm512_reduce_add_epi32(s);
  }
}

// The stripes per pass for M activation rows, and the most activation rows a pass of them takes
// (registers: S·NA integer sums, 2·S code vectors, two broadcasts; float sums past 12 in memory).
// Measured from DRAM (48 matrices of 5632 x 2048, Zen 5, against one stripe a pass): two to six
// rows gain from two or four stripes (1.1-1.25x on one core), a 64-token prefill chunk from two
// (1.13x), seven or eight rows from two with the float sums in memory (1.08-1.09x on one and two
// cores; as two blocked passes of four they ran 0.87x); one row runs one stripe a pass where its
// stripes do not go in far-apart pairs (far_stripe_pairs). Where 512-bit operations run in two
// halves (Zen 4: avx512_full_width false) seven or eight rows go one stripe a pass, their float sums
// in registers: one Zen 4 core, eight rows from DRAM (TinyLlama's 2048- and 5632-column shapes,
// alternated, two rounds), Q4_0 131-148 -> 150-154 G multiply-adds/s, Q8_0 86-98 -> 100-109; from L2
// Q4_0 131-151 -> 149-164.
struct StripePlan {
  int stripes, most;
};
inline StripePlan stripe_plan(int M, bool full_width) {
  if (M == 2) return {4, 2};
  if (M <= 1) return {1, 8};
  if (M == 7 || M == 8) return full_width ? StripePlan{2, 8} : StripePlan{1, 8};
  return {2, 6};
}

// Rows [r, rows) of a records GEMV against M activation rows, whole passes of plan.stripes stripes
// (the range's last few stripes one at a time, up to 8 activation rows a pass), the passes over the
// same stripes taking turns `turn` units at a time (groups for q4, x's blocks of 32 for i8: 512
// columns) so that the stripes come from memory once and from L1 for the later passes. pass(S, na,
// recs, u0, u1, a, t, start, fetch) runs S stripes from recs against activation rows [a, a + na)
// over units [u0, u1), its sums at t ([S][na][16]; start: none yet), prefetching (fetch: Fetch::Pass)
// in the first pass over them only. t holds 16·plan.stripes·M floats;
// plan is stripe_plan(M, ...).
template <class Pass>
void stripe_passes(const WeightRows& w, int M, const StripePlan& plan, float* y, ptrdiff_t ldy, int r, int rows, int units, int turn, float* t, bool acc, Pass&& pass) {
  while (r < rows) {
    const int S = rows - r >= 16 * plan.stripes ? plan.stripes : 1;
    const int most = S == 1 ? 8 : plan.most;
    const int passes = (M + most - 1) / most;
    const int block = passes == 1 ? units : turn;
    const uint8_t* recs = w.q + (ptrdiff_t)r * w.q_ld;
    for (int u0 = 0; u0 < units; u0 += block)
      for (int a = 0, p = 0; p < passes; p++) {
        const int na = (M - a) / (passes - p);  // even shares: 8 rows as 4 + 4, not 6 + 2
        pass(S, na, recs, u0, std::min(units, u0 + block), a, t + 16 * S * a, u0 == 0, p == 0 ? Fetch::Pass : Fetch::None);
        a += na;
      }
    for (int a = 0, p = 0; p < passes; p++) {
      const int na = (M - a) / (passes - p);
      for (int i = 0; i < na; i++)
        for (int j = 0; j < S; j++) store_stripe(y + (ptrdiff_t)(a + i) * ldy + r + 16 * j, t + 16 * (S * a + j * na + i), acc);
      a += na;
    }
    r += 16 * S;
  }
}

}  // namespace
}  // namespace ie
