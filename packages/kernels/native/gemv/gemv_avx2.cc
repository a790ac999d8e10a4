// AVX2 + FMA + F16C GEMV with FP32 activations, tuned for AVX2 cores on their own terms.
//
// The float GEMVs read far-apart rows side by side (gemv/row_streams.h): four with a non-temporal
// prefetch on Zen 5, pairs elsewhere, as the AVX-512 ones do. (Adjacent rows read side by side
// stream at a third to half the bandwidth on Zen 3: the hardware prefetchers lose them.) The i8
// and q4 rows go in far-apart pairs too, each line prefetched ahead, each x load serving both.
//
// Quantized rows use unsigned codes and fold the zero point in once per row:
// sum_j s_g (q_j - z_g) x_j = sum_g s_g sum_j q_j x_j - sum_g s_g z_g xsum_g, with the group sums
// of x computed once per call over a zero-padded copy of x, so every group is a whole group and
// the inner loops have no tails. Each row's arithmetic is the same whatever rows a call gets, so
// results are bit-identical for every thread count.
#include <algorithm>
#include <vector>

#include "cpu/avx2_common.h"
#include "cpu/cpu_features.h"
#include "cpu/kernel_table.h"
#include "cpu/vec.h"
#include "gemv/row_streams.h"
#include "mem/aligned.h"

namespace ie {
namespace {
using namespace avx2;

struct LoadF32 {
  static constexpr int esize = 4;
  static __m256 full(const uint8_t* p) { return _mm256_loadu_ps(reinterpret_cast<const float*>(p)); }
  static __m256 part(const uint8_t* p, int n) { return load_f32(reinterpret_cast<const float*>(p), n); }
};
struct LoadF16 {
  static constexpr int esize = 2;
  static __m256 full(const uint8_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
  static __m256 part(const uint8_t* p, int n) { return load_f16(p, n); }
};
struct LoadBF16 {
  static constexpr int esize = 2;
  static __m256 full(const uint8_t* p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), 16));
  }
  static __m256 part(const uint8_t* p, int n) { return load_bf16(p, n); }
};

// ---- f32 / f16 / bf16: a row's sum is kChains chains; chain i sums, in order, the 8-element chunks
// at k = kStep s + 8 i, then the chunk at kStep S + 8 i when it is whole (S = K / kStep), and the
// last chain the partial tail. Two chains a row, several rows at once: the chains of four rows keep
// the FMAs busy, and each row's 16 elements a step are one 64-byte line of f32 every step, of f16 /
// bf16 every other. Zen 5, one TinyLlama layer set from DRAM, IE_ISA=avx2 bench:kernels, three
// rounds alternated (share of the read probe, 1 / 2 threads): one row at a time with eight chains
// bf16 64-78% / 59-70%, f16 72-80 / 59-67, f32 72-82 / 73-88; four rows of two chains with the NTA
// prefetch bf16 82-90 / 73-79, f16 77-93 / 72-79, f32 85-97 / 73-91. Pairs of four chains, or
// rows in turns of 512 elements (keeping eight chains) measured between or below.
constexpr int kChains = 2;
constexpr int kStep = 8 * kChains;

// NR rows (rs: far apart, row_streams) against x. Nta: every line of the rows prefetched
// non-temporally kFloatStreamAhead ahead (Zen 5: four rows).
template <int NR, typename Load, bool Nta>
inline void rows_float(const WeightRows& w, const int* rs, const float* x, float* y, bool acc) {
  constexpr int es = Load::esize;
  const int K = w.K;
  const uint8_t* row[NR];
  for (int r = 0; r < NR; r++) row[r] = w.q + (ptrdiff_t)rs[r] * w.q_ld;
  __m256 a[NR][kChains];
  IE_UNROLL for (int r = 0; r < NR; r++) IE_UNROLL for (int i = 0; i < kChains; i++) a[r][i] = _mm256_setzero_ps();
  auto step = [&](int k) __attribute__((always_inline)) {
    IE_UNROLL for (int i = 0; i < kChains; i++) {
      __m256 xv = _mm256_loadu_ps(x + k + 8 * i);
      if constexpr (NR > 1) __asm__("" : "+x"(xv));  // one load for all NR FMAs (see chain_span)
      IE_UNROLL for (int r = 0; r < NR; r++) a[r][i] = _mm256_fmadd_ps(Load::full(row[r] + (k + 8 * i) * es), xv, a[r][i]);
    }
  };
  int k = 0;
  for (; k + 2 * kStep <= K; k += 2 * kStep) {
    if constexpr (Nta) IE_UNROLL for (int r = 0; r < NR; r++) stream_prefetch<kFloatStreamAhead, _MM_HINT_NTA>(row[r] + k * es, 2 * kStep * es);
    step(k);
    step(k + kStep);
  }
  if (k + kStep <= K) step(k), k += kStep;
  for (int r = 0; r < NR; r++) {
    int kk = k;
    for (int i = 0; kk + 8 <= K; kk += 8, i++) a[r][i] = _mm256_fmadd_ps(Load::full(row[r] + kk * es), _mm256_loadu_ps(x + kk), a[r][i]);
    if (kk < K) a[r][kChains - 1] = _mm256_fmadd_ps(Load::part(row[r] + kk * es, K - kk), load_f32(x + kk, K - kk), a[r][kChains - 1]);
    static_assert(kChains == 2, "the reductions add two chains");
    const float v = hsum(_mm256_add_ps(a[r][0], a[r][1]));
    y[rs[r]] = acc ? y[rs[r]] + v : v;
  }
}

// Long rows (K > 4096: more than 16 KiB of x) are the exception: x and the weight stream no
// longer fit L1 together, x is re-read from L2 for every row, and those reads become the limit
// (ffn_down ran at 60% of the other matrices' rate). There, NR rows share each load of x. Every
// row keeps one accumulator and the same order of operations whatever block it falls in, so
// results do not depend on how rows are split between threads.
constexpr int kLongRowK = 4096;
constexpr int kLongRowBlock = 12;  // measured on Zen 3: 4 rows 25, 6 rows 27, 12 rows 31 GB/s (f32, 1 thread)

