// The int8-activation GEMM for symmetric q4 and for i8 weights, written once over an integer-vector trait
// (gemm_q8_avx512vnni.cc: 512-bit vpdpbusd; gemm_q8_avxvnni.cc: 256-bit vpdpbusd;
// gemm_q8_avx2.cc: vpmaddubsw + vpmaddwd): a prefill chunk's tokens against a matrix, each token's
// x quantized as the GEMV quantizes it (quantize_x, one scale per q8_x_block), integer dot
// products under each weight group, one float conversion per group and token.
//
// The dot product multiplies unsigned bytes by signed bytes and adds groups of four into int32
// lanes, so R weight rows x 4 consecutive k fill one register (R = 16 or 8 lanes): a panel of R
// rows is unpacked once into that order ([k / 4][row][4 codes], codes 0..15 as the unsigned
// operand) and reused by every token, whose 4 activation bytes (in their natural order) are
// broadcast to the lanes. Per group and token: G / 4 dot products, then (int sum - 8 * sum of the
// group's x codes) * s_w * d_x added in f32. The zero point's term starts the integer sum (xz), so
// codes stay unsigned. i8 weights take the same path with their codes offset by 128 (w ^ 0x80 as the
// unsigned operand, zero point 128) in blocks of 32, x's quantization block, each block scaled by its
// row's scale of the group holding it (per row: the row's one scale). AVX2 has no vpdpbusd
// (kSteps16 > 0 in its trait): there q4's products are summed in 16 bits for eight steps before one
// widening, and i8, whose codes + 128 would saturate vpmaddubsw's 16-bit pair sums, keeps its signed
// codes, widened to 16 bits once per panel ([k / 2][row][2 codes]), against x widened once per token
// tile, in vpmaddwd: two products a 32-bit lane and no zero point (xz is not read). Everything here
// has internal linkage: each ISA's translation unit, compiled with its own -m flags, gets its own copy.
//
// iq4_nl and mxfp4 (32-element blocks of 4-bit indices into 16 int8 levels, one scale a block) are i8
// blocks once decoded: each panel's rows are turned into their levels (one byte shuffle per 16) and
// block scales first, then packed as i8's. The products are exact in integers, so a token's result
// is its blocks times its quantized x, as the int8 GEMV computes it.
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include <type_traits>

#include "cpu/kernel_table.h"
#include "cpu/simd_common.h"
#include "cpu/vec.h"
#include "gemv/blocks_x86.h"

namespace ie {
namespace {

// The 256-bit trait (AVX2, AVX-VNNI): 8 weight rows per register; Dot::dot(acc, w, x) adds the
// products of unsigned w and signed x bytes, four per int32 lane, to acc.
template <class Dot>
struct Int8x32 {
  using V = __m256i;
  using F = __m256;
  static constexpr int kLanes = 8;
  static V from_lanes(const __m128i* l) { return _mm256_inserti128_si256(_mm256_castsi128_si256(l[0]), l[1], 1); }
  static V unpacklo32(V a, V b) { return _mm256_unpacklo_epi32(a, b); }
  static V unpackhi32(V a, V b) { return _mm256_unpackhi_epi32(a, b); }
  static V unpacklo64(V a, V b) { return _mm256_unpacklo_epi64(a, b); }
  static V unpackhi64(V a, V b) { return _mm256_unpackhi_epi64(a, b); }
  static V set1_8(char c) { return _mm256_set1_epi8(c); }
  static V set1_32(int32_t v) { return _mm256_set1_epi32(v); }
  static V load(const void* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static void store(void* p, V v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v); }
  static V and_(V a, V b) { return _mm256_and_si256(a, b); }
  static V xor_(V a, V b) { return _mm256_xor_si256(a, b); }
  static V srli32_4(V a) { return _mm256_srli_epi32(a, 4); }
  static V dot(V acc, V w, V x) { return Dot::dot(acc, w, x); }
  static constexpr int kSteps16 = Dot::kSteps16;
  static V products16(V w, V x) { return Dot::products16(w, x); }
  static V add16(V a, V b) { return Dot::add16(a, b); }
  static V widen_add(V acc, V p16) { return Dot::widen_add(acc, p16); }
  static V add_pairs16(V acc, V w16, V x16) { return Dot::add_pairs16(acc, w16, x16); }
  // Lane r of `in` holds 4 codes of row r: *lo gets the first two of each row as 16-bit values, *hi the last two.
  static void widen_pairs(V in, V* lo, V* hi) {
    const __m256 a = _mm256_castsi256_ps(_mm256_cvtepi8_epi16(_mm256_castsi256_si128(in)));       // rows 0-3
    const __m256 b = _mm256_castsi256_ps(_mm256_cvtepi8_epi16(_mm256_extracti128_si256(in, 1)));  // rows 4-7
    // Even dwords (codes 0, 1) then odd (2, 3), rows 0 1 4 5 | 2 3 6 7, put back in row order.
    *lo = _mm256_permute4x64_epi64(_mm256_castps_si256(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0))), _MM_SHUFFLE(3, 1, 2, 0));
    *hi = _mm256_permute4x64_epi64(_mm256_castps_si256(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1))), _MM_SHUFFLE(3, 1, 2, 0));
  }
  static F zerof() { return _mm256_setzero_ps(); }
  static F loadf(const float* p) { return _mm256_loadu_ps(p); }
  static F set1f(float v) { return _mm256_set1_ps(v); }
  static F cvt(V v) { return _mm256_cvtepi32_ps(v); }
  static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F fmadd(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static void store_rows(float* c, F v, int n, bool acc) {
    if (n == kLanes) {
      _mm256_storeu_ps(c, acc ? _mm256_add_ps(_mm256_loadu_ps(c), v) : v);
      return;
    }
    alignas(32) float t[kLanes];
    _mm256_store_ps(t, v);
    for (int i = 0; i < n; i++) c[i] = acc ? c[i] + t[i] : t[i];
  }
};

