// AVX2 + FMA + F16C GEMV with FP32 activations and dequantization for the block types. Rows
// run one at a time in memory order, as gemv_avx2.cc explains. Codes are widened eight at a time
// (vpmovzxbd) into f32 and multiplied into one accumulator per scale; each scale multiplies its
// accumulator once. The q4_k / q5_k mins meet per-call sums of x (sum_j m x_j = m * sum x).
// Dequantization computes each value with the reference's two roundings (d1 * q, then - m1), so
// it is bit-identical to blocks_ref.cc.
#include "cpu/avx2_common.h"
#include "cpu/vec.h"
#include "gemv/bf16_levels_x86.h"
#include "gemv/blocks.h"
#include "gemv/blocks_x86.h"
#include "gemv/row_streams.h"
#include "mem/aligned.h"

namespace ie {
namespace {
using namespace avx2;

inline __m256i widen8(const uint8_t* p) { return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))); }

// Sums of x over each 32-element sub-block, once per call.
class SubBlockSums {
 public:
  SubBlockSums(const float* x, int K) : sums_((size_t)(K / 32)) {
    for (int s = 0; s < K / 32; s++) {
      const float* v = x + 32 * s;
      sums_.data()[s] = hsum(_mm256_add_ps(_mm256_add_ps(_mm256_loadu_ps(v), _mm256_loadu_ps(v + 8)), _mm256_add_ps(_mm256_loadu_ps(v + 16), _mm256_loadu_ps(v + 24))));
    }
  }
  const float* data() { return sums_.data(); }

 private:
  Scratch<float, 1024> sums_;
};

// The high bit of q5_k elements 64j + l0.. (low half) or 64j + 32 + l0.. (high half), as 16 or 0.
inline __m256i k5_bit(__m256i h8, int bit) { return _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(h8, bit), _mm256_set1_epi32(1)), 4); }

template <bool kFive>
void gemv_k45(const WeightRows& w, const float* x, float* y, int rows, bool acc) {
  constexpr int bb = kFive ? 176 : 144;
  const int nb = w.K / kSuperBlock;
  SubBlockSums xs(x, w.K);
  const __m256i low4 = _mm256_set1_epi32(15);
  for (int r = 0; r < rows; r++) {
    // Low and high nibbles' sums in totals of their own: one total took a superblock's eight in a chain.
    __m256 total = _mm256_setzero_ps(), total_hi = total, mins = total;
    for (int i = 0; i < nb; i++) {
      const uint8_t* b = w.q + r * w.q_ld + (ptrdiff_t)i * bb;
      const uint8_t* qs = b + (kFive ? 48 : 16);
      const float* xb = x + i * kSuperBlock;
      __m256 sc, m;
      k_scales8(b + 4, &sc, &m);
      const __m256 D = _mm256_mul_ps(_mm256_set1_ps(f16_at(b)), sc);
      mins = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(f16_at(b + 2)), m), _mm256_loadu_ps(xs.data() + 8 * i), mins);
      __m256i h8[4];
      if (kFive) IE_UNROLL for (int u = 0; u < 4; u++) h8[u] = widen8(b + 16 + 8 * u);
      IE_UNROLL for (int j = 0; j < 4; j++) {
        __m256 lo_acc = _mm256_setzero_ps(), hi_acc = _mm256_setzero_ps();
        IE_UNROLL for (int u = 0; u < 4; u++) {
          const __m256i q = widen8(qs + 32 * j + 8 * u);
          __m256i lo = _mm256_and_si256(q, low4), hi = _mm256_srli_epi32(q, 4);
          if (kFive) {
            lo = _mm256_or_si256(lo, k5_bit(h8[u], 2 * j));
            hi = _mm256_or_si256(hi, k5_bit(h8[u], 2 * j + 1));
          }
          lo_acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(lo), _mm256_loadu_ps(xb + 64 * j + 8 * u), lo_acc);
          hi_acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(hi), _mm256_loadu_ps(xb + 64 * j + 32 + 8 * u), hi_acc);
        }
        total = _mm256_fmadd_ps(lo_acc, lane_of(D, 2 * j), total);
        total_hi = _mm256_fmadd_ps(hi_acc, lane_of(D, 2 * j + 1), total_hi);
      }
    }
    const float v = hsum(_mm256_add_ps(total, total_hi)) - hsum(mins);
    y[r] = acc ? y[r] + v : v;
  }
}