template <int NR, typename Load>
inline void long_rows_float(const WeightRows& w, const float* x, float* y, bool acc) {
  constexpr int es = Load::esize;
  const int K = w.K;
  __m256 a[NR];
  for (int r = 0; r < NR; r++) a[r] = _mm256_setzero_ps();
  int k = 0;
  for (; k + 8 <= K; k += 8) {
    const __m256 xv = _mm256_loadu_ps(x + k);
    IE_UNROLL for (int r = 0; r < NR; r++) a[r] = _mm256_fmadd_ps(Load::full(w.q + r * w.q_ld + k * es), xv, a[r]);
  }
  if (k < K) {
    const __m256 xv = load_f32(x + k, K - k);
    for (int r = 0; r < NR; r++) a[r] = _mm256_fmadd_ps(Load::part(w.q + r * w.q_ld + k * es, K - k), xv, a[r]);
  }
  for (int r = 0; r < NR; r++) {
    const float v = hsum(a[r]);
    y[r] = acc ? y[r] + v : v;
  }
}

// A lone activation row: four far-apart rows at once with the NTA prefetch (Zen 5,
// prefers_four_row_streams; f16 / bf16 on Zen 3 too, half_floats_in_four_rows), however short the
// range (row_streams_batched: a row alone waits on its two FMA chains; one-stream F16 / BF16 decode
// with IE_ISA=avx2 on two Zen 5 cores, switched in one process, eight runs each: 23.14 -> 23.69 and
// 22.50 -> 23.06 tok/s), or pairs with none (elsewhere: `Pairs`).
template <typename Load, bool Pairs = false>
void gemv_float(const WeightRows& w, const float* x, float* y, int rows, bool acc) {
  if (w.K > kLongRowK) {
    int r = 0;
    for (; r + kLongRowBlock <= rows; r += kLongRowBlock) long_rows_float<kLongRowBlock, Load>(w.from_row(r), x, y + r, acc);
    for (; r < rows; r++) long_rows_float<1, Load>(w.from_row(r), x, y + r, acc);
    return;
  }
  if constexpr (Pairs) row_streams<2>(rows, w.q_ld, [&](auto n, const int* rs) { rows_float<decltype(n)::value, Load, false>(w, rs, x, y, acc); });
  else row_streams_batched<kFloatStreams>(rows, [&](auto n, const int* rs) { rows_float<decltype(n)::value, Load, true>(w, rs, x, y, acc); });
}

// ---- Several activation rows at once (decode rows of several sequences in one step), each
// result bit-identical to rows_float / long_rows_float for that row alone: every (weight row,
// activation row) pair keeps the same accumulator chains with the same terms in the same order;
// only the loop nest changes, so that each weight vector is loaded (and converted) once for up to
// kMA activation rows instead of once per row.
//
// Both paths go K block by K block over kChainRows weight rows lying a third of the rows apart
// (adjacent rows read together stream slowly, as for the q4 x q8 row pairs), read in place while
// each pass brings a share of the next block into L1, against every activation row; each tile of
// activation rows converts the f16 / bf16 weights it loads. (A copy of each block as f32 first,
// converted once for all activation rows, made the stores wait on the loads from DRAM, a third of
// the kernel's samples: in place, eight TinyLlama streams ran 1.18-1.6x (F32) and 1.07-1.37x (F16,
// BF16) the tokens per second on a Zen 3 VM.) The tiles measured 1.2-1.5x the GFLOP/s of the chain
// passes over 8-row blocks they replaced (Zen 3, 8 rows of TinyLlama's matrices from DRAM; 1.5-1.8x
// on 2048 x 5632).
constexpr int kMA = 4;  // activation rows per register tile
constexpr int kChainRows = 3;  // weight rows per tile: 3 x kMA accumulators + 3 weight vectors + x fill the 16 registers

// Short rows: rows_float's chains (kChains of them, over kStep-element steps). x is staged
// chain-major (xs[i][t][m], zero past K in the tail chunk) so a tile reads it contiguously.
constexpr int kLast = kChains - 1;
struct ChainPlan {
  int S, whole, part;  // steps, whole 8-chunks after them, elements in the partial tail
  int terms(int i) const { return S + (i < whole ? 1 : 0) + (i == kLast && part ? 1 : 0); }
  int k_of(int i, int t) const { return t < S ? kStep * t + 8 * i : (t == S && i < whole ? kStep * S + 8 * i : kStep * S + 8 * whole); }
  bool partial(int i, int t) const { return i == kLast && part && t == terms(i) - 1; }
};
constexpr int kPair = 8 * kChains;  // floats of one (weight row, activation row) pair's chains

// A chain's next `steps` terms for a tile of NW weight rows x MA activation rows: `w[n]` is row
// n's block of weights (kStep x steps, as L loads them), `xt` the chain's staged x from the same
// step. The accumulators live in `c` between blocks (pair (n, m) at c + (n * M + m) * kPair): each
// block adds the next terms of each chain in order, so the sums are rows_float's.
template <int NW, int MA, typename L>
inline void chain_span(const uint8_t* const* w, const float* xt, int M, int i, int steps, float* c, bool zero) {
  __m256 a[NW][MA];
  IE_UNROLL for (int n = 0; n < NW; n++) IE_UNROLL for (int m = 0; m < MA; m++) a[n][m] = zero ? _mm256_setzero_ps() : _mm256_loadu_ps(c + (n * M + m) * kPair);
  for (int t = 0; t < steps; t++) {
    __m256 wv[NW];
    IE_UNROLL for (int n = 0; n < NW; n++) wv[n] = L::full(w[n] + (kStep * t + 8 * i) * L::esize);
    IE_UNROLL for (int m = 0; m < MA; m++) {
      __m256 xv = _mm256_loadu_ps(xt + ((size_t)t * M + m) * 8);
      // In a register, used by every FMA: folded into each as a memory operand (GCC's choice), x
      // would be loaded NW times, and loads, not FMAs, would set the pace.
      __asm__("" : "+x"(xv));
      IE_UNROLL for (int n = 0; n < NW; n++) a[n][m] = _mm256_fmadd_ps(wv[n], xv, a[n][m]);
    }
  }
  IE_UNROLL for (int n = 0; n < NW; n++) IE_UNROLL for (int m = 0; m < MA; m++) _mm256_storeu_ps(c + (n * M + m) * kPair, a[n][m]);
}

