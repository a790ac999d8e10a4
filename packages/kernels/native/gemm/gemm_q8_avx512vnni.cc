// The int8-activation GEMM for symmetric q4 weights on AVX-512 VNNI: a prefill chunk's tokens
// against a matrix, each token's x quantized as the GEMV quantizes it (quantize_x, one scale per
// q8_x_block), integer dot products under each weight group, one float conversion per group.
//
// vpdpbusd multiplies 64 unsigned bytes by 64 signed bytes and adds groups of four into 16 int32
// lanes, so 16 weight rows x 4 consecutive k fill one register: a panel of 16 rows is unpacked
// once into that order ([k / 4][row][4 codes], codes 0..15 as the unsigned operand) and reused by
// every token, whose 4 activation bytes (in their natural order) are broadcast to the 16 lanes. Per group and token: G / 4
// vpdpbusd, then (int sum - 8 * sum of the group's x codes) * s_w * d_x added in f32, against G / 16
// FMAs per 16 rows for every 16 weights in the FP32 GEMM. The zero point's term starts the integer
// sum (xz), so codes stay unsigned.
#include <immintrin.h>

#include <algorithm>

#include "cpu/avx512_common.h"
#include "cpu/kernel_table.h"

namespace ie {
namespace {
using namespace avx512;

constexpr int kPanel = 16;  // weight rows per panel: one int32 lane each
constexpr int kMr = 8;      // tokens per register tile: 8 int32 + 8 f32 accumulators

// 16 bytes at base + r * stride for rows r < 16 (zero for r >= rows) as four registers, out[i]
// holding dword i of every row in row order: four rows per register in 128-bit lanes (register j
// lane L: row 4L + j), then a 4 x 4 dword transpose inside the lanes.
inline void transpose16x4(const uint8_t* base, ptrdiff_t stride, int rows, __m512i out[4]) {
  __m512i v[4];
  for (int j = 0; j < 4; j++) {
    __m128i l[4];
    for (int L = 0; L < 4; L++) {
      const int r = 4 * L + j;
      l[L] = r < rows ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(base + r * stride)) : _mm_setzero_si128();
    }
    v[j] = _mm512_inserti32x4(_mm512_inserti32x4(_mm512_inserti32x4(_mm512_castsi128_si512(l[0]), l[1], 1), l[2], 2), l[3], 3);
  }
  const __m512i t0 = _mm512_unpacklo_epi32(v[0], v[1]), t1 = _mm512_unpackhi_epi32(v[0], v[1]);
  const __m512i t2 = _mm512_unpacklo_epi32(v[2], v[3]), t3 = _mm512_unpackhi_epi32(v[2], v[3]);
  out[0] = _mm512_unpacklo_epi64(t0, t2);
  out[1] = _mm512_unpackhi_epi64(t0, t2);
  out[2] = _mm512_unpacklo_epi64(t1, t3);
  out[3] = _mm512_unpackhi_epi64(t1, t3);
}

// Rows [0, rows) (rows <= 16) of a q4 panel in the kernel's order, B[group][k / 4][16][4], and their
// scales as f32, S[group][16] (rows past `rows` zero). A dword of a row's group bytes i..i+3 holds
// the codes of elements i..i+3 (low nibbles) and G/2 + i.. (high nibbles), so dword i of 16 rows,
// masked and shifted, fills both elements' registers.
void pack_panel(const WeightRows& w, int rows, int ng, float* row_scales, uint8_t* B, float* S) {
  const int G = w.group, half = G / 2;
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  for (int g = 0; g < ng; g++) {
    uint8_t* b = B + (size_t)g * G * 16;
    for (int c = 0; c < half; c += 16) {
      __m512i d[4];
      transpose16x4(w.q + g * half + c, w.q_ld, rows, d);
      for (int i = 0; i < 4; i++) {
        _mm512_storeu_si512(b + (c + 4 * i) * 16, _mm512_and_si512(d[i], low4));
        _mm512_storeu_si512(b + (half + c + 4 * i) * 16, _mm512_and_si512(_mm512_srli_epi32(d[i], 4), low4));
      }
    }
  }
  // Scales: each row's converted 16 at a time, then transposed four groups at a time.
  const int sb = scale_bytes(w.stype);
  for (int r = 0; r < rows; r++) {
    const uint8_t* s = w.s + r * w.s_ld;
    float* out = row_scales + (size_t)r * ng;
    int g = 0;
    if (w.stype == ScaleType::F16)
      for (; g + 16 <= ng; g += 16) _mm512_storeu_ps(out + g, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + 2 * g))));
    for (; g < ng; g++) out[g] = scale_at(s + g * sb, w.stype);
  }
  int g = 0;
  for (; g + 4 <= ng; g += 4) {
    __m512i d[4];
    transpose16x4(reinterpret_cast<const uint8_t*>(row_scales + g), (ptrdiff_t)ng * 4, rows, d);
    for (int i = 0; i < 4; i++) _mm512_storeu_si512(S + (g + i) * kPanel, d[i]);
  }
  for (; g < ng; g++)
    for (int r = 0; r < kPanel; r++) S[g * kPanel + r] = r < rows ? row_scales[(size_t)r * ng + g] : 0.f;
}