// q6_k codes of elements 128h + 32i + l0.. (i = 0..3) from ql (64h + l0, 64h + 32 + l0) and qh (32h + l0).
inline void k6_codes(const uint8_t* ql, const uint8_t* qh, __m256i q[4]) {
  const __m256i a = widen8(ql), c = widen8(ql + 32), h = widen8(qh), low4 = _mm256_set1_epi32(15), two = _mm256_set1_epi32(3);
  q[0] = _mm256_or_si256(_mm256_and_si256(a, low4), _mm256_slli_epi32(_mm256_and_si256(h, two), 4));
  q[1] = _mm256_or_si256(_mm256_and_si256(c, low4), _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(h, 2), two), 4));
  q[2] = _mm256_or_si256(_mm256_srli_epi32(a, 4), _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(h, 4), two), 4));
  q[3] = _mm256_or_si256(_mm256_srli_epi32(c, 4), _mm256_slli_epi32(_mm256_srli_epi32(h, 6), 4));
}

void gemv_q6_k(const WeightRows& w, const float* x, float* y, int rows, bool acc) {
  const int nb = w.K / kSuperBlock;
  const __m256i k32 = _mm256_set1_epi32(32);
  for (int r = 0; r < rows; r++) {
    // A running total per code plane: one total took a superblock's 16 scaled sums in a chain.
    __m256 total[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int i = 0; i < nb; i++) {
      const uint8_t* b = w.q + r * w.q_ld + (ptrdiff_t)i * 210;
      const __m256 d = _mm256_set1_ps(f16_at(b + 208));
      const __m128i sc = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 192));
      const __m256 S[2] = {_mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(sc))), _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(sc, 8))))};
      const float* xb = x + i * kSuperBlock;
      IE_UNROLL for (int h = 0; h < 2; h++) {
        IE_UNROLL for (int half = 0; half < 2; half++) {  // elements l < 16 and l >= 16 of each 32 have their own scales
          __m256 a[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
          IE_UNROLL for (int u = 0; u < 2; u++) {
            const int l0 = 16 * half + 8 * u;
            __m256i q[4];
            k6_codes(b + 64 * h + l0, b + 128 + 32 * h + l0, q);
            IE_UNROLL for (int k = 0; k < 4; k++) a[k] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(q[k], k32)), _mm256_loadu_ps(xb + 128 * h + 32 * k + l0), a[k]);
          }
          IE_UNROLL for (int k = 0; k < 4; k++) total[k] = _mm256_fmadd_ps(a[k], lane_of(S[h], 2 * k + half), total[k]);
        }
      }
    }
    const float v = hsum(_mm256_add_ps(_mm256_add_ps(total[0], total[1]), _mm256_add_ps(total[2], total[3])));
    y[r] = acc ? y[r] + v : v;
  }
}

inline __m256 i8x8(__m128i v) { return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v)); }

// ---- iq4_nl / mxfp4: levels as f32 through bf16 byte tables (gemv/bf16_levels_x86.h).

// A block's scale in every lane: iq4_nl's f16 through F16C, mxfp4's E8M0 from the table.
template <class B>
inline __m256 block_scale(const uint8_t* b);
template <>
inline __m256 block_scale<Iq4NlBlock>(const uint8_t* b) {
  return _mm256_set1_ps(f16_at(b));
}
template <>
inline __m256 block_scale<Mxfp4Block>(const uint8_t* b) {
  return _mm256_broadcast_ss(&kE8m0Halves.v[b[0]]);
}

