// The order in which a GEMV reads its weight rows, shared by every ISA's kernels.
//
// One x86 core streams weight rows from DRAM fastest as two sequential streams far apart. Read
// side by side, adjacent rows (or rows a few KiB apart) look like one stream to the hardware
// prefetchers and run at about half the bandwidth; one row at a time leaves a busy kernel short of
// requests in flight. Measured with a standalone reader over 1 GiB of 4 KiB rows, one core:
// Zen 3 (AVX2): adjacent rows 19 G weights/s in the q4 x q8 kernel, 16 KiB apart 27, two rows far
// apart 40-42 (three or four rows in flight: 37 and 32). Zen 5 (Turin, AVX-512): four adjacent
// rows 21 GB/s, one row at a time 28, two rows 16 KiB apart 25, 64 KiB 32, >= 256 KiB 34-35
// (four rows 64 KiB-1 MiB apart: 22-23). So a call pairs row r with row r + rows/2, and a call
// whose halves lie closer than kRowStreamGap runs its rows one by one. The FP32-activation float
// GEMVs (AVX-512 and AVX2) on Zen 5 are the exception: four far-apart rows with a non-temporal prefetch each
// (kFloatStreams, below; six for seven or eight activation rows), and so is the AVX-512 MXFP4 /
// IQ4_NL kernel (compute-bound: four rows share each x load), the AVX-512 int8w GEMVs (one scale
// per row; FP32 and int8 activations) and MXFP4 with int8 activations; the other integer kernels
// measured alike or slower with four.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include <xmmintrin.h>

#include "cpu/cpu_features.h"

