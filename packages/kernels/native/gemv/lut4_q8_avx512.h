// The two block types of 4-bit indices into 16 levels, mxfp4 (gpt-oss's experts) and iq4_nl,
// against int8 activations on AVX-512 VNNI, 512 bits a step. Shared by int8act_blocks_avx512vnni.cc
// (steps of two blocks) and lut4_q8_avx512vbmi.cc (four blocks a step, their codes gathered by a
// VBMI byte permute; built with -mavx512vbmi and chosen only where CPUID reports it, so the
// two-block file never meets a VBMI instruction). Internal linkage: included by translation units
// built with different -m flags.
#pragma once
#include <immintrin.h>

#include <type_traits>

#include "cpu/kernel_table.h"
#include "cpu/vec.h"
#include "gemv/blocks.h"
#include "gemv/blocks_x86.h"
#include "gemv/row_streams.h"
#include "layout/layout.h"
#include "mem/aligned.h"

namespace ie {
namespace {

// Steps of two blocks (64 weights): each block's 16 code bytes
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

// Quads: four blocks (128 weights) a step, their 64 code bytes gathered from the 72 (68) bytes the
// blocks span by one two-source byte permute (VBMI), the low nibbles' levels against x's first
// halves of the four blocks and the high nibbles' against the second halves, both products into
// one sum (lane l: block l / 4, so one factor a lane), the four scales spread over their lanes by
// one permute: about 16 operations per 128 weights against 24 for two pairs. The last one to three
// blocks go in pairs. Zen 5, TinyLlama's shapes from DRAM (`ONLY='iq4_nl+int8,mxfp4+int8' GIB=1
// THREADS=1,2 PASSES=2 pnpm bench:kernels`, builds alternated twice), 1 / 2 threads: iq4_nl
// 23.7-24.7 / 33.1-33.7 -> 31.5-31.9 / 38.6-39.7 GB/s, mxfp4 28.4-29.0 / 37.3-37.5 -> 28.8-32.1 /
// 39.4-40.6.
struct Lut4Q8Quads {
  const int8_t* lo;      // per quad: elements 0-15 of its four blocks, 16 bytes each
  const int8_t* hi;      // ... and elements 16-31
  const int32_t* start;  // per quad: -128 x the sum of each lane's eight bytes (four of lo, four of hi)
  const float* dx;       // per quad: lane l holds d_x of block l / 4
};

// A quad's 64 code bytes: block b's at bytes 16b..16b+15, from byte kB b + kQs of the 64 + 8 loaded.
template <class Block>
struct QuadCodeIndex {
  alignas(64) uint8_t v[64] = {};
};
template <class Block>
constexpr QuadCodeIndex<Block> quad_code_index() {
  QuadCodeIndex<Block> t;
  for (int b = 0; b < 4; b++)
    for (int j = 0; j < 16; j++) t.v[16 * b + j] = (uint8_t)(Block::kBytes * b + Block::kQs + j);
  return t;
}
template <class Block>
inline constexpr QuadCodeIndex<Block> kQuadCodeIndex = quad_code_index<Block>();

// The quad's four scales times d_x, lane l the factor of block l / 4 (a: the quad's first 64 bytes).
// iq4_nl: the f16 d of block b is word 9b; one word permute places it in words 4b..4b+3, one
// conversion makes 16 floats. mxfp4: the E8M0 byte of block b (byte 17b) to the low byte of its
// lanes, then d_x x 2^(e - 128) by vscalefps: exactly dx x e8m0_half(e), subnormal scales included.
template <class Block>
inline __m512 quad_factors(__m512i a, __m512 dx) {
  if constexpr (std::is_same_v<Block, Iq4NlBlock>) {
    const __m512i idx = _mm512_setr_epi32(0, 0, 9 | 9 << 16, 9 | 9 << 16, 18 | 18 << 16, 18 | 18 << 16, 27 | 27 << 16, 27 | 27 << 16, 0, 0, 0, 0, 0, 0, 0, 0);
    return _mm512_mul_ps(dx, _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi16(idx, a))));
  } else {
    const __m512i idx = _mm512_setr_epi32(0, 0, 0, 0, 17, 17, 17, 17, 34, 34, 34, 34, 51, 51, 51, 51);
    const __m512i e = _mm512_maskz_permutexvar_epi8(0x1111111111111111ULL, idx, a);
    return _mm512_scalef_ps(dx, _mm512_cvtepi32_ps(_mm512_sub_epi32(e, _mm512_set1_epi32(128))));
  }
}