// I8: the weights are i8 (any group, or one scale per row), taken in blocks of 32; else symmetric q4.
// Lut (Iq4NlBlock or Mxfp4Block, with I8): the weights are that block type, decoded per panel.
template <class T, bool I8 = false, class Lut = void>
struct Q8Gemm {
  static constexpr bool kLut = !std::is_void_v<Lut>;
  static_assert(!kLut || I8, "table blocks go through the i8 path");
  using V = typename T::V;
  using F = typename T::F;
  static constexpr int kPanel = T::kLanes;  // weight rows per panel: one int32 lane each
  static constexpr int kLanes128 = kPanel / 4;
  static constexpr bool kI8Pairs = I8 && T::kSteps16 > 0;  // AVX2's i8: 16-bit codes x 16-bit x (vpmaddwd)
  // Tokens per register tile: 8 int32 + 8 f32 accumulators; on AVX2 6 (q4: 6 + 6 + 6 16-bit partial
  // sums; with 8, GCC spilled them and the GEMM ran 0.85x on Zen 4; i8 with 4 ran 0.97x).
  static constexpr int kMr = T::kSteps16 > 0 ? 6 : 8;
  static constexpr int kPairsTokens = 64;                   // tokens whose widened x the scratch holds

  // 16 bytes at base + r * stride for rows r < kPanel (zero for r >= rows) as four registers, out[i]
  // holding dword i of every row in row order: four rows per 128-bit lane (register j lane L:
  // row 4L + j), then a 4 x 4 dword transpose inside the lanes.
  static void transpose4(const uint8_t* base, ptrdiff_t stride, int rows, V out[4]) {
    V v[4];
    for (int j = 0; j < 4; j++) {
      __m128i l[kLanes128];
      for (int L = 0; L < kLanes128; L++) {
        const int r = 4 * L + j;
        l[L] = r < rows ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(base + r * stride)) : _mm_setzero_si128();
      }
      v[j] = T::from_lanes(l);
    }
    const V t0 = T::unpacklo32(v[0], v[1]), t1 = T::unpackhi32(v[0], v[1]);
    const V t2 = T::unpacklo32(v[2], v[3]), t3 = T::unpackhi32(v[2], v[3]);
    out[0] = T::unpacklo64(t0, t2);
    out[1] = T::unpackhi64(t0, t2);
    out[2] = T::unpacklo64(t1, t3);
    out[3] = T::unpackhi64(t1, t3);
  }

  // Rows [0, rows) of a q4 panel in the kernel's order, B[group][k / 4][kPanel][4], and their
  // scales as f32, S[group][kPanel] (rows past `rows` zero). A dword of a row's group bytes i..i+3
  // holds the codes of elements i..i+3 (low nibbles) and G/2 + i.. (high nibbles), so dword i of
  // the panel's rows, masked and shifted, fills both elements' registers.
  // A table block type's rows [0, rows) as i8 codes, D[r][ng * 32], and their block scales.
  static void decode_panel(const WeightRows& w, int rows, int ng, float* row_scales, uint8_t* D) {
    for (int r = 0; r < rows; r++) {
      const uint8_t* row = w.q + r * w.q_ld;
      uint8_t* d = D + (size_t)r * ng * kQ8Block;
      for (int b = 0; b < ng; b++) {
        const uint8_t* blk = row + (ptrdiff_t)b * Lut::kBytes;
        __m128i lo, hi;
        iq4_levels(blk + Lut::kQs, &lo, &hi, Lut::table());
        _mm_storeu_si128(reinterpret_cast<__m128i*>(d + 32 * b), lo);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(d + 32 * b + 16), hi);
        row_scales[(size_t)r * ng + b] = lut4_scale(Lut{}, blk);
      }
    }
  }

  static void pack_panel(const WeightRows& w, int rows, int ng, float* row_scales, uint8_t* B, float* S, uint8_t* D) {
    if constexpr (I8) {
      const uint8_t* q = w.q;
      ptrdiff_t q_ld = w.q_ld;
      if constexpr (kLut) {
        decode_panel(w, rows, ng, row_scales, D);
        q = D;
        q_ld = (ptrdiff_t)ng * kQ8Block;
      }
      // Blocks of 32 codes, 128 added (the sign bit flipped), or (kI8Pairs) kept signed and widened to
      // [k / 2][row][2] 16-bit values, twice the bytes; the scales repeated per block.
      const V flip = T::set1_8((char)0x80);
      for (int g = 0; g < ng; g++) {
        uint8_t* b = B + (size_t)g * kQ8Block * kPanel * (kI8Pairs ? 2 : 1);
        for (int c = 0; c < kQ8Block; c += 16) {
          V d[4];
          transpose4(q + g * kQ8Block + c, q_ld, rows, d);
          for (int i = 0; i < 4; i++) {
            if constexpr (kI8Pairs) {
              V lo, hi;  // codes c + 4i, c + 4i + 1 of every row, and c + 4i + 2, c + 4i + 3
              T::widen_pairs(d[i], &lo, &hi);
              T::store(b + (c + 4 * i) * kPanel * 2, lo);
              T::store(b + (c + 4 * i + 2) * kPanel * 2, hi);
            } else {
              T::store(b + (c + 4 * i) * kPanel, T::xor_(d[i], flip));
            }
          }
        }
      }
      const int per = w.group > 0 ? w.group / kQ8Block : ng, ngw = (ng + per - 1) / per;  // blocks per weight group, weight groups
      for (int r = 0; r < rows && !kLut; r++) {
        float* rs = row_scales + (size_t)r * ng;
        simd::row_scales_f32(w.s + r * w.s_ld, w.stype, ngw, rs);
        for (int g = ng - 1; g >= 0; g--) rs[g] = rs[g / per];  // in place, from the end: g / per <= g
      }
    } else {
      const int G = w.group, half = G / 2;
      const V low4 = T::set1_8(0x0f);
      for (int g = 0; g < ng; g++) {
        uint8_t* b = B + (size_t)g * G * kPanel;
        for (int c = 0; c < half; c += 16) {
          V d[4];
          transpose4(w.q + g * half + c, w.q_ld, rows, d);
          for (int i = 0; i < 4; i++) {
            T::store(b + (c + 4 * i) * kPanel, T::and_(d[i], low4));
            T::store(b + (half + c + 4 * i) * kPanel, T::and_(T::srli32_4(d[i]), low4));
          }
        }
      }
      // Each row's scales converted 8 at a time (F16C).
      for (int r = 0; r < rows; r++) simd::row_scales_f32(w.s + r * w.s_ld, w.stype, ng, row_scales + (size_t)r * ng);
    }
    // The scales transposed four groups at a time.
    int g = 0;
    for (; g + 4 <= ng; g += 4) {
      V d[4];
      transpose4(reinterpret_cast<const uint8_t*>(row_scales + g), (ptrdiff_t)ng * 4, rows, d);
      for (int i = 0; i < 4; i++) T::store(S + (g + i) * kPanel, d[i]);
    }
    for (; g < ng; g++)
      for (int r = 0; r < kPanel; r++) S[g * kPanel + r] = r < rows ? row_scales[(size_t)r * ng + g] : 0.f;
  }

  // C[m][0..n) (+)= the panel against tokens m < MR; A rows are each token's quantized x.
  template <int MR>
  static void tile(const uint8_t* B, const float* S, int ng, int G, const int8_t* A, ptrdiff_t lda, const float* D, ptrdiff_t ldd, const int32_t* Z, ptrdiff_t ldz,
                   const int16_t* X16, ptrdiff_t ldx16, float* C, ptrdiff_t ldc, int n, bool acc) {
    const int q_per_group = G / 4, d_step = G / kQ8Block;
    F f[MR];
    for (int m = 0; m < MR; m++) f[m] = T::zerof();
    for (int g = 0; g < ng; g++) {
      V s[MR];
      for (int m = 0; m < MR; m++) s[m] = T::set1_32(kI8Pairs ? 0 : Z[m * ldz + g]);  // signed i8 codes: no zero point
      const uint8_t* b = B + (size_t)g * q_per_group * 4 * kPanel;
      const int8_t* a = A + (size_t)g * G;
      auto x4 = [&](int m, int q) {
        int32_t v;
        std::memcpy(&v, a + m * lda + 4 * q, 4);
        return T::set1_32(v);
      };
      if constexpr (kI8Pairs) {
        // 16 steps of two 16-bit codes a row against the tokens' x, widened (X16, ldx16 per token).
        const uint8_t* b16 = B + (size_t)g * kQ8Block * kPanel * 2;
        const int16_t* x = X16 + (size_t)g * kQ8Block;
        for (int j = 0; j < kQ8Block / 2; j++) {
          const V wv = T::load(b16 + j * 4 * kPanel);
          for (int m = 0; m < MR; m++) {
            int32_t v;
            std::memcpy(&v, x + m * ldx16 + 2 * j, 4);
            s[m] = T::add_pairs16(s[m], wv, T::set1_32(v));
          }
        }
      } else if constexpr (!I8 && T::kSteps16 > 0) {
        // AVX2: up to kSteps16 steps of q4 products summed in 16 bits, then one widening (the
        // integer sums are the same, with half the multiply-port operations).
        for (int q0 = 0; q0 < q_per_group; q0 += T::kSteps16) {
          const int q1 = std::min(q_per_group, q0 + T::kSteps16);
          V p[MR];
          const V w0 = T::load(b + q0 * 4 * kPanel);
          for (int m = 0; m < MR; m++) p[m] = T::products16(w0, x4(m, q0));
          for (int q = q0 + 1; q < q1; q++) {
            const V wv = T::load(b + q * 4 * kPanel);
            for (int m = 0; m < MR; m++) p[m] = T::add16(p[m], T::products16(wv, x4(m, q)));
          }
          for (int m = 0; m < MR; m++) s[m] = T::widen_add(s[m], p[m]);
        }
      } else {
        for (int q = 0; q < q_per_group; q++) {
          const V wv = T::load(b + q * 4 * kPanel);
          for (int m = 0; m < MR; m++) s[m] = T::dot(s[m], wv, x4(m, q));
        }
      }
      const F sw = T::loadf(S + g * kPanel);
      for (int m = 0; m < MR; m++) f[m] = T::fmadd(T::cvt(s[m]), T::mul(sw, T::set1f(D[m * ldd + g * d_step])), f[m]);
    }
    for (int m = 0; m < MR; m++) T::store_rows(C + m * ldc, f[m], n, acc);
  }

  static void run(const WeightRows& w, int rows, const int8_t* xq, ptrdiff_t ldq, const float* xd, ptrdiff_t ldd, const int32_t* xz, ptrdiff_t ldz, int M, float* y,
                  ptrdiff_t ldy, bool acc, uint8_t* scratch) {
    const int G = I8 ? kQ8Block : w.group, ng = (w.K + G - 1) / G, Kg = ng * G;
    int code_bytes = (int)row_code_bytes(w, I8 ? WeightType::I8 : WeightType::Q4);
    int scale_count = I8 ? (w.group > 0 ? (w.K + w.group - 1) / w.group : 1) : ng;
    if constexpr (kLut) code_bytes = ng * Lut::kBytes, scale_count = 0;  // the scales sit in the blocks
    uint8_t* B = scratch;
    float* S = reinterpret_cast<float*>(B + (size_t)kPanel * Kg * (kI8Pairs ? 2 : 1));
    float* row_scales = S + (size_t)kPanel * ng;
    int16_t* X16 = reinterpret_cast<int16_t*>(row_scales + (size_t)kPanel * ng);  // kPairsTokens tokens' x, widened (kI8Pairs)
    uint8_t* D = reinterpret_cast<uint8_t*>(X16 + (size_t)kPairsTokens * Kg);    // a table block panel's codes (kLut)
    // kI8Pairs: x widened to 16 bits once per block of kPairsTokens tokens (the panels packed again
    // for each); every other path takes all M tokens per panel.
    const int mblock = kI8Pairs ? kPairsTokens : M;
    for (int mb = 0; mb < M; mb += mblock) {
      const int mn = std::min(mblock, M - mb);
      if constexpr (kI8Pairs)
        for (int m = 0; m < mn; m++)
          for (int k = 0; k < Kg; k++) X16[(size_t)m * Kg + k] = xq[(mb + m) * ldq + k];
      for (int r0 = 0; r0 < rows; r0 += kPanel) {
        const int n = std::min(kPanel, rows - r0);
        // The next panel's rows toward L2 while this one runs against every token (a panel read
        // straight from DRAM waits on kPanel rows' misses at a time).
        const int next = std::min(kPanel, rows - r0 - kPanel);
        for (int r = 0; r < next; r++) {
          const uint8_t* q = w.q + (r0 + kPanel + r) * w.q_ld;
          for (int o = 0; o < code_bytes; o += 64) _mm_prefetch(reinterpret_cast<const char*>(q + o), _MM_HINT_T1);
          const uint8_t* sc = w.s + (r0 + kPanel + r) * w.s_ld;
          for (int o = 0; o < scale_count * scale_bytes(w.stype); o += 64) _mm_prefetch(reinterpret_cast<const char*>(sc + o), _MM_HINT_T1);
        }
        pack_panel(w.from_row(r0), n, ng, row_scales, B, S, D);
        for (int m0 = mb; m0 < mb + mn; m0 += kMr) {
          const int8_t* a = xq + m0 * ldq;
          const float* d = xd + m0 * ldd;
          const int32_t* z = xz + m0 * ldz;
          const int16_t* x16 = X16 + (size_t)(m0 - mb) * Kg;
          float* c = y + m0 * ldy + r0;
          switch (std::min(kMr, mb + mn - m0)) {
            case 8: tile<8>(B, S, ng, G, a, ldq, d, ldd, z, ldz, x16, Kg, c, ldy, n, acc); break;
            case 7: tile<7>(B, S, ng, G, a, ldq, d, ldd, z, ldz, x16, Kg, c, ldy, n, acc); break;
            case 6: tile<6>(B, S, ng, G, a, ldq, d, ldd, z, ldz, x16, Kg, c, ldy, n, acc); break;
            case 5: tile<5>(B, S, ng, G, a, ldq, d, ldd, z, ldz, x16, Kg, c, ldy, n, acc); break;
            case 4: tile<4>(B, S, ng, G, a, ldq, d, ldd, z, ldz, x16, Kg, c, ldy, n, acc); break;
            case 3: tile<3>(B, S, ng, G, a, ldq, d, ldd, z, ldz, x16, Kg, c, ldy, n, acc); break;
            case 2: tile<2>(B, S, ng, G, a, ldq, d, ldd, z, ldz, x16, Kg, c, ldy, n, acc); break;
            default: tile<1>(B, S, ng, G, a, ldq, d, ldd, z, ldz, x16, Kg, c, ldy, n, acc); break;
          }
        }
      }
    }
  }
};

}  // namespace
}  // namespace ie
