// Q4_K, Q5_K and Q6_K in 16-row records (kernel_table.h, kQ4kRecordBytes, kQ5kRecordBytes,
// kQ6kRecordBytes) x int8 activations on AVX-512 VNNI. The 256-bit kernels (kquant_x16_avx2.cc) split a record's 64-byte
// vector into two halves of 8 rows and sum products in 16 bits through vpmaddubsw; here one vector
// is 16 rows, one per lane, and one vpdpbusd multiplies four codes of each row (unsigned: Q4_K's
// nibbles, Q6_K's 6-bit codes) by four activations broadcast to every lane, summing in 32 bits. Per
// group of the format and 16 rows, one vpmulld applies the rows' integer scales (Q6_K's -32 starts
// each group's sum as -32 x the group's sum of x), and per superblock the exact integer sums are
// converted and multiplied in with the same fused multiply-adds as the scalar reference
// (kquant_x16_ref.cc), so the results are its bits at every stripe count, batch and range. The
// scales are stored in the slot order 0-3, 8-11, 4-7, 12-15 (the 256-bit kernels' halves); one
// dword shuffle of the 16 bytes puts them in row order.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "cpu/cpu_features.h"
#include "cpu/kernel_table.h"
#include "cpu/vec.h"
#include "gemv/records16_avx512vnni.h"
#include "gemv/row_streams.h"
#include "mem/aligned.h"

namespace ie {
namespace {

inline __m128i bytes16(const uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }
// A group's 16 scale bytes from slot order to row order (dwords 1 and 2 swap).
inline __m128i rows_order(__m128i v) { return _mm_shuffle_epi32(v, _MM_SHUFFLE(3, 1, 2, 0)); }
// 64 bits at p (little-endian) as a mask register.
inline __mmask64 mask_at(const uint8_t* p) {
  uint64_t m;
  std::memcpy(&m, p, 8);
  return _cvtu64_mask64(m);
}
inline __m512 row_halves(const uint8_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }

// Q6_K: 16 groups of 16 columns a superblock; x's sums are -32 x each group's sum of codes.
struct Q6kRecords {
  static constexpr int kBytes = kQ6kRecordBytes, kSteps = 16, kGroup = 16;
  template <int NA>
  static void step(const uint8_t* rec, int g, const ActRow* x, int i, __m512i (&sq)[NA]) {
    const __m512i low6 = _mm512_set1_epi8(0x3f), top2 = _mm512_set1_epi8((char)0xC0);
    const uint8_t* v = rec + 192 * g;
    const __m512i p = _mm512_loadu_si512(v), q = _mm512_loadu_si512(v + 64), r = _mm512_loadu_si512(v + 128);
    // Chunk 3: R's top bits to 0-1, Q's to 2-3, P's to 4-5 (16-bit shifts of masked bytes: nothing
    // crosses a byte); 0xF8: a | (b & c).
    __m512i c3 = _mm512_srli_epi16(_mm512_and_si512(r, top2), 2);
    c3 = _mm512_srli_epi16(_mm512_ternarylogic_epi32(c3, q, top2, 0xF8), 2);
    c3 = _mm512_srli_epi16(_mm512_ternarylogic_epi32(c3, p, top2, 0xF8), 2);
    const __m512i c[4] = {_mm512_and_si512(p, low6), _mm512_and_si512(q, low6), _mm512_and_si512(r, low6), c3};
    const __m512i sc = _mm512_cvtepi8_epi32(rows_order(bytes16(rec + kQ6kRecordScales + 16 * g)));
    IE_UNROLL for (int a = 0; a < NA; a++) {
      const int32_t* xg = reinterpret_cast<const int32_t*>(x[a].q + i * kSuperBlock + 16 * g);
      __m512i s = _mm512_set1_epi32(x[a].n[16 * i + g]);
      IE_UNROLL for (int k = 0; k < 4; k++) s = dpbusd_broadcast(s, c[k], xg + k);
      sq[a] = _mm512_add_epi32(sq[a], _mm512_mullo_epi32(s, sc));
    }
  }
  template <int NA>
  static void finish(const uint8_t* rec, const ActRow* x, int i, const __m512i (&sq)[NA], __m512 (&total)[NA]) {
    const __m512 d = row_halves(rec + kQ6kRecordD);
    IE_UNROLL for (int a = 0; a < NA; a++) {
      const __m512 f = _mm512_mul_ps(d, _mm512_set1_ps(x[a].d[i * kSuperBlock / kQ8Block]));
      total[a] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sq[a]), f, total[a]);
    }
  }
};

