// AVX-512 GEMV: y = W x with FP32 activations, dequantization fused into the inner loop.
// Rows are processed four at a time so each activation load serves four weight streams;
// a leftover row runs the same per-row instruction sequence, so every y[r] is bit-identical
// however rows are split between threads.
#include <algorithm>

#include "cpu/avx512_common.h"
#include "cpu/kernels.h"

namespace ie {
namespace {
using namespace avx512;

// ---- f32 / f16 / bf16: two accumulators per row, 32 elements per step.
template <int NR, typename Load>
inline void rows_float(const WeightRows& w, const float* x, float* y, bool acc, int esize, Load load) {
  __m512 s0[NR], s1[NR];
  for (int r = 0; r < NR; r++) s0[r] = s1[r] = _mm512_setzero_ps();
  const int K = w.K;
  int k = 0;
  for (; k + 32 <= K; k += 32) {
    const __m512 x0 = _mm512_loadu_ps(x + k), x1 = _mm512_loadu_ps(x + k + 16);
    for (int r = 0; r < NR; r++) {
      const uint8_t* row = w.q + r * w.q_ld + (ptrdiff_t)k * esize;
      s0[r] = _mm512_fmadd_ps(load(row, 16), x0, s0[r]);
      s1[r] = _mm512_fmadd_ps(load(row + 16 * esize, 16), x1, s1[r]);
    }
  }
  for (; k < K; k += 16) {
    const int n = std::min(16, K - k);
    const __m512 x0 = load_f32(x + k, n);
    for (int r = 0; r < NR; r++) s0[r] = _mm512_fmadd_ps(load(w.q + r * w.q_ld + (ptrdiff_t)k * esize, n), x0, s0[r]);
  }
  for (int r = 0; r < NR; r++) {
    const float v = _mm512_reduce_add_ps(_mm512_add_ps(s0[r], s1[r]));
    y[r] = acc ? y[r] + v : v;
  }
}

inline __m512 ld32(const uint8_t* p, int n) { return load_f32(reinterpret_cast<const float*>(p), n); }

template <typename Load>
void gemv_float(const WeightRows& w, const float* x, float* y, int rows, bool acc, int esize, Load load) {
  int r = 0;
  for (; r + 4 <= rows; r += 4) {
    WeightRows v = w;
    v.q = w.q + r * w.q_ld;
    rows_float<4>(v, x, y + r, acc, esize, load);
  }
  for (; r < rows; r++) {
    WeightRows v = w;
    v.q = w.q + r * w.q_ld;
    rows_float<1>(v, x, y + r, acc, esize, load);
  }
}

void gemv_f32(const WeightRows& w, const float* x, float* y, int rows, bool acc) { gemv_float(w, x, y, rows, acc, 4, ld32); }
void gemv_f16(const WeightRows& w, const float* x, float* y, int rows, bool acc) { gemv_float(w, x, y, rows, acc, 2, load_f16); }
void gemv_bf16(const WeightRows& w, const float* x, float* y, int rows, bool acc) { gemv_float(w, x, y, rows, acc, 2, load_bf16); }

// ---- i8: per-group (or per-row) partial sums, scaled once per group.
inline __m512 i8x16(const int8_t* p, int n) {
  const __m128i b = n >= 16 ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)) : _mm_maskz_loadu_epi8(tail_mask(n), p);
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(b));
}

template <int NR>
inline void rows_i8(const WeightRows& w, const float* x, float* y, bool acc) {
  const int K = w.K, G = w.group > 0 ? w.group : K, ng = w.group > 0 ? (K + G - 1) / G : 1;
  const int sb = scale_bytes(w.stype);
  __m512 total[NR];
  for (int r = 0; r < NR; r++) total[r] = _mm512_setzero_ps();
  for (int g = 0; g < ng; g++) {
    const int k0 = g * G, n = std::min(G, K - k0);
    __m512 part[NR];
    for (int r = 0; r < NR; r++) part[r] = _mm512_setzero_ps();
    for (int j = 0; j < n; j += 16) {
      const int m = std::min(16, n - j);
      const __m512 xv = load_f32(x + k0 + j, m);
      for (int r = 0; r < NR; r++) part[r] = _mm512_fmadd_ps(i8x16(reinterpret_cast<const int8_t*>(w.q + r * w.q_ld) + k0 + j, m), xv, part[r]);
    }
    for (int r = 0; r < NR; r++) total[r] = _mm512_fmadd_ps(part[r], _mm512_set1_ps(scale_at(w.s + r * w.s_ld + g * sb, w.stype)), total[r]);
  }
  for (int r = 0; r < NR; r++) {
    const float v = _mm512_reduce_add_ps(total[r]);
    y[r] = acc ? y[r] + v : v;
  }
}

