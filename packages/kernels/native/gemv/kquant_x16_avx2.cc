// Q4_K, Q5_K and Q6_K in 16-row records (kernel_table.h, kQ4kRecordBytes / kQ5kRecordBytes /
// kQ6kRecordBytes) x int8 activations on AVX2. The row layouts' kernels (int8act_blocks_x86.h)
// spend their operations on one row at a time: Q6_K 17 per 128 codes joining nibbles and bit pairs
// and a byte shuffle per 32 codes placing two groups' scales, Q4_K the nibbles and two scale
// shuffles per 64 codes; on one Zen 3 core the Q6_K one runs 23-27 G weights/s from L2, under what
// the bus brings one core. In records a vector holds 8 rows' codes of four columns, so one
// broadcast of four activations feeds 8 rows, and a group's scales for 8 rows come in one zero or
// sign extension and one unpack (each row's scale in both words of its lane, which the records'
// slot order 0-3, 8-11, 4-7, 12-15 arranges). Q6_K's three vectors P, Q, R give a group's four
// 4-column chunks in 11 operations per 8 rows; two chunk products are summed in 16 bits (at most 2
// x 2 x 63 x 127) and widened against the scales, and the -32 comes off as one more vpmaddwd of the
// scales against 16 x the group's sum of x in both words. Q4_K's eight nibble products of a
// 32-column sub-block are summed in 16 bits (at most 8 x 2 x 15 x 127) before one vpmaddwd against
// the sub-block's scales, and the mins meet each sub-block's sum of x in one more. Q5_K is Q4_K
// with each code's high bit from the record's masks (high_bits: a shuffle, two ANDs and a compare
// per 32 codes) and four vectors' products to a 16-bit sum instead of eight. A record's 64-byte
// vector is two 256-bit halves of 8 rows; a pass takes both halves of a stripe against one
// activation row (a lone row: two far-apart stripes at once), or one half against up to four
// activation rows, the later passes reading it from L1. Each record's lines are prefetched evenly,
// a slice per step 4 KiB ahead: a Q6_K record's 53 lines at once left the loads waiting on a full
// miss queue (TinyLlama's classifier shape from DRAM, one Zen 3 core, 18-22 -> 27-33 G weights/s).
#include <immintrin.h>

#include <algorithm>

#include "cpu/kernel_table.h"
#include "cpu/vec.h"
#include "gemv/row_streams.h"
#include "mem/aligned.h"