// Q4_K: 8 sub-blocks of 32 columns a superblock, sub-blocks 2j and 2j + 1 in the low and high
// nibbles of the same 8 vectors; x's sums are each pair of sub-blocks' sums of codes as two words,
// which one vpmaddwd per pair meets with the rows' two mins. Q5_K (Five): the same, each vector's
// high bits loaded straight into two mask registers that add 16 to the codes they mark.
template <bool Five = false>
struct Q4kRecords {
  static constexpr int kBytes = Five ? kQ5kRecordBytes : kQ4kRecordBytes, kSteps = 4, kGroup = 64;
  // Sub-blocks 2j and 2j + 1 against NA activation rows, the low and high nibbles of each of the
  // pair's 8 vectors at once: 2 x NA independent sums (vpdpbusd's latency: one sub-block at a time,
  // eight rows left it at half this core's rate of them).
  template <int NA>
  static void step(const uint8_t* rec, int j, const ActRow* x, int i, __m512i (&sq)[NA]) {
    const __m512i low4 = _mm512_set1_epi8(0x0f);
    __m512i lo[NA], hi[NA];
    IE_UNROLL for (int a = 0; a < NA; a++) lo[a] = hi[a] = _mm512_setzero_si512();
    IE_UNROLL for (int v = 0; v < 8; v++) {
      const __m512i w = _mm512_loadu_si512(rec + 512 * j + 64 * v);
      __m512i cl = _mm512_and_si512(w, low4), ch = _mm512_and_si512(_mm512_srli_epi16(w, 4), low4);
      if constexpr (Five) {
        const uint8_t* high = rec + kQ5kRecordHigh + 128 * j + 16 * v;
        const __m512i sixteen = _mm512_set1_epi8(16);
        cl = _mm512_mask_add_epi8(cl, mask_at(high), cl, sixteen);
        ch = _mm512_mask_add_epi8(ch, mask_at(high + 8), ch, sixteen);
      }
      IE_UNROLL for (int a = 0; a < NA; a++) {
        const int32_t* xs = reinterpret_cast<const int32_t*>(x[a].q + i * kSuperBlock + 64 * j) + v;
        lo[a] = dpbusd_broadcast(lo[a], cl, xs);
        hi[a] = dpbusd_broadcast(hi[a], ch, xs + 8);
      }
    }
    const __m128i low6 = _mm_set1_epi8(0x3f);
    const __m512i sl = _mm512_cvtepu8_epi32(_mm_and_si128(rows_order(bytes16(rec + kQ4kRecordScales + 32 * j)), low6));
    const __m512i sh = _mm512_cvtepu8_epi32(_mm_and_si128(rows_order(bytes16(rec + kQ4kRecordScales + 32 * j + 16)), low6));
    IE_UNROLL for (int a = 0; a < NA; a++) sq[a] = _mm512_add_epi32(sq[a], _mm512_add_epi32(_mm512_mullo_epi32(lo[a], sl), _mm512_mullo_epi32(hi[a], sh)));
  }
  // The mins: per sub-block its bits 0-1 on top of the scale's byte, bits 2-5 from a nibble; pairs
  // of sub-blocks as the two words of each row's dword.
  template <int NA>
  static void finish(const uint8_t* rec, const ActRow* x, int i, const __m512i (&sq)[NA], __m512 (&total)[NA]) {
    const __m128i low2 = _mm_set1_epi8(0x03), low4 = _mm_set1_epi8(0x0f);
    __m512i sm[NA];
    IE_UNROLL for (int a = 0; a < NA; a++) sm[a] = _mm512_setzero_si512();
    IE_UNROLL for (int j = 0; j < 4; j++) {
      const __m128i nib = bytes16(rec + kQ4kRecordMins + 16 * j);
      const __m128i lo = _mm_and_si128(nib, low4), hi = _mm_and_si128(_mm_srli_epi16(nib, 4), low4);
      __m128i mins[2];
      IE_UNROLL for (int e = 0; e < 2; e++) {
        const __m128i top = _mm_and_si128(_mm_srli_epi16(bytes16(rec + kQ4kRecordScales + 32 * j + 16 * e), 6), low2);
        mins[e] = rows_order(_mm_or_si128(top, _mm_slli_epi16(e == 0 ? _mm_unpacklo_epi64(lo, hi) : _mm_unpackhi_epi64(lo, hi), 2)));
      }
      const __m512i m = _mm512_cvtepu8_epi16(_mm256_set_m128i(_mm_unpackhi_epi8(mins[0], mins[1]), _mm_unpacklo_epi8(mins[0], mins[1])));
      IE_UNROLL for (int a = 0; a < NA; a++) sm[a] = _mm512_add_epi32(sm[a], _mm512_madd_epi16(m, _mm512_set1_epi32(x[a].n[4 * i + j])));
    }
    const __m512 d = row_halves(rec + kQ4kRecordD), dmin = row_halves(rec + kQ4kRecordDmin);
    IE_UNROLL for (int a = 0; a < NA; a++) {
      const __m512 f = _mm512_set1_ps(x[a].d[i * kSuperBlock / kQ8Block]);
      const __m512 t = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sq[a]), _mm512_mul_ps(d, f), total[a]);
      total[a] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(sm[a]), _mm512_mul_ps(dmin, f), t);
    }
  }
};