template <int NR, class Block, bool Quads, LineFetch Fetch>
inline void rows_lut4_q8(const WeightRows& w, const int* rs, const Lut4Q8Quads& xq4, const Lut4Q8Pairs& x, float* y, bool acc) {
  constexpr int kB = Block::kBytes, kQs = Block::kQs;
  const int nb = w.K / 32, quads = Quads ? nb / 4 : 0;
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
  if constexpr (Quads) {
    const __m512i code_idx = _mm512_load_si512(kQuadCodeIndex<Block>.v);
    for (int q = 0; q < quads; q++) {
      const __m512i xl = _mm512_loadu_si512(xq4.lo + 64 * q), xh = _mm512_loadu_si512(xq4.hi + 64 * q), st = _mm512_loadu_si512(xq4.start + 16 * q);
      const __m512 dx = _mm512_loadu_ps(xq4.dx + 16 * q);
      IE_UNROLL for (int r = 0; r < NR; r++) {
        const uint8_t* p = row[r] + (ptrdiff_t)q * 4 * kB;
        // The lines of the step kFloatStreamAhead on (its 72 or 68 bytes touch two).
        fetch_line<Fetch>(p + kFloatStreamAhead);
        fetch_line<Fetch>(p + kFloatStreamAhead + 4 * kB - 1);
        const __m512i a = _mm512_loadu_si512(p);
        // The quad's last bytes: 8 past the 64 (iq4_nl), 4 (mxfp4); nothing past the blocks is read.
        const __m512i b = _mm512_castsi128_si512(kB * 4 - 64 == 8 ? _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + 64)) : _mm_loadu_si32(p + 64));
        const __m512i c = _mm512_permutex2var_epi8(a, code_idx, b);
        const __m512i vl = _mm512_shuffle_epi8(table, _mm512_and_si512(c, low4));
        const __m512i vh = _mm512_shuffle_epi8(table, _mm512_and_si512(_mm512_srli_epi16(c, 4), low4));
        const __m512i dot = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(st, vl, xl), vh, xh);
        t[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), quad_factors<Block>(a, dx), t[r]);
      }
    }
  }
  // Pairs (after the quads, the last one to three blocks): each block's 16 code bytes broadcast to
  // two 128-bit lanes (low nibbles, then high: the order of x).
  auto pair = [&](int r, int i, bool second, __m512i xv, __m512i st, __m512 dx) {
    const uint8_t* b = row[r] + (ptrdiff_t)i * kB;
    __m512i c = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + kQs)));
    if (second) c = _mm512_mask_broadcast_i32x4(c, 0xff00, _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + kB + kQs)));
    else c = _mm512_maskz_mov_epi32(0x00ff, c);
    const __m512i v = _mm512_shuffle_epi8(table, _mm512_and_si512(_mm512_srlv_epi16(c, shifts), low4));
    const __m512i dot = _mm512_dpbusd_epi32(st, v, xv);
    __m512 f = _mm512_mul_ps(dx, _mm512_set1_ps(lut4_scale(Block{}, b)));
    if (second) f = _mm512_mask_mul_ps(f, 0xff00, dx, _mm512_set1_ps(lut4_scale(Block{}, b + kB)));
    t[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), f, t[r]);
  };
  int i = 4 * quads;
  for (; i + 2 <= nb; i += 2) {
    const int p = (i - 4 * quads) / 2;
    const __m512i xv = _mm512_loadu_si512(x.xq + 32 * i), st = _mm512_loadu_si512(x.start + 16 * p);
    const __m512 dx = _mm512_loadu_ps(x.dx + 16 * p);
    for (int r = 0; r < NR; r++) {
      fetch_line<Fetch>(row[r] + (ptrdiff_t)i * kB + kFloatStreamAhead);  // every line: 34-36 bytes a step
      pair(r, i, true, xv, st, dx);
    }
  }
  if (i < nb) {  // an odd last block: lanes 8-15 hold nothing (x is zero there, and so is its d_x)
    const int p = (i - 4 * quads) / 2;
    const __m512i xv = _mm512_loadu_si512(x.xq + 32 * i), st = _mm512_loadu_si512(x.start + 16 * p);
    const __m512 dx = _mm512_loadu_ps(x.dx + 16 * p);
    for (int r = 0; r < NR; r++) pair(r, i, false, xv, st, dx);
  }
  for (int r = 0; r < NR; r++) {
    const float v = _mm512_reduce_add_ps(t[r]);
    y[rs[r]] = acc ? y[rs[r]] + v : v;
  }
}

