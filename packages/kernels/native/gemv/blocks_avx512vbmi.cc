// AVX-512 GEMV with FP32 activations for the 32-element table blocks (mxfp4: gpt-oss's experts;
// iq4_nl) on CPUs with VBMI (Ice Lake and later, Zen 4 and later): a block's 32 levels come from
// two shuffles instead of the four of blocks_avx512.cc (vpmovzxbd, a shift, two vpermps per block).
//
// The block's 16 code bytes are broadcast to every 128-bit lane (a load, no shuffle); one
// vpmultishiftqb puts nibble n of qword q's 16 in the low byte of word 4q + n % 4 (kNibbleAt); one
// vpermw looks each word's low 5 bits up in the levels as bf16 (the 16 levels twice, so the 5th
// bit, the next nibble's, does not matter). A word pair is then two f32 lanes: the even word
// shifted up 16 bits, the odd one masked (a bf16 is the top half of its f32). Every level is an
// integer of at most 8 significant bits (mxfp4's table holds twice the E2M1 values and its scale
// half the E8M0 one; iq4_nl's are int8), exact in bf16 and f32, so the products are those of the
// reference's dequantized weights. x is gathered once per call into the words' order (kNibbleAt).
// Zen 5, one core, 256 rows x 2880 from L2 (a standalone copy of both loops): 30.7 -> 40.5 G
// weights/s. Rows go in far-apart pairs (row_streams.h) with two block chains per row, as in
// blocks_avx512.cc; a row alone runs the same sequence, so every y[r] is the same bits however rows
// are split between threads.
#include <immintrin.h>

#include <cstring>
#include <memory>

#include "cpu/kernel_table.h"
#include "gemv/blocks.h"
#include "gemv/blocks_x86.h"
#include "gemv/row_streams.h"

namespace ie {
namespace {

// Word w of the looked-up vector holds the nibble at bit 4 * (4 * (q / 2) + w % 4) of qword q = w / 4
// of the broadcast codes, whose bytes are code bytes 8 * (q % 2) .. + 7: the block's element
// kNibbleAt[w] (byte b's low nibble is element b, its high nibble element b + 16).
struct NibbleOrder {
  int element[32];
  uint8_t shift[64];  // vpmultishiftqb's bit offset for each output byte (both bytes of a word alike)
};
constexpr NibbleOrder nibble_order() {
  NibbleOrder o{};
  for (int w = 0; w < 32; w++) {
    const int q = w / 4, n = 4 * (q / 2) + w % 4, byte = 8 * (q % 2) + n / 2;
    o.element[w] = n % 2 == 0 ? byte : byte + 16;
    o.shift[2 * w] = o.shift[2 * w + 1] = (uint8_t)(4 * n);
  }
  return o;
}
inline constexpr NibbleOrder kNibbleAt = nibble_order();

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

struct Lookup {
  __m512i shift, levels, odd;
};

// One block's 32 products (x in the words' order: even words' elements, then odd words'), summed
// per lane, times its scale, into t.
template <class B>
inline __m512 block_dot(const uint8_t* b, const Lookup& k, __m512 xe, __m512 xo, __m512 t) {
  const __m512i codes = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + B::kQs)));
  const __m512i w = _mm512_permutexvar_epi16(_mm512_multishift_epi64_epi8(k.shift, codes), k.levels);
  const __m512 we = _mm512_castsi512_ps(_mm512_slli_epi32(w, 16)), wo = _mm512_castsi512_ps(_mm512_and_si512(w, k.odd));
  const __m512 p = _mm512_fmadd_ps(wo, xo, _mm512_mul_ps(we, xe));
  return _mm512_fmadd_ps(p, _mm512_set1_ps(block_scale<B>(b)), t);
}

template <class B, int NR>
inline void rows_table4(const WeightRows& w, const int* rs, const float* x, const Lookup& k, float* y, bool acc) {
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
      t0[r] = block_dot<B>(b, k, x0, x1, t0[r]);
      t1[r] = block_dot<B>(b + B::kBytes, k, x2, x3, t1[r]);
    }
  }
  if (i < nb)
    for (int r = 0; r < NR; r++)
      t0[r] = block_dot<B>(row[r] + (ptrdiff_t)i * B::kBytes, k, _mm512_loadu_ps(x + 32 * i), _mm512_loadu_ps(x + 32 * i + 16), t0[r]);
  for (int r = 0; r < NR; r++) {
    const float v = _mm512_reduce_add_ps(_mm512_add_ps(t0[r], t1[r]));
    y[rs[r]] = acc ? y[rs[r]] + v : v;
  }
}

// x's blocks into the words' order: for each block, the 16 even words' elements, then the 16 odd ones'.
inline void gather_x(const float* x, int K, float* out) {
  for (int i = 0; i < K; i += 32)
    for (int j = 0; j < 16; j++) {
      out[i + j] = x[i + kNibbleAt.element[2 * j]];
      out[i + 16 + j] = x[i + kNibbleAt.element[2 * j + 1]];
    }
}

template <class B>
void gemv_table4(const WeightRows& w, const float* x, float* y, int rows, bool acc) {
  alignas(64) uint16_t levels[32];
  for (int i = 0; i < 32; i++) {
    const float f = (float)B::table()[i % 16];
    uint32_t u;
    std::memcpy(&u, &f, 4);
    levels[i] = (uint16_t)(u >> 16);  // exact: at most 8 significant bits
  }
  const Lookup k{_mm512_loadu_si512(kNibbleAt.shift), _mm512_load_si512(levels), _mm512_set1_epi32((int)0xffff0000u)};
  // x in the words' order: on the stack for the common widths (gpt-oss's 2880), else on the heap.
  constexpr int kStackK = 8192;
  alignas(64) float stack[kStackK];
  std::unique_ptr<float[]> heap;
  float* xw = stack;
  if (w.K > kStackK) {
    heap.reset(new float[(size_t)w.K]);
    xw = heap.get();
  }
  gather_x(x, w.K, xw);
  row_streams(rows, w.q_ld, [&](auto n, const int* rs) { rows_table4<B, decltype(n)::value>(w, rs, xw, k, y, acc); });
}

void gemv_iq4_nl_f32_avx512vbmi(const WeightRows& w, const float* x, float* y, int rows, bool acc) { gemv_table4<Iq4NlBlock>(w, x, y, rows, acc); }
void gemv_mxfp4_f32_avx512vbmi(const WeightRows& w, const float* x, float* y, int rows, bool acc) { gemv_table4<Mxfp4Block>(w, x, y, rows, acc); }

}  // namespace

void register_blocks_avx512vbmi(KernelTable& t) {
  t.gemv[(int)WeightType::IQ4_NL] = gemv_iq4_nl_f32_avx512vbmi;
  t.gemv[(int)WeightType::MXFP4] = gemv_mxfp4_f32_avx512vbmi;
}

}  // namespace ie
