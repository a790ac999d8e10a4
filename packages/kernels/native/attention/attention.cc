#include "attention/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace ie {

namespace {

// Queries per task of the batched path: with the GQA group's heads, a task's score matrix has
// kQueryBlock * group rows, enough to fill the GEMM's register blocks.
constexpr int kQueryBlock = 16;


// Positions [t0, t0 + n) as runs of consecutive cache rows: fn(row, j, run) for the run starting at
// cache row `row` that holds positions t0 + j ..; a ring's positions run in at most two pieces.
template <class Fn>
inline void cache_runs(const AttentionArgs& a, int t0, int n, Fn&& fn) {
  for (int j = 0; j < n;) {
    const int row = a.ring > 0 ? (t0 + j) % a.ring : t0 + j;
    const int run = a.ring > 0 ? std::min(n - j, a.ring - row) : n - j;
    fn((size_t)row, j, run);
    j += run;
  }
}

// Rows [0, rows) of a cache (position t0 + r, columns [c0, c0 + n) of its kv head) as f32, row-major.
void cache_rows(Context& ctx, const AttentionArgs& a, const void* cache, int kvh, int t0, int rows, int c0, int n, float* out, ptrdiff_t ld) {
  const bool f16 = a.kv_type == KvType::F16;
  const size_t esize = f16 ? 2 : 4;
  cache_runs(a, t0, rows, [&](size_t row, int j, int run) {
    WeightRows w;
    w.q = static_cast<const uint8_t*>(cache) + (row * a.kv_stride + (size_t)kvh * a.head_dim + c0) * esize;
    w.q_ld = (ptrdiff_t)(a.kv_stride * esize);
    w.K = n;
    ctx.k.dequant[(int)(f16 ? WeightType::F16 : WeightType::F32)](w, run, out + (ptrdiff_t)j * ld, ld);
  });
}

// A prefill chunk's attention as two GEMMs per (kv head, block of queries), on the packed GEMM's
// micro-kernel: scores S = Q K^T over the block's span of positions (every K row loaded once for
// all the block's queries and the group's heads), a masked softmax per row, then O = S V.
void attention_batched(Context& ctx, const AttentionArgs& a) {
  const GemmKernels& g = ctx.k.gemm;
  const int MR = g.mr, NR = g.nr, KC = g.kc, hd = a.head_dim;
  const int group = a.n_heads / a.n_kv_heads;
  const int blocks = (a.n_queries + kQueryBlock - 1) / kQueryBlock;
  const int tasks = a.n_kv_heads * blocks;
  auto body = [&](int t, int n) {
    int64_t b, e;
    ThreadPool::chunk(tasks, 1, t, n, &b, &e);
    for (int64_t task = b; task < e; task++) {
      const int kvh = (int)(task / blocks), qb = (int)(task % blocks);
      const int i0 = qb * kQueryBlock, i1 = std::min(a.n_queries, i0 + kQueryBlock);
      const int rows = (i1 - i0) * group, panels = (rows + MR - 1) / MR;
      const int hi = a.pos0 + i1 - 1;  // the last position any query of the block sees
      const int lo = a.window > 0 ? std::max(0, a.pos0 + i0 - a.window + 1) : 0;
      const int span = hi - lo + 1, span_pad = (span + NR - 1) / NR * NR;
      const int hd_pad = (hd + NR - 1) / NR * NR;
      // Scratch: packed Q | scores | packed scores (one K block) | a weight panel | raw rows | O.
      const size_t q_sz = (size_t)panels * MR * hd, s_sz = (size_t)rows * span_pad, sp_sz = (size_t)panels * MR * KC;
      const size_t bp_sz = (size_t)NR * std::max(hd, KC), raw_sz = (size_t)NR * std::max(hd, KC), o_sz = (size_t)rows * hd_pad;
      float* Aq = ctx.scratch(t, q_sz + s_sz + sp_sz + bp_sz + raw_sz + o_sz);
      float* S = Aq + q_sz;
      float* As = S + s_sz;
      float* B = As + sp_sz;
      float* raw = B + bp_sz;
      float* O = raw + raw_sz;
      // Row r of the block is (query i0 + r / group, head kvh * group + r % group).
      auto q_row = [&](int r) { return a.q + (i0 + r / group) * a.q_stride + (kvh * group + r % group) * hd; };
      for (int p = 0; p < panels; p++)
        for (int i = 0; i < MR; i++) {
          const int r = p * MR + i;
          float* dst = Aq + (size_t)p * MR * hd + i;
          if (r >= rows) {
            for (int k = 0; k < hd; k++) dst[k * MR] = 0.0f;
          } else {
            const float* src = q_row(r);
            for (int k = 0; k < hd; k++) dst[k * MR] = src[k];
          }
        }
      // S = Q K^T, NR positions at a time (head_dim is one K block: at most 256).
      for (int t0 = 0; t0 < span; t0 += NR) {
        const int nn = std::min(NR, span - t0);
        cache_rows(ctx, a, a.k, kvh, lo + t0, nn, 0, hd, raw, hd);
        g.pack_rows(raw, hd, nn, hd, B);
        for (int p = 0; p < panels; p++) {
          const int mr = std::min(MR, rows - p * MR);
          g.micro[mr - 1](Aq + (size_t)p * MR * hd, B, hd, S + (size_t)p * MR * span_pad + t0, span_pad, nn, false, {});
        }
      }
      // Scale, mask to each query's positions, softmax; masked positions get probability 0.
      for (int r = 0; r < rows; r++) {
        const int pos = a.pos0 + i0 + r / group;
        const int first = (a.window > 0 ? std::max(0, pos - a.window + 1) : 0) - lo, last = pos - lo;
        float* row = S + (size_t)r * span_pad;
        std::fill(row, row + first, 0.0f);
        ctx.k.scale(row + first, a.scale, last - first + 1);
        ctx.k.softmax(row + first, last - first + 1, a.sinks ? a.sinks[kvh * group + r % group] : -INFINITY);
        std::fill(row + last + 1, row + span_pad, 0.0f);
      }
      // O = S V over K blocks of positions; V rows are already k-major (a pretransposed operand).
      for (int k0 = 0; k0 < span; k0 += KC) {
        const int kc = std::min(KC, span - k0);
        for (int p = 0; p < panels; p++) g.pack_tokens(S + (size_t)p * MR * span_pad + k0, span_pad, std::min(MR, rows - p * MR), kc, As + (size_t)p * MR * kc);
        for (int c0 = 0; c0 < hd; c0 += NR) {
          const int nn = std::min(NR, hd - c0);
          if (nn < NR) std::fill(B, B + (size_t)kc * NR, 0.0f);
          cache_rows(ctx, a, a.v, kvh, lo + k0, kc, c0, nn, B, NR);
          for (int p = 0; p < panels; p++) {
            const int mr = std::min(MR, rows - p * MR);
            g.micro[mr - 1](As + (size_t)p * MR * kc, B, kc, O + (size_t)p * MR * hd_pad + c0, hd_pad, nn, k0 > 0, {});
          }
        }
      }
      for (int r = 0; r < rows; r++) std::copy(O + (size_t)r * hd_pad, O + (size_t)r * hd_pad + hd, a.out + (i0 + r / group) * a.out_stride + (kvh * group + r % group) * hd);
    }
  };
  if (ctx.pool.size() == 1 || tasks == 1) ctx.pool.run_serial(body);
  else ctx.pool.run(body);
}

// One query against one KV head, for `group` of the query heads that share it (from the KV head's
// head `first`): every head's scores over the query's positions (each K row read once for them), a
// softmax per head, and the weighted sums of V rows, on thread `t`'s scratch. A ring's positions
// run in at most two pieces of consecutive rows.
void attend_group(Context& ctx, const AttentionArgs& a, int i, int kvh, int first, int group, int t) {
  const int hd = a.head_dim, h0 = kvh * (a.n_heads / a.n_kv_heads) + first;
  const bool f16 = a.kv_type == KvType::F16;
  const size_t esize = f16 ? 2 : 4;
  const int pos = a.pos0 + i;
  const int t0 = a.window > 0 ? std::max(0, pos - a.window + 1) : 0;
  const int len = pos - t0 + 1;
  float* scores = ctx.scratch(t, (size_t)group * len);  // [head][position]
  const float* q = a.q + i * a.q_stride + h0 * hd;
  float* out = a.out + i * a.out_stride + h0 * hd;
  const uint8_t* kb = static_cast<const uint8_t*>(a.k) + (size_t)kvh * hd * esize;
  const uint8_t* vb = static_cast<const uint8_t*>(a.v) + (size_t)kvh * hd * esize;
  const size_t row_bytes = (size_t)a.kv_stride * esize;
  cache_runs(a, t0, len, [&](size_t row, int j0, int run) {
    const size_t at = row * row_bytes;
    if (f16) ctx.k.attn_scores_f16(q, group, hd, reinterpret_cast<const uint16_t*>(kb + at), a.kv_stride, run, a.scale, scores + j0, len);
    else ctx.k.attn_scores(q, group, hd, reinterpret_cast<const float*>(kb + at), a.kv_stride, run, a.scale, scores + j0, len);
  });
  for (int h = 0; h < group; h++) ctx.k.softmax(scores + (size_t)h * len, len, a.sinks ? a.sinks[h0 + h] : -INFINITY);
  std::fill(out, out + (size_t)group * hd, 0.0f);
  cache_runs(a, t0, len, [&](size_t row, int j0, int run) {
    const size_t at = row * row_bytes;
    if (f16) ctx.k.attn_mix_f16(scores + j0, len, group, hd, reinterpret_cast<const uint16_t*>(vb + at), a.kv_stride, run, out);
    else ctx.k.attn_mix(scores + j0, len, group, hd, reinterpret_cast<const float*>(vb + at), a.kv_stride, run, out);
  });
}

}  // namespace