// The chain's terms after the steps (a whole chunk; for the last chain the partial tail), pair by pair.
template <typename Load>
inline void chain_rest(const uint8_t* const* wrow, int nw, const float* xs, int M, const ChainPlan& p, int i, float* chains, bool zero) {
  constexpr int es = Load::esize;
  for (int n = 0; n < nw; n++)
    for (int m = 0; m < M; m++) {
      float* c = chains + (n * M + m) * kPair + 8 * i;
      __m256 a = zero ? _mm256_setzero_ps() : _mm256_loadu_ps(c);
      for (int t = p.S; t < p.terms(i); t++) {
        const int k = p.k_of(i, t);
        const __m256 w = p.partial(i, t) ? Load::part(wrow[n] + k * es, p.part) : Load::full(wrow[n] + k * es);
        a = _mm256_fmadd_ps(w, _mm256_loadu_ps(xs + ((size_t)t * M + m) * 8), a);
      }
      _mm256_storeu_ps(c, a);
    }
}

// Each pass over a K block brings a share of the next block's `next` bytes of every weight row into
// L1: `passes` shares of whole lines, computed once per block (a 64-bit division per pass and
// row tile cost eight f32 rows 10% of their rate from DRAM on Zen 3).
struct NextBlockShares {
  int next, share;
  NextBlockShares(int next_bytes, int passes) : next(next_bytes), share((next_bytes / 64 + passes - 1) / passes * 64) {}
  template <int NW>
  void prefetch(const uint8_t* const* w, int64_t ahead, int pass) const {
    const int from = pass * share, to = std::min(from + share, next);
    for (int n = 0; n < NW; n++)
      for (int l = from; l < to; l += 64) _mm_prefetch(reinterpret_cast<const char*>(w[n] + ahead + l), _MM_HINT_T0);
  }
};

// Steps per K block (256 elements): NW rows' block of weights and every activation row's staged x
// for it stay in L1 while the block's kChains chains x ceil(M / kMA) tiles run over them, and each
// pass brings its share of the next block into L1 (T0). Zen 3, eight rows, builds alternated twice
// (`GIB=1 ROWS=8 ONLY=fp32,bf16 THREADS=1 pnpm bench:kernels`): f32 41.4-41.6 -> 53.2-53.9 GFLOP/s
// on one core against 512-element blocks with the block 4 on prefetched with T1 (a standalone
// harness over this loop: 41 against 51 with no software prefetch at all, from DRAM); bf16 alike.
constexpr int kChainSteps = 256 / kStep;

// NW weight rows against every activation row: K block by K block, chain by chain, tiles of NW x
// kMA accumulators; chain i of pair (n, m) lands at chains + (n * M + m) * kPair + 8 * i.
template <typename Load, int NW>
void chain_rows(const uint8_t* const* wrow, const float* const* xs, int M, const ChainPlan& p, float* chains) {
  constexpr int es = Load::esize;
  for (int t0 = 0; t0 < p.S; t0 += kChainSteps) {
    const int steps = std::min(p.S - t0, kChainSteps);
    const uint8_t* w[NW];
    for (int n = 0; n < NW; n++) w[n] = wrow[n] + (int64_t)kStep * t0 * es;
    // A share of the next block into L1 each pass (see kChainSteps).
    const NextBlockShares shares(t0 + kChainSteps < p.S ? kStep * std::min(kChainSteps, p.S - t0 - kChainSteps) * es : 0, kChains * ((M + kMA - 1) / kMA));
    int pass = 0;
    for (int m0 = 0; m0 < M; m0 += kMA)
      for (int i = 0; i < kChains; i++, pass++) {
        shares.prefetch<NW>(w, kStep * kChainSteps * es, pass);
        const float* xt = xs[i] + ((size_t)t0 * M + m0) * 8;
        float* c = chains + m0 * kPair + 8 * i;
        switch (std::min(kMA, M - m0)) {
          case 4: chain_span<NW, 4, Load>(w, xt, M, i, steps, c, t0 == 0); break;
          case 3: chain_span<NW, 3, Load>(w, xt, M, i, steps, c, t0 == 0); break;
          case 2: chain_span<NW, 2, Load>(w, xt, M, i, steps, c, t0 == 0); break;
          default: chain_span<NW, 1, Load>(w, xt, M, i, steps, c, t0 == 0); break;
        }
      }
  }
  for (int i = 0; i < kChains; i++)
    if (p.terms(i) > p.S || p.S == 0) chain_rest<Load>(wrow, NW, xs[i], M, p, i, chains, p.S == 0);
}

// rows_float's reduction of a row's chains.
inline float reduce_chains(const float* c) { return hsum(_mm256_add_ps(_mm256_loadu_ps(c), _mm256_loadu_ps(c + 8))); }

template <typename Load, int NW>
inline void short_rows_tile(const WeightRows& w, const float* const* xs, int M, const ChainPlan& p, int r0, int gap, float* y, ptrdiff_t ldy, bool acc, float* chains) {
  const uint8_t* wrow[NW];
  for (int n = 0; n < NW; n++) wrow[n] = w.q + (r0 + n * gap) * w.q_ld;
  chain_rows<Load, NW>(wrow, xs, M, p, chains);
  for (int n = 0; n < NW; n++)
    for (int m = 0; m < M; m++) {
      const float v = reduce_chains(chains + ((size_t)n * M + m) * kPair);
      float& dst = y[m * ldy + r0 + n * gap];
      dst = acc ? dst + v : v;
    }
}