// One stripe against NA activation rows over superblocks [i0, i1): the sums so far in t ([NA][16]
// floats; start: none yet). Each record's lines are prefetched a slice per step 4 KiB ahead
// (fetch); a lone activation row's non-temporally (Lone: Nta) or not at all (None;
// weight_line_fetch). Zen 5, TinyLlama's shapes from DRAM, alternated in one process against 2 KiB
// ahead, pairs of far-apart stripes (the 256-bit kernels' lone row), and both with each hint: a
// lone row one stripe at a time with NTA 4 KiB ahead at or near the best of every round (Q4_K
// 83-86% of the read probe on one thread, 65-74% on two; Q6_K 87-89% / 75-78%); eight rows with T0
// 1-3% ahead of NTA, 2 KiB ahead 0.87x.
template <class F, int NA, LineFetch Lone>
__attribute__((noinline)) void stripe(const uint8_t* rec0, int i0, int i1, const ActRow* x, float* t, bool start, bool fetch, bool lone) {
  constexpr int kSlice = F::kBytes / F::kSteps, kAhead = 4096;
  // Up to four float sums stay in registers; more live in t (L1), loaded and stored around each
  // superblock's finish, which leaves the registers to the integer sums.
  constexpr bool kRegs = NA <= 4;
  __m512 total[NA];
  if constexpr (kRegs) {
    IE_UNROLL for (int a = 0; a < NA; a++) total[a] = start ? _mm512_setzero_ps() : _mm512_loadu_ps(t + 16 * a);
  } else if (start) {
    IE_UNROLL for (int a = 0; a < NA; a++) _mm512_storeu_ps(t + 16 * a, _mm512_setzero_ps());
  }
  for (int i = i0; i < i1; i++) {
    const uint8_t* rec = rec0 + (ptrdiff_t)i * F::kBytes;
    __m512i sq[NA];
    IE_UNROLL for (int a = 0; a < NA; a++) sq[a] = _mm512_setzero_si512();
    for (int step = 0; step < F::kSteps; step++) {
      if (fetch) {
        if (!lone) stream_prefetch<kAhead>(rec + kSlice * step, kSlice);
        else if constexpr (Lone == LineFetch::Nta) stream_prefetch<kAhead, _MM_HINT_NTA>(rec + kSlice * step, kSlice);
      }
      F::template step<NA>(rec, step, x, i, sq);
    }
    if constexpr (kRegs) {
      F::template finish<NA>(rec, x, i, sq, total);
    } else {
      __m512 sums[NA];
      IE_UNROLL for (int a = 0; a < NA; a++) sums[a] = _mm512_loadu_ps(t + 16 * a);
      F::template finish<NA>(rec, x, i, sq, sums);
      IE_UNROLL for (int a = 0; a < NA; a++) _mm512_storeu_ps(t + 16 * a, sums[a]);
    }
  }
  if constexpr (kRegs) IE_UNROLL for (int a = 0; a < NA; a++) _mm512_storeu_ps(t + 16 * a, total[a]);
}

template <class F, LineFetch Lone, int NA = 1, class... Args>
void stripe_na(int na, Args... args) {
  if constexpr (NA < 8)
    if (na > NA) return stripe_na<F, Lone, NA + 1>(na, args...);
  stripe<F, NA, Lone>(args...);
}

// Each activation row's sums of codes per group of the format, as F's kernel reads them: per
// superblock, sums of 8 (sums_of_8, + 8 x 128), one round of pairwise lane sums those of 16 (Q6_K's
// groups), a second those of 32 (Q4_K's sub-blocks, truncated
// to words: |sum| <= 32 x 128 fits, and a pair of sub-blocks' words is one dword). As a scalar loop
// it took a seventh of the kernels' samples in eight TinyLlama Q4_K_M decode streams (each thread
// sums every activation row).
template <class F>
void act_sums(const int8_t* q, int nb, int32_t* n) {
  for (int i = 0; i < nb; i++) {
    __m512i s[4];
    for (int k = 0; k < 4; k++) s[k] = sums_of_8(q + i * kSuperBlock + 64 * k);
    const __m512i g16a = pair_lanes(s[0], s[1]), g16b = pair_lanes(s[2], s[3]);  // groups 0-7, 8-15
    if constexpr (F::kGroup == 16) {
      const __m256i lo = _mm256_sub_epi32(_mm512_cvtepi64_epi32(g16a), _mm256_set1_epi32(16 * 128));
      const __m256i hi = _mm256_sub_epi32(_mm512_cvtepi64_epi32(g16b), _mm256_set1_epi32(16 * 128));
      _mm512_storeu_si512(n + 16 * i, _mm512_mullo_epi32(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1), _mm512_set1_epi32(-32)));
    } else {
      const __m256i sub = _mm256_sub_epi32(_mm512_cvtepi64_epi32(pair_lanes(g16a, g16b)), _mm256_set1_epi32(32 * 128));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(n + 4 * i), _mm256_cvtepi32_epi16(sub));
    }
  }
}

