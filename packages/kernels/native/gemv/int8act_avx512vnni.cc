// The int8-activation mode on AVX-512 VNNI: vpdpbusd multiplies 64 unsigned weight bytes by 64
// signed activation bytes and adds groups of four into 16 int32 lanes, so one instruction does
// what 8 float conversions and FMAs do in the FP32-activation kernels.
//
// Per call, x (already quantized) is laid out in "lane order" for the weight layout: for q4,
// a 64-byte chunk of a row holds the low nibbles (first half of each group) and the high
// nibbles (second half) of 128/G groups, so XL/XH hold the matching activations; for i8 the
// order is natural and activations are offset by +128 to be unsigned.
#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "cpu/avx512_common.h"
#include "cpu/kernel_table.h"
#include "cpu/vec.h"
#include "gemv/row_streams.h"
#include "mem/aligned.h"

namespace ie {
namespace {
using namespace avx512;

// As quantize_x_ref: first each 32-chunk's max |x| into d, then q8_block_scales.
void quantize_x_q8_avx512(const float* x, int K, int block, int8_t* q, float* d) {
  const int P = q8_padded(K);
  auto load = [&](int k0, __m512& a, __m512& b) {
    a = _mm512_maskz_loadu_ps(tail_mask(std::clamp(K - k0, 0, 16)), x + k0);
    b = _mm512_maskz_loadu_ps(tail_mask(std::clamp(K - k0 - 16, 0, 16)), x + k0 + 16);
  };
  for (int k0 = 0; k0 < P; k0 += kQ8Block) {
    if (k0 < K) {
      __m512 a, b;
      load(k0, a, b);
      d[k0 / kQ8Block] = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(a), _mm512_abs_ps(b)));
    } else {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + k0), _mm256_setzero_si256());
      d[k0 / kQ8Block] = 0.f;
    }
  }
  const __m512 hi = _mm512_set1_ps(127.0f), lo = _mm512_set1_ps(-127.0f);
  q8_block_scales(K, block, d, [&](int c, float id) {
    const __m512 iv = _mm512_set1_ps(id);
    __m512 a, b;
    load(c * kQ8Block, a, b);
    const __m512i qa = _mm512_cvtps_epi32(_mm512_max_ps(lo, _mm512_min_ps(hi, _mm512_mul_ps(a, iv))));
    const __m512i qb = _mm512_cvtps_epi32(_mm512_max_ps(lo, _mm512_min_ps(hi, _mm512_mul_ps(b, iv))));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + c * kQ8Block), _mm512_cvtsepi32_epi8(qa));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + c * kQ8Block + 16), _mm512_cvtsepi32_epi8(qb));
  });
}

// ---- q4 x q8
// Per-call tables, in the lane order of one 64-byte chunk of a row (128 weights). x is quantized in
// blocks of the weights' group (q8_x_block), so a lane's low-nibble and high-nibble activations (the
// two halves of one group) share one scale: the two integer dot products add up exactly before a
// single conversion.
struct Q4Tables {
  int8_t* xl;  // activations matching the low nibbles (first half of each group)
  int8_t* xh;  // ... and the high nibbles (second half)
  float* d;    // per-lane activation scale
  float* cs;   // per-lane (sum(xl) + sum(xh)) * d: the zero point's term (affine)
  int32_t* n;  // symmetric: -8 * per-lane (sum(xl) + sum(xh)), the accumulators' start
};
constexpr size_t kQ4TableBytesPerChunk = 64 + 64 + 3 * 64;

// 128-bit lanes of a chunk's 128 activations (two 64-byte halves a, b) that hold the first and
// second halves of its groups.
template <int G>
constexpr int kFirstHalves = G == 32 ? _MM_SHUFFLE(2, 0, 2, 0) : _MM_SHUFFLE(1, 0, 1, 0);
template <int G>
constexpr int kSecondHalves = G == 32 ? _MM_SHUFFLE(3, 1, 3, 1) : _MM_SHUFFLE(3, 2, 3, 2);

