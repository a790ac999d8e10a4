// AVX2+FMA+F16C GEMV: the AVX-512 structure with 8-lane vectors.
#include <algorithm>

#include "cpu/avx2_common.h"
#include "cpu/kernels.h"

namespace ie {
namespace {
using namespace avx2;

template <int NR, typename Load>
inline void rows_float(const WeightRows& w, const float* x, float* y, bool acc, int esize, Load load) {
  __m256 s0[NR], s1[NR];
  for (int r = 0; r < NR; r++) s0[r] = s1[r] = _mm256_setzero_ps();
  const int K = w.K;
  int k = 0;
  for (; k + 16 <= K; k += 16) {
    const __m256 x0 = _mm256_loadu_ps(x + k), x1 = _mm256_loadu_ps(x + k + 8);
    for (int r = 0; r < NR; r++) {
      const uint8_t* row = w.q + r * w.q_ld + (ptrdiff_t)k * esize;
      s0[r] = _mm256_fmadd_ps(load(row, 8), x0, s0[r]);
      s1[r] = _mm256_fmadd_ps(load(row + 8 * esize, 8), x1, s1[r]);
    }
  }
  for (; k < K; k += 8) {
    const int n = std::min(8, K - k);
    const __m256 x0 = load_f32(x + k, n);
    for (int r = 0; r < NR; r++) s0[r] = _mm256_fmadd_ps(load(w.q + r * w.q_ld + (ptrdiff_t)k * esize, n), x0, s0[r]);
  }
  for (int r = 0; r < NR; r++) {
    const float v = hsum(_mm256_add_ps(s0[r], s1[r]));
    y[r] = acc ? y[r] + v : v;
  }
}

inline __m256 ld32(const uint8_t* p, int n) { return load_f32(reinterpret_cast<const float*>(p), n); }

template <typename Load>
void gemv_float(const WeightRows& w, const float* x, float* y, int rows, bool acc, int esize, Load load) {
  int r = 0;
  for (; r + 4 <= rows; r += 4) rows_float<4>(w.from_row(r), x, y + r, acc, esize, load);
  for (; r < rows; r++) rows_float<1>(w.from_row(r), x, y + r, acc, esize, load);
}

void gemv_f32(const WeightRows& w, const float* x, float* y, int rows, bool acc) { gemv_float(w, x, y, rows, acc, 4, ld32); }
void gemv_f16(const WeightRows& w, const float* x, float* y, int rows, bool acc) { gemv_float(w, x, y, rows, acc, 2, load_f16); }
void gemv_bf16(const WeightRows& w, const float* x, float* y, int rows, bool acc) { gemv_float(w, x, y, rows, acc, 2, load_bf16); }

inline __m256 i8x8(const int8_t* p, int n) {
  __m128i b;
  if (n >= 8) {
    b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
  } else {
    b = load_bytes(p, n);
  }
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b));
}

template <int NR>
inline void rows_i8(const WeightRows& w, const float* x, float* y, bool acc) {
  const int K = w.K, G = w.group > 0 ? w.group : K, ng = w.group > 0 ? (K + G - 1) / G : 1;
  const int sb = scale_bytes(w.stype);
  __m256 total[NR];
  for (int r = 0; r < NR; r++) total[r] = _mm256_setzero_ps();
  for (int g = 0; g < ng; g++) {
    const int k0 = g * G, n = std::min(G, K - k0);
    __m256 part[NR];
    for (int r = 0; r < NR; r++) part[r] = _mm256_setzero_ps();
    for (int j = 0; j < n; j += 8) {
      const int m = std::min(8, n - j);
      const __m256 xv = load_f32(x + k0 + j, m);
      for (int r = 0; r < NR; r++) part[r] = _mm256_fmadd_ps(i8x8(reinterpret_cast<const int8_t*>(w.q + r * w.q_ld) + k0 + j, m), xv, part[r]);
    }
    for (int r = 0; r < NR; r++) total[r] = _mm256_fmadd_ps(part[r], _mm256_set1_ps(scale_at(w.s + r * w.s_ld + g * sb, w.stype)), total[r]);
  }
  for (int r = 0; r < NR; r++) {
    const float v = hsum(total[r]);
    y[r] = acc ? y[r] + v : v;
  }
}

void gemv_i8(const WeightRows& w, const float* x, float* y, int rows, bool acc) {
  int r = 0;
  for (; r + 4 <= rows; r += 4) rows_i8<4>(w.from_row(r), x, y + r, acc);
  for (; r < rows; r++) rows_i8<1>(w.from_row(r), x, y + r, acc);
}