// Long rows: long_rows_float's one accumulator per row over 8-element steps, then the partial tail.
// `w[n]` is row n's block of weights (8 x chunks), `x` the activation rows at the same k; the
// accumulators live in `c` between blocks (pair (n, m) at c + (n * M + m) * 8).
template <int NW, int MA, typename Load>
inline void long_span(const uint8_t* const* w, const float* x, ptrdiff_t ldx, int chunks, int M, float* c, bool zero) {
  __m256 a[NW][MA];
  IE_UNROLL for (int n = 0; n < NW; n++) IE_UNROLL for (int m = 0; m < MA; m++) a[n][m] = zero ? _mm256_setzero_ps() : _mm256_loadu_ps(c + (n * M + m) * 8);
  for (int j = 0; j < chunks; j++) {
    __m256 wv[NW];
    IE_UNROLL for (int n = 0; n < NW; n++) wv[n] = Load::full(w[n] + 8 * j * Load::esize);
    IE_UNROLL for (int m = 0; m < MA; m++) {
      __m256 xv = _mm256_loadu_ps(x + m * ldx + 8 * j);
      __asm__("" : "+x"(xv));  // one load for all NW FMAs (see chain_span)
      IE_UNROLL for (int n = 0; n < NW; n++) a[n][m] = _mm256_fmadd_ps(wv[n], xv, a[n][m]);
    }
  }
  IE_UNROLL for (int n = 0; n < NW; n++) IE_UNROLL for (int m = 0; m < MA; m++) _mm256_storeu_ps(c + (n * M + m) * 8, a[n][m]);
}

// NW weight rows K block by K block, as chain_rows, against every activation row in tiles of NW x
// kMA accumulators.
constexpr int kLongBlock = 512;  // elements

template <typename Load, int NW>
inline void long_rows_tile(const WeightRows& w, const float* x, ptrdiff_t ldx, int M, int r0, int gap, float* y, ptrdiff_t ldy, bool acc, float* c) {
  constexpr int es = Load::esize;
  const int K = w.K, K8 = K / 8 * 8;
  const uint8_t* wrow[NW];
  for (int n = 0; n < NW; n++) wrow[n] = w.q + (r0 + n * gap) * w.q_ld;
  for (int k0 = 0; k0 < K8; k0 += kLongBlock) {
    const int len = std::min(kLongBlock, K8 - k0);
    const uint8_t* wb[NW];
    for (int n = 0; n < NW; n++) wb[n] = wrow[n] + (int64_t)k0 * es;
    // A share of the next block into L1 each pass (as chain_rows).
    const NextBlockShares shares(std::min(kLongBlock, K8 - k0 - len) * es, (M + kMA - 1) / kMA);
    for (int m0 = 0; m0 < M; m0 += kMA) {
      shares.prefetch<NW>(wb, (int64_t)len * es, m0 / kMA);
      const float* xm = x + m0 * ldx + k0;
      switch (std::min(kMA, M - m0)) {
        case 4: long_span<NW, 4, Load>(wb, xm, ldx, len / 8, M, c + m0 * 8, k0 == 0); break;
        case 3: long_span<NW, 3, Load>(wb, xm, ldx, len / 8, M, c + m0 * 8, k0 == 0); break;
        case 2: long_span<NW, 2, Load>(wb, xm, ldx, len / 8, M, c + m0 * 8, k0 == 0); break;
        default: long_span<NW, 1, Load>(wb, xm, ldx, len / 8, M, c + m0 * 8, k0 == 0); break;
      }
    }
  }
  for (int n = 0; n < NW; n++)
    for (int m = 0; m < M; m++) {
      __m256 a = K8 > 0 ? _mm256_loadu_ps(c + (n * M + m) * 8) : _mm256_setzero_ps();
      if (K8 < K) a = _mm256_fmadd_ps(Load::part(wrow[n] + K8 * es, K - K8), load_f32(x + m * ldx + K8, K - K8), a);
      const float v = hsum(a);
      float& dst = y[m * ldy + r0 + n * gap];
      dst = acc ? dst + v : v;
    }
}

template <typename Load>
void long_rows_many(const WeightRows& w, const float* x, ptrdiff_t ldx, int M, float* y, ptrdiff_t ldy, int rows, bool acc) {
  AlignedVector<float> c((size_t)kChainRows * M * 8);
  // A tile's rows lie a third of the rows apart (adjacent rows read together stream slowly).
  const int band = rows / kChainRows;
  for (int r = 0; r < band; r++) long_rows_tile<Load, kChainRows>(w, x, ldx, M, r, band, y, ldy, acc, c.data());
  for (int r = band * kChainRows; r < rows; r++) long_rows_tile<Load, 1>(w, x, ldx, M, r, 0, y, ldy, acc, c.data());
}

template <typename Load>
void gemv_rows_float(const WeightRows& w, const float* x, ptrdiff_t ldx, int M, float* y, ptrdiff_t ldy, int rows, bool acc) {
  const int K = w.K;
  if (K > kLongRowK) return long_rows_many<Load>(w, x, ldx, M, y, ldy, rows, acc);
  const ChainPlan p{K / kStep, (K % kStep) / 8, K % 8};
  // xs[i]: chain i's terms, t-major then m (8 floats each); the partial tail zero-padded as load_f32 does.
  AlignedVector<float> stage;
  const float* xs[kChains];
  size_t total = 0;
  for (int i = 0; i < kChains; i++) total += (size_t)p.terms(i) * M * 8;
  stage.resize(total);
  float* at = stage.data();
  for (int i = 0; i < kChains; i++) {
    xs[i] = at;
    for (int t = 0; t < p.terms(i); t++) {
      const int k = p.k_of(i, t);
      for (int m = 0; m < M; m++, at += 8) {
        const __m256 v = p.partial(i, t) ? load_f32(x + m * ldx + k, p.part) : _mm256_loadu_ps(x + m * ldx + k);
        _mm256_storeu_ps(at, v);
      }
    }
  }
  AlignedVector<float> chains((size_t)kChainRows * M * kPair);  // [row][m][chain] x 8 lanes
  // A tile's rows lie a third of the block apart (adjacent rows read together stream slowly).
  const int band = rows / kChainRows;
  for (int r = 0; r < band; r++) short_rows_tile<Load, kChainRows>(w, xs, M, p, r, band, y, ldy, acc, chains.data());
  for (int r = band * kChainRows; r < rows; r++) short_rows_tile<Load, 1>(w, xs, M, p, r, 0, y, ldy, acc, chains.data());
}