// Vectorized (a few operations per chunk): built per call and per range of rows, the scalar loop
// was 3% of a two-thread TinyLlama Q4_0 decode.
template <int G>
void build_q4_tables(const int8_t* xq, const float* xd, int chunks, uint8_t* mem, Q4Tables& t) {
  t.xl = reinterpret_cast<int8_t*>(mem);
  t.xh = t.xl + chunks * 64;
  t.d = reinterpret_cast<float*>(t.xh + chunks * 64);
  t.cs = t.d + chunks * 16;
  t.n = reinterpret_cast<int32_t*>(t.cs + chunks * 16);
  // Lane l holds activations 4l..4l+3 of the chunk's halves: group i = 4l / (G/2), offset j = 4l % (G/2),
  // so x's 32-block (i * G + j) / 32 of the chunk's four. Past K the high half's scale is 0 where the low
  // half's is not (its codes are 0 there too).
  alignas(64) int32_t blk[16];
  for (int l = 0; l < 16; l++) blk[l] = ((4 * l) / (G / 2) * G + (4 * l) % (G / 2)) / kQ8Block;
  const __m512i didx = _mm512_load_si512(blk);
  const __m512i ones = _mm512_set1_epi8(1);
  for (int c = 0; c < chunks; c++) {
    const __m512i a = _mm512_loadu_si512(xq + 128 * c), b = _mm512_loadu_si512(xq + 128 * c + 64);  // q8_padded: whole chunks
    __m512i xl = a, xh = b;
    if constexpr (G < 128) {
      xl = _mm512_shuffle_i64x2(a, b, kFirstHalves<G>);
      xh = _mm512_shuffle_i64x2(a, b, kSecondHalves<G>);
    }
    _mm512_storeu_si512(t.xl + 64 * c, xl);
    _mm512_storeu_si512(t.xh + 64 * c, xh);
    const __m512i sum = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, xl), ones, xh);
    const __m512 d = _mm512_permutexvar_ps(didx, _mm512_maskz_loadu_ps(0xf, xd + 4 * c));
    _mm512_storeu_ps(t.d + 16 * c, d);
    _mm512_storeu_si512(t.n + 16 * c, _mm512_mullo_epi32(sum, _mm512_set1_epi32(-kQ4SymmetricZero)));
    _mm512_storeu_ps(t.cs + 16 * c, _mm512_mul_ps(_mm512_cvtepi32_ps(sum), d));
  }
}

// A row's scales for the 128/G groups of chunk c, one per lane group (lane l: group l / (G/8)).
template <int G>
inline __m512 chunk_scales(const uint8_t* s, ScaleType t, __m512i idx) {
  if constexpr (G == 128) {
    return _mm512_set1_ps(scale_at(s, t));
  } else {
    constexpr int n = 128 / G;
    __m512 v;
    if (t == ScaleType::F32) {
      v = _mm512_castps128_ps512(n == 4 ? _mm_loadu_ps(reinterpret_cast<const float*>(s)) : _mm_castsi128_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(s))));
    } else {
      const __m128i h = n == 4 ? _mm_loadl_epi64(reinterpret_cast<const __m128i*>(s)) : _mm_loadu_si32(s);
      v = t == ScaleType::F16 ? _mm512_cvtph_ps(_mm256_castsi128_si256(h)) : _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_castsi128_si256(h)), 16));
    }
    return _mm512_permutexvar_ps(idx, v);
  }
}