namespace ie {
namespace {

// One activation row as the kernels read it: its codes, the scale of each block of 32 (one per
// superblock, repeated), and per group of the format a sum of its codes as the format's kernel takes it.
struct ActRow {
  const int8_t* q;
  const float* d;
  const int32_t* n;
};

inline __m256i bytes32(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
inline __m128i bytes16(const uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }
// A half's eight rows' words of 16 words in slot order: row r's in both words of lane r.
inline __m256i half_words(__m256i w, int half) { return half == 0 ? _mm256_unpacklo_epi16(w, w) : _mm256_unpackhi_epi16(w, w); }
inline __m256i broadcast4(const int8_t* p) { return _mm256_set1_epi32(*reinterpret_cast<const int32_t*>(p)); }

struct Q6kRecords {
  static constexpr int kBytes = kQ6kRecordBytes, kSteps = 16, kGroup = 16;
  using Sums = __m256i;
  static Sums zero() { return _mm256_setzero_si256(); }
  // 16 x each group's sum of codes in both words (|16 s| <= 16 * 16 * 127 < 2^15).
  static int32_t group_sum(int s) {
    const uint32_t w = (uint16_t)(int16_t)(16 * s);
    return (int32_t)(w | w << 16);
  }
  // Group g (16 columns) of halves h + k % H of the records at rec + (k / H) · far against NA activation rows.
  template <int NA, int H, int HP>
  static void step(const uint8_t* rec, ptrdiff_t far, int g, int h, const ActRow* x, int i, Sums (*s)[NA]) {
    IE_UNROLL for (int k = 0; k < HP; k++) group<NA>(rec + (k / H) * far, g, h + k % H, x, i, s[k]);
  }
  template <int NA>
  static void group(const uint8_t* rec, int g, int half, const ActRow* x, int i, Sums* s) {
    const __m256i top2 = _mm256_set1_epi8((char)0xC0);
    const __m256i S = half_words(_mm256_cvtepi8_epi16(bytes16(rec + kQ6kRecordScales + 16 * g)), half);
    const uint8_t* v = rec + 192 * g + 32 * half;
    const __m256i p = bytes32(v), q = bytes32(v + 64), r = bytes32(v + 128);
    const __m256i c0 = _mm256_andnot_si256(top2, p), c1 = _mm256_andnot_si256(top2, q), c2 = _mm256_andnot_si256(top2, r);
    // Chunk 3: R's top bits to 0-1, Q's to 2-3, P's to 4-5 (16-bit shifts of masked bytes: nothing crosses a byte).
    __m256i c3 = _mm256_srli_epi16(_mm256_and_si256(r, top2), 2);
    c3 = _mm256_srli_epi16(_mm256_or_si256(c3, _mm256_and_si256(q, top2)), 2);
    c3 = _mm256_srli_epi16(_mm256_or_si256(c3, _mm256_and_si256(p, top2)), 2);
    IE_UNROLL for (int a = 0; a < NA; a++) {
      const int8_t* xg = x[a].q + i * kSuperBlock + 16 * g;
      const __m256i p01 = _mm256_add_epi16(_mm256_maddubs_epi16(c0, broadcast4(xg)), _mm256_maddubs_epi16(c1, broadcast4(xg + 4)));
      const __m256i p23 = _mm256_add_epi16(_mm256_maddubs_epi16(c2, broadcast4(xg + 8)), _mm256_maddubs_epi16(c3, broadcast4(xg + 12)));
      const __m256i m = _mm256_add_epi32(_mm256_madd_epi16(p01, S), _mm256_madd_epi16(p23, S));
      s[a] = _mm256_add_epi32(s[a], _mm256_sub_epi32(m, _mm256_madd_epi16(S, _mm256_set1_epi32(x[a].n[16 * i + g]))));
    }
  }
  static void finish(const uint8_t* rec, int half, const Sums& s, const ActRow& x, int i, float* u) {
    const __m256 d = _mm256_cvtph_ps(bytes16(rec + kQ6kRecordD + 16 * half));
    _mm256_storeu_ps(u, _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(d, _mm256_set1_ps(x.d[i * kSuperBlock / kQ8Block])), _mm256_loadu_ps(u)));
  }
};

// A half's 32 high bits of one nibble's codes (4 bytes of a Q5_K record's mask: bit k for byte k)
// as 0x10 in each byte whose bit is set: each mask byte spread to its 8 bytes, its bits picked.
inline __m256i high_bits(const uint8_t* mask) {
  const __m256i spread = _mm256_setr_epi64x(0, 0x0101010101010101LL, 0x0202020202020202LL, 0x0303030303030303LL);
  const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
  const __m256i b = _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32(*reinterpret_cast<const int32_t*>(mask)), spread), bit);
  return _mm256_and_si256(_mm256_cmpeq_epi8(b, bit), _mm256_set1_epi8(0x10));
}

