// i8 in 16-row records (kernel_table.h) x int8 activations on AVX2. The AVX-512 VNNI kernel
// (i8x16_avx512vnni.cc) multiplies a record's codes + 128 by the activations in one vpdpbusd. AVX2's
// vpmaddubsw would saturate on them (two products of up to 255 x 127 into 16 bits), and the sign
// trick the row layout uses costs a third multiply-port operation per 32 products; here the codes +
// 128 widen to 16 bits once per vector (vpmovzxbw, shared by the activation rows) and vpmaddwd takes
// them against x widened once per call, two products a 32-bit lane with no saturation, from a start
// of -128 x the block's sum of x: two multiply-port operations per 32 products and activation row.
// (On a Zen 4 core vpsignb, vpmaddubsw and vpmaddwd share two pipes, 0.67 of the three a cycle in a
// throughput loop; with AVX2 forced there the two kernels measured alike, the loads and broadcasts
// taking the same pipes.) A record's 64-byte vector is two 256-bit halves of 8 rows; a pass takes one
// half of a stripe against up to four activation rows, the later passes reading it from L1. The row
// layout's kernel pays a conversion and an FMA per row, activation row and block of 32, and streams
// the matrix once per four activation rows.
#include <immintrin.h>

#include <algorithm>

#include "cpu/kernel_table.h"
#include "cpu/vec.h"
#include "gemv/records16_x86.h"
#include "gemv/row_streams.h"
#include "mem/aligned.h"

namespace ie {
namespace {

// One activation row as the kernel reads it: x's codes widened to 16 bits (whole blocks of 32), the
// scale of each block, and each block's -128 * sum of codes (the codes' offset's term).
struct ActRow {
  const int16_t* q;
  const float* d;
  const int32_t* n;
};

// x's codes to 16 bits and each block's -128 * sum, nb blocks of 32.
void widen_x(const int8_t* xq, int nb, int16_t* q, int32_t* n) {
  const __m256i ones = _mm256_set1_epi16(1);
  for (int b = 0; b < nb; b++) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + kQ8Block * b));
    const __m256i lo = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(v)), hi = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(v, 1));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + kQ8Block * b), lo);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + kQ8Block * b + 16), hi);
    const __m256i s = _mm256_madd_epi16(_mm256_add_epi16(lo, hi), ones);
    const __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    const __m128i s2 = _mm_add_epi32(s4, _mm_unpackhi_epi64(s4, s4));
    n[b] = -128 * _mm_cvtsi128_si32(_mm_add_epi32(s2, _mm_shuffle_epi32(s2, 1)));
  }
}

// vphaddd of a half's two sums (rows 0-3 and 4-7, two partial sums a row) leaves its rows in the
// order 0 1 4 5 2 3 6 7; the scales and float sums are kept in that order (a permutation that is its
// own inverse) and put back in row order when stored.
inline __m256i hadd_order() { return _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7); }