// The same for a row's last, possibly partial chunk: groups past the row get scale 0.
inline __m512 tail_scales(const uint8_t* s, ScaleType t, int count, int valid, __m512i idx) {
  const __mmask16 m = tail_mask(std::min(count, valid));
  __m512 v;
  if (t == ScaleType::F32) {
    v = _mm512_maskz_loadu_ps(m, s);
  } else {
    const __m256i h = _mm256_castsi128_si256(_mm_maskz_loadu_epi16((__mmask8)m, s));
    v = t == ScaleType::F16 ? _mm512_cvtph_ps(h) : _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
  return _mm512_permutexvar_ps(idx, v);
}

// One weight row's 64-byte chunk unpacked: its low and high nibbles, the scales and zero points of
// its 128/G groups laid out per lane.
struct Q4Chunk {
  __m512i lo, hi;
  __m512 sc, zf;
};

// Chunk c of NR weight rows against NA activation rows (their tables t[0..NA)): each weight row's
// codes, scales and zero points are loaded and unpacked once for all NA, and every (weight row,
// activation row) pair runs the same operations in the same order whatever NA is, so a row of a
// batch gets its lone GEMV's bits. Only the order of the loads differs: alone (NA 1), both rows'
// chunks are loaded and unpacked before any product, which keeps more loads in flight; with several
// activation rows, their vectors are loaded first and each weight row is unpacked just before its
// products (unpacking every row first spilled at NA 4). Against the previous single order, Zen 5,
// TinyLlama Q4_0 forward steps alternated six times: one stream 0.94-1.20x (median 1.05), eight
// streams 1.02-1.15x.
// Always inlined: GCC left the lone row's chunk (NR 1, NA 1) a call per 128 weights with the sum
// in memory, a store-forwarding chain that ran rows read one by one (ranges too short for far-apart
// pairs: k and v at two threads, small models) 2.8x slower per row than pairs from cache.
template <int NR, int NA, int G, bool Tail>
__attribute__((always_inline)) inline void q4_q8_chunk(const WeightRows& w, const int* rs, const Q4Tables* t, int c, int ng, __m512i sidx, __m512 (&total)[NR][NA]) {
  constexpr int gpc = 128 / G;
  const int sb = scale_bytes(w.stype), g0 = c * gpc;
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  const bool affine = w.z != nullptr;
  const int row_bytes = ng * (G / 2);
  const __mmask64 m = Tail ? (((__mmask64)1 << (row_bytes - 64 * c)) - 1) : ~(__mmask64)0;
  auto unpack = [&](int r) {
    Q4Chunk k;
    const uint8_t* p = w.q + rs[r] * w.q_ld + 64 * c;
    if (!Tail) stream_prefetch(p, 64);  // Zen 5, from DRAM, one core: Q4_0 21-22 -> 27 GB/s
    const __m512i v = Tail ? _mm512_maskz_loadu_epi8(m, p) : _mm512_loadu_si512(p);
    k.lo = _mm512_and_si512(v, low4);
    k.hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
    k.zf = _mm512_setzero_ps();
    if (affine) {
      const __m128i zb = Tail ? _mm_maskz_loadu_epi8((__mmask16)tail_mask(std::min(gpc, ng - g0)), w.z + rs[r] * w.z_ld + g0) : _mm_loadu_si32(w.z + rs[r] * w.z_ld + g0);
      k.zf = _mm512_permutexvar_ps(sidx, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(zb)));
    }
    const uint8_t* s = w.s + rs[r] * w.s_ld + g0 * sb;
    k.sc = Tail ? tail_scales(s, w.stype, gpc, ng - g0, sidx) : chunk_scales<G>(s, w.stype, sidx);
    return k;
  };
  auto pair = [&](const Q4Chunk& k, __m512i xl, __m512i xh, __m512 d, __m512i n0, int a, __m512& acc) {
    const __m512i i = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(n0, k.lo, xl), k.hi, xh);
    __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(i), d);
    if (affine) f = _mm512_fnmadd_ps(k.zf, _mm512_loadu_ps(t[a].cs + c * 16), f);
    acc = _mm512_fmadd_ps(f, k.sc, acc);
  };
  // The activation rows' vectors (NA 1: after the weight rows' chunks).
  __m512i xl[NA], xh[NA], n0[NA];
  __m512 d[NA];
  auto activations = [&]() {
    IE_UNROLL for (int a = 0; a < NA; a++) {
      xl[a] = _mm512_loadu_si512(t[a].xl + c * 64);
      xh[a] = _mm512_loadu_si512(t[a].xh + c * 64);
      d[a] = _mm512_loadu_ps(t[a].d + c * 16);
      n0[a] = affine ? _mm512_setzero_si512() : _mm512_loadu_si512(t[a].n + c * 16);
    }
  };
  if constexpr (NA == 1) {
    Q4Chunk k[NR];
    IE_UNROLL for (int r = 0; r < NR; r++) k[r] = unpack(r);
    activations();
    IE_UNROLL for (int r = 0; r < NR; r++) pair(k[r], xl[0], xh[0], d[0], n0[0], 0, total[r][0]);
  } else {
    activations();
    for (int r = 0; r < NR; r++) {
      const Q4Chunk k = unpack(r);
      IE_UNROLL for (int a = 0; a < NA; a++) pair(k, xl[a], xh[a], d[a], n0[a], a, total[r][a]);
    }
  }
}