// ---- Per-call activation staging: x zero-padded to whole groups, and the group sums of x.
class PaddedX {
 public:
  PaddedX(const float* x, int K, int G) : ng_((K + G - 1) / G) {
    const size_t n = (size_t)ng_ * G + 8;
    float* mem = n + ng_ <= kStack ? stack_ : (heap_.resize(n + ng_), heap_.data());
    xp_ = mem;
    xsum_ = mem + n;
    std::copy(x, x + K, xp_);
    std::fill(xp_ + K, xp_ + n, 0.0f);
    for (int g = 0; g < ng_; g++) {
      __m256 s = _mm256_setzero_ps();
      for (int j = 0; j < G; j += 8) s = _mm256_add_ps(s, _mm256_loadu_ps(xp_ + g * G + j));
      xsum_[g] = hsum(s);
    }
  }
  const float* x() const { return xp_; }
  const float* xsum() const { return xsum_; }
  int groups() const { return ng_; }

 private:
  static constexpr size_t kStack = 4096 + 512;
  int ng_;
  float* xp_;
  float* xsum_;
  alignas(64) float stack_[kStack];  // x is read in vectors: keep them on cache lines
  AlignedVector<float> heap_;
};

// sum_g s[g] * z[g] * xsum[g]: the zero points' share of a row (z = 8 for symmetric q4). Eight
// lanes at a time: summed one group after another, it was a chain of dependent adds, a quarter of
// a 2048-column q4_0 row's time on Zen 3.
inline float zero_term(const float* s, const uint8_t* z, const float* xsum, int n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0;
  int g = 0;
  if (z) {
    for (; g + 8 <= n; g += 8) {
      const __m256 zf = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(z + g))));
      a0 = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_loadu_ps(s + g), zf), _mm256_loadu_ps(xsum + g), a0);
    }
  } else {
    for (; g + 16 <= n; g += 16) {
      a0 = _mm256_fmadd_ps(_mm256_loadu_ps(s + g), _mm256_loadu_ps(xsum + g), a0);
      a1 = _mm256_fmadd_ps(_mm256_loadu_ps(s + g + 8), _mm256_loadu_ps(xsum + g + 8), a1);
    }
    for (; g + 8 <= n; g += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(s + g), _mm256_loadu_ps(xsum + g), a0);
    a0 = _mm256_mul_ps(_mm256_add_ps(a0, a1), _mm256_set1_ps((float)kQ4SymmetricZero));
    a1 = _mm256_setzero_ps();
  }
  float t = hsum(_mm256_add_ps(a0, a1));
  for (; g < n; g++) t += s[g] * (float)(z ? z[g] : kQ4SymmetricZero) * xsum[g];
  return t;
}

class RowScales {
 public:
  explicit RowScales(int n) : s_(n <= 512 ? stack_ : (heap_.resize(n), heap_.data())) {}
  float* data() { return s_; }

 private:
  float stack_[512];
  std::vector<float> heap_;
  float* s_;
};

// ---- i8: codes widened to f32 lanes; one scale per group (or per row, group 0).
inline __m256 i8x8(const int8_t* p) { return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)))); }

// R rows at once (row_streams: R = 2 far-apart rows, each line prefetched ahead, or R = 1), each
// row's arithmetic the same at every R (so the same bits whichever way a call's rows are read).
template <int R, bool kFetch>
inline void rows_i8_per_row(const int8_t* const* row, const float* x, int K, float* out) {
  __m256 a[R][4];
  IE_UNROLL for (int r = 0; r < R; r++) a[r][0] = a[r][1] = a[r][2] = a[r][3] = _mm256_setzero_ps();
  int k = 0;
  for (; k + 32 <= K; k += 32) {
    if (kFetch && (k & 32) == 0) IE_UNROLL for (int r = 0; r < R; r++) stream_prefetch(reinterpret_cast<const uint8_t*>(row[r] + k), 64);
    const __m256 x0 = _mm256_loadu_ps(x + k), x1 = _mm256_loadu_ps(x + k + 8), x2 = _mm256_loadu_ps(x + k + 16), x3 = _mm256_loadu_ps(x + k + 24);
    IE_UNROLL for (int r = 0; r < R; r++) {
      a[r][0] = _mm256_fmadd_ps(i8x8(row[r] + k), x0, a[r][0]);
      a[r][1] = _mm256_fmadd_ps(i8x8(row[r] + k + 8), x1, a[r][1]);
      a[r][2] = _mm256_fmadd_ps(i8x8(row[r] + k + 16), x2, a[r][2]);
      a[r][3] = _mm256_fmadd_ps(i8x8(row[r] + k + 24), x3, a[r][3]);
    }
  }
  for (; k + 8 <= K; k += 8) IE_UNROLL for (int r = 0; r < R; r++) a[r][0] = _mm256_fmadd_ps(i8x8(row[r] + k), _mm256_loadu_ps(x + k), a[r][0]);
  if (k < K) {
    const __m256 xv = load_f32(x + k, K - k);
    IE_UNROLL for (int r = 0; r < R; r++) a[r][1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(load_bytes(row[r] + k, K - k))), xv, a[r][1]);
  }
  IE_UNROLL for (int r = 0; r < R; r++) out[r] = hsum(_mm256_add_ps(_mm256_add_ps(a[r][0], a[r][1]), _mm256_add_ps(a[r][2], a[r][3])));
}

template <int G, int R, bool kFetch>
inline void rows_i8_groups(const int8_t* const* row, const float* xp, const float* const* s, int ng, float* out) {
  __m256 t0[R], t1[R];
  IE_UNROLL for (int r = 0; r < R; r++) t0[r] = t1[r] = _mm256_setzero_ps();
  // One group's products, in two chains: sum (code * x) as eight lanes.
  const auto group = [&](int r, int g) {
    const int8_t* p = row[r] + g * G;
    const float* xg = xp + g * G;
    if (kFetch && (G >= 64 || (g & 1) == 0)) stream_prefetch(reinterpret_cast<const uint8_t*>(p), G >= 64 ? G : 64);  // every line once
    __m256 p0 = _mm256_mul_ps(i8x8(p), _mm256_loadu_ps(xg));
    __m256 p1 = _mm256_mul_ps(i8x8(p + 8), _mm256_loadu_ps(xg + 8));
    for (int j = 16; j < G; j += 16) {
      p0 = _mm256_fmadd_ps(i8x8(p + j), _mm256_loadu_ps(xg + j), p0);
      p1 = _mm256_fmadd_ps(i8x8(p + j + 8), _mm256_loadu_ps(xg + j + 8), p1);
    }
    return _mm256_add_ps(p0, p1);
  };
  // Two running totals (even and odd groups) keep the FMA latency off the critical path; groups
  // taken in pairs, so that which total a group joins is not a branch.
  int g = 0;
  for (; g + 2 <= ng; g += 2)
    IE_UNROLL for (int r = 0; r < R; r++) {
      t0[r] = _mm256_fmadd_ps(group(r, g), _mm256_broadcast_ss(s[r] + g), t0[r]);
      t1[r] = _mm256_fmadd_ps(group(r, g + 1), _mm256_broadcast_ss(s[r] + g + 1), t1[r]);
    }
  IE_UNROLL for (int r = 0; r < R; r++) {
    if (g < ng) t0[r] = _mm256_fmadd_ps(group(r, g), _mm256_broadcast_ss(s[r] + g), t0[r]);
    out[r] = hsum(_mm256_add_ps(t0[r], t1[r]));
  }
}

