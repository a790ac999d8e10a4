// The block types' int8-activation GEMV on AVX-512 VNNI CPUs: the K-quants through the 256-bit
// kernels of int8act_blocks_x86.h over the EVEX vpdpbusd (AVX512-VL): a K-quant row's scales come
// every 32 elements, so 256-bit products are the natural unit. The two 32-element blocks of 4-bit
// indices into 16 levels, mxfp4 (gpt-oss's experts) and iq4_nl, share a 512-bit kernel below.
#include <cstring>
#include <type_traits>

#include "gemv/int8act_blocks_x86.h"
#include "gemv/row_streams.h"
#include "mem/aligned.h"

namespace ie {
namespace {

struct DotVnni256 {
  static __m256i single(__m256i u, __m256i s) { return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s); }
  static __m256i signed_single(__m256i w, __m256i x) { return _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_abs_epi8(w), _mm256_sign_epi8(x, w)); }
};

void gemv_q4_k_q8_avx512vnni(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) { Q8BlockKernels<DotVnni256>::k45<false>(w, xq, xd, y, rows, acc); }
void gemv_q5_k_q8_avx512vnni(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) { Q8BlockKernels<DotVnni256>::k45<true>(w, xq, xd, y, rows, acc); }
void gemv_q6_k_q8_avx512vnni(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) { Q8BlockKernels<DotVnni256>::q6_k(w, xq, xd, y, rows, acc); }

// mxfp4 / iq4_nl x q8 in 512-bit steps of two blocks (64 weights): each block's 16 code bytes
// broadcast to two 128-bit lanes (low nibbles, then high: the order of x), one byte shuffle turns
// them into the block type's levels + 128 (the doubled E2M1 values or iq4_nl's -127..113, now
// 1..241: vpdpbusd's unsigned operand), and the +128 comes off inside the dot product, whose sums
// start at -128 x (x's bytes per lane), computed once per call; the integer sums are exact, so the
// offset changes no bit. Each pair's 16 lanes then take their block's scale (2^(e - 128) or the f16
// d) x d_x in one FMA. The 256-bit kernel
// (int8act_blocks_x86.h) did a block per step with a cross-lane insert and a lane broadcast of the
// scale each, and ran slower than the FP32-activation kernel: Zen 5, gpt-oss 8 layers, 2 threads,
// --activations int8 27-28 tok/s against 31-32 with f32. Rows go four far apart (row_streams), each
// x load serving all four, every line prefetched as the FP32-activation kernel does (without the
// prefetch, two threads read 0.75-0.9x). Against the 256-bit kernel (TinyLlama's shapes from DRAM,
// `ONLY=mxfp4,mxfp4+int8 GIB=1 pnpm bench:kernels`): one thread 16.5 -> 29.7 GB/s, two 29.8 -> 49.5;
// gpt-oss 8 layers with --activations int8: 33.6-34.6 tok/s. Still compute-bound (60 G weights/s
// per core from L2): scaling by exponent adds instead of the two multiplies, or vpermb (VBMI) for
// the two broadcasts, measured alike or slower. iq4_nl ran the 256-bit kernel until stop 45, slower
// than its own FP32-activation kernel (Zen 5, TinyLlama's shapes from DRAM, 1 / 2 threads: 12.4 /
// 24.2 GB/s against 17.6 / 32.5).
struct Lut4Q8Pairs {
  const int8_t* xq;
  const int32_t* start;  // per pair: -128 x the sum of x's four bytes in each lane
  const float* dx;       // per pair: d_x of block 2i in lanes 0-7, of block 2i + 1 in lanes 8-15
};