// Q4_K's records, and with Five Q5_K's (kQ5kRecordBytes: a Q4_K record and each code's high bit).
template <bool Five>
struct KRecords {
  static constexpr int kBytes = Five ? kQ5kRecordBytes : kQ4kRecordBytes, kSteps = 4, kGroup = 32;
  using Sums = __m256i;  // the scales' integer sums
  static Sums zero() { return _mm256_setzero_si256(); }
  // Each sub-block's sum of codes in the low word (|s| <= 32 * 127 < 2^15), 0 in the high one.
  static int32_t group_sum(int s) { return (int32_t)(uint16_t)(int16_t)s; }
  // Sub-blocks 2j and 2j + 1 (64 columns) of halves h + k % H of the records at rec + (k / H) · far
  // against NA activation rows: the scales' sums. Each broadcast of x feeds every half before the
  // next (as separate calls per half GCC kept all 16 of a step's broadcasts and spilled them). The
  // mins' sums come once per superblock (finish), out of this loop's registers.
  // Q5_K's codes reach 31: four vectors' products (4 x 2 x 31 x 127) are summed in 16 bits before
  // they meet the scales, where Q4_K sums all eight.
  template <int NA, int H, int HP>
  static void step(const uint8_t* rec, ptrdiff_t far, int j, int h, const ActRow* x, int i, Sums (*s)[NA]) {
    constexpr int kRun = Five ? 4 : 8;
    IE_UNROLL for (int v0 = 0; v0 < 8; v0 += kRun) vectors<NA, H, HP, kRun>(rec, far, j, v0, h, x, i, s);
  }
  template <int NA, int H, int HP, int N>
  static void vectors(const uint8_t* rec, ptrdiff_t far, int j, int v0, int h, const ActRow* x, int i, Sums (*s)[NA]) {
    const __m256i nib4 = _mm256_set1_epi8(0x0f);
    __m256i pl[HP][NA], ph[HP][NA];
    IE_UNROLL for (int k = 0; k < HP; k++) IE_UNROLL for (int a = 0; a < NA; a++) pl[k][a] = ph[k][a] = _mm256_setzero_si256();
    _Pragma("GCC unroll 2") for (int v = v0; v < v0 + N; v++) IE_UNROLL for (int a = 0; a < NA; a++) {
      const int8_t* xj = x[a].q + i * kSuperBlock + 64 * j + 4 * v;
      const __m256i xl = broadcast4(xj), xh = broadcast4(xj + 32);
      IE_UNROLL for (int k = 0; k < HP; k++) {
        const uint8_t* r = rec + (k / H) * far;
        const int half = h + k % H;
        const __m256i c = bytes32(r + 512 * j + 64 * v + 32 * half);
        __m256i lo = _mm256_and_si256(c, nib4), hi = _mm256_and_si256(_mm256_srli_epi16(c, 4), nib4);
        if constexpr (Five) {
          const uint8_t* mask = r + kQ5kRecordHigh + 128 * j + 16 * v + 4 * half;
          lo = _mm256_or_si256(lo, high_bits(mask));
          hi = _mm256_or_si256(hi, high_bits(mask + 8));
        }
        pl[k][a] = _mm256_add_epi16(pl[k][a], _mm256_maddubs_epi16(lo, xl));
        ph[k][a] = _mm256_add_epi16(ph[k][a], _mm256_maddubs_epi16(hi, xh));
      }
    }
    const __m128i low6 = _mm_set1_epi8(0x3f);
    IE_UNROLL for (int k = 0; k < HP; k++) {
      const uint8_t* sc = rec + (k / H) * far + kQ4kRecordScales + 32 * j;
      const int half = h + k % H;
      const __m256i S0 = half_words(_mm256_cvtepu8_epi16(_mm_and_si128(bytes16(sc), low6)), half);
      const __m256i S1 = half_words(_mm256_cvtepu8_epi16(_mm_and_si128(bytes16(sc + 16), low6)), half);
      IE_UNROLL for (int a = 0; a < NA; a++) s[k][a] = _mm256_add_epi32(s[k][a], _mm256_add_epi32(_mm256_madd_epi16(pl[k][a], S0), _mm256_madd_epi16(ph[k][a], S1)));
    }
  }
  // The mins: per sub-block its bits 0-1 on top of the scale's byte, bits 2-5 from a nibble.
  static void finish(const uint8_t* rec, int half, const Sums& s, const ActRow& x, int i, float* u) {
    const __m128i low2 = _mm_set1_epi8(0x03), low4 = _mm_set1_epi8(0x0f);
    __m256i m = _mm256_setzero_si256();
    IE_UNROLL for (int j = 0; j < 4; j++) {
      const __m128i nib = bytes16(rec + kQ4kRecordMins + 16 * j);
      const __m128i lo = _mm_and_si128(nib, low4), hi = _mm_and_si128(_mm_srli_epi16(nib, 4), low4);
      IE_UNROLL for (int e = 0; e < 2; e++) {
        const __m128i top = _mm_and_si128(_mm_srli_epi16(bytes16(rec + kQ4kRecordScales + 32 * j + 16 * e), 6), low2);
        const __m128i mins = _mm_or_si128(top, _mm_slli_epi16(e == 0 ? _mm_unpacklo_epi64(lo, hi) : _mm_unpackhi_epi64(lo, hi), 2));
        m = _mm256_add_epi32(m, _mm256_madd_epi16(half_words(_mm256_cvtepu8_epi16(mins), half), _mm256_set1_epi32(x.n[8 * i + 2 * j + e])));
      }
    }
    const __m256 f = _mm256_set1_ps(x.d[i * kSuperBlock / kQ8Block]);
    const __m256 d = _mm256_mul_ps(_mm256_cvtph_ps(bytes16(rec + kQ4kRecordD + 16 * half)), f);
    const __m256 dmin = _mm256_mul_ps(_mm256_cvtph_ps(bytes16(rec + kQ4kRecordDmin + 16 * half)), f);
    _mm256_storeu_ps(u, _mm256_fnmadd_ps(_mm256_cvtepi32_ps(m), dmin, _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), d, _mm256_loadu_ps(u))));
  }
};