// kFar: rows in far-apart pairs (row_streams), each line prefetched 2 KiB ahead; else one row at a
// time, no software prefetch (as before the pairs).
template <int G, bool kFar>
void gemv_i8_g(const WeightRows& w, const float* x, float* y, int rows, bool acc) {
  const PaddedX px(x, w.K, G);
  const int ng = px.groups();
  RowScales s0(ng), s1(ng);
  row_streams<kFar ? 2 : 1>(rows, w.q_ld, [&](auto n, const int* rs) {
    constexpr int R = decltype(n)::value;
    const int8_t* row[R];
    const float* s[R];
    float v[R];
    IE_UNROLL for (int r = 0; r < R; r++) {
      row[r] = reinterpret_cast<const int8_t*>(w.q + rs[r] * w.q_ld);
      float* sr = r ? s1.data() : s0.data();
      simd::row_scales_f32(w.s + rs[r] * w.s_ld, w.stype, ng, sr);
      s[r] = sr;
    }
    rows_i8_groups<G, R, kFar>(row, px.x(), s, ng, v);
    IE_UNROLL for (int r = 0; r < R; r++) y[rs[r]] = acc ? y[rs[r]] + v[r] : v[r];
  });
}

template <bool kFar>
void gemv_i8(const WeightRows& w, const float* x, float* y, int rows, bool acc) {
  switch (w.group) {
    case 0:
      row_streams<kFar ? 2 : 1>(rows, w.q_ld, [&](auto n, const int* rs) {
        constexpr int R = decltype(n)::value;
        const int8_t* row[R];
        float v[R];
        IE_UNROLL for (int r = 0; r < R; r++) row[r] = reinterpret_cast<const int8_t*>(w.q + rs[r] * w.q_ld);
        rows_i8_per_row<R, kFar>(row, x, w.K, v);
        IE_UNROLL for (int r = 0; r < R; r++) {
          const float u = v[r] * scale_at(w.s + rs[r] * w.s_ld, w.stype);
          y[rs[r]] = acc ? y[rs[r]] + u : u;
        }
      });
      return;
    case 32: return gemv_i8_g<32, kFar>(w, x, y, rows, acc);
    case 64: return gemv_i8_g<64, kFar>(w, x, y, rows, acc);
    default: return gemv_i8_g<128, kFar>(w, x, y, rows, acc);
  }
}

// ---- q4: 16 bytes of a group are 32 codes: low nibbles are elements c.., high nibbles c + G/2...
// One group's codes against its x: sum (code * x) as eight lanes, in two chains (low and high
// nibbles of a 16-byte step share one): two fewer adds a group than four chains summed at its end.
template <int G>
inline __m256 group_q4(const uint8_t* p, const float* xg) {
  constexpr int half = G / 2;
  const __m256i low4 = _mm256_set1_epi32(0x0f);
  const auto codes = [](const uint8_t* q) { return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(q))); };
  __m256i v0 = codes(p), v1 = codes(p + 8);
  __m256 pa = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_and_si256(v0, low4)), _mm256_loadu_ps(xg));
  __m256 pb = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_and_si256(v1, low4)), _mm256_loadu_ps(xg + 8));
  pa = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(v0, 4)), _mm256_loadu_ps(xg + half), pa);
  pb = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(v1, 4)), _mm256_loadu_ps(xg + half + 8), pb);
  for (int c = 16; c < half; c += 16) {
    v0 = codes(p + c);
    v1 = codes(p + c + 8);
    pa = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_and_si256(v0, low4)), _mm256_loadu_ps(xg + c), pa);
    pb = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_and_si256(v1, low4)), _mm256_loadu_ps(xg + c + 8), pb);
    pa = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(v0, 4)), _mm256_loadu_ps(xg + half + c), pa);
    pb = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(v1, 4)), _mm256_loadu_ps(xg + half + c + 8), pb);
  }
  return _mm256_add_ps(pa, pb);
}

// R rows at once (row_streams' far-apart pairs, or one), each row's arithmetic the same at every R.
// Two running totals a row (even and odd groups) keep the FMA latency off the critical path;
// groups taken in pairs, so that which total a group joins is not a branch.
template <int G, int R>
inline void rows_q4(const uint8_t* const* row, const float* xp, const float* const* s, int ng, float* out) {
  constexpr int half = G / 2;
  __m256 t0[R], t1[R];
  IE_UNROLL for (int r = 0; r < R; r++) t0[r] = t1[r] = _mm256_setzero_ps();
  int g = 0;
  for (; g + 2 <= ng; g += 2) {
    IE_UNROLL for (int r = 0; r < R; r++) {
      stream_prefetch(row[r] + g * half, G);
      t0[r] = _mm256_fmadd_ps(group_q4<G>(row[r] + g * half, xp + g * G), _mm256_broadcast_ss(s[r] + g), t0[r]);
      t1[r] = _mm256_fmadd_ps(group_q4<G>(row[r] + (g + 1) * half, xp + (g + 1) * G), _mm256_broadcast_ss(s[r] + g + 1), t1[r]);
    }
  }
  IE_UNROLL for (int r = 0; r < R; r++) {
    if (g < ng) t0[r] = _mm256_fmadd_ps(group_q4<G>(row[r] + g * half, xp + g * G), _mm256_broadcast_ss(s[r] + g), t0[r]);
    out[r] = hsum(_mm256_add_ps(t0[r], t1[r]));
  }
}