uint64_t attention_scratch_floats(int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, int64_t positions, int64_t window, int64_t n_queries) {
  const uint64_t group = (uint64_t)(n_heads / std::max<int64_t>(n_kv_heads, 1));
  const uint64_t block = (uint64_t)std::min<int64_t>(std::max<int64_t>(n_queries, 1), kQueryBlock);
  const uint64_t span = (uint64_t)(window > 0 ? std::min<int64_t>(positions, window + kQueryBlock) : positions) + 64;
  // Rows of the block (padded to a panel), each with its scores, its packed query and its output;
  // plus a weight panel and raw rows (64 x max(head_dim, 512) each is more than either needs).
  const uint64_t rows = group * block + 64, width = (uint64_t)head_dim + 64;
  return rows * (span + 2 * width) + 2 * 64 * std::max<uint64_t>(width, 512);
}

int64_t attention_max_positions(int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, int64_t window, int64_t n_queries) {
  // The scratch never shrinks as positions grow: bisect on the function itself.
  const auto fits = [&](int64_t p) { return attention_scratch_floats(n_heads, n_kv_heads, head_dim, p, window, n_queries) <= kMaxAttentionScratchFloats; };
  int64_t lo = 0, hi = INT32_MAX;
  if (fits(hi)) return hi;
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    (fits(mid) ? lo : hi) = mid;
  }
  return lo;
}

