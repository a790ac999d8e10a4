// Scalar reference of the packed GEMM's pieces: the same panels and the same per-element order
// of operations as the SIMD micro-kernels (a sum over each K block, then added to C).
#include "cpu/kernel_table.h"

namespace ie {
namespace {

constexpr int kMr = 4, kNr = 8, kKc = 256;

template <int ROWS>
void gemm_micro_ref(const float* A, const float* B, int kc, float* C, ptrdiff_t ldc, int n, bool acc) {
  for (int i = 0; i < ROWS; i++)
    for (int j = 0; j < n; j++) {
      float s = 0.f;
      for (int k = 0; k < kc; k++) s += A[k * kMr + i] * B[k * kNr + j];
      C[i * ldc + j] = acc ? C[i * ldc + j] + s : s;
    }
}

void gemm_pack_rows_ref(const float* src, ptrdiff_t ld, int rows, int kc, float* dst) {
  for (int k = 0; k < kc; k++)
    for (int r = 0; r < kNr; r++) dst[k * kNr + r] = r < rows ? src[r * ld + k] : 0.0f;
}

void gemm_pack_tokens_ref(const float* X, ptrdiff_t ldx, int rows, int kc, float* dst) {
  for (int k = 0; k < kc; k++)
    for (int i = 0; i < kMr; i++) dst[k * kMr + i] = i < rows ? X[i * ldx + k] : 0.0f;
}

}  // namespace

void register_gemm_ref(KernelTable& t) {
  t.gemm.name = "4x8 scalar";
  t.gemm.mr = kMr;
  t.gemm.nr = kNr;
  t.gemm.kc = kKc;
  t.gemm.micro[0] = gemm_micro_ref<1>;
  t.gemm.micro[1] = gemm_micro_ref<2>;
  t.gemm.micro[2] = gemm_micro_ref<3>;
  t.gemm.micro[3] = gemm_micro_ref<4>;
  t.gemm.pack_rows = gemm_pack_rows_ref;
  t.gemm.pack_tokens = gemm_pack_tokens_ref;
}

}  // namespace ie
