// The prefill GEMM's inner pieces, written once over a vector trait (cpu/vec.h) and instantiated
// per ISA: a register-blocked micro-kernel over packed panels, and the packer that turns
// dequantized weight rows into a panel. The driver (matmul/matmul.cc) owns blocking and threads.
//
// Y[m][n] = sum_k X[m][k] W[n][k]. The activations are packed once per call into panels of MR
// tokens, k-major ([kc][MR]); the weights, dequantized once per (NR rows, kc columns) block and
// packed k-major ([kc][NR]), are reused by every token panel. Each step of the micro-kernel
// loads NR weights (NV vectors), broadcasts MR activations and issues MR * NV FMAs into
// accumulators that stay in registers for the whole kc block.
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <utility>

#include "cpu/fp16.h"
#include "cpu/kernel_table.h"
#include "cpu/vec.h"

namespace ie {
namespace {

// C[i][0..n) (+)= sum_{k < kc} A[k][i] * B[k][0..n), i < ROWS (ROWS <= MR: the last token panel).
// Every element sees the same sequence of operations whatever ROWS is, so results do not
// depend on how tokens or rows fall into panels.
// The prefetches go one every few k steps: the driver issuing a whole weight block's lines at once
// (512 for 32 rows of 256 floats) filled the core's miss queue, and the next block's copy then
// waited on memory (18% of a 2048 x 2048 FP32 prefill's samples, Zen 5).
template <class V, int MR, int NV, int ROWS>
void gemm_micro(const float* __restrict A, const float* __restrict B, int kc, float* __restrict C, ptrdiff_t ldc, int n, bool acc, GemmPrefetch pf) {
  constexpr int NR = NV * V::lanes;
  // Every loop over the register block is unrolled explicitly: GCC otherwise keeps the
  // accumulator array in memory, storing all of it on every k step.
  typename V::reg c[ROWS][NV];
  IE_UNROLL for (int i = 0; i < ROWS; i++) IE_UNROLL for (int j = 0; j < NV; j++) c[i][j] = V::zero();
  const auto step = [&](int k) __attribute__((always_inline)) {
    typename V::reg b[NV];
    IE_UNROLL for (int j = 0; j < NV; j++) b[j] = V::load(B + k * NR + j * V::lanes);
    IE_UNROLL for (int i = 0; i < ROWS; i++) {
      const typename V::reg a = V::broadcast(A + k * MR + i);
      IE_UNROLL for (int j = 0; j < NV; j++) c[i][j] = V::fmadd(a, b[j], c[i][j]);
    }
  };
  int k = 0;
  if (pf.n > 0) {
    const int every = std::max(1, kc / pf.n);
    int l = 0;
    for (; l < pf.n && k + every <= kc; l++) {
      _mm_prefetch(reinterpret_cast<const char*>(pf.lines[l]), _MM_HINT_T1);
      for (int s = 0; s < every; s++, k++) step(k);
    }
    for (; l < pf.n; l++) _mm_prefetch(reinterpret_cast<const char*>(pf.lines[l]), _MM_HINT_T1);
  }
  for (; k < kc; k++) step(k);
  if (n == NR) {
    IE_UNROLL for (int i = 0; i < ROWS; i++) IE_UNROLL for (int j = 0; j < NV; j++) {
      float* p = C + i * ldc + j * V::lanes;
      V::store(p, acc ? V::add(V::load(p), c[i][j]) : c[i][j]);
    }
    return;
  }
  // A partial panel (the last rows of a matrix): through a staging tile.
  alignas(64) float tile[ROWS][NR];
  IE_UNROLL for (int i = 0; i < ROWS; i++) IE_UNROLL for (int j = 0; j < NV; j++) V::store(&tile[i][j * V::lanes], c[i][j]);
  for (int i = 0; i < ROWS; i++)
    for (int j = 0; j < n; j++) C[i * ldc + j] = acc ? C[i * ldc + j] + tile[i][j] : tile[i][j];
}

template <class V, int MR, int NV, size_t... I>
constexpr std::array<GemmMicroFn, MR> gemm_micro_table(std::index_sequence<I...>) {
  return {gemm_micro<V, MR, NV, (int)I + 1>...};
}

// 8x8 transpose of rows v[0..8) (AVX, usable from every x86 SIMD translation unit).
inline void transpose8x8(__m256* v) {
  const __m256 t0 = _mm256_unpacklo_ps(v[0], v[1]), t1 = _mm256_unpackhi_ps(v[0], v[1]);
  const __m256 t2 = _mm256_unpacklo_ps(v[2], v[3]), t3 = _mm256_unpackhi_ps(v[2], v[3]);
  const __m256 t4 = _mm256_unpacklo_ps(v[4], v[5]), t5 = _mm256_unpackhi_ps(v[4], v[5]);
  const __m256 t6 = _mm256_unpacklo_ps(v[6], v[7]), t7 = _mm256_unpackhi_ps(v[6], v[7]);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xee);
  const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xee);
  const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xee);
  const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xee);
  v[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
  v[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  v[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
  v[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  v[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
  v[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  v[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
  v[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

// How a packed panel reads its source rows: eight elements widened to floats, or one. f16 and bf16
// rows pack straight from the matrix, each 8 x 8 tile converted as it is loaded: one pass over the
// block instead of a conversion into scratch rows and a second pass to pack them (7.7% + 4% of a
// BF16 2048 x 2048 prefill's samples on Zen 5). The conversions are exact.
struct PackF32 {
  using T = float;
  static __m256 eight(const float* p) { return _mm256_loadu_ps(p); }
  static float one(float v) { return v; }
};
template <bool Bf16>
struct PackHalf {
  using T = uint16_t;
  static __m256 eight(const uint16_t* p) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return Bf16 ? _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)) : _mm256_cvtph_ps(h);
  }
  static float one(uint16_t h) { return Bf16 ? bf16_to_f32(h) : f16_to_f32(h); }
};

// dst[k][0..NR) = src[0..rows)[k] for k < kc, zero for rows >= `rows`: a weight panel from rows
// of floats (dequantized, or the matrix's own) or of f16 / bf16 (src row r at src + r * ld).
template <int NR, class Src>
void gemm_pack_rows(const typename Src::T* src, ptrdiff_t ld, int rows, int kc, float* dst) {
  for (int r0 = 0; r0 < NR; r0 += 8) {
    int k0 = 0;
    for (; k0 + 8 <= kc; k0 += 8) {
      __m256 v[8];
      for (int i = 0; i < 8; i++) v[i] = r0 + i < rows ? Src::eight(src + (r0 + i) * ld + k0) : _mm256_setzero_ps();
      transpose8x8(v);
      for (int i = 0; i < 8; i++) _mm256_storeu_ps(dst + (k0 + i) * NR + r0, v[i]);
    }
    for (; k0 < kc; k0++)
      for (int i = 0; i < 8; i++) dst[k0 * NR + r0 + i] = r0 + i < rows ? Src::one(src[(r0 + i) * ld + k0]) : 0.0f;
  }
}

// dst[k][0..MR) = X[i][k] for i < rows, zero past them: a token panel, eight rows and eight k at a
// time through an 8x8 transpose (masked stores where the panel is narrower than 8).
template <int MR>
void gemm_pack_tokens(const float* X, ptrdiff_t ldx, int rows, int kc, float* dst) {
  for (int i0 = 0; i0 < MR; i0 += 8) {
    const int w = std::min(8, MR - i0);
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(w), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    int k0 = 0;
    for (; k0 + 8 <= kc; k0 += 8) {
      __m256 v[8];
      for (int i = 0; i < 8; i++) v[i] = i0 + i < rows ? _mm256_loadu_ps(X + (i0 + i) * ldx + k0) : _mm256_setzero_ps();
      transpose8x8(v);
      for (int j = 0; j < 8; j++) {
        if (w == 8) _mm256_storeu_ps(dst + (k0 + j) * MR + i0, v[j]);
        else _mm256_maskstore_ps(dst + (k0 + j) * MR + i0, mask, v[j]);
      }
    }
    for (; k0 < kc; k0++)
      for (int i = 0; i < w; i++) dst[k0 * MR + i0 + i] = i0 + i < rows ? X[(i0 + i) * ldx + k0] : 0.0f;
  }
}

template <class V, int MR, int NV, int KC>
void register_gemm_packed(KernelTable& t, const char* name) {
  constexpr int NR = NV * V::lanes;
  static_assert(MR <= kGemmMaxMr, "micro-kernel taller than the dispatch table allows");
  t.gemm.name = name;
  t.gemm.mr = MR;
  t.gemm.nr = NR;
  t.gemm.kc = KC;
  const auto table = gemm_micro_table<V, MR, NV>(std::make_index_sequence<MR>{});
  for (int i = 0; i < MR; i++) t.gemm.micro[i] = table[i];
  t.gemm.pack_rows = gemm_pack_rows<NR, PackF32>;
  t.gemm.pack_tokens = gemm_pack_tokens<MR>;
  t.gemm.pack_f16 = gemm_pack_rows<NR, PackHalf<false>>;
  t.gemm.pack_bf16 = gemm_pack_rows<NR, PackHalf<true>>;
}

}  // namespace
}  // namespace ie