template <class B>
void gemv_table4(const WeightRows& w, const float* x, float* y, int rows, bool acc) {
  const int nb = w.K / 32;
  static constexpr Bf16Bytes kBytes = bf16_bytes(B::table());
  const Bf16Levels levels(kBytes);
  Scratch<float, 4096> staged((size_t)w.K);
  for (int i = 0; i < nb; i++) stage_pairs(x + 32 * i, x + 32 * i + 16, staged.data() + 32 * i);
  const float* xs = staged.data();
  auto block = [&](const uint8_t* b, const float* xb) { return levels.dot(b + B::kQs, xb); };
  // Rows in far-apart pairs (row_streams), each line prefetched 2 KiB ahead, each staged x load
  // serving both: Zen 5 as AVX2, TinyLlama's shapes from DRAM (`IE_ISA=avx2 ONLY=mxfp4,iq4_nl GIB=1
  // THREADS=1,2 pnpm bench:kernels`, alternated twice), against one row at a time: mxfp4 8.3-10.9 /
  // 16-16.5 -> 9.7-11.5 / 16.5-17.2 GB/s at 1 / 2 threads, iq4_nl 8-9.4 / 13.9-14 -> 9.3-9.7 /
  // 15.9-16. Still bound by its 15 vector operations per 32 weights.
  row_streams(rows, w.q_ld, [&](auto n, const int* rs) {
    constexpr int R = decltype(n)::value;
    const uint8_t* row[R];
    __m256 t0[R], t1[R];
    IE_UNROLL for (int k = 0; k < R; k++) row[k] = w.q + rs[k] * w.q_ld, t0[k] = t1[k] = _mm256_setzero_ps();
    int i = 0;
    for (; i + 2 <= nb; i += 2) {
      IE_UNROLL for (int k = 0; k < R; k++) {
        const uint8_t* b = row[k] + (ptrdiff_t)i * B::kBytes;
        stream_prefetch(b, 2 * B::kBytes);
        t0[k] = _mm256_fmadd_ps(block(b, xs + 32 * i), block_scale<B>(b), t0[k]);
        t1[k] = _mm256_fmadd_ps(block(b + B::kBytes, xs + 32 * i + 32), block_scale<B>(b + B::kBytes), t1[k]);
      }
    }
    for (int k = 0; k < R; k++) {
      if (i < nb) {
        const uint8_t* b = row[k] + (ptrdiff_t)i * B::kBytes;
        t0[k] = _mm256_fmadd_ps(block(b, xs + 32 * i), block_scale<B>(b), t0[k]);
      }
      const float v = hsum(_mm256_add_ps(t0[k], t1[k]));
      y[rs[k]] = acc ? y[rs[k]] + v : v;
    }
  });
}

// ---- dequantization: the reference's roundings, eight values at a time.
template <bool kFive>
void dequant_k45(const WeightRows& w, int rows, float* out, ptrdiff_t ld) {
  constexpr int bb = kFive ? 176 : 144;
  const int nb = w.K / kSuperBlock;
  const __m256i low4 = _mm256_set1_epi32(15);
  for (int r = 0; r < rows; r++)
    for (int i = 0; i < nb; i++) {
      const uint8_t* b = w.q + r * w.q_ld + (ptrdiff_t)i * bb;
      const uint8_t* qs = b + (kFive ? 48 : 16);
      float* o = out + r * ld + i * kSuperBlock;
      const float d = block_f16(b), dmin = block_f16(b + 2);
      int sc[8], m[8];
      k_scales_mins(b + 4, sc, m);
      for (int j = 0; j < 4; j++) {
        const __m256 d1 = _mm256_set1_ps(d * (float)sc[2 * j]), m1 = _mm256_set1_ps(dmin * (float)m[2 * j]);
        const __m256 d2 = _mm256_set1_ps(d * (float)sc[2 * j + 1]), m2 = _mm256_set1_ps(dmin * (float)m[2 * j + 1]);
        for (int u = 0; u < 4; u++) {
          const __m256i q = widen8(qs + 32 * j + 8 * u);
          __m256i lo = _mm256_and_si256(q, low4), hi = _mm256_srli_epi32(q, 4);
          if (kFive) {
            const __m256i h8 = widen8(b + 16 + 8 * u);
            lo = _mm256_or_si256(lo, k5_bit(h8, 2 * j));
            hi = _mm256_or_si256(hi, k5_bit(h8, 2 * j + 1));
          }
          _mm256_storeu_ps(o + 64 * j + 8 * u, _mm256_sub_ps(_mm256_mul_ps(d1, _mm256_cvtepi32_ps(lo)), m1));
          _mm256_storeu_ps(o + 64 * j + 32 + 8 * u, _mm256_sub_ps(_mm256_mul_ps(d2, _mm256_cvtepi32_ps(hi)), m2));
        }
      }
    }
}

void dequant_q6_k(const WeightRows& w, int rows, float* out, ptrdiff_t ld) {
  const int nb = w.K / kSuperBlock;
  const __m256i k32 = _mm256_set1_epi32(32);
  for (int r = 0; r < rows; r++)
    for (int i = 0; i < nb; i++) {
      const uint8_t* b = w.q + r * w.q_ld + (ptrdiff_t)i * 210;
      const float d = block_f16(b + 208);
      const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
      float* o = out + r * ld + i * kSuperBlock;
      for (int h = 0; h < 2; h++)
        for (int l0 = 0; l0 < 32; l0 += 8) {
          __m256i q[4];
          k6_codes(b + 64 * h + l0, b + 128 + 32 * h + l0, q);
          for (int k = 0; k < 4; k++) {
            const __m256 s = _mm256_set1_ps(d * (float)sc[8 * h + 2 * k + l0 / 16]);
            _mm256_storeu_ps(o + 128 * h + 32 * k + l0, _mm256_mul_ps(s, _mm256_cvtepi32_ps(_mm256_sub_epi32(q[k], k32))));
          }
        }
    }
}

