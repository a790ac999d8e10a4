// Symmetric q4 in 16-row records (kernel_table.h) x int8 activations on AVX-512 VNNI. A record's
// vector holds four codes of each of 16 rows, one row per lane; the four matching activations are
// broadcast to every lane, so one vpdpbusd does 64 multiply-adds for 16 rows and no lane ever needs
// a horizontal sum. Per group and 16 rows, one conversion and one FMA apply both scales: the row
// layout's kernel pays them per 128 weights of one row, which at eight activation rows left it at
// half the rate of this one (standalone, Zen 5, 2 threads: 438-442 against 897-911 GOP/s).
#include <immintrin.h>

#include <algorithm>

#include "cpu/kernel_table.h"
#include "cpu/vec.h"
#include "gemv/row_streams.h"
#include "mem/aligned.h"

namespace ie {
namespace {

inline __m512 record_scales(const uint8_t* p, ScaleType t) {
  if (t == ScaleType::F32) return _mm512_loadu_ps(p);
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return t == ScaleType::F16 ? _mm512_cvtph_ps(h) : _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

// One activation row as the kernel reads it: codes, the scale of each group (x is quantized in blocks
// of the group), and each group's -8 * sum of codes (the symmetric zero's term, the sums' start).
struct ActRow {
  const int8_t* q;
  const float* d;
  const int32_t* n;
};

// s + the products of u's unsigned bytes and the four signed bytes at p, broadcast to every lane.
// The broadcast rides in the instruction's memory operand: GCC loads it into a register first, a
// vector operation per vpdpbusd more, which at eight activation rows left the kernel at about half
// of this core's vpdpbusd rate.
inline __m512i dpbusd_broadcast(__m512i s, __m512i u, const int32_t* p) {
  __asm__("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(s) : "v"(u), "m"(*p));
  return s;
}

// -8 * sum of each group's codes, ng groups of G (x is zero-padded to whole 128-element chunks).
template <int G>
void group_sums(const int8_t* xq, int ng, int32_t* n) {
  const __m512i ones = _mm512_set1_epi8(1);
  for (int g = 0; g < ng; g++) {
    __m512i s = _mm512_setzero_si512();
    for (int k = 0; k < G; k += 64) {
      const __m512i v = G == 32 ? _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + g * G))) : _mm512_loadu_si512(xq + g * G + k);
      s = _mm512_dpbusd_epi32(s, ones, G == 32 ? _mm512_maskz_mov_epi32(0x00ff, v) : v);
    }
    n[g] = -kQ4SymmetricZero * _mm512_reduce_add_epi32(s);
  }
}

// One stripe of 16 rows against NA activation rows: y[a][0..16) (+)= the rows . x of a.
template <int G, int NA>
__attribute__((noinline)) void stripe_q8(const uint8_t* recs, int ng, ScaleType st, const ActRow* x, float* const* y, bool acc) {
  constexpr int V = G / 8;  // code vectors per record
  const int rec_bytes = q4x16_record_bytes(G, st);
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  __m512 total[NA];
  IE_UNROLL for (int a = 0; a < NA; a++) total[a] = _mm512_setzero_ps();
  for (int g = 0; g < ng; g++) {
    const uint8_t* rec = recs + (ptrdiff_t)g * rec_bytes;
    stream_prefetch(rec, rec_bytes);
    __m512i s[NA];
    IE_UNROLL for (int a = 0; a < NA; a++) s[a] = _mm512_set1_epi32(x[a].n[g]);
    for (int i0 = 0; i0 < V; i0 += 4) {
      __m512i lo[4], hi[4];
      IE_UNROLL for (int i = 0; i < 4; i++) {
        const __m512i v = _mm512_loadu_si512(rec + 64 * (i0 + i));
        lo[i] = _mm512_and_si512(v, low4);
        hi[i] = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
      }
      IE_UNROLL for (int a = 0; a < NA; a++) {
        const int32_t* xg = reinterpret_cast<const int32_t*>(x[a].q + g * G);
        IE_UNROLL for (int i = 0; i < 4; i++) {
          s[a] = dpbusd_broadcast(s[a], lo[i], xg + i0 + i);
          s[a] = dpbusd_broadcast(s[a], hi[i], xg + V + i0 + i);
        }
      }
    }
    const __m512 sc = record_scales(rec + 8 * G, st);
    IE_UNROLL for (int a = 0; a < NA; a++) total[a] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[a]), _mm512_mul_ps(sc, _mm512_set1_ps(x[a].d[g * G / kQ8Block])), total[a]);
  }
  IE_UNROLL for (int a = 0; a < NA; a++) _mm512_storeu_ps(y[a], acc ? _mm512_add_ps(_mm512_loadu_ps(y[a]), total[a]) : total[a]);
}

