// The dispatch table: one typed function pointer per operation, filled once from CPUID
// (MLAS/ggml style). Every entry has a scalar reference (*_ref.cc); AVX2 and AVX-512
// variants (*_avx2.cc, *_avx512.cc, each compiled with its own -m flags) overwrite the
// entries they implement. Generic code (threading, panels, attention) lives elsewhere and
// only calls through this table.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "cpu/cpu_features.h"
#include "layout/layout.h"

namespace ie {

// How RoPE pairs a head's elements; numbered for the JS boundary (kernels/src/constants.ts).
enum class RopeStyle : int32_t { Adjacent = 0, RotateHalf = 1 };

// A run of rows of one K-panel of a weight matrix, exactly as IEBIN stores it. Row r's
// data starts at q + r*q_ld; its scales at s + r*s_ld, its zero points at z + r*z_ld.
struct WeightRows {
  const uint8_t* q = nullptr;
  ptrdiff_t q_ld = 0;
  const uint8_t* s = nullptr;
  ptrdiff_t s_ld = 0;
  const uint8_t* z = nullptr;  // q4 affine only
  ptrdiff_t z_ld = 0;
  int K = 0;        // elements per row in this panel
  int group = 0;    // q4 / i8 per-group: 32, 64 or 128; 0: one scale per row (i8 per-row)
  ScaleType stype = ScaleType::F16;
  // Symmetric q4, iq4_nl or i8 in 16-row records (q4x16_* / i8x16_* in gemv/weights.h; iq4_nl reads as q4 of group 32): q is the record of (the first
  // stripe, this panel's first group), a stripe of 16 rows is 16 * q_ld bytes, s is unused; a run of
  // rows starts anywhere (row0: the first row's lane in its stripe); the SIMD kernels take whole
  // stripes. i8 records set group to the record's columns (K for one scale per row), and a K-slice
  // of them may start inside a record (col0: its first column there; always 0 for q4).
  bool rows16 = false;
  int row0 = 0;
  int col0 = 0;

