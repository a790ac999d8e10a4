// The IEBIN v1 byte-layout constants the kernels rely on (docs/iebin.md). The TypeScript
// side has the same numbers in @ie/format's layout.ts; kernels' constants.test.ts asks the
// addon for these and compares, so the two cannot drift apart.
#pragma once
#include <cstddef>
#include <cstdint>

namespace ie {

constexpr int kAlignment = 64;          // tensor and plane alignment in model.ie.bin
constexpr int kQ4SymmetricZero = 8;     // q4 symmetric: value = (code - 8) * scale
constexpr int kGroupSizes[] = {32, 64, 128};

// Weight storage types, numbered for the JS boundary (kernels/src/constants.ts mirrors them).
// Q4_K..MXFP4 are block types: llama.cpp's blocks byte for byte, one plane, rows of whole blocks.
enum class WeightType : int32_t { F32 = 0, F16 = 1, BF16 = 2, I8 = 3, Q4 = 4, Q4_K = 5, Q5_K = 6, Q6_K = 7, IQ4_NL = 8, MXFP4 = 9 };
constexpr int kWeightTypeCount = 10;
enum class ScaleType : int32_t { F16 = 0, BF16 = 1, F32 = 2 };
enum class KvType : int32_t { F32 = 0, F16 = 1 };

// A llama.cpp block_q4_0 / block_q8_0, to document what IEBIN's planes hold: the scale `d`
// goes to the scales plane, the payload to the quant plane, byte for byte.
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[16];
};
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[32];
};
static_assert(sizeof(BlockQ4_0) == 18, "Q4_0 block is 18 bytes");
static_assert(sizeof(BlockQ8_0) == 34, "Q8_0 block is 34 bytes");

// The block types (docs/iebin.md, "Block dtypes"). A K-quant super-block is 256 elements in
// 8 sub-blocks of 32 (q6_k: 16 of 16) with 6-bit (q6_k: 8-bit) scales under f16 super-scales.
constexpr int kSuperBlock = 256;
struct BlockQ4_K {
  uint16_t d, dmin;       // value = d * sc[j] * q - dmin * m[j]
  uint8_t scales[12];     // 6-bit sc[8] and m[8], packed (k_scale_min)
  uint8_t qs[128];        // sub-block pair j: byte 32j + l = elements 64j + l (low) and 64j + 32 + l (high)
};
struct BlockQ5_K {
  uint16_t d, dmin;
  uint8_t scales[12];
  uint8_t qh[32];         // element 64j + l: bit 2j of qh[l]; 64j + 32 + l: bit 2j + 1
  uint8_t qs[128];
};
struct BlockQ6_K {
  uint8_t ql[128];        // low 4 bits
  uint8_t qh[64];         // high 2 bits
  int8_t scales[16];      // one per 16 elements
  uint16_t d;             // value = d * scales[i] * (q - 32)
};
struct BlockIQ4_NL {
  uint16_t d;             // value = d * kIq4NlLevels[q]
  uint8_t qs[16];         // element j: low nibble of qs[j]; element j + 16: high nibble
};
// MXFP4 (OCP microscaling): 32 FP4 E2M1 values under one E8M0 exponent. The table holds twice
// the E2M1 values (integers), so value = kMxfp4Values[q] * 2^(e - 128).
struct BlockMXFP4 {
  uint8_t e;
  uint8_t qs[16];         // element j: low nibble of qs[j]; element j + 16: high nibble
};
static_assert(sizeof(BlockQ4_K) == 144 && sizeof(BlockQ5_K) == 176 && sizeof(BlockQ6_K) == 210 && sizeof(BlockIQ4_NL) == 18 && sizeof(BlockMXFP4) == 17, "ggml block sizes");
constexpr int8_t kIq4NlLevels[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
constexpr int8_t kMxfp4Values[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

inline bool is_block_type(WeightType t) { return (int)t >= (int)WeightType::Q4_K && (int)t < kWeightTypeCount; }
// Elements and bytes per block of a block type.
inline int block_elems(WeightType t) { return t == WeightType::IQ4_NL || t == WeightType::MXFP4 ? 32 : kSuperBlock; }
inline int block_bytes(WeightType t) {
  switch (t) {
    case WeightType::Q4_K: return (int)sizeof(BlockQ4_K);
    case WeightType::Q5_K: return (int)sizeof(BlockQ5_K);
    case WeightType::Q6_K: return (int)sizeof(BlockQ6_K);
    case WeightType::MXFP4: return (int)sizeof(BlockMXFP4);
    default: return (int)sizeof(BlockIQ4_NL);
  }
}

inline int scale_bytes(ScaleType t) { return t == ScaleType::F32 ? 4 : 2; }
inline int weight_elem_bytes(WeightType t) { return t == WeightType::F32 ? 4 : (t == WeightType::F16 || t == WeightType::BF16) ? 2 : 1; }

}  // namespace ie