// ---- q4: 16 bytes hold 32 codes: the low nibbles are elements j.., the high nibbles j + G/2..
// Codes become signed bytes (code - zero) before widening, so no cancellation creeps in.
template <int NR, int G>
inline void rows_q4(const WeightRows& w, const float* x, float* y, bool acc) {
  constexpr int half = G / 2;
  const int K = w.K, ng = (K + G - 1) / G;
  const int sb = scale_bytes(w.stype);
  const __m128i low4 = _mm_set1_epi8(0x0f);
  __m512 total[NR];
  for (int r = 0; r < NR; r++) total[r] = _mm512_setzero_ps();
  for (int g = 0; g < ng; g++) {
    const int k0 = g * G, n = std::min(G, K - k0);
    __m128i zero[NR];
    for (int r = 0; r < NR; r++) zero[r] = _mm_set1_epi8((char)(w.z ? w.z[r * w.z_ld + g] : kQ4SymmetricZero));
    __m512 part[NR];
    for (int r = 0; r < NR; r++) part[r] = _mm512_setzero_ps();
    for (int c = 0; c < half; c += 16) {
      const int nlo = std::clamp(n - c, 0, 16), nhi = std::clamp(n - half - c, 0, 16);
      const __m512 xlo = load_f32(x + k0 + c, nlo);
      const __m512 xhi = nhi > 0 ? load_f32(x + k0 + half + c, nhi) : _mm512_setzero_ps();
      for (int r = 0; r < NR; r++) {
        const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w.q + r * w.q_ld + g * half + c));
        const __m128i lo = _mm_sub_epi8(_mm_and_si128(b, low4), zero[r]);
        const __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(b, 4), low4), zero[r]);
        part[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(lo)), xlo, part[r]);
        part[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(hi)), xhi, part[r]);
      }
    }
    for (int r = 0; r < NR; r++) total[r] = _mm512_fmadd_ps(part[r], _mm512_set1_ps(scale_at(w.s + r * w.s_ld + g * sb, w.stype)), total[r]);
  }
  for (int r = 0; r < NR; r++) {
    const float v = _mm512_reduce_add_ps(total[r]);
    y[r] = acc ? y[r] + v : v;
  }
}

inline WeightRows offset_rows(const WeightRows& w, int r) {
  WeightRows v = w;
  v.q = w.q + r * w.q_ld;
  v.s = w.s + r * w.s_ld;
  if (w.z) v.z = w.z + r * w.z_ld;
  return v;
}

void gemv_i8(const WeightRows& w, const float* x, float* y, int rows, bool acc) {
  int r = 0;
  for (; r + 4 <= rows; r += 4) rows_i8<4>(offset_rows(w, r), x, y + r, acc);
  for (; r < rows; r++) rows_i8<1>(offset_rows(w, r), x, y + r, acc);
}

template <int G>
void gemv_q4_g(const WeightRows& w, const float* x, float* y, int rows, bool acc) {
  int r = 0;
  for (; r + 4 <= rows; r += 4) rows_q4<4, G>(offset_rows(w, r), x, y + r, acc);
  for (; r < rows; r++) rows_q4<1, G>(offset_rows(w, r), x, y + r, acc);
}

void gemv_q4(const WeightRows& w, const float* x, float* y, int rows, bool acc) {
  switch (w.group) {
    case 32: return gemv_q4_g<32>(w, x, y, rows, acc);
    case 64: return gemv_q4_g<64>(w, x, y, rows, acc);
    default: return gemv_q4_g<128>(w, x, y, rows, acc);
  }
}

// ---- dequantization to f32 rows (GEMM scratch, embedding lookups).
void dequant_f16(const WeightRows& w, int rows, float* out, ptrdiff_t ld) {
  for (int r = 0; r < rows; r++)
    for (int k = 0; k < w.K; k += 16) {
      const int n = std::min(16, w.K - k);
      _mm512_mask_storeu_ps(out + r * ld + k, tail_mask(n), load_f16(w.q + r * w.q_ld + 2 * k, n));
    }
}

void dequant_bf16(const WeightRows& w, int rows, float* out, ptrdiff_t ld) {
  for (int r = 0; r < rows; r++)
    for (int k = 0; k < w.K; k += 16) {
      const int n = std::min(16, w.K - k);
      _mm512_mask_storeu_ps(out + r * ld + k, tail_mask(n), load_bf16(w.q + r * w.q_ld + 2 * k, n));
    }
}