// NR weight rows (rs) x NA activation rows: y[a][rs[r]] (+)= row rs[r] . x of t[a]. Not inlined:
// with every (NR, NA) case inlined into one caller, GCC's code for the lone GEMV's loop ran 0.75-0.9x
// from cache (rows_i8_q8 alike).
template <int NR, int NA, int G>
__attribute__((noinline)) void rows_q4_q8(const WeightRows& w, const int* rs, const Q4Tables* t, int chunks, __m512i sidx, float* const* y, bool acc) {
  const int ng = (w.K + G - 1) / G, full = ng * (G / 2) / 64;
  __m512 total[NR][NA];
  IE_UNROLL for (int r = 0; r < NR; r++) IE_UNROLL for (int a = 0; a < NA; a++) total[r][a] = _mm512_setzero_ps();
  for (int c = 0; c < full; c++) q4_q8_chunk<NR, NA, G, false>(w, rs, t, c, ng, sidx, total);
  if (full < chunks) q4_q8_chunk<NR, NA, G, true>(w, rs, t, full, ng, sidx, total);
  for (int r = 0; r < NR; r++)
    for (int a = 0; a < NA; a++) {
      const float v = _mm512_reduce_add_ps(total[r][a]);
      y[a][rs[r]] = acc ? y[a][rs[r]] + v : v;
    }
}

// M activation rows (xq + m * ldq, xd + m * ldd -> y + m * ldy; M = 1 is the lone GEMV).
template <int G>
void gemv_q4_q8_many(const WeightRows& w, const int8_t* xq, const float* xd, ptrdiff_t ldq, ptrdiff_t ldd, int M, float* y, ptrdiff_t ldy, int rows, bool acc) {
  const int ng = (w.K + G - 1) / G, chunks = (ng * (G / 2) + 63) / 64;
  // One activation row's tables for K up to 8192 fit the stack; more rows or longer K, the heap.
  Scratch<uint8_t, 64 * kQ4TableBytesPerChunk> mem((size_t)M * chunks * kQ4TableBytesPerChunk);
  Scratch<Q4Tables, 8> tables((size_t)M);
  Scratch<float*, 8> ys((size_t)M);
  Q4Tables* t = tables.data();
  for (int m = 0; m < M; m++) {
    build_q4_tables<G>(xq + m * ldq, xd + m * ldd, chunks, mem.data() + (size_t)m * chunks * kQ4TableBytesPerChunk, t[m]);
    ys.data()[m] = y + m * ldy;
  }
  constexpr int lanes = 16 / (128 / G);
  alignas(64) int32_t idx[16];
  for (int l = 0; l < 16; l++) idx[l] = l / lanes;
  const __m512i sidx = _mm512_load_si512(idx);
  row_streams(rows, w.q_ld, [&](auto n, const int* rs) {
    // Each weight row's codes unpacked once per pass (a row of 2048 q4 weights stays in L1 for the next).
    act_passes(M, [&](auto na, int a) { rows_q4_q8<decltype(n)::value, decltype(na)::value, G>(w, rs, t + a, chunks, sidx, ys.data() + a, acc); });
  });
}

void gemv_rows_q4_q8_avx512vnni(const WeightRows& w, const int8_t* xq, const float* xd, ptrdiff_t ldq, ptrdiff_t ldd, int M, float* y, ptrdiff_t ldy, int rows, bool acc) {
  switch (w.group) {
    case 32: return gemv_q4_q8_many<32>(w, xq, xd, ldq, ldd, M, y, ldy, rows, acc);
    case 64: return gemv_q4_q8_many<64>(w, xq, xd, ldq, ldd, M, y, ldy, rows, acc);
    default: return gemv_q4_q8_many<128>(w, xq, xd, ldq, ldd, M, y, ldy, rows, acc);
  }
}

void gemv_q4_q8_avx512vnni(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) { gemv_rows_q4_q8_avx512vnni(w, xq, xd, 0, 0, 1, y, 0, rows, acc); }