template <class Block, bool Quads, LineFetch Fetch>
void gemv_lut4_q8(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) {
  const int nb = w.K / 32, quads = Quads ? nb / 4 : 0;
  // -128 x each lane's bytes of x (vpdpbusd of ones, unsigned, and x): the dot products' start.
  const __m512i ones = _mm512_set1_epi8(1);
  auto start_of = [&](__m512i sums) { return _mm512_slli_epi32(_mm512_sub_epi32(_mm512_setzero_si512(), sums), 7); };
  // x per quad of blocks (xq holds whole 128-element chunks: q8_padded).
  Scratch<int8_t, 64 * 64> lo((size_t)64 * quads), hi((size_t)64 * quads);
  Scratch<int32_t, 16 * 64> qstart((size_t)16 * quads);
  Scratch<float, 16 * 64> qdx((size_t)16 * quads);
  for (int q = 0; q < quads; q++) {
    const __m512i a = _mm512_loadu_si512(xq + 128 * q), b = _mm512_loadu_si512(xq + 128 * q + 64);
    const __m512i l = _mm512_shuffle_i64x2(a, b, _MM_SHUFFLE(2, 0, 2, 0)), h = _mm512_shuffle_i64x2(a, b, _MM_SHUFFLE(3, 1, 3, 1));
    _mm512_storeu_si512(lo.data() + 64 * q, l);
    _mm512_storeu_si512(hi.data() + 64 * q, h);
    _mm512_storeu_si512(qstart.data() + 16 * q, start_of(_mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, l), ones, h)));
    _mm512_storeu_ps(qdx.data() + 16 * q, _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3), _mm512_castps128_ps512(_mm_loadu_ps(xd + 4 * q))));
  }
  // x per pair of blocks after the quads (pair p at p - 2 quads).
  const int p0 = 2 * quads, pairs = (nb + 1) / 2 - p0;
  Scratch<int32_t, 16 * 64> start((size_t)16 * pairs);
  Scratch<float, 16 * 64> dx((size_t)16 * pairs);
  for (int p = 0; p < pairs; p++) {
    _mm512_storeu_si512(start.data() + 16 * p, start_of(_mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, _mm512_loadu_si512(xq + 64 * (p0 + p)))));
    const bool second = 2 * (p0 + p) + 1 < nb;
    const __m512 d = _mm512_mask_broadcastss_ps(_mm512_set1_ps(xd[2 * (p0 + p)]), 0xff00, _mm_set_ss(second ? xd[2 * (p0 + p) + 1] : 0.f));
    _mm512_storeu_ps(dx.data() + 16 * p, d);
  }
  const Lut4Q8Quads x4{lo.data(), hi.data(), qstart.data(), qdx.data()};
  const Lut4Q8Pairs x{xq, start.data(), dx.data()};
  row_streams<kFloatStreams>(rows, w.q_ld, [&](auto n, const int* rs) { rows_lut4_q8<decltype(n)::value, Block, Quads, Fetch>(w, rs, x4, x, y, acc); });
}

// The two block types' kernels with the CPU's line prefetch (weight_line_fetch).
template <bool Quads>
void register_lut4_q8(KernelTable& t, const CpuFeatures& f) {
  const bool nta = weight_line_fetch(f) == LineFetch::Nta;
  t.gemv_q8[(int)WeightType::IQ4_NL] = nta ? gemv_lut4_q8<Iq4NlBlock, Quads, LineFetch::Nta> : gemv_lut4_q8<Iq4NlBlock, Quads, LineFetch::T0>;
  t.gemv_q8[(int)WeightType::MXFP4] = nta ? gemv_lut4_q8<Mxfp4Block, Quads, LineFetch::Nta> : gemv_lut4_q8<Mxfp4Block, Quads, LineFetch::T0>;
}

}  // namespace
}  // namespace ie
