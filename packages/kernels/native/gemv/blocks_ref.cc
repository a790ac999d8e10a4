// Scalar reference GEMV (FP32 and int8 activations) and dequantization for the block types
// (q4_k, q5_k, q6_k, iq4_nl). The SIMD variants (blocks_avx2.cc, int8act_blocks_x86.h) keep this
// structure — one dot product per scale, scaled once — so they differ only in float rounding.
#include <algorithm>

#include "cpu/kernel_table.h"
#include "gemv/blocks.h"

namespace ie {
namespace {

// FP32 activations. q4_k / q5_k: per 32-element sub-block, d*sc * sum(q x) - dmin*m * sum(x).
template <bool kFive>
void gemv_k45_ref(const WeightRows& w, const float* x, float* y, int rows, bool acc) {
  const int nb = w.K / kSuperBlock, bb = kFive ? 176 : 144;
  for (int r = 0; r < rows; r++) {
    float total = 0.f;
    for (int i = 0; i < nb; i++) {
      const uint8_t* b = w.q + r * w.q_ld + (ptrdiff_t)i * bb;
      const float d = block_f16(b), dmin = block_f16(b + 2);
      const uint8_t* qs = b + (kFive ? 48 : 16);
      int sc[8], m[8];
      k_scales_mins(b + 4, sc, m);
      const float* xb = x + i * kSuperBlock;
      for (int s = 0; s < 8; s++) {
        float dot = 0.f, xs = 0.f;
        for (int e = 32 * s; e < 32 * s + 32; e++) {
          dot += (float)(k4_code(qs, e) + (kFive ? k5_high(b + 16, e) : 0)) * xb[e];
          xs += xb[e];
        }
        total += d * (float)sc[s] * dot - dmin * (float)m[s] * xs;
      }
    }
    y[r] = acc ? y[r] + total : total;
  }
}

// q6_k: per 16-element group, d*scale * sum((q - 32) x).
void gemv_q6_k_ref(const WeightRows& w, const float* x, float* y, int rows, bool acc) {
  const int nb = w.K / kSuperBlock;
  for (int r = 0; r < rows; r++) {
    float total = 0.f;
    for (int i = 0; i < nb; i++) {
      const uint8_t* b = w.q + r * w.q_ld + (ptrdiff_t)i * 210;
      const float d = block_f16(b + 208);
      const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
      const float* xb = x + i * kSuperBlock;
      for (int g = 0; g < 16; g++) {
        float dot = 0.f;
        for (int e = 16 * g; e < 16 * g + 16; e++) dot += (float)(k6_code(b, e) - 32) * xb[e];
        total += d * (float)sc[g] * dot;
      }
    }
    y[r] = acc ? y[r] + total : total;
  }
}

// iq4_nl and mxfp4: per 32-element block, d * sum(level[q] x).
template <class B>
void gemv_table4_ref(const WeightRows& w, const float* x, float* y, int rows, bool acc) {
  const int nb = w.K / 32;
  const int8_t* lv = B::table();
  for (int r = 0; r < rows; r++) {
    float total = 0.f;
    for (int i = 0; i < nb; i++) {
      const uint8_t* b = w.q + r * w.q_ld + (ptrdiff_t)i * B::kBytes;
      const uint8_t* qs = b + B::kQs;
      float dot = 0.f;
      for (int j = 0; j < 16; j++) dot += (float)lv[qs[j] & 15] * x[32 * i + j] + (float)lv[qs[j] >> 4] * x[32 * i + j + 16];
      total += B::scale(b) * dot;
    }
    y[r] = acc ? y[r] + total : total;
  }
}

template <WeightType T>
void dequant_block_ref(const WeightRows& w, int rows, float* out, ptrdiff_t ld) {
  const int e = block_elems(T), bb = block_bytes(T), nb = w.K / e;
  for (int r = 0; r < rows; r++)
    for (int i = 0; i < nb; i++) decode_block(T, w.q + r * w.q_ld + (ptrdiff_t)i * bb, out + r * ld + i * e);
}

// Int8 activations: every sub-block lies inside one 32-element block b of x, so its product is
// an exact integer sum scaled by xd[b]; the mins meet d_b * sum(q_x) of the block.
template <bool kFive>
void gemv_k45_q8_ref(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) {
  const int nb = w.K / kSuperBlock, bb = kFive ? 176 : 144;
  for (int r = 0; r < rows; r++) {
    float total = 0.f;
    for (int i = 0; i < nb; i++) {
      const uint8_t* b = w.q + r * w.q_ld + (ptrdiff_t)i * bb;
      const float d = block_f16(b), dmin = block_f16(b + 2);
      const uint8_t* qs = b + (kFive ? 48 : 16);
      int sc[8], m[8];
      k_scales_mins(b + 4, sc, m);
      for (int s = 0; s < 8; s++) {
        const int k0 = i * kSuperBlock + 32 * s;
        int32_t dot = 0, xs = 0;
        for (int e = 32 * s; e < 32 * s + 32; e++) {
          dot += (k4_code(qs, e) + (kFive ? k5_high(b + 16, e) : 0)) * (int32_t)xq[i * kSuperBlock + e];
          xs += xq[i * kSuperBlock + e];
        }
        const float xb = xd[k0 / kQ8Block];
        total += d * (float)sc[s] * xb * (float)dot - dmin * (float)m[s] * xb * (float)xs;
      }
    }
    y[r] = acc ? y[r] + total : total;
  }
}

void gemv_q6_k_q8_ref(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) {
  const int nb = w.K / kSuperBlock;
  for (int r = 0; r < rows; r++) {
    float total = 0.f;
    for (int i = 0; i < nb; i++) {
      const uint8_t* b = w.q + r * w.q_ld + (ptrdiff_t)i * 210;
      const float d = block_f16(b + 208);
      const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
      for (int g = 0; g < 16; g++) {
        int32_t dot = 0;
        for (int e = 16 * g; e < 16 * g + 16; e++) dot += (k6_code(b, e) - 32) * (int32_t)xq[i * kSuperBlock + e];
        total += d * (float)sc[g] * xd[(i * kSuperBlock + 16 * g) / kQ8Block] * (float)dot;
      }
    }
    y[r] = acc ? y[r] + total : total;
  }
}

template <class B>
void gemv_table4_q8_ref(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) {
  const int nb = w.K / 32;
  const int8_t* lv = B::table();
  for (int r = 0; r < rows; r++) {
    float total = 0.f;
    for (int i = 0; i < nb; i++) {
      const uint8_t* b = w.q + r * w.q_ld + (ptrdiff_t)i * B::kBytes;
      const uint8_t* qs = b + B::kQs;
      int32_t dot = 0;
      for (int j = 0; j < 16; j++) dot += lv[qs[j] & 15] * (int32_t)xq[32 * i + j] + lv[qs[j] >> 4] * (int32_t)xq[32 * i + j + 16];
      total += B::scale(b) * xd[i] * (float)dot;
    }
    y[r] = acc ? y[r] + total : total;
  }
}

}  // namespace

void register_blocks_ref(KernelTable& t) {
  t.gemv[(int)WeightType::Q4_K] = gemv_k45_ref<false>;
  t.gemv[(int)WeightType::Q5_K] = gemv_k45_ref<true>;
  t.gemv[(int)WeightType::Q6_K] = gemv_q6_k_ref;
  t.gemv[(int)WeightType::IQ4_NL] = gemv_table4_ref<Iq4NlBlock>;
  t.gemv[(int)WeightType::MXFP4] = gemv_table4_ref<Mxfp4Block>;
  t.dequant[(int)WeightType::Q4_K] = dequant_block_ref<WeightType::Q4_K>;
  t.dequant[(int)WeightType::Q5_K] = dequant_block_ref<WeightType::Q5_K>;
  t.dequant[(int)WeightType::Q6_K] = dequant_block_ref<WeightType::Q6_K>;
  t.dequant[(int)WeightType::IQ4_NL] = dequant_block_ref<WeightType::IQ4_NL>;
  t.dequant[(int)WeightType::MXFP4] = dequant_block_ref<WeightType::MXFP4>;
  t.gemv_q8[(int)WeightType::Q4_K] = gemv_k45_q8_ref<false>;
  t.gemv_q8[(int)WeightType::Q5_K] = gemv_k45_q8_ref<true>;
  t.gemv_q8[(int)WeightType::Q6_K] = gemv_q6_k_q8_ref;
  t.gemv_q8[(int)WeightType::IQ4_NL] = gemv_table4_q8_ref<Iq4NlBlock>;
  t.gemv_q8[(int)WeightType::MXFP4] = gemv_table4_q8_ref<Mxfp4Block>;
}

}  // namespace ie
