// Reading llama.cpp's blocks (layout/layout.h) in scalar code: the packed 6-bit scales of q4_k
// and q5_k, and one block decoded exactly as ggml's dequantize_row_* does (f32 arithmetic, the
// same roundings), which the scalar reference and the SIMD dequantizers both reproduce.
#pragma once
#include <cstring>

#include "cpu/fp16.h"
#include "layout/layout.h"

namespace ie {

inline float block_f16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}

// 2^(e - 128) exactly, subnormals included: half an E8M0 scale (the table holds doubled values).
inline float e8m0_half(uint8_t e) {
  const uint32_t bits = e >= 2 ? (uint32_t)(e - 1) << 23 : 0x00200000u << e;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// e8m0_half of every E8M0 byte, so that a SIMD kernel takes a block's scale with one broadcast load.
struct E8m0Halves {
  float v[256];
};
constexpr E8m0Halves e8m0_halves() {
  E8m0Halves t{};
  float f = 1.0f;
  for (int i = 0; i < 128; i++) f *= 0.5f;  // 2^-128, a subnormal: exact
  for (int e = 0; e < 256; e++) {
    t.v[e] = f;
    if (e < 255) f *= 2.0f;
  }
  return t;
}
inline constexpr E8m0Halves kE8m0Halves = e8m0_halves();

// The two 32-element blocks of 4-bit indices into a table of int8 levels (nibbles as Q4_0):
// where the scale and the indices sit, and the table.
struct Iq4NlBlock {
  static constexpr int kBytes = 18, kQs = 2;
  static constexpr const int8_t* table() { return kIq4NlLevels; }
  static float scale(const uint8_t* b) { return block_f16(b); }
};
struct Mxfp4Block {
  static constexpr int kBytes = 17, kQs = 1;
  static constexpr const int8_t* table() { return kMxfp4Values; }
  static float scale(const uint8_t* b) { return e8m0_half(b[0]); }
};

// Scale and min of sub-block j (0..7) of a q4_k / q5_k block's 12 scale bytes.
inline void k_scale_min(const uint8_t* s, int j, int* sc, int* m) {
  if (j < 4) {
    *sc = s[j] & 63;
    *m = s[j + 4] & 63;
  } else {
    *sc = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
    *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// All eight scales and mins of a q4_k / q5_k block.
inline void k_scales_mins(const uint8_t* s, int sc[8], int m[8]) {
  for (int j = 0; j < 8; j++) k_scale_min(s, j, &sc[j], &m[j]);
}

// Code of element e (0..255) of a q4_k / q5_k block (0..15, or 0..31 with the q5_k high bit).
inline int k4_code(const uint8_t* qs, int e) {
  const int j = e / 64, l = e % 32;
  return (e % 64) < 32 ? (qs[32 * j + l] & 15) : (qs[32 * j + l] >> 4);
}
inline int k5_high(const uint8_t* qh, int e) { return ((qh[e % 32] >> (2 * (e / 64) + ((e % 64) >= 32))) & 1) << 4; }

// Code of element e (0..255) of a q6_k block, 0..63 (the value is d * scale[e / 16] * (code - 32)).
inline int k6_code(const uint8_t* b, int e) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const int h = e / 128, i = (e % 128) / 32, l = e % 32;
  const uint8_t lo = ql[64 * h + l + (i & 1) * 32];
  const int low4 = i < 2 ? (lo & 15) : (lo >> 4);
  return low4 | (((qh[32 * h + l] >> (2 * i)) & 3) << 4);
}

// One block of type t at b into out[0..block_elems(t)), with ggml's f32 arithmetic.
inline void decode_block(WeightType t, const uint8_t* b, float* out) {
  switch (t) {
    case WeightType::Q4_K:
    case WeightType::Q5_K: {
      const bool five = t == WeightType::Q5_K;
      const float d = block_f16(b), dmin = block_f16(b + 2);
      const uint8_t* qs = b + (five ? 48 : 16);
      int sc[8], m[8];
      k_scales_mins(b + 4, sc, m);
      for (int e = 0; e < kSuperBlock; e++) {
        const int s = e / 32;
        const float d1 = d * (float)sc[s], m1 = dmin * (float)m[s];
        const int q = k4_code(qs, e) + (five ? k5_high(b + 16, e) : 0);
        out[e] = d1 * (float)q - m1;
      }
      return;
    }
    case WeightType::Q6_K: {
      const float d = block_f16(b + 208);
      const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
      for (int e = 0; e < kSuperBlock; e++) out[e] = (d * (float)sc[e / 16]) * (float)(k6_code(b, e) - 32);
      return;
    }
    case WeightType::MXFP4: {
      const float d = Mxfp4Block::scale(b);
      for (int j = 0; j < 16; j++) {
        out[j] = d * (float)kMxfp4Values[b[1 + j] & 15];
        out[j + 16] = d * (float)kMxfp4Values[b[1 + j] >> 4];
      }
      return;
    }
    default: {  // IQ4_NL
      const float d = block_f16(b);
      for (int j = 0; j < 16; j++) {
        out[j] = d * (float)kIq4NlLevels[b[2 + j] & 15];
        out[j + 16] = d * (float)kIq4NlLevels[b[2 + j] >> 4];
      }
      return;
    }
  }
}

}  // namespace ie
