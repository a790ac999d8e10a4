// The AVX-512 prefill GEMM's weight panels straight from Q4_K and Q6_K 16-row records: a prefill
// chunk over records in the FP32 mode, and in the int8 mode where the records' several-rows kernel
// is the 256-bit one (no AVX-512 VNNI, or Zen 4: it ran TinyLlama Q4_K_M's prefill at 0.75x the row
// layout's GEMM on one Zen 5 core; the AVX-512 VNNI kernel runs 2x the GEMM and takes those chunks,
// Records16Kernels::q8_rows_prefill). The scalar records dequantization (kquant_x16_ref.cc) under
// the GEMM ran at a quarter. (Q5_K records have none: `auto` takes them in the int8 mode only.) A record's
// 64-byte vectors hold four columns of all 16 rows (a dword a row), which is the panel's own order
// ([k][nr], 16 rows side by side): each column is shifts, a mask, a conversion and the scale, then
// one store. The values are the row layout's bits (blocks.h: d * sc * q - dmin * m for Q4_K, d * sc
// * (q - 32) for Q6_K, multiply then subtract, nothing fused), so the GEMM gives what it gives over
// the rows.
#include <immintrin.h>

#include "cpu/kernel_table.h"

namespace ie {
namespace {

// Lane l (row l of the stripe) reads its scale from slot kquant_records_slot(l) of a group's 16.
inline __m512i slots_to_lanes(__m512i v) { return _mm512_permutexvar_epi32(_mm512_setr_epi32(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 12, 13, 14, 15), v); }

inline __m512 f16x16(const uint8_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }

// Byte p of every dword of v, as 16 ints.
template <int P>
inline __m512i byte_of(__m512i v) {
  return _mm512_and_si512(_mm512_srli_epi32(v, 8 * P), _mm512_set1_epi32(0xff));
}

// One Q4_K record (16 rows x 256 columns) into dst[k][0..16) at stride nr.
inline void pack_q4k_record(const uint8_t* rec, float* dst, int nr) {
  const __m512 d = f16x16(rec + kQ4kRecordD), dmin = f16x16(rec + kQ4kRecordDmin);
  __m512 ds[8], dm[8];
  const __m512i dup8 = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7);
  const __m512i high_shift = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 4, 4, 4, 4, 4, 4, 4, 4);
  for (int s = 0; s < 8; s++) {
    // In slot order t: scale = byte & 63; min = byte >> 6 | (mins byte t % 8 >> (t < 8 ? 0 : 4) & 15) << 2.
    const __m512i sc = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(rec + kQ4kRecordScales + 16 * s)));
    const __m512i mb = _mm512_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(rec + kQ4kRecordMins + 8 * s)));
    const __m512i high = _mm512_and_si512(_mm512_srlv_epi32(_mm512_permutexvar_epi32(dup8, mb), high_shift), _mm512_set1_epi32(15));
    const __m512i mn = _mm512_or_si512(_mm512_srli_epi32(sc, 6), _mm512_slli_epi32(high, 2));
    ds[s] = _mm512_mul_ps(d, _mm512_cvtepi32_ps(slots_to_lanes(_mm512_and_si512(sc, _mm512_set1_epi32(63)))));
    dm[s] = _mm512_mul_ps(dmin, _mm512_cvtepi32_ps(slots_to_lanes(mn)));
  }
  const __m512i low4 = _mm512_set1_epi32(0x0f0f0f0f);
  for (int c = 0; c < 4; c++)
    for (int q = 0; q < 8; q++) {
      const __m512i v = _mm512_loadu_si512(rec + 512 * c + 64 * q);
      const __m512i lo = _mm512_and_si512(v, low4), hi = _mm512_and_si512(_mm512_srli_epi32(v, 4), low4);
      float* o = dst + (ptrdiff_t)(64 * c + 4 * q) * nr;
      auto put = [&](__m512i codes, int col, int s) { _mm512_storeu_ps(o + (ptrdiff_t)col * nr, _mm512_sub_ps(_mm512_mul_ps(ds[s], _mm512_cvtepi32_ps(codes)), dm[s])); };
      put(byte_of<0>(lo), 0, 2 * c), put(byte_of<1>(lo), 1, 2 * c), put(byte_of<2>(lo), 2, 2 * c), put(byte_of<3>(lo), 3, 2 * c);
      put(byte_of<0>(hi), 32, 2 * c + 1), put(byte_of<1>(hi), 33, 2 * c + 1), put(byte_of<2>(hi), 34, 2 * c + 1), put(byte_of<3>(hi), 35, 2 * c + 1);
    }
}