  // The same panel starting at row r.
  WeightRows from_row(int64_t r) const {
    WeightRows v = *this;
    if (rows16) {
      v.q = q + (row0 + r) / 16 * 16 * q_ld;
      v.row0 = (int)((row0 + r) % 16);
      return v;
    }
    v.q = q + r * q_ld;
    if (s) v.s = s + r * s_ld;
    if (z) v.z = z + r * z_ld;
    return v;
  }
};

// y[r] (+)= sum_k W[r,k] * x[k], r < rows. FP32 activations and accumulation.
using GemvFn = void (*)(const WeightRows& w, const float* x, float* y, int rows, bool accumulate);
// For m < M: y + m*ldy gets exactly what GemvFn gives for x + m*ldx (the same operations in the
// same order, so bit for bit), reading each weight row once for all M activation rows.
using GemvRowsFn = void (*)(const WeightRows& w, const float* x, ptrdiff_t ldx, int M, float* y, ptrdiff_t ldy, int rows, bool accumulate);
// out[r*ld + k] = W[r,k] as f32, r < rows, k < K.
using DequantFn = void (*)(const WeightRows& w, int rows, float* out, ptrdiff_t ld);
// Pretransposed float weights Wt[K][ncols] (row k at wt + k*ld bytes): y[n] (+)= sum_k x[k] Wt[k][n].
using GemvTFn = void (*)(const uint8_t* wt, ptrdiff_t ld, const float* x, int K, float* y, int ncols, bool accumulate);

// The prefill GEMM's pieces (gemm/gemm_packed.h; the driver is matmul/matmul.cc). A packs
// activations k-major in panels of mr tokens ([kc][mr]); B packs weights k-major in panels of nr
// rows ([kc][nr]). micro[m - 1] computes m <= mr tokens: C[i][0..n) (+)= sum_k A[k][i] B[k][..].
// It also prefetches the cache lines prefetch[0..n) (the next weight block's, or none), paced
// over its k steps.
struct GemmPrefetch {
  const uint8_t* const* lines = nullptr;
  int n = 0;
};
using GemmMicroFn = void (*)(const float* A, const float* B, int kc, float* C, ptrdiff_t ldc, int n, bool accumulate, GemmPrefetch prefetch);
// dst[k][0..nr) = src[r][k] for r < rows (<= nr), zero for the rest: a weight panel from dequantized rows.
using GemmPackFn = void (*)(const float* src, ptrdiff_t ld, int rows, int kc, float* dst);
// dst[k][0..mr) = X[i][k] for i < rows (<= mr), zero for the rest: a panel of activations (X row i at X + i * ldx).
using GemmPackTokensFn = void (*)(const float* X, ptrdiff_t ldx, int rows, int kc, float* dst);
// As GemmPackFn from f16 or bf16 weight rows (src row r at src + r * ld elements), converted on the way.
using GemmPackHalfFn = void (*)(const uint16_t* src, ptrdiff_t ld, int rows, int kc, float* dst);
// dst[k][0..nr) for k < w.K from 16-row records (w: a column block of whole superblocks starting at
// a stripe's first row; rows a multiple of 16, <= nr; zero for the rest), as the dequantized rows
// packed by GemmPackFn would be, bit for bit.
using GemmPackRecordsFn = void (*)(const WeightRows& w, int rows, float* dst, int nr);
constexpr int kGemmMaxMr = 16;
struct GemmKernels {
  const char* name = "scalar";  // e.g. "6x16 avx2"
  int mr = 0, nr = 0, kc = 0;   // register block (tokens x weight rows) and K block
  GemmMicroFn micro[kGemmMaxMr] = {};
  GemmPackFn pack_rows = nullptr;
  GemmPackTokensFn pack_tokens = nullptr;
  // f16 / bf16 weights packed straight from the matrix (null: dequantize to rows, then pack_rows).
  GemmPackHalfFn pack_f16 = nullptr, pack_bf16 = nullptr;
};

// The int8-activation mode ("q8 activations", as llama.cpp's Q4_0 x Q8_0 dot products): x is
// quantized once per call in blocks (d = max|x| / 127 over the block, q = round(x / d)), then
// integer dot products (VNNI vpdpbusd where the CPU has it) replace the fused f32 dequantization.
// d is stored once per 32 elements whatever the block, so every kernel reads it the same way.
constexpr int kQ8Block = 32;
// Bytes of quantized activations a K-element x needs (zero-padded to whole 128-element chunks).
inline int q8_padded(int K) { return (K + 127) / 128 * 128; }
// The block x is quantized in for a matrix: its group for q4 groups of 64 and 128, and the
// 256-element superblock for the K-quants (as llama.cpp's Q8_K), so that the integer sums under
// one weight scale meet one scale of x and add up before a single conversion (the AVX2 kernels'
// fast path); 32 for everything else.
inline int q8_x_block(WeightType t, int group) {
  if (t == WeightType::Q4 && (group == 64 || group == 128)) return group;
  if (t == WeightType::Q4_K || t == WeightType::Q5_K || t == WeightType::Q6_K) return 256;
  return kQ8Block;
}
// x[0..K) -> q[0..q8_padded(K)) and d[0..q8_padded(K)/32), both zero past K; `block` (32, 64, 128
// or 256) elements share one scale, repeated in each of their 32-element entries of d.
using QuantizeXFn = void (*)(const float* x, int K, int block, int8_t* q, float* d);
// The SIMD quantizers' second pass, written once: with d[c] holding each 32-chunk's max |x|, each
// block's scale is the largest of its chunks' over 127 (max commutes with the division), stored
// for every chunk that starts before K; codes(c, 1 / scale or 0) then writes chunk c's codes.
template <class Codes>
inline void q8_block_scales(int K, int block, float* d, Codes&& codes) {
  for (int b0 = 0; b0 < K; b0 += block) {
    const int c0 = b0 / kQ8Block, c1 = std::min(b0 + block, K + kQ8Block - 1) / kQ8Block;
    float amax = 0.f;
    for (int c = c0; c < c1; c++) amax = std::max(amax, d[c]);
    const float db = amax / 127.0f;
    const float id = db != 0.f ? 1.0f / db : 0.f;
    for (int c = c0; c < c1; c++) {
      d[c] = db;
      codes(c, id);
    }
  }
}
// y[r] (+)= sum_k W[r,k] * d[k/32] * q[k]; q and d start at the panel's first column (a multiple of
// 32), x quantized by quantize_x in blocks of q8_x_block(type, group) (the AVX2 q4 kernels of groups
// 64 and 128 read one scale per group).
using GemvQ8Fn = void (*)(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool accumulate);
// For m < M: y + m*ldy gets exactly what GemvQ8Fn gives for xq + m*ldq, xd + m*ldd (bit for bit),
// the weights read from memory once for all M rows.
using GemvQ8RowsFn = void (*)(const WeightRows& w, const int8_t* xq, const float* xd, ptrdiff_t ldq, ptrdiff_t ldd, int M, float* y, ptrdiff_t ldy, int rows,
                              bool accumulate);

// Bytes of quantized codes (or float elements) one row of a column block holds.
inline int64_t row_code_bytes(const WeightRows& w, WeightType t) {
  if (is_block_type(t)) return (int64_t)w.K / block_elems(t) * block_bytes(t);
  switch (t) {
    case WeightType::F32: return (int64_t)w.K * 4;
    case WeightType::F16:
    case WeightType::BF16: return (int64_t)w.K * 2;
    case WeightType::Q4: return (int64_t)(w.K + w.group - 1) / w.group * (w.group / 2);
    default: return w.group ? (int64_t)(w.K + w.group - 1) / w.group * w.group : w.K;
  }
}

// A prefill chunk in the int8-activation mode (symmetric q4, i8): y[m * ldy + r] (+)= sum_k W[r,k] *
// xd[m * ldd + k/32] * xq[m * ldq + k] for r < rows, m < M, x quantized per token by quantize_x (blocks
// of q8_x_block); xz[m * ldz + g] = -z * (sum of token m's codes of group g), where for q4 z = 8 and
// the groups are the weights', for i8, iq4_nl and mxfp4 z = 128 and the groups are blocks of 32.
// `scratch` holds gemm_q8_scratch(K, group, decoded) bytes for the calling thread (group 32 for i8,
// iq4_nl and mxfp4; decoded for the last two).
using GemmQ8Fn = void (*)(const WeightRows& w, int rows, const int8_t* xq, ptrdiff_t ldq, const float* xd, ptrdiff_t ldd, const int32_t* xz, ptrdiff_t ldz, int M,
                          float* y, ptrdiff_t ldy, bool accumulate, uint8_t* scratch);
// A 16-row panel's codes in the kernel's order (or 8 rows' widened to 16 bits: AVX2's i8), its f32
// scales (twice: by row, then by group), 64 tokens' x widened to 16 bits (AVX2's i8), and (decoded:
// iq4_nl, mxfp4) a panel's rows decoded to i8 codes.
inline size_t gemm_q8_scratch(int64_t K, int group, bool decoded = false) {
  const int64_t ng = (K + group - 1) / group;
  return (size_t)(16 * ng * group + 2 * 16 * 4 * ng + 64 * 2 * ng * group + (decoded ? 16 * ng * group : 0) + 64);
}

// Symmetric q4 interleaved 16 rows at a time (docs/architecture.md, "q4 in 16-row records"): for each
// stripe of 16 rows and each group g, one record of G/8 64-byte vectors (vector i, lane r: bytes
// 4i..4i+3 of row r's G/2 code bytes of group g, so low nibbles elements 4i..4i+3 and high nibbles
// G/2 + 4i..) followed by the 16 rows' scales of group g. A vpdpbusd then multiplies 16 rows' codes
// by four activations broadcast to every lane, and one float multiply-add per group and 16 rows
// applies the scales: the row layout spends it per 128 weights of one row.
inline int q4x16_record_bytes(int group, ScaleType t) { return 8 * group + 16 * scale_bytes(t); }
// i8 interleaved 16 rows at a time (docs/architecture.md, "i8 in 16-row records"): for each stripe of
// 16 rows and each group of G columns (one scale per row: G = K, one record a stripe), G/4 64-byte
// vectors (vector i, lane r: row r's codes of elements 4i..4i+3 plus 128, vpdpbusd's unsigned
// operand) followed by the 16 rows' scales. x's blocks of 32 each take 8 vectors, so a vpdpbusd
// multiplies 16 rows by four broadcast activations and a block's float work is one FMA for 16 rows.
inline int i8x16_record_bytes(int group, ScaleType t) { return 16 * group + 16 * scale_bytes(t); }
// IQ4_NL interleaved 16 rows at a time: byte for byte q4 records of group 32 with f16 scales (each
// block's 16 code bytes and d), so WeightRows reads them as such (group 32, stype F16) and the
// q4x16_* helpers of gemv/weights.h apply; only a code's value differs, kIq4NlLevels[code] for code - 8.
// Q6_K interleaved 16 rows at a time (docs/architecture.md, "Q4_K and Q6_K in 16-row records"): for each stripe
// of 16 rows and each superblock of 256 columns, one record of the 16 rows' 210-byte blocks reordered
// (the same bytes in all). Its 16 scale groups of 16 columns each take 192 code bytes: three 64-byte
// vectors P, Q, R (lane r: row r's four codes of one 4-column chunk, 6 bits each), P holding chunk 0
// of the group, Q chunk 1, R chunk 2, and chunk 3's code split over their top two bits (bits 4-5 in P,
// 2-3 in Q, 0-1 in R): one mask per vector for three chunks and a few shifts for the fourth, where a
// row of Q6_K blocks spends 17 operations per 128 codes. Then the 16 scale groups' int8 scales, 16 a
// group in the lane order 0-3, 8-11, 4-7, 12-15 (one sign extension and one unpack give a half's eight
// rows, each in both words of its lane), then the 16 rows' f16 d.
constexpr int kQ6kRecordBytes = 16 * 210;
constexpr int kQ6kRecordScales = 16 * 192;           // offset of the scales in a record
constexpr int kQ6kRecordD = kQ6kRecordScales + 256;  // offset of the 16 f16 d
// Q4_K likewise (the same section): a record a superblock and 16 rows,
// 2304 bytes. For each pair j of 32-column sub-blocks, 8 vectors of 64 bytes (vector v, lane r: code
// bytes 4v..4v + 3 of row r's pair, low nibbles columns 64j + 4v.., high nibbles 64j + 32 + 4v..: q4's
// records of group 64); then per sub-block the 16 rows' 6-bit scales with bits 0-1 of the min on top,
// in the same slot order as Q6_K's; then per sub-block the mins' bits 2-5 as nibbles (slot t < 8: the
// low nibble of byte t, else the high nibble of byte t - 8); then the 16 d and the 16 dmin (f16).
constexpr int kQ4kRecordBytes = 16 * 144;
constexpr int kQ4kRecordScales = 2048;
constexpr int kQ4kRecordMins = kQ4kRecordScales + 128;
constexpr int kQ4kRecordD = kQ4kRecordMins + 64;
constexpr int kQ4kRecordDmin = kQ4kRecordD + 32;
// Q5_K likewise: a Q4_K record of the blocks' low nibbles, scales, mins, d and dmin (2304 bytes),
// then each code's high bit as masks, 2816 bytes in all: for pair j and vector v, 16 bytes at
// kQ5kRecordHigh + 128·j + 16·v, a 64-bit mask (little-endian) for the vector's low-nibble codes and
// one for its high-nibble codes, bit 4r + b for byte 4r + b of the vector (row r, column b of four).
// An AVX-512 kernel loads each straight into a mask register and adds 16 to the codes it marks.
constexpr int kQ5kRecordBytes = 16 * 176;
constexpr int kQ5kRecordHigh = kQ4kRecordBytes;
// The kernels of one records layout, all over the same WeightRows (rows16 set) and with the signatures above.
struct Records16Kernels {
  GemvFn gemv = nullptr;              // FP32 activations
  GemvQ8Fn gemv_q8 = nullptr;         // int8 activations (x quantized in blocks of q8_x_block(type, group))
  GemvQ8RowsFn gemv_q8_rows = nullptr;  // these two take whole stripes (row0 0, rows a multiple of 16)
  DequantFn dequant = nullptr;
  // Where set (the K-quants on AVX-512), a prefill chunk takes the FP32 GEMM over panels packed
  // straight from the records rather than the several-rows int8 kernel (matmul.cc, gemm_q8)...
  GemmPackRecordsFn pack_gemm = nullptr;
  // ...unless this is set (the K-quants' AVX-512 VNNI kernels, twice the FP32 GEMM's speed there):
  // then a chunk in the int8 mode takes gemv_q8_rows, and only the FP32 mode the GEMM.
  bool q8_rows_prefill = false;
  // When reordering pays (the runtime asks before it does): "always" (no slower than rows for one
  // activation row, faster for several), "batched" (faster for several, up to a tenth slower for
  // one), "none" (scalar).
  const char* worth = "none";
};

struct KernelTable {
  Isa isa = Isa::Scalar;
  // The int8-activation kernels' variant ("scalar", "avx2", "avxvnni", "avx512vnni"), and its entries (I8 and Q4 only).
  const char* q8_variant = "scalar";
  QuantizeXFn quantize_x = nullptr;
  GemvQ8Fn gemv_q8[kWeightTypeCount] = {};
  // Several activation rows (Q4 only, where the variant has it); null: gemv_q8 per row over L2-sized blocks.
  GemvQ8RowsFn gemv_q8_rows[kWeightTypeCount] = {};
  GemvFn gemv[kWeightTypeCount] = {};
  // Int8-activation GEMM (Q4 symmetric only); null: a prefill chunk takes the FP32 GEMM.
  GemmQ8Fn gemm_q8[kWeightTypeCount] = {};
  const char* gemm_q8_name = "none";  // e.g. "16x8 avx512vnni"
  DequantFn dequant[kWeightTypeCount] = {};
  Records16Kernels q4x16;  // q4: AVX-512 VNNI always, the 256-bit kernels (each record in two halves) batched
  Records16Kernels i8x16;  // i8: AVX-512 VNNI, AVX2 (codes widened to 16 bits; each record in two halves) batched
  Records16Kernels iq4x16;  // iq4_nl: the 256-bit kernels (levels by vpshufb), always on Zen 3, else not taken by auto
  Records16Kernels q6kx16;  // q6_k: the AVX2 kernels, always on Zen 3, else not taken by auto
  Records16Kernels q4kx16;  // q4_k: likewise
  Records16Kernels q5kx16;  // q5_k: the AVX-512 VNNI kernels, always on Zen 5, else not taken by auto
  GemvTFn gemv_t[3] = {};  // F32, F16, BF16
  // Decode rows of several sequences (F32, F16, BF16); null where the ISA has none: one gemv per row.
  GemvRowsFn gemv_rows[3] = {};
  GemmKernels gemm;