// ---- i8 x q8: weights + 128 (the sign bit flipped) as the unsigned operand against the signed
// activations: sum((w + 128) x) = sum(w x) + 128 sum(x), and -128 sum(x) (per call, per 4
// activations) is each dot product's starting value, so a chunk costs one vpdpbusd and one xor.
// A 64-weight chunk spans two 32-blocks of x; its factor is x's block scale times the weights'
// group scale (or x's alone with one scale per row, applied at the end), one conversion and one FMA.
// The scales are made f32 and laid out per lane once (x's per call, a row's per row): converting
// them in the loop, branching on their type per chunk, ran Q8_0 at 17 G weights/s on one Zen 5
// core from cache (29 with the AVX2 kernel); with them laid out, 56-59. Rows go in far-apart pairs
// (row_streams), each stream's line 2 KiB ahead prefetched; each row's chunk is loaded and flipped
// once for up to four activation rows.

// Per-call tables of one activation row, per 64-weight chunk: the dot products' starting values and
// x's two block scales, eight lanes each.
struct I8Tables {
  const int8_t* xq;
  int32_t* x0;  // -128 * the sum of each lane's four activations
  float* d;     // lanes 0-7: d_x of the chunk's first block, 8-15: of its second
};
constexpr size_t kI8TableBytesPerChunk = 64 + 64;

void build_i8_tables(const int8_t* xq, const float* xd, int chunks, uint8_t* mem, I8Tables& t) {
  t.xq = xq;
  t.x0 = reinterpret_cast<int32_t*>(mem);
  t.d = reinterpret_cast<float*>(mem + (size_t)chunks * 64);
  for (int c = 0; c < chunks; c++)
    for (int l = 0; l < 16; l++) {
      const int8_t* q = xq + 64 * c + 4 * l;
      t.x0[c * 16 + l] = -128 * (q[0] + q[1] + q[2] + q[3]);
      t.d[c * 16 + l] = xd[2 * c + l / 8];  // x is zero-padded to whole 128-element chunks (q8_padded)
    }
}

// A row's weight scale per 32-block: sb[b] = s_w[b / BPG] (BPG = group / 32) for its nb blocks, 0
// up to `blocks` (so a chunk past the row's last group multiplies by 0, never by a neighbour's bytes).
template <int BPG>
inline void block_scales(const float* sf, int nb, int blocks, float* sb) {
  alignas(64) static constexpr int32_t kIdx[16] = {0 / BPG, 1 / BPG, 2 / BPG, 3 / BPG, 4 / BPG, 5 / BPG, 6 / BPG, 7 / BPG,
                                                   8 / BPG, 9 / BPG, 10 / BPG, 11 / BPG, 12 / BPG, 13 / BPG, 14 / BPG, 15 / BPG};
  const __m512i idx = _mm512_load_si512(kIdx);
  constexpr __mmask16 m = (__mmask16)((1u << (16 / BPG)) - 1);
  int b = 0;
  for (; b + 16 <= nb; b += 16) _mm512_storeu_ps(sb + b, _mm512_permutexvar_ps(idx, _mm512_maskz_loadu_ps(m, sf + b / BPG)));
  for (; b < nb; b++) sb[b] = sf[b / BPG];
  for (; b < blocks; b++) sb[b] = 0.f;
}