// H halves of a stripe, from half h, for P stripes `far` bytes apart (P 2: a lone row's far-apart
// pair, both halves), against NA activation rows over x's blocks [b0, b1) of 32 columns, records of
// G columns: activation row a's sums of half k (k = p·H + the half) at t + 16·a + 8·k (start: none
// yet), stored back at the end. Every (row, activation row) pair runs the same operations in the same
// order at every H, P, NA and block range: a row's result does not depend on the batch or the range.
template <int NA, int H = 1, int P = 1>
__attribute__((noinline)) void halves(const uint8_t* recs, int G, int b0, int b1, ScaleType st, int h, const ActRow* x, float* t, bool start, bool fetch,
                                      ptrdiff_t far = 0) {
  static_assert(P == 1 || (NA == 1 && H == 2), "two stripes a pass: one activation row, both halves");
  constexpr int HP = H * P;
  const int per = G / kQ8Block, rec_bytes = i8x16_record_bytes(G, st);
  const __m256i order = hadd_order();
  __m256 total[HP][NA];
  IE_UNROLL for (int k = 0; k < HP; k++) IE_UNROLL for (int a = 0; a < NA; a++) {
      total[k][a] = start ? _mm256_setzero_ps() : _mm256_permutevar8x32_ps(_mm256_loadu_ps(t + 16 * a + 8 * k), order);
    }
  // Block b is block j of record `rec`.
  const uint8_t* rec = recs + (ptrdiff_t)(b0 / per) * rec_bytes;
  for (int b = b0, j = b0 % per; b < b1; b++, j++) {
    if (j == per) {
      rec += rec_bytes;
      j = 0;
    }
    const uint8_t* codes = rec + 512 * j;
    if (fetch) IE_UNROLL for (int p = 0; p < P; p++) stream_prefetch(codes + p * far, 512);
    // Rows 0-3 (lo) and 4-7 (hi) of each half, two partial sums a row: four codes (0..255, the
    // codes + 128) times four activations, in pairs, as vpmaddwd sums them; exact in 32 bits.
    __m256i lo[HP][NA], hi[HP][NA];
    IE_UNROLL for (int k = 0; k < HP; k++) IE_UNROLL for (int a = 0; a < NA; a++) lo[k][a] = hi[k][a] = _mm256_setzero_si256();
    IE_UNROLL for (int i = 0; i < 8; i++) IE_UNROLL for (int k = 0; k < HP; k++) {
        const uint8_t* v = codes + (k / H) * far + 32 * (h + k % H) + 64 * i;
        const __m256i w0 = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(v)));
        const __m256i w1 = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(v + 16)));
        IE_UNROLL for (int a = 0; a < NA; a++) {
          int64_t x4;
          __builtin_memcpy(&x4, x[a].q + kQ8Block * b + 4 * i, 8);
          const __m256i xv = _mm256_set1_epi64x(x4);
          lo[k][a] = _mm256_add_epi32(lo[k][a], _mm256_madd_epi16(w0, xv));
          hi[k][a] = _mm256_add_epi32(hi[k][a], _mm256_madd_epi16(w1, xv));
          // One running sum each: GCC otherwise regroups the block's additions into a tree and
          // spills its partial sums.
          __asm__("" : "+x"(lo[k][a]), "+x"(hi[k][a]));
        }
      }
    // The scales follow the codes in memory and are read after them (i8x16_avx512vnni.cc).
    IE_UNROLL for (int k = 0; k < HP; k++) {
      const __m256 sc = _mm256_permutevar8x32_ps(record_half_scales(rec + (k / H) * far + 16 * G, st, h + k % H), order);
      IE_UNROLL for (int a = 0; a < NA; a++) {
        const __m256i s = _mm256_add_epi32(_mm256_hadd_epi32(lo[k][a], hi[k][a]), _mm256_set1_epi32(x[a].n[b]));
        total[k][a] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(sc, _mm256_set1_ps(x[a].d[b])), total[k][a]);
      }
    }
  }
  IE_UNROLL for (int k = 0; k < HP; k++) IE_UNROLL for (int a = 0; a < NA; a++) {
      _mm256_storeu_ps(t + 16 * a + 8 * k, _mm256_permutevar8x32_ps(total[k][a], order));
    }
}

void gemv_rows_i8x16_q8_avx2(const WeightRows& w, const int8_t* xq, const float* xd, ptrdiff_t ldq, ptrdiff_t ldd, int M, float* y, ptrdiff_t ldy, int rows,
                             bool acc) {
  // The SIMD kernels take whole records (col0 0; a K-slice inside a record is the FP32 GEMM's).
  const int nb = w.K / kQ8Block, G = w.group;
  Scratch<int16_t, 8 * 2048> wide((size_t)M * nb * kQ8Block);
  Scratch<int32_t, 8 * 256> offsets((size_t)M * nb);
  Scratch<ActRow, 8> act((size_t)M);
  for (int m = 0; m < M; m++) {
    int16_t* q = wide.data() + (size_t)m * nb * kQ8Block;
    int32_t* n = offsets.data() + (size_t)m * nb;
    widen_x(xq + m * ldq, nb, q, n);
    act.data()[m] = {q, xd + m * ldd, n};
  }
  Scratch<float, 8 * 16> sums((size_t)16 * M);  // activation row a's sums of the stripe at t + 16·a
  float* t = sums.data();
  const ActRow* x = act.data();
  records_rows(
      w, M, nb, 512 / kQ8Block, t, y, ldy, rows, acc,
      [&](const uint8_t* recs, ptrdiff_t gap, float* u) { halves<1, 2, 2>(recs, G, 0, nb, w.stype, 0, x, u, true, true, gap); },
      [&](const uint8_t* recs, float* u) { halves<1, 2>(recs, G, 0, nb, w.stype, 0, x, u, true, true); },
      [&](auto na, const uint8_t* recs, int b0, int b1, int h, int a, float* u, bool start, bool first) {
        halves<decltype(na)::value>(recs, G, b0, b1, w.stype, h, x + a, u, start, first);
      });
}

void gemv_i8x16_q8_avx2(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) {
  gemv_rows_i8x16_q8_avx2(w, xq, xd, 0, 0, 1, y, 0, rows, acc);
}

}  // namespace

void register_i8x16_avx2(KernelTable& t) {
  t.i8x16.gemv_q8 = gemv_i8x16_q8_avx2;
  t.i8x16.gemv_q8_rows = gemv_rows_i8x16_q8_avx2;
  t.i8x16.worth = "batched";
}

}  // namespace ie
