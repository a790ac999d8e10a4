// AVX-512 GEMM for f32 weight rows: Y[m][r] = sum_k W[r][k] X[m][k]. A 4x4 block of
// (rows x tokens) keeps 16 accumulators along K; every output uses the same per-output
// instruction sequence whatever block it falls in, so results do not depend on the split.
#include <algorithm>

#include "cpu/avx512_common.h"
#include "cpu/kernels.h"

namespace ie {
namespace {
using namespace avx512;

template <int NR, int MR>
inline void block(const float* w, ptrdiff_t ldw, const float* X, ptrdiff_t ldx, int K, float* Y, ptrdiff_t ldy, bool acc) {
  __m512 a[NR][MR];
  for (int r = 0; r < NR; r++)
    for (int m = 0; m < MR; m++) a[r][m] = _mm512_setzero_ps();
  for (int k = 0; k < K; k += 16) {
    const int n = std::min(16, K - k);
    __m512 xv[MR];
    for (int m = 0; m < MR; m++) xv[m] = load_f32(X + m * ldx + k, n);
    for (int r = 0; r < NR; r++) {
      const __m512 wv = load_f32(w + r * ldw + k, n);
      for (int m = 0; m < MR; m++) a[r][m] = _mm512_fmadd_ps(wv, xv[m], a[r][m]);
    }
  }
  for (int r = 0; r < NR; r++)
    for (int m = 0; m < MR; m++) {
      const float v = _mm512_reduce_add_ps(a[r][m]);
      float& out = Y[m * ldy + r];
      out = acc ? out + v : v;
    }
}

template <int NR>
inline void rows_all_tokens(const float* w, ptrdiff_t ldw, const float* X, ptrdiff_t ldx, int M, int K, float* Y, ptrdiff_t ldy, bool acc) {
  int m = 0;
  for (; m + 4 <= M; m += 4) block<NR, 4>(w, ldw, X + m * ldx, ldx, K, Y + m * ldy, ldy, acc);
  for (; m < M; m++) block<NR, 1>(w, ldw, X + m * ldx, ldx, K, Y + m * ldy, ldy, acc);
}

void gemm_f32(const float* w, ptrdiff_t ldw, int rows, const float* X, ptrdiff_t ldx, int M, int K, float* Y, ptrdiff_t ldy, bool acc) {
  int r = 0;
  for (; r + 4 <= rows; r += 4) rows_all_tokens<4>(w + r * ldw, ldw, X, ldx, M, K, Y + r, ldy, acc);
  for (; r < rows; r++) rows_all_tokens<1>(w + r * ldw, ldw, X, ldx, M, K, Y + r, ldy, acc);
}

}  // namespace

void register_gemm_avx512(KernelTable& t) { t.gemm_f32 = gemm_f32; }

}  // namespace ie