// NR weight rows (rs) x NA activation rows (t), G: the weights' group (0: one scale per row). Every
// (weight row, activation row) pair runs the same operations whatever NR and NA are. `sbuf` holds
// NR * blocks floats. Nta: each line prefetched non-temporally (the four rows on Zen 5), else 2 KiB
// ahead into L1 (stream_prefetch).
template <int NR, int NA, int G, bool Nta>
__attribute__((noinline)) void rows_i8_q8(const WeightRows& w, const int* rs, const I8Tables* t, float* sbuf, int blocks, float* const* y, bool acc) {
  const int K = w.K;
  const __m512i flip = _mm512_set1_epi8((char)0x80);
  const __m512i halves = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);  // lane l: block l / 8 of the chunk
  const uint8_t* row[NR];
  const float* sb[NR];
  for (int r = 0; r < NR; r++) {
    row[r] = w.q + rs[r] * w.q_ld;
    if constexpr (G > 0) {
      const int ng = (K + G - 1) / G;
      Scratch<float, 256> sf((size_t)ng);
      simd::row_scales_f32(w.s + rs[r] * w.s_ld, w.stype, ng, sf.data());
      float* s = sbuf + (size_t)r * blocks;
      block_scales<G / kQ8Block>(sf.data(), (K + kQ8Block - 1) / kQ8Block, blocks, s);
      sb[r] = s;
    }
  }
  __m512 total[NR][NA];
  IE_UNROLL for (int r = 0; r < NR; r++) IE_UNROLL for (int a = 0; a < NA; a++) total[r][a] = _mm512_setzero_ps();
  const int chunks = (K + 63) / 64, full = K / 64;
  for (int c = 0; c < chunks; c++) {
    const int k = 64 * c;
    __m512i xv[NA], x0[NA];
    __m512 xd[NA];
    IE_UNROLL for (int a = 0; a < NA; a++) {
      xv[a] = _mm512_loadu_si512(t[a].xq + k);  // zero past K (q8_padded)
      x0[a] = _mm512_loadu_si512(t[a].x0 + 16 * c);
      xd[a] = _mm512_loadu_ps(t[a].d + 16 * c);
    }
    IE_UNROLL for (int r = 0; r < NR; r++) {
      const uint8_t* p = row[r] + k;
      if constexpr (Nta) _mm_prefetch(reinterpret_cast<const char*>(p + kFloatStreamAhead), _MM_HINT_NTA);
      else stream_prefetch(p, 64);
      const __m512i v = _mm512_xor_si512(c < full ? _mm512_loadu_si512(p) : _mm512_maskz_loadu_epi8(((__mmask64)1 << (K - k)) - 1, p), flip);
      __m512 sw = _mm512_setzero_ps();
      if constexpr (G > 0) sw = _mm512_permutexvar_ps(halves, _mm512_castps128_ps512(_mm_castsi128_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(sb[r] + 2 * c)))));
      IE_UNROLL for (int a = 0; a < NA; a++) {
        const __m512 dot = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(x0[a], v, xv[a]));
        total[r][a] = _mm512_fmadd_ps(dot, G > 0 ? _mm512_mul_ps(xd[a], sw) : xd[a], total[r][a]);
      }
    }
  }
  for (int r = 0; r < NR; r++)
    for (int a = 0; a < NA; a++) {
      float v = _mm512_reduce_add_ps(total[r][a]);
      if (G == 0) v *= scale_at(w.s + rs[r] * w.s_ld, w.stype);
      y[a][rs[r]] = acc ? y[a][rs[r]] + v : v;
    }
}

template <int NR, int NA, bool Four>
void rows_i8_q8_group(const WeightRows& w, const int* rs, const I8Tables* t, float* sbuf, int blocks, float* const* y, bool acc) {
  switch (w.group) {
    case 0: return rows_i8_q8<NR, NA, 0, Four>(w, rs, t, sbuf, blocks, y, acc);
    case 32: return rows_i8_q8<NR, NA, 32, Four>(w, rs, t, sbuf, blocks, y, acc);
    case 64: return rows_i8_q8<NR, NA, 64, Four>(w, rs, t, sbuf, blocks, y, acc);
    default: return rows_i8_q8<NR, NA, 128, Four>(w, rs, t, sbuf, blocks, y, acc);
  }
}

