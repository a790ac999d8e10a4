// The int8-activation GEMV for the block types on 256-bit x86, written once over the integer dot
// product (Dot: vpmaddubsw + vpmaddwd, or vpdpbusd) as int8act_x86.h is. x is quantized per call
// (int8act_x86.h) in blocks of 32, or of a whole superblock for the K-quants (q8_x_block), and every
// sub-block of a K-quant lies inside one block of x:
//
// - q4_k / q5_k: codes 0..15 (0..31) are the unsigned operand, the sub-blocks' 6-bit scales
//   weight the products in integers (one d_x per superblock); the mins meet per-call sums of
//   the quantized x (d_x * sum q_x per 32), as the q4 zero points do.
// - q6_k: codes 0..63 are unsigned too, the -32 taken off through sums of the quantized x per
//   16 elements. A 32-byte product holds two 16-element scale groups, one per 128-bit half; as for
//   q4_k, the int8 scales weight the products inside the widening.
// - iq4_nl's levels (-127..113) and mxfp4's doubled values (-12..12), via a byte shuffle, are
//   offset to an unsigned operand where the dot product allows it (table4), else signed weights
//   whose sign Dot::signed_single moves onto x.
#pragma once
#include <type_traits>

#include "gemv/blocks.h"
#include "gemv/blocks_x86.h"
#include "gemv/int8act_x86.h"

