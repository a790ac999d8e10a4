// The int8-activation GEMV for the block types on 256-bit x86, written once over the integer dot
// product (Dot: vpmaddubsw + vpmaddwd, or vpdpbusd) as q8_x86.h is. x is quantized per call in
// blocks of 32 (q8_x86.h), and every sub-block of a K-quant lies inside one such block, so each
// sub-block's product is one integer dot product scaled once by d * scale * d_x:
//
// - q4_k / q5_k: codes 0..15 (0..31) are the unsigned operand; the mins meet per-call sums of
//   the quantized x (d_x * sum q_x per 32), as the q4 zero points do.
// - q6_k: codes - 32 (-32..31) and iq4_nl's levels (-127..113, via a byte shuffle) are signed
//   weights: Dot::signed_single moves their sign onto x. A 32-byte q6_k product holds two
//   16-element scale groups, one per 128-bit half, so its factor vector is [s_a x4 | s_b x4].
#pragma once
#include "gemv/blocks_x86.h"
#include "gemv/q8_x86.h"

namespace ie {
namespace {

inline __m256i q8_bytes(const void* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

template <class Dot>
struct Q8BlockKernels {
  template <bool kFive>
  static void k45(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) {
    constexpr int bb = kFive ? 176 : 144;
    const int nb = w.K / kSuperBlock, nsub = w.K / 32;
    Scratch<float, 512> bs((size_t)nsub);
    q8_group_sums(xq, xd, 32, nsub, bs.data());
    const __m256i low4 = _mm256_set1_epi8(0x0f), bit4 = _mm256_set1_epi8(0x10);
    for (int r = 0; r < rows; r++) {
      __m256 total[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()}, mins = _mm256_setzero_ps();
      for (int i = 0; i < nb; i++) {
        const uint8_t* b = w.q + r * w.q_ld + (ptrdiff_t)i * bb;
        const uint8_t* qs = b + (kFive ? 48 : 16);
        const int8_t* xb = xq + i * kSuperBlock;
        __m256 sc, m;
        k_scales8(b + 4, &sc, &m);
        const __m256 F = _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(f16_at(b)), sc), _mm256_loadu_ps(xd + 8 * i));
        mins = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(f16_at(b + 2)), m), _mm256_loadu_ps(bs.data() + 8 * i), mins);
        const __m256i qh = kFive ? q8_bytes(b + 16) : _mm256_setzero_si256();
        IE_UNROLL for (int j = 0; j < 4; j++) {
          const __m256i v = q8_bytes(qs + 32 * j);
          __m256i lo = _mm256_and_si256(v, low4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
          if (kFive) {  // bit 2j (2j + 1) of each qh byte to bit 4, inside its byte
            lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_slli_epi16(_mm256_srli_epi16(qh, 2 * j), 4), bit4));
            hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_slli_epi16(_mm256_srli_epi16(qh, 2 * j + 1), 4), bit4));
          }
          const __m256i pl = Dot::single(lo, q8_bytes(xb + 64 * j)), ph = Dot::single(hi, q8_bytes(xb + 64 * j + 32));
          total[0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(pl), lane_of(F, 2 * j), total[0]);
          total[1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(ph), lane_of(F, 2 * j + 1), total[1]);
        }
      }
      const float v = q8_hsum(_mm256_add_ps(total[0], total[1])) - q8_hsum(mins);
      y[r] = acc ? y[r] + v : v;
    }
  }

  static void q6_k(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) {
    const int nb = w.K / kSuperBlock;
    const __m256i low4 = _mm256_set1_epi8(0x0f), high2 = _mm256_set1_epi8(0x30), k32 = _mm256_set1_epi8(32);
    const __m256i pick[4] = {_mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1), _mm256_setr_epi32(2, 2, 2, 2, 3, 3, 3, 3), _mm256_setr_epi32(4, 4, 4, 4, 5, 5, 5, 5),
                             _mm256_setr_epi32(6, 6, 6, 6, 7, 7, 7, 7)};
    for (int r = 0; r < rows; r++) {
      __m256 total[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
      for (int i = 0; i < nb; i++) {
        const uint8_t* b = w.q + r * w.q_ld + (ptrdiff_t)i * 210;
        const __m256 d = _mm256_set1_ps(f16_at(b + 208));
        const __m128i sc = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 192));
        const __m256 S[2] = {_mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(sc))), _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(sc, 8))))};
        const __m256 X = _mm256_loadu_ps(xd + 8 * i);
        const int8_t* xb = xq + i * kSuperBlock;
        IE_UNROLL for (int h = 0; h < 2; h++) {
          const __m256i l0 = q8_bytes(b + 64 * h), l1 = q8_bytes(b + 64 * h + 32), qh = q8_bytes(b + 128 + 32 * h);
          const __m256i q[4] = {
              _mm256_or_si256(_mm256_and_si256(l0, low4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), high2)),
              _mm256_or_si256(_mm256_and_si256(l1, low4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), high2)),
              _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low4), _mm256_and_si256(qh, high2)),
              _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low4), _mm256_and_si256(_mm256_srli_epi16(qh, 2), high2)),
          };
          IE_UNROLL for (int k = 0; k < 4; k++) {
            const __m256i p = Dot::signed_single(_mm256_sub_epi8(q[k], k32), q8_bytes(xb + 128 * h + 32 * k));
            const __m256 f = _mm256_mul_ps(_mm256_permutevar8x32_ps(S[h], pick[k]), lane_of(X, 4 * h + k));
            total[k & 1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), f, total[k & 1]);
          }
        }
      }
      const float v = q8_hsum(_mm256_add_ps(total[0], total[1]));
      y[r] = acc ? y[r] + v : v;
    }
  }

  static void iq4_nl(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) {
    const int nb = w.K / 32;
    for (int r = 0; r < rows; r++) {
      __m256 total[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
      for (int i = 0; i < nb; i++) {
        const uint8_t* b = w.q + r * w.q_ld + (ptrdiff_t)i * 18;
        __m128i lo, hi;
        iq4_levels(b + 2, &lo, &hi);
        const __m256i p = Dot::signed_single(_mm256_set_m128i(hi, lo), q8_bytes(xq + 32 * i));
        total[i & 1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(f16_at(b) * xd[i]), total[i & 1]);
      }
      const float v = q8_hsum(_mm256_add_ps(total[0], total[1]));
      y[r] = acc ? y[r] + v : v;
    }
  }
};

}  // namespace
}  // namespace ie