// M activation rows (xq + m * ldq, xd + m * ldd -> y + m * ldy; M = 1 is the lone GEMV). Four: rows
// in fours with the NTA prefetch (Zen 5: prefers_four_row_streams), else in pairs.
template <bool Four, LineFetch Fetch>
void gemv_rows_i8_q8(const WeightRows& w, const int8_t* xq, const float* xd, ptrdiff_t ldq, ptrdiff_t ldd, int M, float* y, ptrdiff_t ldy, int rows, bool acc) {
  const int chunks = (w.K + 63) / 64, blocks = 2 * chunks;
  Scratch<uint8_t, 128 * kI8TableBytesPerChunk> mem((size_t)M * chunks * kI8TableBytesPerChunk);
  Scratch<I8Tables, 8> tables((size_t)M);
  Scratch<float*, 8> ys((size_t)M);
  I8Tables* t = tables.data();
  for (int m = 0; m < M; m++) {
    build_i8_tables(xq + m * ldq, xd + m * ldd, chunks, mem.data() + (size_t)m * chunks * kI8TableBytesPerChunk, t[m]);
    ys.data()[m] = y + m * ldy;
  }
  // Each row of a call's streams lays its group scales out here (rows_i8_q8).
  constexpr int kStreams = Four ? kFloatStreams : 2;
  Scratch<float, kStreams * 256> sbuf((size_t)kStreams * blocks);
  auto run = [&](auto n, const int* rs) {
    act_passes(M, [&](auto na, int a) { rows_i8_q8_group<decltype(n)::value, decltype(na)::value, Four && Fetch == LineFetch::Nta>(w, rs, t + a, sbuf.data(), blocks, ys.data() + a, acc); });
  };
  // Four far-apart rows, each line prefetched non-temporally, as the float GEMVs read theirs. Zen 5,
  // TinyLlama's shapes from DRAM, alternated in three rounds (`ONLY=q8_0+int8,int8w+int8 GIB=1
  // THREADS=1,2 pnpm bench:kernels`): int8w 34.2-37.7 -> 36.5-39.0 GB/s on one thread, 43.5-45.6 ->
  // 46.4-46.6 on two. Per-group scales (Q8_0) kept pairs then (0.93-0.94x across builds in two
  // rounds); switched between passes in one process (stop 60, seven rounds), Q8_0 in fours read
  // 21.1-29.0 GB/s on one thread against 17.5-23.7 in pairs with the T0 prefetch 2 KiB ahead (pairs
  // with the NTA prefetch 21.6-27.1, the T0 1 KiB or 4 KiB ahead, none, or one row at a time no
  // better), 41.5-45.3 against 39.4-43.3 on two; TinyLlama Q8_0 decode 19.0-22.7 against 15.5-19.0
  // tok/s on one thread, 38.5-44.6 against 32.6-41.5 on two (`ie bench`, alternated three rounds).
  if (Four) row_streams<kFloatStreams>(rows, w.q_ld, run);
  else row_streams(rows, w.q_ld, run);
}

template <LineFetch Fetch>
void gemv_rows_i8_q8_avx512vnni(const WeightRows& w, const int8_t* xq, const float* xd, ptrdiff_t ldq, ptrdiff_t ldd, int M, float* y, ptrdiff_t ldy, int rows, bool acc) {
  gemv_rows_i8_q8<true, Fetch>(w, xq, xd, ldq, ldd, M, y, ldy, rows, acc);
}
template <LineFetch Fetch>
void gemv_i8_q8_avx512vnni(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) { gemv_rows_i8_q8<true, Fetch>(w, xq, xd, 0, 0, 1, y, 0, rows, acc); }
void gemv_rows_i8_q8_avx512vnni_pairs(const WeightRows& w, const int8_t* xq, const float* xd, ptrdiff_t ldq, ptrdiff_t ldd, int M, float* y, ptrdiff_t ldy, int rows,
                                      bool acc) {
  gemv_rows_i8_q8<false, LineFetch::T0>(w, xq, xd, ldq, ldd, M, y, ldy, rows, acc);
}
void gemv_i8_q8_avx512vnni_pairs(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) {
  gemv_rows_i8_q8<false, LineFetch::T0>(w, xq, xd, 0, 0, 1, y, 0, rows, acc);
}

}  // namespace

void register_q8_avx512vnni(KernelTable& t, const CpuFeatures& f) {
  const bool four = prefers_four_row_streams(f);
  t.q8_variant = "avx512vnni";
  t.quantize_x = quantize_x_q8_avx512;
  t.gemv_q8[(int)WeightType::Q4] = gemv_q4_q8_avx512vnni;
  // Where 512-bit operations run at half width (Zen 4) the AVX2 i8 kernels registered before stay.
  if (avx512_full_width(f)) {
    const bool nta = weight_line_fetch(f) == LineFetch::Nta;
    t.gemv_q8[(int)WeightType::I8] = !four ? gemv_i8_q8_avx512vnni_pairs : nta ? gemv_i8_q8_avx512vnni<LineFetch::Nta> : gemv_i8_q8_avx512vnni<LineFetch::T0>;
    t.gemv_q8_rows[(int)WeightType::I8] = !four ? gemv_rows_i8_q8_avx512vnni_pairs : nta ? gemv_rows_i8_q8_avx512vnni<LineFetch::Nta> : gemv_rows_i8_q8_avx512vnni<LineFetch::T0>;
  }
  t.gemv_q8_rows[(int)WeightType::Q4] = gemv_rows_q4_q8_avx512vnni;
}

}  // namespace ie
