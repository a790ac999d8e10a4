// AVX-512 GEMV with FP32 activations for the 32-element table blocks (iq4_nl, mxfp4: gpt-oss's
// experts), which until now ran the 256-bit kernel of blocks_avx2.cc on AVX-512 CPUs too.  A
// block's 16 code bytes are widened once (vpmovzxbd: byte j -> lane j); each nibble becomes its f32
// level through vpermps, which reads only an index's low 4 bits, so the low nibbles need no mask
// and the high ones one shift. Every level is exact in f32 (integers; mxfp4's table holds twice the
// E2M1 values and its scale half the E8M0 one), so the products are those of the reference's
// dequantized weights. The byte-table bf16 trick of the 256-bit kernel (bf16_levels_x86.h) saves
// conversions that this lookup does not need. Rows go four far apart (row_streams.h), each x load
// serving all four, each row's lines prefetched 1 KiB ahead as the float GEMVs do (non-temporally
// on AMD, T0 on Intel: weight_line_fetch), with two block chains per row so that the scale FMA's
// latency is hidden; a row alone runs the same sequence, so every y[r] is bit-identical however
// rows are split between threads. Zen 5, gpt-oss's 5760 x 2880 expert matrices from DRAM, against
// pairs without the prefetch (alternated, two rounds): one thread 22.5-22.9 -> 24.3-24.4 GB/s, two
// 42-42.6 -> 44.8-45.1; four rows without the prefetch 23.8-24.3 / 42.4. The kernel is
// compute-bound (45 G weights/s per core from L2, 42 from DRAM): four rows save x loads more than
// they add streams. mxfp4's scale then went into the levels (mxfp4_block_dot): a standalone harness
// over this file, 256 x 2880 from L2 / 46080 x 2880 from DRAM, one core: 47.4 -> 50.1 / 46.5 -> 51
// G weights/s. On Zen 5 vpermps and vpmovzxbd share two pipes, one of them with the FMAs: three
// shuffles and two FMAs a block is what is left (16-row records with x broadcast, which drop the
// widening, measured 1.28x from L2 and 1.06x from DRAM standalone: not built).
#include <immintrin.h>

#include <type_traits>

#include "cpu/kernel_table.h"
#include "gemv/blocks.h"
#include "gemv/blocks_x86.h"
#include "gemv/row_streams.h"

namespace ie {
namespace {

// One block's 32 products, summed per lane, times its scale, into t.
template <class B>
inline __m512 block_dot(const uint8_t* b, __m512 levels, __m512 xlo, __m512 xhi, __m512 t) {
  const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + B::kQs)));
  const __m512 lo = _mm512_mul_ps(_mm512_permutexvar_ps(v, levels), xlo);
  const __m512 p = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), levels), xhi, lo);
  return _mm512_fmadd_ps(p, _mm512_set1_ps(lut4_scale(B{}, b)), t);
}

// (e - 128) << 23 for every E8M0 byte e: the block scale 2^(e - 128) (kE8m0Halves) as an add to
// the levels' f32 exponents.
struct E8m0ExponentAdds {
  int32_t v[256];
};
constexpr E8m0ExponentAdds e8m0_exponent_adds() {
  E8m0ExponentAdds t{};
  for (int e = 0; e < 256; e++) t.v[e] = (e - 128) * (1 << 23);
  return t;
}
inline constexpr E8m0ExponentAdds kE8m0ExponentAdds = e8m0_exponent_adds();

// An mxfp4 block's scale is a power of two, so it goes into the 16 levels (twice the E2M1 values:
// 0 and 1..12, biased exponents 127..130) as an integer add to their exponents (the zero levels
// masked off) wherever every scaled level stays a normal f32 (E8M0 2..252: every real
// checkpoint's), else as a multiply; both give the exact level x scale. The block's 32 products
// then go straight into t: two FMAs a block instead of a multiply and two FMAs.
inline __m512 mxfp4_block_dot(const uint8_t* b, __m512 levels, __mmask16 nonzero, __m512 xlo, __m512 xhi, __m512 t) {
  const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + Mxfp4Block::kQs)));
  const unsigned e = b[0];
  const __m512 lv = __builtin_expect(e - 2u <= 250u, 1)
                        ? _mm512_castsi512_ps(_mm512_maskz_add_epi32(nonzero, _mm512_castps_si512(levels), _mm512_set1_epi32(kE8m0ExponentAdds.v[e])))
                        : _mm512_mul_ps(levels, _mm512_set1_ps(kE8m0Halves.v[e]));
  t = _mm512_fmadd_ps(_mm512_permutexvar_ps(v, lv), xlo, t);
  return _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), lv), xhi, t);
}