// One Q6_K record (16 rows x 256 columns) into dst[k][0..16) at stride nr: group g's 16 columns
// are P, Q, R (the low six bits of columns 0-3, 4-7, 8-11) and their top two bits (12-15).
inline void pack_q6k_record(const uint8_t* rec, float* dst, int nr) {
  const __m512 d = f16x16(rec + kQ6kRecordD);
  const __m512i low6 = _mm512_set1_epi32(0x3f3f3f3f), k32 = _mm512_set1_epi32(32);
  for (int g = 0; g < 16; g++) {
    const __m512i sc = _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(rec + kQ6kRecordScales + 16 * g)));
    const __m512 s = _mm512_mul_ps(d, _mm512_cvtepi32_ps(slots_to_lanes(sc)));
    const uint8_t* v = rec + 192 * g;
    const __m512i P = _mm512_loadu_si512(v), Q = _mm512_loadu_si512(v + 64), R = _mm512_loadu_si512(v + 128);
    const __m512i T = _mm512_or_si512(_mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(P, 2), _mm512_set1_epi32(0x30303030)),
                                                      _mm512_and_si512(_mm512_srli_epi32(Q, 4), _mm512_set1_epi32(0x0c0c0c0c))),
                                      _mm512_and_si512(_mm512_srli_epi32(R, 6), _mm512_set1_epi32(0x03030303)));
    const __m512i src[4] = {_mm512_and_si512(P, low6), _mm512_and_si512(Q, low6), _mm512_and_si512(R, low6), T};
    float* o = dst + (ptrdiff_t)(16 * g) * nr;
    for (int c = 0; c < 4; c++) {
      auto put = [&](__m512i codes, int col) { _mm512_storeu_ps(o + (ptrdiff_t)(4 * c + col) * nr, _mm512_mul_ps(s, _mm512_cvtepi32_ps(_mm512_sub_epi32(codes, k32)))); };
      put(byte_of<0>(src[c]), 0), put(byte_of<1>(src[c]), 1), put(byte_of<2>(src[c]), 2), put(byte_of<3>(src[c]), 3);
    }
  }
}

// w: a column block of whole superblocks from a stripe's first row; rows (a multiple of 16, <= nr)
// of it into the panel, zero for the rest.
template <int kRecordBytes, void (*Record)(const uint8_t*, float*, int)>
void pack_records(const WeightRows& w, int rows, float* dst, int nr) {
  const int nb = w.K / kSuperBlock;
  for (int t = 0; 16 * t < nr; t++)
    for (int i = 0; i < nb; i++) {
      float* o = dst + (ptrdiff_t)i * kSuperBlock * nr + 16 * t;
      if (16 * t < rows) {
        Record(w.q + (ptrdiff_t)t * 16 * w.q_ld + (ptrdiff_t)i * kRecordBytes, o, nr);
      } else {
        for (int k = 0; k < kSuperBlock; k++) _mm512_storeu_ps(o + (ptrdiff_t)k * nr, _mm512_setzero_ps());
      }
    }
}

}  // namespace

void register_pack_kquant_x16_avx512(KernelTable& t) {
  t.q4kx16.pack_gemm = pack_records<kQ4kRecordBytes, pack_q4k_record>;
  t.q6kx16.pack_gemm = pack_records<kQ6kRecordBytes, pack_q6k_record>;
}

}  // namespace ie