template <int G>
void gemv_q4_g(const WeightRows& w, const float* x, float* y, int rows, bool acc) {
  const PaddedX px(x, w.K, G);
  const int ng = px.groups();
  RowScales s0(ng), s1(ng);
  row_streams(rows, w.q_ld, [&](auto n, const int* rs) {
    constexpr int R = decltype(n)::value;
    const uint8_t* row[R];
    const float* s[R];
    float v[R];
    IE_UNROLL for (int r = 0; r < R; r++) {
      row[r] = w.q + rs[r] * w.q_ld;
      float* sr = r ? s1.data() : s0.data();
      simd::row_scales_f32(w.s + rs[r] * w.s_ld, w.stype, ng, sr);
      s[r] = sr;
    }
    rows_q4<G, R>(row, px.x(), s, ng, v);
    IE_UNROLL for (int r = 0; r < R; r++) {
      const float u = v[r] - zero_term(s[r], w.z ? w.z + rs[r] * w.z_ld : nullptr, px.xsum(), ng);
      y[rs[r]] = acc ? y[rs[r]] + u : u;
    }
  });
}

void gemv_q4(const WeightRows& w, const float* x, float* y, int rows, bool acc) {
  switch (w.group) {
    case 32: return gemv_q4_g<32>(w, x, y, rows, acc);
    case 64: return gemv_q4_g<64>(w, x, y, rows, acc);
    default: return gemv_q4_g<128>(w, x, y, rows, acc);
  }
}

// ---- dequantization to f32 rows (GEMM panels, embedding lookups).
template <typename Load>
void dequant_float(const WeightRows& w, int rows, float* out, ptrdiff_t ld) {
  for (int r = 0; r < rows; r++) {
    const uint8_t* row = w.q + r * w.q_ld;
    float* o = out + r * ld;
    int k = 0;
    for (; k + 8 <= w.K; k += 8) _mm256_storeu_ps(o + k, Load::full(row + k * Load::esize));
    if (k < w.K) store_f32(o + k, Load::part(row + k * Load::esize, w.K - k), w.K - k);
  }
}

void dequant_i8(const WeightRows& w, int rows, float* out, ptrdiff_t ld) {
  const int K = w.K, G = w.group > 0 ? w.group : K, sb = scale_bytes(w.stype);
  for (int r = 0; r < rows; r++) {
    const int8_t* row = reinterpret_cast<const int8_t*>(w.q + r * w.q_ld);
    for (int k0 = 0, g = 0; k0 < K; k0 += G, g++) {
      const __m256 s = _mm256_set1_ps(scale_at(w.s + r * w.s_ld + g * sb, w.stype));
      const int n = std::min(G, K - k0);
      int j = 0;
      for (; j + 8 <= n; j += 8) _mm256_storeu_ps(out + r * ld + k0 + j, _mm256_mul_ps(i8x8(row + k0 + j), s));
      if (j < n) store_f32(out + r * ld + k0 + j, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(load_bytes(row + k0 + j, n - j))), s), n - j);
    }
  }
}

// (code - z) * s, the integer difference exact, one rounding (bit-identical to dequant_q4_ref). Whole
// groups take the unmasked path; only a row's last, partial group stores element by element.
template <int G>
void dequant_q4_g(const WeightRows& w, int rows, float* out, ptrdiff_t ld) {
  constexpr int half = G / 2;
  const int K = w.K, ng = (K + G - 1) / G, full = K / G;
  const __m256i low4 = _mm256_set1_epi32(0x0f);
  RowScales s(ng);
  for (int r = 0; r < rows; r++) {
    simd::row_scales_f32(w.s + r * w.s_ld, w.stype, ng, s.data());
    const uint8_t* row = w.q + r * w.q_ld;
    float* o = out + r * ld;
    for (int g = 0; g < ng; g++) {
      const float sg = s.data()[g];
      const int z = w.z ? w.z[r * w.z_ld + g] : kQ4SymmetricZero;
      const __m256 sv = _mm256_set1_ps(sg);
      const __m256i zv = _mm256_set1_epi32(z);
      const uint8_t* p = row + g * half;
      float* og = o + g * G;
      if (g < full) {
        for (int c = 0; c < half; c += 8) {
          const __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + c)));
          _mm256_storeu_ps(og + c, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_and_si256(v, low4), zv)), sv));
          _mm256_storeu_ps(og + half + c, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32(v, 4), zv)), sv));
        }
      } else {
        const int n = K - g * G;
        for (int j = 0; j < n; j++) {
          const int code = j < half ? (p[j] & 15) : (p[j - half] >> 4);
          og[j] = (float)(code - z) * sg;
        }
      }
    }
  }
}

void dequant_q4(const WeightRows& w, int rows, float* out, ptrdiff_t ld) {
  switch (w.group) {
    case 32: return dequant_q4_g<32>(w, rows, out, ld);
    case 64: return dequant_q4_g<64>(w, rows, out, ld);
    default: return dequant_q4_g<128>(w, rows, out, ld);
  }
}

// ---- pretransposed: y[n] += x[k] * Wt[k][n], 32 columns in registers.
template <typename Load>
void gemv_t(const uint8_t* wt, ptrdiff_t ld, const float* x, int K, float* y, int ncols, bool acc) {
  constexpr int es = Load::esize;
  int n0 = 0;
  for (; n0 + 32 <= ncols; n0 += 32) {
    __m256 a[4];
    for (int i = 0; i < 4; i++) a[i] = acc ? _mm256_loadu_ps(y + n0 + 8 * i) : _mm256_setzero_ps();
    for (int k = 0; k < K; k++) {
      const __m256 xk = _mm256_broadcast_ss(x + k);
      const uint8_t* row = wt + k * ld + (ptrdiff_t)n0 * es;
      for (int i = 0; i < 4; i++) a[i] = _mm256_fmadd_ps(xk, Load::full(row + 8 * i * es), a[i]);
    }
    for (int i = 0; i < 4; i++) _mm256_storeu_ps(y + n0 + 8 * i, a[i]);
  }
  for (; n0 < ncols; n0 += 8) {
    const int m = std::min(8, ncols - n0);
    __m256 a = acc ? load_f32(y + n0, m) : _mm256_setzero_ps();
    for (int k = 0; k < K; k++) a = _mm256_fmadd_ps(_mm256_broadcast_ss(x + k), Load::part(wt + k * ld + (ptrdiff_t)n0 * es, m), a);
    store_f32(y + n0, a, m);
  }
}

