// Scalar reference GEMM for f32 weights (quantized weights are dequantized into f32 row
// blocks by the driver first).
#include "cpu/kernels.h"

namespace ie {
namespace {

void gemm_f32_ref(const float* w, ptrdiff_t ldw, int rows, const float* X, ptrdiff_t ldx, int M, int K, float* Y, ptrdiff_t ldy, bool acc) {
  for (int m = 0; m < M; m++) {
    for (int r = 0; r < rows; r++) {
      float sum = 0.f;
      for (int k = 0; k < K; k++) sum += w[r * ldw + k] * X[m * ldx + k];
      Y[m * ldy + r] = acc ? Y[m * ldy + r] + sum : sum;
    }
  }
}

}  // namespace

void register_gemm_ref(KernelTable& t) { t.gemm_f32 = gemm_f32_ref; }

}  // namespace ie
