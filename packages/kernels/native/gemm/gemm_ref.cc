// Scalar reference of the packed GEMM's pieces: the same panels and the same per-element order
// of operations as the SIMD micro-kernels (a sum over each K block, then added to C).
#include "cpu/kernel_table.h"
#include "gemv/blocks.h"
#include "gemv/weights.h"

namespace ie {
namespace {

constexpr int kMr = 4, kNr = 8, kKc = 256;

template <int ROWS>
void gemm_micro_ref(const float* A, const float* B, int kc, float* C, ptrdiff_t ldc, int n, bool acc, GemmPrefetch) {
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

// The int8-activation GEMM (symmetric q4): per token and group, the integer sum of codes times x
// codes plus the zero point's term, then scaled by s_w * d_x and added in f32, as the SIMD kernels do.
void gemm_q4_q8_ref(const WeightRows& w, int rows, const int8_t* xq, ptrdiff_t ldq, const float* xd, ptrdiff_t ldd, const int32_t* xz, ptrdiff_t ldz, int M, float* y,
                    ptrdiff_t ldy, bool acc, uint8_t*) {
  const int G = w.group, ng = (w.K + G - 1) / G;
  for (int m = 0; m < M; m++)
    for (int r = 0; r < rows; r++) {
      float f = 0.f;
      for (int g = 0; g < ng; g++) {
        int32_t s = xz[m * ldz + g];
        const uint8_t* grp = w.q + r * w.q_ld + g * (G / 2);
        for (int j = 0; j < G; j++) s += q4_code(grp, G, j) * xq[m * ldq + g * G + j];
        f += (float)s * (row_scale(w, r, g) * xd[m * ldd + g * G / kQ8Block]);
      }
      float& out = y[m * ldy + r];
      out = acc ? out + f : f;
    }
}

// i8 weights: per token and block of 32 (x's quantization block), the integer sum of (code + 128)
// times x codes plus the zero point's term (xz: -128 times the block's x codes), then scaled by the
// row's scale of the group holding the block times d_x and added in f32, as the SIMD kernels do.
void gemm_i8_q8_ref(const WeightRows& w, int rows, const int8_t* xq, ptrdiff_t ldq, const float* xd, ptrdiff_t ldd, const int32_t* xz, ptrdiff_t ldz, int M, float* y,
                    ptrdiff_t ldy, bool acc, uint8_t*) {
  const int nb = (w.K + kQ8Block - 1) / kQ8Block;
  for (int m = 0; m < M; m++)
    for (int r = 0; r < rows; r++) {
      const int8_t* row = reinterpret_cast<const int8_t*>(w.q + r * w.q_ld);
      float f = 0.f;
      for (int b = 0; b < nb; b++) {
        int32_t s = xz[m * ldz + b];
        for (int j = b * kQ8Block; j < (b + 1) * kQ8Block; j++) s += (row[j] + 128) * xq[m * ldq + j];
        f += (float)s * (row_scale(w, r, w.group > 0 ? b * kQ8Block / w.group : 0) * xd[m * ldd + b]);
      }
      float& out = y[m * ldy + r];
      out = acc ? out + f : f;
    }
}

// iq4_nl / mxfp4 (Block) in blocks of 32: each block's levels plus 128 times x codes plus the zero
// point's term (xz), then scaled by the block's scale times d_x and added in f32, as the SIMD kernels
// do once the levels are decoded.
template <class Block>
void gemm_lut4_q8_ref(const WeightRows& w, int rows, const int8_t* xq, ptrdiff_t ldq, const float* xd, ptrdiff_t ldd, const int32_t* xz, ptrdiff_t ldz, int M,
                      float* y, ptrdiff_t ldy, bool acc, uint8_t*) {
  const int nb = w.K / kQ8Block;
  for (int m = 0; m < M; m++)
    for (int r = 0; r < rows; r++) {
      float f = 0.f;
      for (int b = 0; b < nb; b++) {
        const uint8_t* blk = w.q + r * w.q_ld + (ptrdiff_t)b * Block::kBytes;
        const int8_t* x = xq + m * ldq + b * kQ8Block;
        int32_t s = xz[m * ldz + b];
        for (int j = 0; j < 16; j++) {
          s += (Block::table()[blk[Block::kQs + j] & 15] + 128) * x[j];
          s += (Block::table()[blk[Block::kQs + j] >> 4] + 128) * x[j + 16];
        }
        f += (float)s * (Block::scale(blk) * xd[m * ldd + b]);
      }
      float& out = y[m * ldy + r];
      out = acc ? out + f : f;
    }
}

}  // namespace

void register_gemm_ref(KernelTable& t) {
  t.gemm_q8[(int)WeightType::Q4] = gemm_q4_q8_ref;
  t.gemm_q8[(int)WeightType::I8] = gemm_i8_q8_ref;
  t.gemm_q8[(int)WeightType::IQ4_NL] = gemm_lut4_q8_ref<Iq4NlBlock>;
  t.gemm_q8[(int)WeightType::MXFP4] = gemm_lut4_q8_ref<Mxfp4Block>;
  t.gemm_q8_name = "scalar";
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