template <class B>
inline __m512 table_block_dot(const uint8_t* b, __m512 levels, __mmask16 nonzero, __m512 xlo, __m512 xhi, __m512 t) {
  if constexpr (std::is_same_v<B, Mxfp4Block>) return mxfp4_block_dot(b, levels, nonzero, xlo, xhi, t);
  else return block_dot<B>(b, levels, xlo, xhi, t);
}

template <class B, int NR, LineFetch Fetch>
inline void rows_table4(const WeightRows& w, const int* rs, const float* x, __m512 levels, __mmask16 nonzero, float* y, bool acc) {
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
      fetch_line<Fetch>(b + kFloatStreamAhead);  // every line: 34 bytes a step
      t0[r] = table_block_dot<B>(b, levels, nonzero, x0, x1, t0[r]);
      t1[r] = table_block_dot<B>(b + B::kBytes, levels, nonzero, x2, x3, t1[r]);
    }
  }
  if (i < nb)
    for (int r = 0; r < NR; r++)
      t0[r] = table_block_dot<B>(row[r] + (ptrdiff_t)i * B::kBytes, levels, nonzero, _mm512_loadu_ps(x + 32 * i), _mm512_loadu_ps(x + 32 * i + 16), t0[r]);
  for (int r = 0; r < NR; r++) {
    const float v = _mm512_reduce_add_ps(_mm512_add_ps(t0[r], t1[r]));
    y[rs[r]] = acc ? y[rs[r]] + v : v;
  }
}

// The block type's 16 levels as floats, lane i = level of code i (vpermps's table).
template <class B>
inline __m512 table_levels() {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(B::table()))));
}

template <class B, LineFetch Fetch>
void gemv_table4(const WeightRows& w, const float* x, float* y, int rows, bool acc) {
  const __m512 levels = table_levels<B>();
  const __mmask16 nonzero = _mm512_cmpneq_ps_mask(levels, _mm512_setzero_ps());
  row_streams<kFloatStreams>(rows, w.q_ld, [&](auto n, const int* rs) { rows_table4<B, decltype(n)::value, Fetch>(w, rs, x, levels, nonzero, y, acc); });
}

// Rows of table blocks to f32 (the prefill GEMM's weight blocks, embedding rows): the 16 levels
// times the block's scale (the products the reference makes, exact), then each nibble's through
// vpermps, 16 elements a store. The 256-bit version (blocks_avx2.cc, byte shuffles, then widening
// and converting 8 levels at a time) had run here: 9.2% of a 217-token gpt-oss prefill's samples
// on Zen 5, against 5.9% for this one (which mostly waits for the experts' bytes from DRAM).
template <class B>
void dequant_table4(const WeightRows& w, int rows, float* out, ptrdiff_t ld) {
  const __m512 levels = table_levels<B>();
  const int nb = w.K / 32;
  for (int r = 0; r < rows; r++)
    for (int i = 0; i < nb; i++) {
      const uint8_t* b = w.q + r * w.q_ld + (ptrdiff_t)i * B::kBytes;
      const __m512 lv = _mm512_mul_ps(levels, _mm512_set1_ps(lut4_scale(B{}, b)));
      const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + B::kQs)));
      float* o = out + r * ld + 32 * i;
      _mm512_storeu_ps(o, _mm512_permutexvar_ps(v, lv));
      _mm512_storeu_ps(o + 16, _mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), lv));
    }
}

template <LineFetch Fetch>
void gemv_iq4_nl_f32_avx512(const WeightRows& w, const float* x, float* y, int rows, bool acc) { gemv_table4<Iq4NlBlock, Fetch>(w, x, y, rows, acc); }
template <LineFetch Fetch>
void gemv_mxfp4_f32_avx512(const WeightRows& w, const float* x, float* y, int rows, bool acc) { gemv_table4<Mxfp4Block, Fetch>(w, x, y, rows, acc); }

}  // namespace

void register_blocks_avx512(KernelTable& t, const CpuFeatures& f) {
  const bool nta = weight_line_fetch(f) == LineFetch::Nta;
  t.gemv[(int)WeightType::IQ4_NL] = nta ? gemv_iq4_nl_f32_avx512<LineFetch::Nta> : gemv_iq4_nl_f32_avx512<LineFetch::T0>;
  t.gemv[(int)WeightType::MXFP4] = nta ? gemv_mxfp4_f32_avx512<LineFetch::Nta> : gemv_mxfp4_f32_avx512<LineFetch::T0>;
  t.dequant[(int)WeightType::IQ4_NL] = dequant_table4<Iq4NlBlock>;
  t.dequant[(int)WeightType::MXFP4] = dequant_table4<Mxfp4Block>;
}

}  // namespace ie