void attention_many(Context& ctx, const AttentionArgs* list, int count) {
  if (count < 1) return;
  // Tasks: (query, KV head) pairs, each KV head's query heads split into `split` parts when there
  // are fewer pairs than two per thread (a few KV heads, many cores); a head's result is the same
  // whichever part it falls in. Entry e owns tasks [first[e], first[e + 1]), query-major, then KV
  // head, then part.
  int64_t pairs = 0, work = 0;
  for (int e = 0; e < count; e++) {
    pairs += (int64_t)list[e].n_queries * list[e].n_kv_heads;
    work += (int64_t)list[e].n_queries * list[e].n_heads * (list[e].pos0 + list[e].n_queries) * list[e].head_dim;
  }
  const int64_t want = std::max<int64_t>(1, (2 * (int64_t)ctx.pool.size() + pairs - 1) / pairs);
  std::vector<int64_t> first((size_t)count + 1, 0);
  std::vector<int> per((size_t)count), parts((size_t)count);  // heads per part, parts per KV head
  for (int e = 0; e < count; e++) {
    const AttentionArgs& a = list[e];
    const int group = a.n_heads / a.n_kv_heads;
    per[(size_t)e] = (int)((group + std::min<int64_t>(want, group) - 1) / std::min<int64_t>(want, group));
    parts[(size_t)e] = (group + per[(size_t)e] - 1) / per[(size_t)e];
    first[(size_t)e + 1] = first[(size_t)e] + (int64_t)a.n_queries * a.n_kv_heads * parts[(size_t)e];
  }
  const int64_t tasks = first[(size_t)count];
  auto body = [&](int t, int n) {
    int64_t b, e;
    ThreadPool::chunk(tasks, 1, t, n, &b, &e);
    int at = 0;
    for (int64_t task = b; task < e; task++) {
      while (task >= first[(size_t)at + 1]) at++;
      const AttentionArgs& a = list[at];
      const int np = parts[(size_t)at], hp = per[(size_t)at], group = a.n_heads / a.n_kv_heads;
      const int64_t local = task - first[(size_t)at];
      const int part = (int)(local % np), kvh = (int)(local / np % a.n_kv_heads), i = (int)(local / np / a.n_kv_heads);
      attend_group(ctx, a, i, kvh, part * hp, std::min(hp, group - part * hp), t);
    }
  };
  // Short work is cheaper on the calling thread than a pool wake-up.
  if (work < (1 << 14) || ctx.pool.size() == 1) ctx.pool.run_serial(body);
  else ctx.pool.run(body);
}

void attention(Context& ctx, const AttentionArgs& a) {
  // A prefill chunk: batched, so each K and V row is read once per block of queries.
  if (a.n_queries >= 4) return attention_batched(ctx, a);
  attention_many(ctx, &a, 1);
}

}  // namespace ie