namespace ie {

constexpr int64_t kRowStreamGap = 128 << 10;

// The first S * part rows as `part` groups of S rows `part` apart (rows r, r + part, ...).
template <int S, class Run>
inline void far_apart_groups(int part, Run& run) {
  for (int r = 0; r < part; r++) {
    int rs[S];
    for (int i = 0; i < S; i++) rs[i] = r + i * part;
    run(std::integral_constant<int, S>{}, rs);
  }
}

// run(std::integral_constant<int, R>{}, rows) computes the R rows whose indices rows[0..R) gives
// (R = S: S far-apart rows, a quarter or a half of the call's rows apart; R = 1: a row alone).
// Every row is computed exactly once. Where S rows would lie closer than kRowStreamGap, fewer
// streams are tried (S / 2, ..., 1).
template <int S = 2, class Run>
inline void row_streams(int rows, ptrdiff_t ld, Run&& run) {
  int r = 0;
  if constexpr (S > 1) {
    const int part = rows / S;
    if (part == 0 || (int64_t)part * ld < kRowStreamGap) return row_streams<S / 2>(rows, ld, run);
    far_apart_groups<S>(part, run);
    r = S * part;
  }
  for (; r < rows; r++) run(std::integral_constant<int, 1>{}, &r);
}

// As row_streams, for a kernel against several activation rows (the decode rows of several
// sequences), which its arithmetic bounds rather than the bus: S far-apart rows however close
// they lie, and the rows left over (fewer than S) as one group rather than one by one (a weight
// row alone against eight activation rows loads x once per FMA). Eight TinyLlama decode rows on
// two Zen 5 cores (`Model` + `BatchScheduler`, switched inside one process, four rounds): f16
// 81-83 -> 87-90 tok/s, bf16 83-85 -> 89-92, where the 512 KiB ranges of RowRanges (128 rows of
// 4 KiB) had fallen to three streams and 7% of the samples went to weight rows taken alone. The
// float GEMVs' four-row reads (AVX-512 and AVX2) and the AVX-512 int8w GEMV take it for a lone
// activation row too (a row alone is bound by its FMA chains' latency, not the bus).
template <int N, class Run>
inline void rows_left_over(int left, const int* rs, Run& run) {
  if constexpr (N > 0) {
    if (left == N) return run(std::integral_constant<int, N>{}, rs);
    rows_left_over<N - 1>(left, rs, run);
  }
}
template <int S, class Run>
inline void row_streams_batched(int rows, Run&& run) {
  const int part = rows / S, r = S * part;
  far_apart_groups<S>(part, run);
  int rs[S];
  for (int i = 0; r + i < rows; i++) rs[i] = r + i;
  rows_left_over<S - 1>(rows - r, rs, run);
}

// A lone activation row over 16-row records (gemv/q4x16_*): as rows above, a range's stripes go in
// far-apart pairs, stripe s beside stripe s + part, where those lie at least kRowStreamGap apart.
// pair(s, part) computes stripes s and s + part; returns the rows done (the first 32 * part), 0
// where the range is too short for pairs.
template <class Pair>
inline int stripe_pairs(int rows, ptrdiff_t stripe_bytes, Pair&& pair) {
  const int part = rows / 32;
  if (part == 0 || (int64_t)part * stripe_bytes < kRowStreamGap) return 0;
  for (int s = 0; s < part; s++) pair(s, part);
  return 32 * part;
}

// y's 16 lanes of a stripe (+)= its sums. Restrict-qualified and branch-free inside, so that each
// ISA's compiler vectorizes it: as written before (the choice per lane, out and sum possibly
// overlapping) GCC made 16 scalar loads and stores, each load waiting on the kernel's vector store
// of t: 4.5% of eight TinyLlama Q4_0 decode streams' samples on Zen 4.
inline void store_stripe(float* __restrict out, const float* __restrict sum, bool acc) {
  if (acc)
    for (int l = 0; l < 16; l++) out[l] += sum[l];
  else
    for (int l = 0; l < 16; l++) out[l] = sum[l];
}

// A lone activation row over records (a decode GEMV) is bound by the bus: its stripes go in
// far-apart pairs (stripe_pairs), stripe s beside s + part. two(recs, gap, t) computes the two
// stripes gap bytes apart from recs into t's 32 floats. Returns the rows done (0 where the range is
// too short for pairs).
template <class Rows, class Two>
inline int lone_row_pairs(const Rows& w, float* y, int rows, bool acc, Two&& two) {
  const ptrdiff_t stripe_bytes = (ptrdiff_t)16 * w.q_ld;
  return stripe_pairs(rows, stripe_bytes, [&](int s, int part) {
    float t[32];
    two(w.q + (ptrdiff_t)s * stripe_bytes, (ptrdiff_t)part * stripe_bytes, t);
    for (int j = 0; j < 2; j++) store_stripe(y + 16 * (s + j * part), t + 16 * j, acc);
  });
}

// Activation rows per pass of the several-rows kernels (the decode rows of several sequences against
// each weight row). One Zen 3 core, 8 rows of 2048 x 2048 Q4_0 (AVX2), 2 / 3 / 4 / 8 at a time: 3.29 /
// 3.21 / 3.21 / 3.39 cycles per 64 weights per row; one Zen 5 core (AVX-512 q4 x q8), eight at a time
// spilled registers and ran 0.75x four.
constexpr int kActsPerPass = 4;

// run(std::integral_constant<int, A>{}, a) for consecutive passes [a, a + A) that cover [0, M),
// A <= kActsPerPass.
template <class Run>
inline void act_passes(int M, Run&& run) {
  for (int a = 0; a < M; a += kActsPerPass) switch (std::min(kActsPerPass, M - a)) {
      case 1: run(std::integral_constant<int, 1>{}, a); break;
      case 2: run(std::integral_constant<int, 2>{}, a); break;
      case 3: run(std::integral_constant<int, 3>{}, a); break;
      default: run(std::integral_constant<int, 4>{}, a); break;
    }
}

// The 16-row records' GEMV over a range of rows, written once for q4, i8 and the K-quants
// (gemv/q4x16_x86.h, i8x16_avx2.cc, kquant_x16_avx2.cc). A lone activation row's stripes go in
// far-apart pairs (lone_row_pairs), the rest one by one; several activation rows take passes of one
// half and up to kActsPerPass rows (act_passes) over each stripe, the passes of decode rows (M <= 8)
// taking turns `block` units (512 columns in each kernel) at a time so that the stripe streams from
// memory once at the rate of all their work (Zen 5, forced AVX2, from DRAM: four and eight rows
// 1.02-1.08x whole passes one after the other); a prefill chunk's many passes run whole (blocked, 64
// tokens ran 0.97x). A unit is what the kernel's loop counts (a group, a block of 32, a superblock);
// t holds 16 floats per activation row.
//   pair(recs, gap, u): the two stripes gap bytes apart from recs, into u's 32 floats;
//   lone(recs, t): one stripe against the lone row;
//   pass(na, recs, b0, b1, h, a, t, start, first): half h of units [b0, b1) against rows
//     [a, a + na) (na an integral_constant), into t; start: the stripe's first units, first: the
//     pass that begins them.
template <class Rows, class Pair, class Lone, class Pass>
inline void records_rows(const Rows& w, int M, int units, int block, float* t, float* y, ptrdiff_t ldy, int rows, bool acc, Pair&& pair, Lone&& lone,
                         Pass&& pass) {
  int r = M != 1 ? 0 : lone_row_pairs(w, y, rows, acc, pair);
  const int step = M <= 8 ? block : units;
  for (; r < rows; r += 16) {
    const uint8_t* recs = w.q + (ptrdiff_t)r * w.q_ld;
    if (M == 1)
      lone(recs, t);
    else
      for (int b0 = 0; b0 < units; b0 += step) {
        const int b1 = std::min(units, b0 + step);
        for (int h = 0; h < 2; h++)
          act_passes(M, [&](auto na, int a) { pass(na, recs, b0, b1, h, a, t + 16 * a + 8 * h, b0 == 0, h == 0 && a == 0); });
      }
    for (int a = 0; a < M; a++) store_stripe(y + (ptrdiff_t)a * ldy + r, t + 16 * a, acc);
  }
}

// Software prefetch for the int8-activation kernels. On the Zen 3 cores measured here the
// hardware prefetcher alone keeps a busy integer kernel well below the bus (q4 x q8 read 11 GB/s
// of a 30 GB/s stream); prefetching every line kStreamAhead bytes ahead of the loads lifts it 1.3-1.4x
// (1.5-3 KiB all measured alike). Of the block types q4_k / q5_k gain (1.12x from DRAM on one
// core, once they sum a superblock in integers) and q6_k (1.3-1.4x: 14.4-14.9 -> 19.6-20.3 GB/s of
// TinyLlama's shapes on one Zen 3 core, 22.4 -> 29-33 on two). On Zen 5 the AVX-512
// VNNI i8 x q8 and q4 x q8 kernels use it (far-apart pairs with it: 1.1-1.2x), and so do the AVX-512
// FP32-activation i8 / q4 GEMVs (int8w 1.1x on one core; the compute-bound rest alike). The
// FP32-activation float kernels have their own (below).
constexpr int kStreamAhead = 2048;
template <int Ahead = kStreamAhead, int Hint = _MM_HINT_T0>
inline void stream_prefetch(const uint8_t* p, int bytes) {
  for (int l = 0; l < bytes; l += 64) _mm_prefetch(reinterpret_cast<const char*>(p + Ahead + l), static_cast<decltype(_MM_HINT_T0)>(Hint));
}

// The prefetch of a pass over S consecutive stripes (stripe_passes in gemv/records16_avx512vnni.h):
// stream j, at byte `at` of its stripe (p), fetches kStreamAhead bytes ahead; once that passes the
// stripe's end, it fetches the stripe it reads in the next pass (S stripes on) instead of the next
// one, which this pass's next stream is reading already. Without it each pass began with a stream
// from cold memory: eight rows of TinyLlama's 2048-column Q4_0 records from DRAM, one Zen 4 core,
// 131-135 -> 143-147 G multiply-adds/s (5632 columns, four times as long a stripe: 142 -> 148-150).
template <int S>
inline void prefetch_pass(const uint8_t* p, ptrdiff_t at, ptrdiff_t stripe_bytes, int bytes) {
  const ptrdiff_t over = S > 1 && at + kStreamAhead >= stripe_bytes ? (S - 1) * stripe_bytes : 0;
  for (int j = 0; j < S; j++) stream_prefetch(p + j * stripe_bytes + over, bytes);
}

// On Zen 5 the FP32-activation float GEMVs (AVX-512; AVX2 since stop 45, gemv/gemv_avx2.cc) read
// four far-apart rows at once, each line 1 KiB ahead prefetched non-temporally: the best of the read probe's readers there (four streams per
// thread, NTA prefetch), where pairs with the T0 prefetch above left bf16 at 65-75% of it.
// Zen 5, bf16 from DRAM, alternating in one process (1 / 2 threads): pairs 26.5-27.8 / 44-52 GB/s,
// four rows 29-30 / 54-59, four rows with this prefetch 31.5-37 / 62-68; eight or six rows, T1
// or T0 hints, 512 or 2048 bytes ahead all measured below it. Elsewhere they read pairs with no
// software prefetch (prefers_four_row_streams in cpu/cpu_features.h): one Zen 4 core, 2048-column
// rows from DRAM, three rounds alternated in one process: bf16 fours with NTA 16-21 GB/s, pairs
// 22-27, pairs with a T0 prefetch 1-2 KiB ahead 18-28; f32 18-25 against 27-29.
constexpr int kFloatStreams = 4;

// One line's software prefetch as the CPU prefers it (weight_line_fetch in cpu/cpu_features.h).
constexpr int hint_of(LineFetch f) { return f == LineFetch::Nta ? _MM_HINT_NTA : _MM_HINT_T0; }
template <LineFetch Fetch>
inline void fetch_line(const void* p) {
  if constexpr (Fetch == LineFetch::Nta) _mm_prefetch(static_cast<const char*>(p), _MM_HINT_NTA);
  else if constexpr (Fetch == LineFetch::T0) _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T0);
}
constexpr int kFloatStreamAhead = 1024;

}  // namespace ie