// C[m][0..16) (+)= the panel against tokens m < MR; A rows are each token's quantized x.
template <int MR>
inline void tile(const uint8_t* B, const float* S, int ng, int G, const int8_t* A, ptrdiff_t lda, const float* D, ptrdiff_t ldd, const int32_t* Z, ptrdiff_t ldz,
                 float* C, ptrdiff_t ldc, __mmask16 lanes, bool acc) {
  const int q_per_group = G / 4, d_step = G / kQ8Block;
  __m512 f[MR];
  for (int m = 0; m < MR; m++) f[m] = _mm512_setzero_ps();
  for (int g = 0; g < ng; g++) {
    __m512i s[MR];
    for (int m = 0; m < MR; m++) s[m] = _mm512_set1_epi32(Z[m * ldz + g]);
    const uint8_t* b = B + (size_t)g * q_per_group * 64;
    const int8_t* a = A + (size_t)g * G;
    for (int q = 0; q < q_per_group; q++) {
      const __m512i wv = _mm512_loadu_si512(b + q * 64);
      for (int m = 0; m < MR; m++) {
        int32_t x4;
        __builtin_memcpy(&x4, a + m * lda + 4 * q, 4);
        s[m] = _mm512_dpbusd_epi32(s[m], wv, _mm512_set1_epi32(x4));
      }
    }
    const __m512 sw = _mm512_loadu_ps(S + g * kPanel);
    for (int m = 0; m < MR; m++) f[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[m]), _mm512_mul_ps(sw, _mm512_set1_ps(D[m * ldd + g * d_step])), f[m]);
  }
  for (int m = 0; m < MR; m++) {
    float* c = C + m * ldc;
    _mm512_mask_storeu_ps(c, lanes, acc ? _mm512_add_ps(_mm512_maskz_loadu_ps(lanes, c), f[m]) : f[m]);
  }
}

void gemm_q4_q8_avx512vnni(const WeightRows& w, int rows, const int8_t* xq, ptrdiff_t ldq, const float* xd, ptrdiff_t ldd, const int32_t* xz, ptrdiff_t ldz, int M,
                           float* y, ptrdiff_t ldy, bool acc, uint8_t* scratch) {
  const int G = w.group, ng = (w.K + G - 1) / G, Kg = ng * G;
  uint8_t* B = scratch;
  float* S = reinterpret_cast<float*>(B + (size_t)kPanel * Kg);
  float* row_scales = S + (size_t)kPanel * ng;
  for (int r0 = 0; r0 < rows; r0 += kPanel) {
    const int n = std::min(kPanel, rows - r0);
    // The next panel's rows toward L2 while this one runs against every token (the gathers of a
    // panel straight from DRAM waited on 16 rows' misses at a time: a fifth of a prefill's time).
    const int next = std::min(kPanel, rows - r0 - kPanel);
    for (int r = 0; r < next; r++) {
      const uint8_t* q = w.q + (r0 + kPanel + r) * w.q_ld;
      for (int o = 0; o < ng * (G / 2); o += 64) _mm_prefetch(reinterpret_cast<const char*>(q + o), _MM_HINT_T1);
      const uint8_t* sc = w.s + (r0 + kPanel + r) * w.s_ld;
      for (int o = 0; o < ng * scale_bytes(w.stype); o += 64) _mm_prefetch(reinterpret_cast<const char*>(sc + o), _MM_HINT_T1);
    }
    pack_panel(w.from_row(r0), n, ng, row_scales, B, S);
    const __mmask16 lanes = tail_mask(n);
    for (int m0 = 0; m0 < M; m0 += kMr) {
      const int8_t* a = xq + m0 * ldq;
      const float* d = xd + m0 * ldd;
      const int32_t* z = xz + m0 * ldz;
      float* c = y + m0 * ldy + r0;
      switch (std::min(kMr, M - m0)) {
        case 8: tile<8>(B, S, ng, G, a, ldq, d, ldd, z, ldz, c, ldy, lanes, acc); break;
        case 7: tile<7>(B, S, ng, G, a, ldq, d, ldd, z, ldz, c, ldy, lanes, acc); break;
        case 6: tile<6>(B, S, ng, G, a, ldq, d, ldd, z, ldz, c, ldy, lanes, acc); break;
        case 5: tile<5>(B, S, ng, G, a, ldq, d, ldd, z, ldz, c, ldy, lanes, acc); break;
        case 4: tile<4>(B, S, ng, G, a, ldq, d, ldd, z, ldz, c, ldy, lanes, acc); break;
        case 3: tile<3>(B, S, ng, G, a, ldq, d, ldd, z, ldz, c, ldy, lanes, acc); break;
        case 2: tile<2>(B, S, ng, G, a, ldq, d, ldd, z, ldz, c, ldy, lanes, acc); break;
        default: tile<1>(B, S, ng, G, a, ldq, d, ldd, z, ldz, c, ldy, lanes, acc); break;
      }
    }
  }
}

}  // namespace

void register_gemm_q8_avx512vnni(KernelTable& t) {
  t.gemm_q8[(int)WeightType::Q4] = gemm_q4_q8_avx512vnni;
  t.gemm_q8_name = "16x8 avx512vnni";
}

}  // namespace ie