namespace ie {
namespace {

inline __m256i q8_bytes(const void* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

template <class Dot>
struct Q8BlockKernels {
  // q4_k / q5_k: x comes quantized per superblock (q8_x_block), so a superblock's eight sub-block
  // products are weighted by their integer scales in the 16-bit -> 32-bit widening itself
  // (vpmaddwd by the scale instead of by 1) and summed in integers: one conversion and one FMA by
  // d * d_x per 256 weights instead of one per 32 (llama.cpp's Q4_K x Q8_K arithmetic).
  template <bool kFive>
  static void k45(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) {
    constexpr int bb = kFive ? 176 : 144;
    const int nb = w.K / kSuperBlock, nsub = w.K / 32;
    Scratch<float, 512> bs((size_t)nsub);
    q8_group_sums(xq, xd, 32, nsub, bs.data());
    const __m256i low4 = _mm256_set1_epi8(0x0f), bit4 = _mm256_set1_epi8(0x10);
    // pick[s]: byte s of the eight scale bytes, zero-extended into every 16-bit lane.
    __m256i pick[8];
    for (int j = 0; j < 8; j++) pick[j] = _mm256_set1_epi16((short)(0x8000 | j));
    // One row at a time: two far-apart rows side by side (row_streams) measured no faster here.
    for (int r = 0; r < rows; r++) {
      // One accumulator: its FMA comes once per superblock (an array indexed by i & 1 went to the stack).
      __m256 total = _mm256_setzero_ps(), mins = _mm256_setzero_ps();
      for (int i = 0; i < nb; i++) {
        const uint8_t* b = w.q + r * w.q_ld + (ptrdiff_t)i * bb;
        const uint8_t* qs = b + (kFive ? 48 : 16);
        const int8_t* xb = xq + i * kSuperBlock;
        stream_prefetch(b, bb);
        uint64_t sc8, m8;
        k_scale_bytes(b + 4, &sc8, &m8);
        const __m256i scb = _mm256_set1_epi64x((long long)sc8);
        const __m256 m = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)m8)));
        mins = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(f16_at(b + 2)), m), _mm256_loadu_ps(bs.data() + 8 * i), mins);
        const __m256i qh = kFive ? q8_bytes(b + 16) : _mm256_setzero_si256();
        __m256i isum = _mm256_setzero_si256();
        IE_UNROLL for (int j = 0; j < 4; j++) {
          const __m256i v = q8_bytes(qs + 32 * j);
          __m256i lo = _mm256_and_si256(v, low4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
          if (kFive) {  // bit 2j (2j + 1) of each qh byte to bit 4, inside its byte
            lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_slli_epi16(_mm256_srli_epi16(qh, 2 * j), 4), bit4));
            hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_slli_epi16(_mm256_srli_epi16(qh, 2 * j + 1), 4), bit4));
          }
          // 16-bit pair sums at most 2 * 31 * 127; times a 6-bit scale, eight sub-blocks: below 2^24.
          const __m256i pl = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, q8_bytes(xb + 64 * j)), _mm256_shuffle_epi8(scb, pick[2 * j]));
          const __m256i ph = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, q8_bytes(xb + 64 * j + 32)), _mm256_shuffle_epi8(scb, pick[2 * j + 1]));
          isum = _mm256_add_epi32(isum, _mm256_add_epi32(pl, ph));
        }
        total = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(f16_at(b) * xd[8 * i]), total);
      }
      const float v = q8_hsum(total) - q8_hsum(mins);
      y[r] = acc ? y[r] + v : v;
    }
  }

  // q6_k: codes 0..63 meet x unsigned; the -32 comes off per superblock through per-call sums of
  // the quantized x per 16 elements. With x quantized per superblock (q8_x_block) everything under
  // one superblock stays in integers: each 32-byte product (two 16-element scale groups, one per
  // 128-bit half) is widened by `vpmaddwd` against its two int8 scales, the -32 term is one more
  // `vpmaddwd` of the 16 scales against the 16 sums, and one conversion and FMA by d * d_x end it.
  static void q6_k(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) {
    const int nb = w.K / kSuperBlock, n16 = w.K / 16;
    Scratch<int16_t, 1024> xs((size_t)n16);  // |sum| <= 16 * 127
    for (int j = 0; j < n16; j++) {
      int t = 0;
      for (int e = 16 * j; e < 16 * j + 16; e++) t += xq[e];
      xs.data()[j] = (int16_t)t;
    }
    const __m256i low4 = _mm256_set1_epi8(0x0f), high2 = _mm256_set1_epi8(0x30);
    // pick[k]: of eight 16-bit scales in each half, scale 2k in every lane of the low half and 2k + 1 in the high one.
    __m256i pick[4];
    for (int k = 0; k < 4; k++) pick[k] = _mm256_setr_m128i(_mm_set1_epi16((short)((4 * k + 1) << 8 | 4 * k)), _mm_set1_epi16((short)((4 * k + 3) << 8 | (4 * k + 2))));
    for (int r = 0; r < rows; r++) {
      __m256 total = _mm256_setzero_ps();
      for (int i = 0; i < nb; i++) {
        const uint8_t* b = w.q + r * w.q_ld + (ptrdiff_t)i * 210;
        stream_prefetch(b, 210);
        const __m128i sc = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 192));
        // Products at most 2 * 63 * 127 per 16-bit pair, times |scale| <= 128, eight per lane: below 2^26.
        const __m256i corr = _mm256_madd_epi16(_mm256_cvtepi8_epi16(sc), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xs.data() + 16 * i)));
        __m256i isum = _mm256_setzero_si256();
        const int8_t* xb = xq + i * kSuperBlock;
        IE_UNROLL for (int h = 0; h < 2; h++) {
          const __m256i S = _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(h ? _mm_srli_si128(sc, 8) : sc));
          const __m256i l0 = q8_bytes(b + 64 * h), l1 = q8_bytes(b + 64 * h + 32), qh = q8_bytes(b + 128 + 32 * h);
          const __m256i q[4] = {
              _mm256_or_si256(_mm256_and_si256(l0, low4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), high2)),
              _mm256_or_si256(_mm256_and_si256(l1, low4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), high2)),
              _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low4), _mm256_and_si256(qh, high2)),
              _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low4), _mm256_and_si256(_mm256_srli_epi16(qh, 2), high2)),
          };
          IE_UNROLL for (int k = 0; k < 4; k++)
            isum = _mm256_add_epi32(isum, _mm256_madd_epi16(_mm256_maddubs_epi16(q[k], q8_bytes(xb + 128 * h + 32 * k)), _mm256_shuffle_epi8(S, pick[k])));
        }
        isum = _mm256_sub_epi32(isum, _mm256_slli_epi32(corr, 5));
        total = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(f16_at(b + 208) * xd[8 * i]), total);
      }
      const float v = q8_hsum(total);
      y[r] = acc ? y[r] + v : v;
    }
  }

  // iq4_nl and mxfp4 (16 int8 levels: iq4_nl's -127..113, mxfp4's doubled E2M1 values -12..12),
  // two blocks per 256-bit product: both blocks' 16 code bytes in one register, the low nibbles'
  // levels against x's first halves of the two blocks and the high nibbles' against the second
  // halves (x laid out so once per call), lanes 0-3 of the sum block i, 4-7 block i + 1, so one
  // conversion and one FMA serve two blocks. Eight blocks a step take their scales in one vector,
  // multiplied by the eight d_x at once. Where the levels can be an unsigned operand, they are:
  // the levels + 128 for vpdpbusd (AVX-VNNI: one instruction per 32 weights instead of the sign
  // trick's three), mxfp4's + 12 for vpmaddubsw (AVX2: pairs of at most 2 * 24 * 128, no
  // saturation), the offset taken off by starting each sum at -offset * x's bytes in its lane
  // (per call): the integer sums are exact, so the offset changes no bit. iq4_nl on AVX2 keeps the
  // sign trick (levels + 128 would saturate vpmaddubsw's 16-bit pairs). Rows go in far-apart pairs
  // (row_streams), each x load serving both, every line prefetched 2 KiB ahead. Zen 5 as AVX-VNNI
  // (`IE_ISA=avxvnni`), against the one-block mxfp4 step and the signed iq4_nl pairs: see
  // docs/performance.md (*AVX-VNNI, stop 49*).
  template <class Block>
  static void table4(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) {
    constexpr bool kMx = std::is_same_v<Block, Mxfp4Block>;
    constexpr bool kVnni = Dot::kSteps16 == 0;
    constexpr bool kOffset = kVnni || kMx;
    constexpr int kOff = kVnni ? 128 : 12;
    constexpr int kB = Block::kBytes, kQs = Block::kQs;
    const int nb = w.K / 32, pairs = nb / 2;
    // x per pair of blocks: elements 0-15 of both, then 16-31 of both (xq: whole 128-element
    // chunks), and each lane's -offset * the sum of its eight bytes (four of each half).
    Scratch<int8_t, 64 * 128> xs((size_t)64 * pairs);
    Scratch<int32_t, 8 * 128> start((size_t)(kOffset ? 8 * pairs : 1));
    const __m256i ones = _mm256_set1_epi8(1);
    for (int p = 0; p < pairs; p++) {
      const __m256i a = q8_bytes(xq + 64 * p), b = q8_bytes(xq + 64 * p + 32);
      const __m256i lo = _mm256_permute2x128_si256(a, b, 0x20), hi = _mm256_permute2x128_si256(a, b, 0x31);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(xs.data() + 64 * p), lo);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(xs.data() + 64 * p + 32), hi);
      if constexpr (kOffset) _mm256_storeu_si256(reinterpret_cast<__m256i*>(start.data() + 8 * p), _mm256_mullo_epi32(Dot::pair(ones, lo, ones, hi), _mm256_set1_epi32(-kOff)));
    }
    const __m128i signed_levels = _mm_loadu_si128(reinterpret_cast<const __m128i*>(Block::table()));
    const __m256i table = _mm256_broadcastsi128_si256(kOffset ? _mm_add_epi8(signed_levels, _mm_set1_epi8((char)kOff)) : signed_levels);
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    // Blocks i and i + 1 (i even) of a row at b into t; f: their factors in lanes 0-3 and 4-7.
    auto two = [&](const uint8_t* b, int i, __m256 f, __m256& t) {
      const __m256i c = _mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(b + kB + kQs), reinterpret_cast<const __m128i*>(b + kQs));
      const __m256i wl = _mm256_shuffle_epi8(table, _mm256_and_si256(c, low4));
      const __m256i wh = _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srli_epi16(c, 4), low4));
      const int8_t* x = xs.data() + 32 * i;
      __m256i p;
      if constexpr (!kOffset) {
        p = _mm256_add_epi32(Dot::signed_single(wl, q8_bytes(x)), Dot::signed_single(wh, q8_bytes(x + 32)));
      } else {
        const __m256i st = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(start.data() + 4 * i));
        if constexpr (kVnni) p = Dot::dot(Dot::dot(st, wl, q8_bytes(x)), wh, q8_bytes(x + 32));
        else p = _mm256_add_epi32(st, Dot::pair(wl, q8_bytes(x), wh, q8_bytes(x + 32)));
      }
      t = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), f, t);
    };
    // An odd last block alone, its signed levels through the sign trick.
    auto single = [&](const uint8_t* b, int i, __m256& t) {
      __m128i lo, hi;
      iq4_levels(b + kQs, &lo, &hi, Block::table());
      const __m256i p = Dot::signed_single(_mm256_set_m128i(hi, lo), q8_bytes(xq + 32 * i));
      t = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(lut4_scale(Block{}, b) * xd[i]), t);
    };
    row_streams(rows, w.q_ld, [&](auto n, const int* rs) {
      constexpr int R = decltype(n)::value;
      const uint8_t* row[R];
      __m256 t[R][2];
      IE_UNROLL for (int r = 0; r < R; r++) row[r] = w.q + rs[r] * w.q_ld, t[r][0] = t[r][1] = _mm256_setzero_ps();
      int i = 0;
      for (; i + 8 <= nb; i += 8) {
        __m256 F[R];
        IE_UNROLL for (int r = 0; r < R; r++) {
          const uint8_t* b = row[r] + (ptrdiff_t)i * kB;
          stream_prefetch(b, 8 * kB);
          F[r] = _mm256_mul_ps(scales8(Block{}, b), _mm256_loadu_ps(xd + i));
        }
        IE_UNROLL for (int u = 0; u < 4; u++) IE_UNROLL for (int r = 0; r < R; r++) two(row[r] + (ptrdiff_t)(i + 2 * u) * kB, i + 2 * u, q8_pair_factors(F[r], u), t[r][u & 1]);
      }
      for (int r = 0; r < R; r++) {
        int j = i;
        for (; j + 2 <= nb; j += 2) {
          const uint8_t* b = row[r] + (ptrdiff_t)j * kB;
          const __m256 f = _mm256_insertf128_ps(_mm256_set1_ps(lut4_scale(Block{}, b) * xd[j]), _mm_set1_ps(lut4_scale(Block{}, b + kB) * xd[j + 1]), 1);
          two(b, j, f, t[r][0]);
        }
        if (j < nb) single(row[r] + (ptrdiff_t)j * kB, j, t[r][1]);
        const float v = q8_hsum(_mm256_add_ps(t[r][0], t[r][1]));
        y[rs[r]] = acc ? y[rs[r]] + v : v;
      }
    });
  }
  static void iq4_nl(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) { table4<Iq4NlBlock>(w, xq, xd, y, rows, acc); }
  static void mxfp4(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) { table4<Mxfp4Block>(w, xq, xd, y, rows, acc); }

 private:
  // The scales of the eight blocks at b, as f32: iq4_nl's f16 d, mxfp4's 2^(e - 128).
  static __m256 scales8(Iq4NlBlock, const uint8_t* b) {
    __m128i dh = _mm_cvtsi32_si128(b[0] | (b[1] << 8));
    dh = _mm_insert_epi16(dh, b[18] | (b[19] << 8), 1);
    dh = _mm_insert_epi16(dh, b[36] | (b[37] << 8), 2);
    dh = _mm_insert_epi16(dh, b[54] | (b[55] << 8), 3);
    dh = _mm_insert_epi16(dh, b[72] | (b[73] << 8), 4);
    dh = _mm_insert_epi16(dh, b[90] | (b[91] << 8), 5);
    dh = _mm_insert_epi16(dh, b[108] | (b[109] << 8), 6);
    dh = _mm_insert_epi16(dh, b[126] | (b[127] << 8), 7);
    return _mm256_cvtph_ps(dh);
  }
  static __m256 scales8(Mxfp4Block, const uint8_t* b) {
    const __m256i e = _mm256_setr_epi32(b[0], b[17], b[34], b[51], b[68], b[85], b[102], b[119]);
    // e << 23 is 2^(e - 127) for e >= 1; halved, 2^(e - 128) (subnormal at e = 1); e = 0 apart.
    const __m256 S = _mm256_mul_ps(_mm256_castsi256_ps(_mm256_slli_epi32(e, 23)), _mm256_set1_ps(0.5f));
    return _mm256_blendv_ps(S, _mm256_set1_ps(e8m0_half(0)), _mm256_castsi256_ps(_mm256_cmpeq_epi32(e, _mm256_setzero_si256())));
  }
};

}  // namespace
}  // namespace ie