void dequant_q4(const WeightRows& w, int rows, float* out, ptrdiff_t ld) {
  const int G = w.group, half = G / 2, K = w.K, ng = (K + G - 1) / G, sb = scale_bytes(w.stype);
  const __m128i low4 = _mm_set1_epi8(0x0f);
  for (int r = 0; r < rows; r++) {
    for (int g = 0; g < ng; g++) {
      const int k0 = g * G, n = std::min(G, K - k0);
      const __m128i zero = _mm_set1_epi8((char)(w.z ? w.z[r * w.z_ld + g] : kQ4SymmetricZero));
      const __m512 s = _mm512_set1_ps(scale_at(w.s + r * w.s_ld + g * sb, w.stype));
      for (int c = 0; c < half; c += 16) {
        const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w.q + r * w.q_ld + g * half + c));
        const __m128i lo = _mm_sub_epi8(_mm_and_si128(b, low4), zero);
        const __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(b, 4), low4), zero);
        const int nlo = std::clamp(n - c, 0, 16), nhi = std::clamp(n - half - c, 0, 16);
        if (nlo) _mm512_mask_storeu_ps(out + r * ld + k0 + c, tail_mask(nlo), _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(lo)), s));
        if (nhi) _mm512_mask_storeu_ps(out + r * ld + k0 + half + c, tail_mask(nhi), _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(hi)), s));
      }
    }
  }
}

void dequant_i8(const WeightRows& w, int rows, float* out, ptrdiff_t ld) {
  const int K = w.K, G = w.group > 0 ? w.group : K, sb = scale_bytes(w.stype);
  for (int r = 0; r < rows; r++) {
    const int8_t* row = reinterpret_cast<const int8_t*>(w.q + r * w.q_ld);
    for (int k0 = 0, g = 0; k0 < K; k0 += G, g++) {
      const __m512 s = _mm512_set1_ps(scale_at(w.s + r * w.s_ld + g * sb, w.stype));
      const int n = std::min(G, K - k0);
      for (int j = 0; j < n; j += 16) {
        const int m = std::min(16, n - j);
        _mm512_mask_storeu_ps(out + r * ld + k0 + j, tail_mask(m), _mm512_mul_ps(i8x16(row + k0 + j, m), s));
      }
    }
  }
}

// ---- pretransposed: y[n] += x[k] * Wt[k][n], columns in registers.
template <typename Load>
void gemv_t(const uint8_t* wt, ptrdiff_t ld, const float* x, int K, float* y, int ncols, bool acc, int esize, Load load) {
  for (int n0 = 0; n0 < ncols; n0 += 64) {
    const int nn = std::min(64, ncols - n0);
    __m512 a[4];
    for (int i = 0; i < 4; i++) a[i] = acc ? load_f32(y + n0 + 16 * i, std::clamp(nn - 16 * i, 0, 16)) : _mm512_setzero_ps();
    for (int k = 0; k < K; k++) {
      const __m512 xk = _mm512_set1_ps(x[k]);
      const uint8_t* row = wt + k * ld + (ptrdiff_t)n0 * esize;
      for (int i = 0; i < 4; i++) {
        const int m = std::clamp(nn - 16 * i, 0, 16);
        if (m) a[i] = _mm512_fmadd_ps(xk, load(row + 16 * i * esize, m), a[i]);
      }
    }
    for (int i = 0; i < 4; i++) {
      const int m = std::clamp(nn - 16 * i, 0, 16);
      if (m) _mm512_mask_storeu_ps(y + n0 + 16 * i, tail_mask(m), a[i]);
    }
  }
}
void gemv_t_f32(const uint8_t* wt, ptrdiff_t ld, const float* x, int K, float* y, int n, bool acc) { gemv_t(wt, ld, x, K, y, n, acc, 4, ld32); }
void gemv_t_f16(const uint8_t* wt, ptrdiff_t ld, const float* x, int K, float* y, int n, bool acc) { gemv_t(wt, ld, x, K, y, n, acc, 2, load_f16); }
void gemv_t_bf16(const uint8_t* wt, ptrdiff_t ld, const float* x, int K, float* y, int n, bool acc) { gemv_t(wt, ld, x, K, y, n, acc, 2, load_bf16); }

}  // namespace

void register_gemv_avx512(KernelTable& t) {
  t.gemv[(int)WeightType::F32] = gemv_f32;
  t.gemv[(int)WeightType::F16] = gemv_f16;
  t.gemv[(int)WeightType::BF16] = gemv_bf16;
  t.gemv[(int)WeightType::I8] = gemv_i8;
  t.gemv[(int)WeightType::Q4] = gemv_q4;
  t.dequant[(int)WeightType::F16] = dequant_f16;
  t.dequant[(int)WeightType::BF16] = dequant_bf16;
  t.dequant[(int)WeightType::I8] = dequant_i8;
  t.dequant[(int)WeightType::Q4] = dequant_q4;
  t.gemv_t[0] = gemv_t_f32;
  t.gemv_t[1] = gemv_t_f16;
  t.gemv_t[2] = gemv_t_bf16;
}

}  // namespace ie