template <int NR, class Block>
inline void rows_lut4_q8(const WeightRows& w, const int* rs, const Lut4Q8Pairs& x, float* y, bool acc) {
  constexpr int kB = Block::kBytes, kQs = Block::kQs;
  const int nb = w.K / 32;
  const __m512i table = _mm512_broadcast_i32x4(_mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(Block::table())), _mm_set1_epi8(-128)));
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  // Per 16-bit lane: 0 in 128-bit lanes 0 and 2 (low nibbles), 4 in lanes 1 and 3 (high).
  const __m512i shifts = _mm512_setr_epi64(0, 0, 0x0004000400040004LL, 0x0004000400040004LL, 0, 0, 0x0004000400040004LL, 0x0004000400040004LL);
  const uint8_t* row[NR];
  __m512 t[NR];
  for (int r = 0; r < NR; r++) {
    row[r] = w.q + rs[r] * w.q_ld;
    t[r] = _mm512_setzero_ps();
  }
  auto pair = [&](int r, int i, bool second, __m512i xv, __m512i st, __m512 dx) {
    const uint8_t* b = row[r] + (ptrdiff_t)i * kB;
    __m512i c = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + kQs)));
    if (second) c = _mm512_mask_broadcast_i32x4(c, 0xff00, _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + kB + kQs)));
    else c = _mm512_maskz_mov_epi32(0x00ff, c);
    const __m512i v = _mm512_shuffle_epi8(table, _mm512_and_si512(_mm512_srlv_epi16(c, shifts), low4));
    const __m512i dot = _mm512_dpbusd_epi32(st, v, xv);
    __m512 f;
    if constexpr (std::is_same_v<Block, Iq4NlBlock>) {
      // Both blocks' f16 scales in one conversion, then spread over their lanes.
      uint16_t h[2] = {0, 0};
      std::memcpy(h, b, 2);
      if (second) std::memcpy(h + 1, b + kB, 2);
      uint32_t both;
      std::memcpy(&both, h, 4);
      const __m512 sc = _mm512_castps128_ps512(_mm_cvtph_ps(_mm_cvtsi32_si128((int)both)));
      f = _mm512_mul_ps(dx, _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1), sc));
    } else {
      f = _mm512_mul_ps(dx, _mm512_set1_ps(lut4_scale(Block{}, b)));
      if (second) f = _mm512_mask_mul_ps(f, 0xff00, dx, _mm512_set1_ps(lut4_scale(Block{}, b + kB)));
    }
    t[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), f, t[r]);
  };
  int i = 0;
  for (; i + 2 <= nb; i += 2) {
    const int p = i / 2;
    const __m512i xv = _mm512_loadu_si512(x.xq + 32 * i), st = _mm512_loadu_si512(x.start + 16 * p);
    const __m512 dx = _mm512_loadu_ps(x.dx + 16 * p);
    for (int r = 0; r < NR; r++) {
      _mm_prefetch(reinterpret_cast<const char*>(row[r] + (ptrdiff_t)i * kB + kFloatStreamAhead), _MM_HINT_NTA);  // every line: 34-36 bytes a step
      pair(r, i, true, xv, st, dx);
    }
  }
  if (i < nb) {  // an odd last block: lanes 8-15 hold nothing (x is zero there, and so is its d_x)
    const int p = i / 2;
    const __m512i xv = _mm512_loadu_si512(x.xq + 32 * i), st = _mm512_loadu_si512(x.start + 16 * p);
    const __m512 dx = _mm512_loadu_ps(x.dx + 16 * p);
    for (int r = 0; r < NR; r++) pair(r, i, false, xv, st, dx);
  }
  for (int r = 0; r < NR; r++) {
    const float v = _mm512_reduce_add_ps(t[r]);
    y[rs[r]] = acc ? y[rs[r]] + v : v;
  }
}

template <class Block>
void gemv_lut4_q8(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) {
  // x is zero-padded to whole 128-element chunks (q8_padded), so a pair past K reads zeros.
  const int pairs = (w.K / 32 + 1) / 2;
  Scratch<int32_t, 16 * 64> start((size_t)16 * pairs);
  Scratch<float, 16 * 64> dx((size_t)16 * pairs);
  const __m512i ones = _mm512_set1_epi8(1);
  for (int p = 0; p < pairs; p++) {
    // vpdpbusd of ones (unsigned) and x (signed): each lane's four bytes summed.
    const __m512i sums = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, _mm512_loadu_si512(xq + 64 * p));
    _mm512_storeu_si512(start.data() + 16 * p, _mm512_slli_epi32(_mm512_sub_epi32(_mm512_setzero_si512(), sums), 7));
    const bool second = 2 * p + 1 < w.K / 32;
    const __m512 d = _mm512_mask_broadcastss_ps(_mm512_set1_ps(xd[2 * p]), 0xff00, _mm_set_ss(second ? xd[2 * p + 1] : 0.f));
    _mm512_storeu_ps(dx.data() + 16 * p, d);
  }
  const Lut4Q8Pairs x{xq, start.data(), dx.data()};
  row_streams<kFloatStreams>(rows, w.q_ld, [&](auto n, const int* rs) { rows_lut4_q8<decltype(n)::value, Block>(w, rs, x, y, acc); });
}

void gemv_mxfp4_q8_avx512vnni(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) { gemv_lut4_q8<Mxfp4Block>(w, xq, xd, y, rows, acc); }
void gemv_iq4_nl_q8_avx512vnni(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) { gemv_lut4_q8<Iq4NlBlock>(w, xq, xd, y, rows, acc); }

}  // namespace

void register_q8_blocks_avx512vnni(KernelTable& t) {
  t.gemv_q8[(int)WeightType::Q4_K] = gemv_q4_k_q8_avx512vnni;
  t.gemv_q8[(int)WeightType::Q5_K] = gemv_q5_k_q8_avx512vnni;
  t.gemv_q8[(int)WeightType::Q6_K] = gemv_q6_k_q8_avx512vnni;
  t.gemv_q8[(int)WeightType::IQ4_NL] = gemv_iq4_nl_q8_avx512vnni;
  t.gemv_q8[(int)WeightType::MXFP4] = gemv_mxfp4_q8_avx512vnni;
}

}  // namespace ie