// The entry points, named by weight type, activation type and ISA (what a profile shows).
void gemv_f32_f32_avx2(const WeightRows& w, const float* x, float* y, int rows, bool acc) { gemv_float<LoadF32>(w, x, y, rows, acc); }
void gemv_f16_f32_avx2(const WeightRows& w, const float* x, float* y, int rows, bool acc) { gemv_float<LoadF16>(w, x, y, rows, acc); }
void gemv_bf16_f32_avx2(const WeightRows& w, const float* x, float* y, int rows, bool acc) { gemv_float<LoadBF16>(w, x, y, rows, acc); }
void gemv_f32_f32_avx2_pairs(const WeightRows& w, const float* x, float* y, int rows, bool acc) { gemv_float<LoadF32, true>(w, x, y, rows, acc); }
void gemv_f16_f32_avx2_pairs(const WeightRows& w, const float* x, float* y, int rows, bool acc) { gemv_float<LoadF16, true>(w, x, y, rows, acc); }
void gemv_bf16_f32_avx2_pairs(const WeightRows& w, const float* x, float* y, int rows, bool acc) { gemv_float<LoadBF16, true>(w, x, y, rows, acc); }
void gemv_i8_f32_avx2(const WeightRows& w, const float* x, float* y, int rows, bool acc) { gemv_i8<false>(w, x, y, rows, acc); }
void gemv_i8_f32_avx2_far(const WeightRows& w, const float* x, float* y, int rows, bool acc) { gemv_i8<true>(w, x, y, rows, acc); }
void gemv_q4_f32_avx2(const WeightRows& w, const float* x, float* y, int rows, bool acc) { gemv_q4(w, x, y, rows, acc); }
void gemv_rows_f32_f32_avx2(const WeightRows& w, const float* x, ptrdiff_t ldx, int M, float* y, ptrdiff_t ldy, int rows, bool acc) {
  gemv_rows_float<LoadF32>(w, x, ldx, M, y, ldy, rows, acc);
}
void gemv_rows_f16_f32_avx2(const WeightRows& w, const float* x, ptrdiff_t ldx, int M, float* y, ptrdiff_t ldy, int rows, bool acc) {
  gemv_rows_float<LoadF16>(w, x, ldx, M, y, ldy, rows, acc);
}
void gemv_rows_bf16_f32_avx2(const WeightRows& w, const float* x, ptrdiff_t ldx, int M, float* y, ptrdiff_t ldy, int rows, bool acc) {
  gemv_rows_float<LoadBF16>(w, x, ldx, M, y, ldy, rows, acc);
}
void dequant_f32_avx2(const WeightRows& w, int rows, float* out, ptrdiff_t ld) { dequant_float<LoadF32>(w, rows, out, ld); }
void dequant_f16_avx2(const WeightRows& w, int rows, float* out, ptrdiff_t ld) { dequant_float<LoadF16>(w, rows, out, ld); }
void dequant_bf16_avx2(const WeightRows& w, int rows, float* out, ptrdiff_t ld) { dequant_float<LoadBF16>(w, rows, out, ld); }
void dequant_i8_avx2(const WeightRows& w, int rows, float* out, ptrdiff_t ld) { dequant_i8(w, rows, out, ld); }
void dequant_q4_avx2(const WeightRows& w, int rows, float* out, ptrdiff_t ld) { dequant_q4(w, rows, out, ld); }
void gemv_t_f32_f32_avx2(const uint8_t* wt, ptrdiff_t ld, const float* x, int K, float* y, int n, bool acc) { gemv_t<LoadF32>(wt, ld, x, K, y, n, acc); }
void gemv_t_f16_f32_avx2(const uint8_t* wt, ptrdiff_t ld, const float* x, int K, float* y, int n, bool acc) { gemv_t<LoadF16>(wt, ld, x, K, y, n, acc); }
void gemv_t_bf16_f32_avx2(const uint8_t* wt, ptrdiff_t ld, const float* x, int K, float* y, int n, bool acc) { gemv_t<LoadBF16>(wt, ld, x, K, y, n, acc); }

}  // namespace

void register_gemv_avx2(KernelTable& t, const CpuFeatures& f) {
  const bool four = prefers_four_row_streams(f), four16 = four || half_floats_in_four_rows(f);
  t.gemv[(int)WeightType::F32] = four ? gemv_f32_f32_avx2 : gemv_f32_f32_avx2_pairs;
  t.gemv[(int)WeightType::F16] = four16 ? gemv_f16_f32_avx2 : gemv_f16_f32_avx2_pairs;
  t.gemv[(int)WeightType::BF16] = four16 ? gemv_bf16_f32_avx2 : gemv_bf16_f32_avx2_pairs;
  t.gemv[(int)WeightType::I8] = i8_rows_in_far_pairs(f) ? gemv_i8_f32_avx2_far : gemv_i8_f32_avx2;
  t.gemv[(int)WeightType::Q4] = gemv_q4_f32_avx2;
  t.dequant[(int)WeightType::F32] = dequant_f32_avx2;
  t.dequant[(int)WeightType::F16] = dequant_f16_avx2;
  t.dequant[(int)WeightType::BF16] = dequant_bf16_avx2;
  t.dequant[(int)WeightType::I8] = dequant_i8_avx2;
  t.dequant[(int)WeightType::Q4] = dequant_q4_avx2;
  t.gemv_t[0] = gemv_t_f32_f32_avx2;
  t.gemv_t[1] = gemv_t_f16_f32_avx2;
  t.gemv_t[2] = gemv_t_bf16_f32_avx2;
  t.gemv_rows[0] = gemv_rows_f32_f32_avx2;
  t.gemv_rows[1] = gemv_rows_f16_f32_avx2;
  t.gemv_rows[2] = gemv_rows_bf16_f32_avx2;
}

}  // namespace ie