// H halves of a stripe from half h against NA activation rows over superblocks [i0, i1): activation
// row a's sums of half h + k at t + 16·a + 8·k (start: none yet). P 2: the same for two stripes
// `far` bytes apart (one activation row, both halves), the second's at t + 16.
template <class F, int NA, int H = 1, int P = 1>
__attribute__((noinline)) void halves(const uint8_t* recs, int i0, int i1, int h, const ActRow* x, float* t, bool start, bool fetch, ptrdiff_t far = 0) {
  static_assert(P == 1 || (NA == 1 && H == 2), "two stripes a pass: one activation row, both halves");
  constexpr int HP = H * P, kAhead = 4096, kSlice = F::kBytes / F::kSteps;
  if (start)
    for (int k = 0; k < HP; k++)
      for (int a = 0; a < NA; a++) _mm256_storeu_ps(t + 16 * a + 8 * k, _mm256_setzero_ps());
  for (int i = i0; i < i1; i++) {
    const uint8_t* rec = recs + (ptrdiff_t)i * F::kBytes;
    typename F::Sums s[HP][NA];
    IE_UNROLL for (int k = 0; k < HP; k++) IE_UNROLL for (int a = 0; a < NA; a++) s[k][a] = F::zero();
    for (int step = 0; step < F::kSteps; step++) {
      if (fetch)
        IE_UNROLL for (int p = 0; p < P; p++) {
          const char* ahead = reinterpret_cast<const char*>(rec + p * far + kAhead + kSlice * step);
          IE_UNROLL for (int l = 0; l < kSlice; l += 64) _mm_prefetch(ahead + l, _MM_HINT_T0);
          _mm_prefetch(ahead + kSlice - 1, _MM_HINT_T0);
        }
      F::template step<NA, H, HP>(rec, far, step, h, x, i, s);
    }
    IE_UNROLL for (int k = 0; k < HP; k++) IE_UNROLL for (int a = 0; a < NA; a++)
      F::finish(rec + (k / H) * far, h + k % H, s[k][a], x[a], i, t + 16 * a + 8 * k);
  }
}

template <class F>
void gemv_rows_kquant_x16_q8_avx2(const WeightRows& w, const int8_t* xq, const float* xd, ptrdiff_t ldq, ptrdiff_t ldd, int M, float* y, ptrdiff_t ldy,
                                  int rows, bool acc) {
  const int nb = w.K / kSuperBlock, ng = w.K / F::kGroup;
  Scratch<int32_t, 8 * 512> sums((size_t)M * ng);
  Scratch<ActRow, 8> act((size_t)M);
  for (int m = 0; m < M; m++) {
    const int8_t* q = xq + m * ldq;
    int32_t* n = sums.data() + (size_t)m * ng;
    for (int g = 0; g < ng; g++) {
      int s = 0;
      for (int j = F::kGroup * g; j < F::kGroup * (g + 1); j++) s += q[j];
      n[g] = F::group_sum(s);
    }
    act.data()[m] = {q, xd + m * ldd, n};
  }
  Scratch<float, 8 * 16> sums_((size_t)16 * M);  // activation row a's sums of the stripe at t + 16·a
  float* t = sums_.data();
  const ActRow* x = act.data();
  records_rows(
      w, M, nb, 2, t, y, ldy, rows, acc, [&](const uint8_t* recs, ptrdiff_t gap, float* u) { halves<F, 1, 2, 2>(recs, 0, nb, 0, x, u, true, true, gap); },
      [&](const uint8_t* recs, float* u) { halves<F, 1, 2>(recs, 0, nb, 0, x, u, true, true); },
      [&](auto na, const uint8_t* recs, int b0, int b1, int h, int a, float* u, bool start, bool first) {
        halves<F, decltype(na)::value>(recs, b0, b1, h, x + a, u, start, first);
      });
}

template <class F>
void gemv_kquant_x16_q8_avx2(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) {
  gemv_rows_kquant_x16_q8_avx2<F>(w, xq, xd, 0, 0, 1, y, 0, rows, acc);
}

}  // namespace

void register_kquant_x16_avx2(KernelTable& t, const CpuFeatures& f) {
  // Measured on Zen 3, Zen 5 and Intel (cpu/cpu_features.h).
  const char* worth = kquant_records_for_one_row(f) ? "always" : "none";
  t.q6kx16.gemv_q8 = gemv_kquant_x16_q8_avx2<Q6kRecords>;
  t.q6kx16.gemv_q8_rows = gemv_rows_kquant_x16_q8_avx2<Q6kRecords>;
  t.q6kx16.worth = worth;
  t.q4kx16.gemv_q8 = gemv_kquant_x16_q8_avx2<KRecords<false>>;
  t.q4kx16.gemv_q8_rows = gemv_rows_kquant_x16_q8_avx2<KRecords<false>>;
  t.q4kx16.worth = worth;
  // Q5_K: a lone row no faster than the row kernel (the high bits' four operations per 32 codes
  // keep it compute-bound), eight rows 1.5x (Zen 5 with IE_ISA=avx2): for several sequences only.
  t.q5kx16.gemv_q8 = gemv_kquant_x16_q8_avx2<KRecords<true>>;
  t.q5kx16.gemv_q8_rows = gemv_rows_kquant_x16_q8_avx2<KRecords<true>>;
  t.q5kx16.worth = kquant_records_for_one_row(f) ? "batched" : "none";
}

}  // namespace ie
