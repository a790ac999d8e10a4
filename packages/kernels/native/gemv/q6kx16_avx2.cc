// Q6_K in 16-row records (kernel_table.h, kQ6kRecordBytes) x int8 activations on AVX2. The row
// layout's kernel (int8act_blocks_x86.h) spends 17 operations per 128 codes joining the low nibbles
// and the high bits, and a byte shuffle per 32 codes putting two groups' scales in place: on one Zen
// 3 core it runs 23 G weights/s from L2, under the 27 G/s the bus brings one core. In records a
// vector holds 8 rows' codes of four columns, so one broadcast of four activations feeds 8 rows, the
// scales of a group and 8 rows come in one sign extension and one unpack, and P, Q and R give the
// group's four chunks in 11 operations per 8 rows (three masks, and chunk 3's bits gathered by three
// shifts). Each group's two pairs of chunk products are summed in 16 bits (at most 2 x 2 x 63 x 127)
// and widened against the scales, and the -32 comes off as one more vpmaddwd of the scales against
// 16 x the group's sum of x in both words. A record's 64-byte vector is two 256-bit halves of 8 rows;
// a pass takes both halves of a stripe against one activation row (a lone row: two far-apart stripes
// at once), or one half against up to four activation rows, the later passes reading it from L1.
// From L2 (256 x 2048, one Zen 3 core): 34-37 G weights/s against the row kernel's 26-27.
#include <immintrin.h>

#include <algorithm>

#include "cpu/kernel_table.h"
#include "cpu/vec.h"
#include "gemv/row_streams.h"
#include "mem/aligned.h"

namespace ie {
namespace {

// One activation row as the kernel reads it: its codes, the scale of each block of 32 (one per
// superblock, repeated), and per 16-column group 16 x the sum of its codes in both words of an int32.
struct ActRow {
  const int8_t* q;
  const float* d;
  const int32_t* n;
};

void group_sums(const int8_t* q, int ng, int32_t* n) {
  for (int g = 0; g < ng; g++) {
    int s = 0;
    for (int j = 16 * g; j < 16 * g + 16; j++) s += q[j];
    const uint32_t w = (uint16_t)(int16_t)(16 * s);  // |16 s| <= 16 * 16 * 127 < 2^15
    n[g] = (int32_t)(w | w << 16);
  }
}

// H halves of a stripe from half h against NA activation rows over superblocks [i0, i1): activation
// row a's sums of half h + k at t + 16·a + 8·k (start: none yet), stored back at the end. P 2: the
// same for two stripes `far` bytes apart (one activation row, both halves), the second's at t + 16.
template <int NA, int H = 1, int P = 1>
__attribute__((noinline)) void halves(const uint8_t* recs, int i0, int i1, int h, const ActRow* x, float* t, bool start, bool fetch, ptrdiff_t far = 0) {
  static_assert(P == 1 || (NA == 1 && H == 2), "two stripes a pass: one activation row, both halves");
  constexpr int HP = H * P, kAhead = 4096;
  const __m256i top2 = _mm256_set1_epi8((char)0xC0);
  if (start)
    for (int k = 0; k < HP; k++)
      for (int a = 0; a < NA; a++) _mm256_storeu_ps(t + 16 * a + 8 * k, _mm256_setzero_ps());
  for (int i = i0; i < i1; i++) {
    const uint8_t* rec = recs + (ptrdiff_t)i * kQ6kRecordBytes;
    __m256i s[HP][NA];
    IE_UNROLL for (int k = 0; k < HP; k++) IE_UNROLL for (int a = 0; a < NA; a++) s[k][a] = _mm256_setzero_si256();
    for (int g = 0; g < 16; g++) {
      const uint8_t* grp = rec + 192 * g;
      // A sixteenth of a record's bytes a group, 4 KiB ahead: the stream's lines fetched evenly. A
      // record's 53 lines at once (stream_prefetch) left the loads waiting on a full miss queue:
      // TinyLlama's classifier shape from DRAM, one Zen 3 core, 18-22 -> 27-33 G weights/s.
      if (fetch)
        IE_UNROLL for (int p = 0; p < P; p++) {
          const char* ahead = reinterpret_cast<const char*>(rec + p * far + kAhead + (kQ6kRecordBytes / 16) * g);
          _mm_prefetch(ahead, _MM_HINT_T0);
          _mm_prefetch(ahead + 64, _MM_HINT_T0);
          _mm_prefetch(ahead + 128, _MM_HINT_T0);
          _mm_prefetch(ahead + kQ6kRecordBytes / 16 - 1, _MM_HINT_T0);
        }
      IE_UNROLL for (int k = 0; k < HP; k++) {
        const int half = h + k % H;
        const uint8_t* v = grp + (k / H) * far + 32 * half;
        const __m256i sc = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(rec + (k / H) * far + kQ6kRecordScales + 16 * g)));
        const __m256i S = half == 0 ? _mm256_unpacklo_epi16(sc, sc) : _mm256_unpackhi_epi16(sc, sc);  // row r's scale in both words of lane r
        const __m256i p = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v));
        const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v + 64));
        const __m256i r = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v + 128));
        const __m256i c0 = _mm256_andnot_si256(top2, p), c1 = _mm256_andnot_si256(top2, q), c2 = _mm256_andnot_si256(top2, r);
        // Chunk 3: R's top bits to 0-1, Q's to 2-3, P's to 4-5 (16-bit shifts of masked bytes: nothing crosses a byte).
        __m256i c3 = _mm256_srli_epi16(_mm256_and_si256(r, top2), 2);
        c3 = _mm256_srli_epi16(_mm256_or_si256(c3, _mm256_and_si256(q, top2)), 2);
        c3 = _mm256_srli_epi16(_mm256_or_si256(c3, _mm256_and_si256(p, top2)), 2);
        IE_UNROLL for (int a = 0; a < NA; a++) {
          const int32_t* xg = reinterpret_cast<const int32_t*>(x[a].q + i * kSuperBlock + 16 * g);
          const __m256i p01 = _mm256_add_epi16(_mm256_maddubs_epi16(c0, _mm256_set1_epi32(xg[0])), _mm256_maddubs_epi16(c1, _mm256_set1_epi32(xg[1])));
          const __m256i p23 = _mm256_add_epi16(_mm256_maddubs_epi16(c2, _mm256_set1_epi32(xg[2])), _mm256_maddubs_epi16(c3, _mm256_set1_epi32(xg[3])));
          const __m256i m = _mm256_add_epi32(_mm256_madd_epi16(p01, S), _mm256_madd_epi16(p23, S));
          s[k][a] = _mm256_add_epi32(s[k][a], _mm256_sub_epi32(m, _mm256_madd_epi16(S, _mm256_set1_epi32(x[a].n[16 * i + g]))));
        }
      }
    }
    IE_UNROLL for (int k = 0; k < HP; k++) {
      const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(rec + (k / H) * far + kQ6kRecordD + 16 * (h + k % H))));
      IE_UNROLL for (int a = 0; a < NA; a++) {
        float* u = t + 16 * a + 8 * k;
        _mm256_storeu_ps(u, _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[k][a]), _mm256_mul_ps(d, _mm256_set1_ps(x[a].d[i * kSuperBlock / kQ8Block])), _mm256_loadu_ps(u)));
      }
    }
  }
}