template <int G>
void gemv_rows_q4x16_q8(const WeightRows& w, const int8_t* xq, const float* xd, ptrdiff_t ldq, ptrdiff_t ldd, int M, float* y, ptrdiff_t ldy, int rows, bool acc) {
  const int ng = (w.K + G - 1) / G;
  Scratch<int32_t, 8 * 256> sums((size_t)M * ng);
  Scratch<ActRow, 8> act((size_t)M);
  for (int m = 0; m < M; m++) {
    group_sums<G>(xq + m * ldq, ng, sums.data() + (size_t)m * ng);
    act.data()[m] = {xq + m * ldq, xd + m * ldd, sums.data() + (size_t)m * ng};
  }
  for (int r = 0; r < rows; r += 16) {
    const uint8_t* recs = w.q + (ptrdiff_t)r * w.q_ld;
    for (int a = 0; a < M; a += 8) {
      float* ys[8];
      const int na = std::min(8, M - a);
      for (int i = 0; i < na; i++) ys[i] = y + (a + i) * ldy + r;
      const ActRow* x = act.data() + a;
      switch (na) {
        case 1: stripe_q8<G, 1>(recs, ng, w.stype, x, ys, acc); break;
        case 2: stripe_q8<G, 2>(recs, ng, w.stype, x, ys, acc); break;
        case 3: stripe_q8<G, 3>(recs, ng, w.stype, x, ys, acc); break;
        case 4: stripe_q8<G, 4>(recs, ng, w.stype, x, ys, acc); break;
        case 5: stripe_q8<G, 5>(recs, ng, w.stype, x, ys, acc); break;
        case 6: stripe_q8<G, 6>(recs, ng, w.stype, x, ys, acc); break;
        case 7: stripe_q8<G, 7>(recs, ng, w.stype, x, ys, acc); break;
        default: stripe_q8<G, 8>(recs, ng, w.stype, x, ys, acc); break;
      }
    }
  }
}

void gemv_rows_q4x16_q8_avx512vnni(const WeightRows& w, const int8_t* xq, const float* xd, ptrdiff_t ldq, ptrdiff_t ldd, int M, float* y, ptrdiff_t ldy, int rows,
                                   bool acc) {
  switch (w.group) {
    case 32: return gemv_rows_q4x16_q8<32>(w, xq, xd, ldq, ldd, M, y, ldy, rows, acc);
    case 64: return gemv_rows_q4x16_q8<64>(w, xq, xd, ldq, ldd, M, y, ldy, rows, acc);
    default: return gemv_rows_q4x16_q8<128>(w, xq, xd, ldq, ldd, M, y, ldy, rows, acc);
  }
}

void gemv_q4x16_q8_avx512vnni(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) {
  gemv_rows_q4x16_q8_avx512vnni(w, xq, xd, 0, 0, 1, y, 0, rows, acc);
}

}  // namespace

void register_q4x16_avx512vnni(KernelTable& t) {
  t.q4x16.gemv_q8 = gemv_q4x16_q8_avx512vnni;
  t.q4x16.gemv_q8_rows = gemv_rows_q4x16_q8_avx512vnni;
  t.q4x16.worth = "always";
}

}  // namespace ie