template <class B>
void dequant_table4(const WeightRows& w, int rows, float* out, ptrdiff_t ld) {
  const int nb = w.K / 32;
  for (int r = 0; r < rows; r++)
    for (int i = 0; i < nb; i++) {
      const uint8_t* b = w.q + r * w.q_ld + (ptrdiff_t)i * B::kBytes;
      const __m256 d = _mm256_set1_ps(B::scale(b));
      __m128i lo, hi;
      iq4_levels(b + B::kQs, &lo, &hi, B::table());
      float* o = out + r * ld + 32 * i;
      _mm256_storeu_ps(o, _mm256_mul_ps(d, i8x8(lo)));
      _mm256_storeu_ps(o + 8, _mm256_mul_ps(d, i8x8(_mm_srli_si128(lo, 8))));
      _mm256_storeu_ps(o + 16, _mm256_mul_ps(d, i8x8(hi)));
      _mm256_storeu_ps(o + 24, _mm256_mul_ps(d, i8x8(_mm_srli_si128(hi, 8))));
    }
}

void gemv_q4_k_f32_avx2(const WeightRows& w, const float* x, float* y, int rows, bool acc) { gemv_k45<false>(w, x, y, rows, acc); }
void gemv_q5_k_f32_avx2(const WeightRows& w, const float* x, float* y, int rows, bool acc) { gemv_k45<true>(w, x, y, rows, acc); }
void gemv_q6_k_f32_avx2(const WeightRows& w, const float* x, float* y, int rows, bool acc) { gemv_q6_k(w, x, y, rows, acc); }
void gemv_iq4_nl_f32_avx2(const WeightRows& w, const float* x, float* y, int rows, bool acc) { gemv_table4<Iq4NlBlock>(w, x, y, rows, acc); }
void gemv_mxfp4_f32_avx2(const WeightRows& w, const float* x, float* y, int rows, bool acc) { gemv_table4<Mxfp4Block>(w, x, y, rows, acc); }
void dequant_q4_k_avx2(const WeightRows& w, int rows, float* out, ptrdiff_t ld) { dequant_k45<false>(w, rows, out, ld); }
void dequant_q5_k_avx2(const WeightRows& w, int rows, float* out, ptrdiff_t ld) { dequant_k45<true>(w, rows, out, ld); }
void dequant_q6_k_avx2(const WeightRows& w, int rows, float* out, ptrdiff_t ld) { dequant_q6_k(w, rows, out, ld); }
void dequant_iq4_nl_avx2(const WeightRows& w, int rows, float* out, ptrdiff_t ld) { dequant_table4<Iq4NlBlock>(w, rows, out, ld); }
void dequant_mxfp4_avx2(const WeightRows& w, int rows, float* out, ptrdiff_t ld) { dequant_table4<Mxfp4Block>(w, rows, out, ld); }

}  // namespace

void register_blocks_avx2(KernelTable& t) {
  t.gemv[(int)WeightType::Q4_K] = gemv_q4_k_f32_avx2;
  t.gemv[(int)WeightType::Q5_K] = gemv_q5_k_f32_avx2;
  t.gemv[(int)WeightType::Q6_K] = gemv_q6_k_f32_avx2;
  t.gemv[(int)WeightType::IQ4_NL] = gemv_iq4_nl_f32_avx2;
  t.dequant[(int)WeightType::Q4_K] = dequant_q4_k_avx2;
  t.dequant[(int)WeightType::Q5_K] = dequant_q5_k_avx2;
  t.dequant[(int)WeightType::Q6_K] = dequant_q6_k_avx2;
  t.dequant[(int)WeightType::IQ4_NL] = dequant_iq4_nl_avx2;
  t.gemv[(int)WeightType::MXFP4] = gemv_mxfp4_f32_avx2;
  t.dequant[(int)WeightType::MXFP4] = dequant_mxfp4_avx2;
}

}  // namespace ie
