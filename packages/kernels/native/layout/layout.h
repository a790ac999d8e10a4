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
enum class WeightType : int32_t { F32 = 0, F16 = 1, BF16 = 2, I8 = 3, Q4 = 4 };
constexpr int kWeightTypeCount = 5;
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

inline int scale_bytes(ScaleType t) { return t == ScaleType::F32 ? 4 : 2; }
inline int weight_elem_bytes(WeightType t) { return t == WeightType::F32 ? 4 : (t == WeightType::F16 || t == WeightType::BF16) ? 2 : 1; }

}  // namespace ie
