// AVX-512 GEMV with FP32 activations for the 32-element table blocks (iq4_nl, mxfp4: gpt-oss's
// experts), which until now ran the 256-bit kernel of blocks_avx2.cc on AVX-512 CPUs too.
//
// A block's 16 code bytes are widened once (vpmovzxbd: byte j -> lane j); each nibble becomes its
// f32 level through vpermps, which reads only an index's low 4 bits, so the low nibbles need no
// mask and the high ones one shift. Every level is exact in f32 (integers; mxfp4's table holds
// twice the E2M1 values and its scale half the E8M0 one), so the products are those of the
// reference's dequantized weights. The byte-table bf16 trick of the 256-bit kernel
// (bf16_levels_x86.h) saves conversions that this lookup does not need. Rows go four far apart
// (row_streams.h), each x load serving all four, each row's lines prefetched non-temporally 1 KiB
// ahead as the float GEMVs do, with two block chains per row so that the scale FMA's latency is
// hidden; a row alone runs the same sequence, so every y[r] is bit-identical however rows are split
// between threads. Zen 5, gpt-oss's 5760 x 2880 expert matrices from DRAM, against pairs without
// the prefetch (alternated, two rounds): one thread 22.5-22.9 -> 24.3-24.4 GB/s, two 42-42.6 ->
// 44.8-45.1; four rows without the prefetch 23.8-24.3 / 42.4. The kernel is compute-bound (45 G
// weights/s per core from L2, 42 from DRAM): four rows save x loads more than they add streams.
#include <immintrin.h>

#include "cpu/kernel_table.h"
#include "gemv/blocks.h"
#include "gemv/blocks_x86.h"
#include "gemv/row_streams.h"

namespace ie {
namespace {

template <class B>
inline float block_scale(const uint8_t* b);
template <>
inline float block_scale<Iq4NlBlock>(const uint8_t* b) {
  return f16_at(b);
}
template <>
inline float block_scale<Mxfp4Block>(const uint8_t* b) {
  return kE8m0Halves.v[b[0]];
}

// One block's 32 products, summed per lane, times its scale, into t.
template <class B>
inline __m512 block_dot(const uint8_t* b, __m512 levels, __m512 xlo, __m512 xhi, __m512 t) {
  const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + B::kQs)));
  const __m512 lo = _mm512_mul_ps(_mm512_permutexvar_ps(v, levels), xlo);
  const __m512 p = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), levels), xhi, lo);
  return _mm512_fmadd_ps(p, _mm512_set1_ps(block_scale<B>(b)), t);
}

template <class B, int NR>
inline void rows_table4(const WeightRows& w, const int* rs, const float* x, __m512 levels, float* y, bool acc) {
  const int nb = w.K / 32;
  const uint8_t* row[NR];
  __m512 t0[NR], t1[NR];
  for (int r = 0; r < NR; r++) {
    row[r] = w.q + rs[r] * w.q_ld;
    t0[r] = t1[r] = _mm512_setzero_ps();
  }
  int i = 0;
  for (; i + 2 <= nb; i += 2) {
    const float* xb = x + 32 * i;
    const __m512 x0 = _mm512_loadu_ps(xb), x1 = _mm512_loadu_ps(xb + 16), x2 = _mm512_loadu_ps(xb + 32), x3 = _mm512_loadu_ps(xb + 48);
    for (int r = 0; r < NR; r++) {
      const uint8_t* b = row[r] + (ptrdiff_t)i * B::kBytes;
      _mm_prefetch(reinterpret_cast<const char*>(b + kFloatStreamAhead), _MM_HINT_NTA);  // every line: 34 bytes a step
      t0[r] = block_dot<B>(b, levels, x0, x1, t0[r]);
      t1[r] = block_dot<B>(b + B::kBytes, levels, x2, x3, t1[r]);
    }
  }
  if (i < nb)
    for (int r = 0; r < NR; r++)
      t0[r] = block_dot<B>(row[r] + (ptrdiff_t)i * B::kBytes, levels, _mm512_loadu_ps(x + 32 * i), _mm512_loadu_ps(x + 32 * i + 16), t0[r]);
  for (int r = 0; r < NR; r++) {
    const float v = _mm512_reduce_add_ps(_mm512_add_ps(t0[r], t1[r]));
    y[rs[r]] = acc ? y[rs[r]] + v : v;
  }
}

template <class B>
void gemv_table4(const WeightRows& w, const float* x, float* y, int rows, bool acc) {
  const __m512 levels = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(B::table()))));
  row_streams<kFloatStreams>(rows, w.q_ld, [&](auto n, const int* rs) { rows_table4<B, decltype(n)::value>(w, rs, x, levels, y, acc); });
}

void gemv_iq4_nl_f32_avx512(const WeightRows& w, const float* x, float* y, int rows, bool acc) { gemv_table4<Iq4NlBlock>(w, x, y, rows, acc); }
void gemv_mxfp4_f32_avx512(const WeightRows& w, const float* x, float* y, int rows, bool acc) { gemv_table4<Mxfp4Block>(w, x, y, rows, acc); }

}  // namespace

void register_blocks_avx512(KernelTable& t) {
  t.gemv[(int)WeightType::IQ4_NL] = gemv_iq4_nl_f32_avx512;
  t.gemv[(int)WeightType::MXFP4] = gemv_mxfp4_f32_avx512;
}

}  // namespace ie