template <class F, LineFetch Lone>
void gemv_rows_kquant_x16_q8(const WeightRows& w, const int8_t* xq, const float* xd, ptrdiff_t ldq, ptrdiff_t ldd, int M, float* y, ptrdiff_t ldy, int rows, bool acc) {
  const int nb = w.K / kSuperBlock, per = F::kGroup == 16 ? 16 : 4;
  Scratch<int32_t, 8 * 24 * 16> sums((size_t)M * nb * per);  // eight rows of 6144 columns on the stack
  Scratch<ActRow, 8> act((size_t)M);
  for (int m = 0; m < M; m++) {
    act_sums<F>(xq + m * ldq, nb, sums.data() + (size_t)m * nb * per);
    act.data()[m] = {xq + m * ldq, xd + m * ldd, sums.data() + (size_t)m * nb * per};
  }
  // One stripe a pass (a lone row too), up to eight activation rows (the integer sums, 2 x NA
  // registers, leave room for one stripe's codes only); the passes over a stripe take turns two
  // superblocks (512 columns) at a time.
  Scratch<float, 8 * 16> sums_((size_t)16 * M);
  stripe_passes(w, M, StripePlan{1, 8}, y, ldy, 0, rows, nb, 2, sums_.data(), acc,
                [&](int, int na, const uint8_t* recs, int i0, int i1, int a, float* t, bool start, Fetch fetch) {
                  stripe_na<F, Lone>(na, recs, i0, i1, act.data() + a, t, start, fetch == Fetch::Pass, M == 1);
                });
}

template <class F, LineFetch Lone>
void gemv_kquant_x16_q8(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) {
  gemv_rows_kquant_x16_q8<F, Lone>(w, xq, xd, 0, 0, 1, y, 0, rows, acc);
}

template <LineFetch Lone>
void register_kquant_records(KernelTable& t) {
  t.q6kx16.gemv_q8 = gemv_kquant_x16_q8<Q6kRecords, Lone>;
  t.q6kx16.gemv_q8_rows = gemv_rows_kquant_x16_q8<Q6kRecords, Lone>;
  t.q4kx16.gemv_q8 = gemv_kquant_x16_q8<Q4kRecords<>, Lone>;
  t.q4kx16.gemv_q8_rows = gemv_rows_kquant_x16_q8<Q4kRecords<>, Lone>;
  t.q5kx16.gemv_q8 = gemv_kquant_x16_q8<Q4kRecords<true>, Lone>;
  t.q5kx16.gemv_q8_rows = gemv_rows_kquant_x16_q8<Q4kRecords<true>, Lone>;
}

}  // namespace

void register_kquant_x16_avx512vnni(KernelTable& t, const CpuFeatures& f) {
  if (!avx512_full_width(f)) return;  // the 256-bit kernels where 512-bit operations run in halves (unmeasured here)
  // A lone row's lines non-temporally where the CPU takes that (weight_line_fetch), else with no
  // software prefetch: the Intel core of cpu/cpu_features.h, Q4_K records from DRAM, one / two
  // threads, two rounds: 35-36% / 32-33% of the read probe with NTA, 65% / 60-62% with T0 4 KiB
  // ahead (the several-rows prefetch), 74-77% / 64-65% with none.
  if (weight_line_fetch(f) == LineFetch::Nta) register_kquant_records<LineFetch::Nta>(t);
  else register_kquant_records<LineFetch::None>(t);
  // Q5_K has no 256-bit records kernel: these are its only SIMD ones.
  t.q5kx16.worth = kquant_records_for_one_row(f) ? "always" : "none";
  // A prefill chunk in the int8 mode: eight tokens a pass, each stripe from L1 after the first. One
  // Zen 5 core, a 384-token TinyLlama prompt, alternated with the FP32 GEMM over packed panels: Q4_K_M
  // 97-98 -> 208-210 tok/s (two threads 165-170 -> 318-322), Q6_K 100 -> 199.
  t.q6kx16.q8_rows_prefill = t.q4kx16.q8_rows_prefill = t.q5kx16.q8_rows_prefill = true;
}

}  // namespace ie