// Several activation rows: passes of one half and up to four rows each, taking turns two
// superblocks at a time for decode rows (the stripe streams from memory once), whole for a prefill
// chunk's many passes (as q4x16_x86.h's half_passes).
void half_passes(const uint8_t* recs, int nb, const ActRow* act, int M, float* t) {
  const int block = M <= 8 ? 2 : nb;
  for (int b0 = 0; b0 < nb; b0 += block) {
    const int b1 = std::min(nb, b0 + block);
    for (int h = 0; h < 2; h++)
      act_passes(M, [&](auto na, int a) { halves<decltype(na)::value>(recs, b0, b1, h, act + a, t + 16 * a + 8 * h, b0 == 0, h == 0 && a == 0); });
  }
}

void gemv_rows_q6kx16_q8_avx2(const WeightRows& w, const int8_t* xq, const float* xd, ptrdiff_t ldq, ptrdiff_t ldd, int M, float* y, ptrdiff_t ldy, int rows,
                              bool acc) {
  const int nb = w.K / kSuperBlock, ng = nb * 16;
  Scratch<int32_t, 8 * 512> sums((size_t)M * ng);
  Scratch<ActRow, 8> act((size_t)M);
  for (int m = 0; m < M; m++) {
    group_sums(xq + m * ldq, ng, sums.data() + (size_t)m * ng);
    act.data()[m] = {xq + m * ldq, xd + m * ldd, sums.data() + (size_t)m * ng};
  }
  Scratch<float, 8 * 16> sums_((size_t)16 * M);  // activation row a's sums of the stripe at t + 16·a
  float* t = sums_.data();
  int r = M != 1 ? 0 : lone_row_pairs(w, y, rows, acc, [&](const uint8_t* recs, ptrdiff_t gap, float* u) {
    halves<1, 2, 2>(recs, 0, nb, 0, act.data(), u, true, true, gap);
  });
  for (; r < rows; r += 16) {
    const uint8_t* recs = w.q + (ptrdiff_t)r * w.q_ld;
    if (M == 1)
      halves<1, 2>(recs, 0, nb, 0, act.data(), t, true, true);
    else
      half_passes(recs, nb, act.data(), M, t);
    for (int a = 0; a < M; a++) store_stripe(y + (ptrdiff_t)a * ldy + r, t + 16 * a, acc);
  }
}

void gemv_q6kx16_q8_avx2(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) {
  gemv_rows_q6kx16_q8_avx2(w, xq, xd, 0, 0, 1, y, 0, rows, acc);
}

}  // namespace

void register_q6kx16_avx2(KernelTable& t, const CpuFeatures& f) {
  t.q6kx16.gemv_q8 = gemv_q6kx16_q8_avx2;
  t.q6kx16.gemv_q8_rows = gemv_rows_q6kx16_q8_avx2;
  t.q6kx16.worth = q4_records_for_one_row(f) ? "always" : "none";  // measured on Zen 3 only
}

}  // namespace ie