template <int NR, int G>
inline void rows_q4(const WeightRows& w, const float* x, float* y, bool acc) {
  constexpr int half = G / 2;
  const int K = w.K, ng = (K + G - 1) / G;
  const int sb = scale_bytes(w.stype);
  const __m128i low4 = _mm_set1_epi8(0x0f);
  __m256 total[NR];
  for (int r = 0; r < NR; r++) total[r] = _mm256_setzero_ps();
  for (int g = 0; g < ng; g++) {
    const int k0 = g * G, n = std::min(G, K - k0);
    __m128i zero[NR];
    for (int r = 0; r < NR; r++) zero[r] = _mm_set1_epi8((char)(w.z ? w.z[r * w.z_ld + g] : kQ4SymmetricZero));
    __m256 part[NR];
    for (int r = 0; r < NR; r++) part[r] = _mm256_setzero_ps();
    for (int c = 0; c < half; c += 16) {
      __m256 xv[4];
      const int nl = n - c, nh = n - half - c;
      xv[0] = load_f32(x + k0 + c, std::clamp(nl, 0, 8));
      xv[1] = nl > 8 ? load_f32(x + k0 + c + 8, std::clamp(nl - 8, 0, 8)) : _mm256_setzero_ps();
      xv[2] = nh > 0 ? load_f32(x + k0 + half + c, std::clamp(nh, 0, 8)) : _mm256_setzero_ps();
      xv[3] = nh > 8 ? load_f32(x + k0 + half + c + 8, std::clamp(nh - 8, 0, 8)) : _mm256_setzero_ps();
      for (int r = 0; r < NR; r++) {
        const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w.q + r * w.q_ld + g * half + c));
        const __m128i lo = _mm_sub_epi8(_mm_and_si128(b, low4), zero[r]);
        const __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(b, 4), low4), zero[r]);
        part[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo)), xv[0], part[r]);
        part[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8))), xv[1], part[r]);
        part[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi)), xv[2], part[r]);
        part[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8))), xv[3], part[r]);
      }
    }
    for (int r = 0; r < NR; r++) total[r] = _mm256_fmadd_ps(part[r], _mm256_set1_ps(scale_at(w.s + r * w.s_ld + g * sb, w.stype)), total[r]);
  }
  for (int r = 0; r < NR; r++) {
    const float v = hsum(total[r]);
    y[r] = acc ? y[r] + v : v;
  }
}

template <int G>
void gemv_q4_g(const WeightRows& w, const float* x, float* y, int rows, bool acc) {
  int r = 0;
  for (; r + 4 <= rows; r += 4) rows_q4<4, G>(w.from_row(r), x, y + r, acc);
  for (; r < rows; r++) rows_q4<1, G>(w.from_row(r), x, y + r, acc);
}

void gemv_q4(const WeightRows& w, const float* x, float* y, int rows, bool acc) {
  switch (w.group) {
    case 32: return gemv_q4_g<32>(w, x, y, rows, acc);
    case 64: return gemv_q4_g<64>(w, x, y, rows, acc);
    default: return gemv_q4_g<128>(w, x, y, rows, acc);
  }
}

void dequant_f16(const WeightRows& w, int rows, float* out, ptrdiff_t ld) {
  for (int r = 0; r < rows; r++)
    for (int k = 0; k < w.K; k += 8) {
      const int n = std::min(8, w.K - k);
      store_f32(out + r * ld + k, load_f16(w.q + r * w.q_ld + 2 * k, n), n);
    }
}

void dequant_bf16(const WeightRows& w, int rows, float* out, ptrdiff_t ld) {
  for (int r = 0; r < rows; r++)
    for (int k = 0; k < w.K; k += 8) {
      const int n = std::min(8, w.K - k);
      store_f32(out + r * ld + k, load_bf16(w.q + r * w.q_ld + 2 * k, n), n);
    }
}

template <typename Load>
void gemv_t(const uint8_t* wt, ptrdiff_t ld, const float* x, int K, float* y, int ncols, bool acc, int esize, Load load) {
  for (int n0 = 0; n0 < ncols; n0 += 32) {
    const int nn = std::min(32, ncols - n0);
    __m256 a[4];
    for (int i = 0; i < 4; i++) a[i] = acc ? load_f32(y + n0 + 8 * i, std::clamp(nn - 8 * i, 0, 8)) : _mm256_setzero_ps();
    for (int k = 0; k < K; k++) {
      const __m256 xk = _mm256_set1_ps(x[k]);
      const uint8_t* row = wt + k * ld + (ptrdiff_t)n0 * esize;
      for (int i = 0; i < 4; i++) {
        const int m = std::clamp(nn - 8 * i, 0, 8);
        if (m) a[i] = _mm256_fmadd_ps(xk, load(row + 8 * i * esize, m), a[i]);
      }
    }
    for (int i = 0; i < 4; i++) {
      const int m = std::clamp(nn - 8 * i, 0, 8);
      if (m) store_f32(y + n0 + 8 * i, a[i], m);
    }
  }
}
void gemv_t_f32(const uint8_t* wt, ptrdiff_t ld, const float* x, int K, float* y, int n, bool acc) { gemv_t(wt, ld, x, K, y, n, acc, 4, ld32); }
void gemv_t_f16(const uint8_t* wt, ptrdiff_t ld, const float* x, int K, float* y, int n, bool acc) { gemv_t(wt, ld, x, K, y, n, acc, 2, load_f16); }
void gemv_t_bf16(const uint8_t* wt, ptrdiff_t ld, const float* x, int K, float* y, int n, bool acc) { gemv_t(wt, ld, x, K, y, n, acc, 2, load_bf16); }

}  // namespace

void register_gemv_avx2(KernelTable& t) {
  t.gemv[(int)WeightType::F32] = gemv_f32;
  t.gemv[(int)WeightType::F16] = gemv_f16;
  t.gemv[(int)WeightType::BF16] = gemv_bf16;
  t.gemv[(int)WeightType::I8] = gemv_i8;
  t.gemv[(int)WeightType::Q4] = gemv_q4;
  t.dequant[(int)WeightType::F16] = dequant_f16;
  t.dequant[(int)WeightType::BF16] = dequant_bf16;
  t.gemv_t[0] = gemv_t_f32;
  t.gemv_t[1] = gemv_t_f16;
  t.gemv_t[2] = gemv_t_bf16;
}

}  // namespace ie