  float (*dot)(const float* a, const float* b, int n) = nullptr;
  void (*axpy)(float a, const float* x, float* y, int n) = nullptr;       // y += a*x
  // One query's attention for the nq heads that share a KV head, over n cached rows (row j at
  // k + j * ld elements, f32 or f16): s[h * lds + j] = scale * (q_h . k_j) with q_h at q + h * d,
  // each K row loaded (and converted) once for all nq heads; then out_h += sum_j p[h * ldp + j] v_j
  // with out_h at out + h * d, a block of V rows at a time for every head.
  void (*attn_scores)(const float* q, int nq, int d, const float* k, ptrdiff_t ld, int n, float scale, float* s, ptrdiff_t lds) = nullptr;
  void (*attn_scores_f16)(const float* q, int nq, int d, const uint16_t* k, ptrdiff_t ld, int n, float scale, float* s, ptrdiff_t lds) = nullptr;
  void (*attn_mix)(const float* p, ptrdiff_t ldp, int nq, int d, const float* v, ptrdiff_t ld, int n, float* out) = nullptr;
  void (*attn_mix_f16)(const float* p, ptrdiff_t ldp, int nq, int d, const uint16_t* v, ptrdiff_t ld, int n, float* out) = nullptr;
  void (*scale)(float* x, float s, int n) = nullptr;
  void (*add)(const float* a, const float* b, float* out, int n) = nullptr;
  void (*rmsnorm)(const float* x, const float* w, int n, float eps, float* out) = nullptr;
  // In place: x = exp(x - m) / (sum + exp(extra - m)), m = max(x, extra): `extra` is a logit in
  // the denominator only (an attention sink); -INFINITY for a plain softmax.
  void (*softmax)(float* x, int n, float extra) = nullptr;
  void (*swiglu)(const float* gate, const float* up, float* out, int n) = nullptr;  // silu(gate) * up
  // gpt-oss: g = min(g, limit), u = clamp(u, -limit, limit), out = g * sigmoid(alpha g) * (u + 1).
  void (*swiglu_clamped)(const float* gate, const float* up, float* out, int n, float alpha, float limit) = nullptr;
  int (*argmax)(const float* x, int n) = nullptr;
  // Rotates x (n_heads heads of head_dim) by the angles whose cos/sin are given (head_dim/2 each).
  // style: a RopeStyle (adjacent pairs (2i, 2i+1), or rotate-half pairs (i, i + head_dim/2)).
  void (*rope)(float* x, int n_heads, int head_dim, const float* cos, const float* sin, int style) = nullptr;
  void (*f32_to_f16)(const float* x, uint16_t* out, int n) = nullptr;
  void (*f16_to_f32)(const uint16_t* x, float* out, int n) = nullptr;
};

void register_ref(KernelTable& t);
void register_avx2(KernelTable& t, const CpuFeatures& f);
void register_avxvnni(KernelTable& t, const CpuFeatures& f);
void register_avx512(KernelTable& t, const CpuFeatures& f);

// The table for `isa`: the reference everywhere, overwritten by each variant up to `isa`
// (optional extensions such as VNNI only where `f` has them).
KernelTable make_kernel_table(Isa isa, const CpuFeatures& f);

}  // namespace ie
