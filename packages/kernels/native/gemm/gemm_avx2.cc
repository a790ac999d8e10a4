// AVX2 GEMM for f32 weight rows: 4x3 blocks of (rows x tokens), 8-lane accumulators along K.
#include <algorithm>

#include "cpu/avx2_common.h"
#include "cpu/kernels.h"

namespace ie {
namespace {
using namespace avx2;

template <int NR, int MR>
inline void block(const float* w, ptrdiff_t ldw, const float* X, ptrdiff_t ldx, int K, float* Y, ptrdiff_t ldy, bool acc) {
  __m256 a[NR][MR];
  for (int r = 0; r < NR; r++)
    for (int m = 0; m < MR; m++) a[r][m] = _mm256_setzero_ps();
  for (int k = 0; k < K; k += 8) {
    const int n = std::min(8, K - k);
    __m256 xv[MR];
    for (int m = 0; m < MR; m++) xv[m] = load_f32(X + m * ldx + k, n);
    for (int r = 0; r < NR; r++) {
      const __m256 wv = load_f32(w + r * ldw + k, n);
      for (int m = 0; m < MR; m++) a[r][m] = _mm256_fmadd_ps(wv, xv[m], a[r][m]);
    }
  }
  for (int r = 0; r < NR; r++)
    for (int m = 0; m < MR; m++) {
      const float v = hsum(a[r][m]);
      float& out = Y[m * ldy + r];
      out = acc ? out + v : v;
    }
}

template <int NR>
inline void rows_all_tokens(const float* w, ptrdiff_t ldw, const float* X, ptrdiff_t ldx, int M, int K, float* Y, ptrdiff_t ldy, bool acc) {
  int m = 0;
  for (; m + 3 <= M; m += 3) block<NR, 3>(w, ldw, X + m * ldx, ldx, K, Y + m * ldy, ldy, acc);
  for (; m < M; m++) block<NR, 1>(w, ldw, X + m * ldx, ldx, K, Y + m * ldy, ldy, acc);
}

void gemm_f32(const float* w, ptrdiff_t ldw, int rows, const float* X, ptrdiff_t ldx, int M, int K, float* Y, ptrdiff_t ldy, bool acc) {
  int r = 0;
  for (; r + 4 <= rows; r += 4) rows_all_tokens<4>(w + r * ldw, ldw, X, ldx, M, K, Y + r, ldy, acc);
  for (; r < rows; r++) rows_all_tokens<1>(w + r * ldw, ldw, X, ldx, M, K, Y + r, ldy, acc);
}

}  // namespace

void register_gemm_avx2(KernelTable& t) { t.gemm_f32 = gemm_f32; }

}  // namespace ie
