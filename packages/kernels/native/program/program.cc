#include "program/program.h"

#include <cstring>

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "attention/attention.h"

namespace ie {

static bool param(const Program& p, int slot, int64_t lo, int64_t hi, int64_t* out, std::string* err, const char* what) {
  // No slot: the value is lo, which must still lie in range (an op without posSlot over more rows
  // than its cache or tables hold has hi < lo, and would run past their end).
  const int64_t v = slot < 0 ? lo : p.params[slot];
  if (v < lo || v > hi) {
    *err = std::string(what) + " " + std::to_string(v) + " is outside " + std::to_string(lo) + ".." + std::to_string(hi) +
           (slot < 0 ? " (the op has no slot giving it, and this run's rows do not fit the op's capacity from 0)" : "");
    return false;
  }
  *out = v;
  return true;
}

// Row i's (KV slot, position) pair of a multi-sequence run, checked against the arena.
static bool seq_row(const Program& p, int seq_slot, int64_t slots, int64_t capacity, int64_t i, int64_t* slot, int64_t* pos, std::string* err) {
  return param(p, seq_slot + 2 * (int)i, 0, slots - 1, slot, err, "kv slot") && param(p, seq_slot + 2 * (int)i + 1, 0, capacity - 1, pos, err, "position");
}

// The attention op's arguments for rows [i0, i0 + n) starting at position pos0, over the K/V
// caches at byte offset kv_offset (a KV slot of the arena; 0 for a single cache).
static AttentionArgs attention_args(const AttentionOp<Compiled>& op, int64_t i0, int64_t n, int64_t pos0, size_t kv_offset) {
  AttentionArgs a;
  a.q = op.q.row<float>(i0);
  a.q_stride = op.q.stride;
  a.n_queries = (int)n;
  a.pos0 = (int)pos0;
  a.k = op.k.base + kv_offset;
  a.v = op.v.base + kv_offset;
  a.kv_type = op.kv_type;
  a.kv_stride = (ptrdiff_t)op.k.stride;
  a.n_heads = (int)op.heads;
  a.n_kv_heads = (int)op.kv_heads;
  a.head_dim = (int)op.head_dim;
  a.window = (int)op.window;
  a.ring = op.positions > op.capacity ? (int)op.capacity : 0;
  a.scale = op.scale;
  a.sinks = op.sinks.base ? op.sinks.row<float>(0) : nullptr;
  a.out = op.out.row<float>(i0);
  a.out_stride = op.out.stride;
  return a;
}

// Attention over rows of several sequences: a run of rows of one slot at consecutive positions
// (a prefill chunk) attends as one block — batched when long — and the short runs (decode rows)
// of every sequence go to the pool as one job, each over its own slot of the arena.
static bool run_attention_seq(Context& ctx, const Program& p, const AttentionOp<Compiled>& op, int64_t M, std::string* err) {
  std::vector<int64_t> slot((size_t)M), pos((size_t)M);
  for (int64_t i = 0; i < M; i++)
    if (!seq_row(p, op.place.seq_slot, op.slots, op.positions, i, &slot[(size_t)i], &pos[(size_t)i], err)) return false;
  const size_t slot_bytes = (size_t)kv_cache_row(1, 0, op.capacity) * (size_t)op.k.stride * (size_t)op.k.elem;
  std::vector<AttentionArgs> short_runs;
  for (int64_t i0 = 0, i1; i0 < M; i0 = i1) {
    for (i1 = i0 + 1; i1 < M && slot[(size_t)i1] == slot[(size_t)i0] && pos[(size_t)i1] == pos[(size_t)i1 - 1] + 1;) i1++;
    const AttentionArgs a = attention_args(op, i0, i1 - i0, pos[(size_t)i0], (size_t)slot[(size_t)i0] * slot_bytes);
    if (a.n_queries >= 4) attention(ctx, a);
    else short_runs.push_back(a);
  }
  attention_many(ctx, short_runs.data(), (int)short_runs.size());
  return true;
}

// Up to this many rows, a matmul runs the GEMV kernels once per row over cache-sized blocks of
// weight rows instead of the packed GEMM: a step of decode rows of several sequences reads each
// weight block from memory once and from cache for the other rows, without the GEMM's per-call
// dequantize-and-pack of every weight (which only pays off over a prefill chunk's many rows).
constexpr int kGemvRowsMax = 8;
// Bytes of weight rows per block: half of a typical L2, leaving room for the x rows.
constexpr int64_t kGemvBlockBytes = 256 << 10;

// One matrix of a several-rows matmul: its weights and where its M output rows go.
struct RowsJob {
  const MatrixPlan* m;
  View y;
};

// Whether a kernel reads each weight row once for all M activation rows for this matrix in mode a
// (q4 on every SIMD ISA and i8 on AVX-512 VNNI with int8 activations; f32, f16 and bf16 with FP32).
static bool reads_rows_once(const KernelTable& k, const MatrixDesc& d, Activations a) {
  const RowKernels rk = row_kernels(k, d);
  return a == Activations::Int8 && rk.gemv_q8 ? rk.gemv_q8_rows != nullptr : rk.gemv_rows != nullptr;
}

// Y_j[i] = W_j X[i] for n matrices of the same M rows of x (q, k and v; gate and up) in one pool
// job, every matrix with a kernel that reads each weight row once for all M rows
// (reads_rows_once). Each thread prepares x as the kernels take it (quantized per row exactly as
// gemv() quantizes it alone, or copied aligned) once for each K it meets, not once per matrix. The
// rows go out from one counter (RowRanges), in shrinking ranges where every matrix is in 16-row
// records (their kernel's speed does not depend on a range's length), else in tapering ones (the
// float kernels read rows a quarter or a sixth of their range apart, so no range gets short). Each
// row's result is its lone GEMV's.
static void gemv_rows_once(Context& ctx, const RowsJob* jobs, int n, const View& x, int M, Activations a) {
  std::vector<GemvJob> ranged((size_t)n);
  int64_t work = 0;
  bool records = true;
  for (int j = 0; j < n; j++) {
    ranged[(size_t)j] = {jobs[j].m, nullptr, nullptr};
    work += jobs[j].m->d.N * jobs[j].m->d.K * M;
    records = records && jobs[j].m->d.rows16;
  }
  RowRanges ranges(ranged.data(), n, ctx.pool.size(), records ? RowSplit::Shrinking : RowSplit::Tapering);
  auto body = [&](int t, int) {
    int8_t* xq = nullptr;  // x quantized, for which K and block
    float* xd = nullptr;
    int64_t xq_k = -1;
    int xq_block = -1;
    size_t P = 0;
    const float* xa = nullptr;  // x aligned, for which K
    int64_t xa_k = -1, ldx = 0;
    int j;
    int64_t r0, r1;
    while (ranges.next(&j, &r0, &r1)) {
      const MatrixPlan& m = *jobs[j].m;
      const MatrixDesc& d = m.d;
      const View& y = jobs[j].y;
      const RowKernels rk = row_kernels(ctx.k, d);
      if (a == Activations::Int8 && rk.gemv_q8) {
        const int block = q8_x_block(d.type, d.group);
        if (d.K != xq_k || block != xq_block) {
          P = (size_t)q8_padded((int)d.K);
          xq = ctx.scratch_q8(t, P * M);
          xd = ctx.scratch_q8d(t, P / kQ8Block * M);
          for (int i = 0; i < M; i++) ctx.k.quantize_x(x.row<float>(i), (int)d.K, block, xq + i * P, xd + i * P / kQ8Block);
          xq_k = d.K, xq_block = block;
        }
        for (size_t p = 0; p < m.panels.size(); p++)
          rk.gemv_q8_rows(m.panels[p].from_row(r0), xq + m.panel_k0[p], xd + m.panel_k0[p] / kQ8Block, (ptrdiff_t)P, (ptrdiff_t)(P / kQ8Block), M,
                          y.row<float>(0) + r0, y.stride, (int)(r1 - r0), p > 0);
        continue;
      }
      if (d.K != xa_k) {
        xa = ctx.aligned_rows(t, x.row<float>(0), x.stride, M, d.K, &ldx);
        xa_k = d.K;
      }
      for (size_t p = 0; p < m.panels.size(); p++) rk.gemv_rows(m.panels[p].from_row(r0), xa + m.panel_k0[p], ldx, M, y.row<float>(0) + r0, y.stride, (int)(r1 - r0), p > 0);
    }
  };
  if (work < (1 << 15) || ctx.pool.size() == 1) ctx.pool.run_serial(body);
  else ctx.pool.run(body);
}

// Y[i] = W X[i] for M rows (M <= kGemvRowsMax) in activation mode a, each row exactly as gemv()
// computes it alone: the same kernel over the same weight rows. Without a kernel that reads each
// weight row once for all rows, the lone GEMV's kernel runs row by row over cache-sized blocks of
// weight rows (each block read from memory once and from cache for the other rows).
static void gemv_rows(Context& ctx, const MatrixPlan& m, const View& x, int M, const View& y, Activations a) {
  const MatrixDesc& d = m.d;
  if (reads_rows_once(ctx.k, d, a)) {
    const RowsJob job{&m, y};
    return gemv_rows_once(ctx, &job, 1, x, M, a);
  }
  const RowKernels rk = row_kernels(ctx.k, d);
  const bool q8 = a == Activations::Int8 && rk.gemv_q8;
  const int64_t row_bytes = matrix_row_bytes(d);
  const int64_t block = std::max<int64_t>(16, kGemvBlockBytes / row_bytes / 16 * 16);
  const size_t P = (size_t)q8_padded((int)d.K);
  auto body = [&](int t, int n) {
    int64_t r0, r1;
    ThreadPool::chunk(d.N, 16, t, n, &r0, &r1);
    if (r1 <= r0) return;
    if (q8) {
      int8_t* xq = ctx.scratch_q8(t, P * M);
      float* xd = ctx.scratch_q8d(t, P / kQ8Block * M);
      for (int i = 0; i < M; i++) ctx.k.quantize_x(x.row<float>(i), (int)d.K, q8_x_block(d.type, d.group), xq + i * P, xd + i * P / kQ8Block);
      for (int64_t b = r0; b < r1; b += block) {
        const int rows = (int)std::min<int64_t>(block, r1 - b);
        for (int i = 0; i < M; i++)
          for (size_t p = 0; p < m.panels.size(); p++)
            rk.gemv_q8(m.panels[p].from_row(b), xq + i * P + m.panel_k0[p], xd + i * P / kQ8Block + m.panel_k0[p] / kQ8Block, y.row<float>(i) + b, rows, p > 0);
      }
      return;
    }
    int64_t ldx;
    const float* xa = ctx.aligned_rows(t, x.row<float>(0), x.stride, M, d.K, &ldx);
    for (int64_t b = r0; b < r1; b += block) {
      const int rows = (int)std::min<int64_t>(block, r1 - b);
      for (int i = 0; i < M; i++)
        for (size_t p = 0; p < m.panels.size(); p++) rk.gemv(m.panels[p].from_row(b), xa + i * ldx + m.panel_k0[p], y.row<float>(i) + b, rows, p > 0);
    }
  };
  if (d.N * d.K * M < (1 << 15) || ctx.pool.size() == 1) ctx.pool.run_serial(body);
  else ctx.pool.run(body);
}

// The mixture-of-experts FFN over M rows: route every row (top-k by logit, ties to the lowest
// expert; softmax over the chosen), then for each expert chosen by any row gather those rows and
// run its three matrices once for all of them (GEMV for one row, GEMM for more): an expert no
// row chose is never read. R: the op's scratch rows.
static void run_moe(Context& ctx, const MoeOp<Compiled>& op, int64_t M, int64_t R) {
  const KernelTable& k = ctx.k;
  const MoeOp<Compiled>& x = op;
  const int E = (int)x.gate.size(), top = (int)x.top_k;
  const int D = (int)x.gate[0]->d.K, F = (int)x.gate[0]->d.N;
  std::vector<int> choice((size_t)(M * top));
  std::vector<float> weight((size_t)(M * top));
  for (int64_t i = 0; i < M; i++) {
    const float* lg = op.router.row<float>(i);
    int* c = choice.data() + i * top;
    for (int j = 0; j < top; j++) {
      int best = -1;
      for (int e = 0; e < E; e++) {
        if (std::find(c, c + j, e) != c + j) continue;
        if (best < 0 || lg[e] > lg[best]) best = e;
      }
      c[j] = best;
    }
    float* w = weight.data() + i * top;
    float sum = 0.f;
    for (int j = 0; j < top; j++) sum += (w[j] = std::exp(lg[c[j]] - lg[c[0]]));
    for (int j = 0; j < top; j++) w[j] /= sum;
  }
  // One row (decode) with scratch rows for its experts: every chosen expert's gate and up in one
  // pool job, then every down in another (two wake-ups instead of three per expert, and no thread
  // waits at the end of each matrix). Each product is its lone gemv's, and the experts add into the
  // output in ascending order as below, so the result is the same bit for bit.
  if (M == 1 && R >= top) {
    // (expert, weight) of the row's choices, by expert.
    std::vector<std::pair<int, float>> chosen;
    for (int j = 0; j < top; j++) chosen.push_back({choice[(size_t)j], weight[(size_t)j]});
    std::sort(chosen.begin(), chosen.end());
    const float* in = op.x.row<float>(0);
    std::vector<GemvJob> jobs;
    for (int j = 0; j < top; j++) {
      jobs.push_back({x.gate[chosen[j].first], in, x.scratch.gate.row<float>(j)});
      jobs.push_back({x.up[chosen[j].first], in, x.scratch.up.row<float>(j)});
    }
    gemv_batch(ctx, jobs.data(), (int)jobs.size(), op.activations);
    jobs.clear();
    for (int j = 0; j < top; j++) {
      const int e = chosen[j].first;
      float* g = x.scratch.gate.row<float>(j);
      float* u = x.scratch.up.row<float>(j);
      k.add(g, x.gate_bias.row<float>(e), g, F);
      k.add(u, x.up_bias.row<float>(e), u, F);
      k.swiglu_clamped(g, u, g, F, x.alpha, x.limit);
      jobs.push_back({x.down[e], g, x.scratch.y.row<float>(j)});
    }
    gemv_batch(ctx, jobs.data(), (int)jobs.size(), op.activations);
    for (int j = 0; j < top; j++) {
      float* y = x.scratch.y.row<float>(j);
      k.add(y, x.down_bias.row<float>(chosen[j].first), y, D);
      k.axpy(chosen[j].second, y, op.out.row<float>(0), D);
    }
    return;
  }
  std::vector<int64_t> rows;
  std::vector<float> ws;
  // An expert's n gathered rows (in[r * ld_in], out[r * ld_out]): in a step of decode rows (M up to
  // kGemvRowsMax) each row as its lone GEMV computes it, so a sequence gets the same tokens in a
  // batch as alone; in a prefill chunk the GEMM, as the matmul op does.
  auto expert_rows = [&](const MatrixPlan& w, float* in, int64_t ld_in, int n, float* out, int64_t ld_out) {
    if (M > kGemvRowsMax || w.d.pretransposed) return gemm(ctx, w, in, n, out);
    const View vin{reinterpret_cast<uint8_t*>(in), ld_in, 4}, vout{reinterpret_cast<uint8_t*>(out), ld_out, 4};
    gemv_rows(ctx, w, vin, n, vout, op.activations);
  };
  for (int e = 0; e < E; e++) {
    rows.clear();
    ws.clear();
    for (int64_t s = 0; s < M * top; s++)
      if (choice[(size_t)s] == e) {
        rows.push_back(s / top);
        ws.push_back(weight[(size_t)s]);
      }
    if (rows.empty()) continue;
    const int n = (int)rows.size();
    float* gs = x.scratch.gate.row<float>(0);
    float* us = x.scratch.up.row<float>(0);
    float* ys = x.scratch.y.row<float>(0);
    if (n == 1) {
      const float* in = op.x.row<float>(rows[0]);
      gemv(ctx, *x.gate[e], in, gs, op.activations);
      gemv(ctx, *x.up[e], in, us, op.activations);
    } else {
      float* xs = x.scratch.x.row<float>(0);
      for (int r = 0; r < n; r++) std::memcpy(xs + (size_t)r * D, op.x.row<float>(rows[r]), (size_t)D * 4);
      expert_rows(*x.gate[e], xs, D, n, gs, F);
      expert_rows(*x.up[e], xs, D, n, us, F);
    }
    for (int r = 0; r < n; r++) {
      float* g = gs + (size_t)r * F;
      float* u = us + (size_t)r * F;
      k.add(g, x.gate_bias.row<float>(e), g, F);
      k.add(u, x.up_bias.row<float>(e), u, F);
      k.swiglu_clamped(g, u, g, F, x.alpha, x.limit);
    }
    if (n == 1) gemv(ctx, *x.down[e], gs, ys, op.activations);
    else expert_rows(*x.down[e], gs, F, n, ys, D);
    for (int r = 0; r < n; r++) {
      float* y = ys + (size_t)r * D;
      k.add(y, x.down_bias.row<float>(e), y, D);
      k.axpy(ws[(size_t)r], y, op.out.row<float>(rows[r]), D);
    }
  }
}

// One op over M rows, one operator() per kind; false (with `err`) when a param is out of range.
struct RunOp {
  Context& ctx;
  const Program& p;
  int64_t M;
  int64_t R;  // the op's most rows
  std::string* err;

  bool operator()(const EmbedOp<Compiled>& op) const {
    for (int64_t i = 0; i < M; i++) {
      int64_t id;
      if (!param(p, op.ids_slot + (int)i, 0, op.matrix->d.N - 1, &id, err, "token id")) return false;
      matrix_row(ctx, *op.matrix, id, op.out.row<float>(i));
    }
    return true;
  }
  bool operator()(const RmsNormOp<Compiled>& op) const {
    for (int64_t i = 0; i < M; i++) ctx.k.rmsnorm(op.x.row<float>(i), op.weight.row<float>(0), (int)op.n, op.eps, op.out.row<float>(i));
    return true;
  }
  bool operator()(const MatMulOp<Compiled>& op) const {
    if (op.last_row_only || M == 1) gemv(ctx, *op.matrix, op.x.row<float>(M - 1), op.out.row<float>(0), op.activations);
    // Up to kGemvRowsMax rows (decode rows of several sequences) each row as its own GEMV would
    // compute it, in the op's activation mode; more (a prefill chunk) take the int8 GEMM in the
    // int8 mode where the ISA has one for the matrix, else the GEMM's FP32 activations.
    else if (M <= kGemvRowsMax && !op.matrix->d.pretransposed) gemv_rows(ctx, *op.matrix, op.x, (int)M, op.out, op.activations);
    else if (op.activations != Activations::Int8 || !gemm_q8(ctx, *op.matrix, op.x.row<float>(0), (int)M, op.out.row<float>(0)))
      gemm(ctx, *op.matrix, op.x.row<float>(0), (int)M, op.out.row<float>(0));
    return true;
  }
  bool operator()(const AddOp<Compiled>& op) const {
    for (int64_t i = 0; i < M; i++) ctx.k.add(op.a.row<float>(i), op.b.row<float>(i), op.out.row<float>(i), (int)op.n);
    return true;
  }
  bool operator()(const SwiGluOp<Compiled>& op) const {
    for (int64_t i = 0; i < M; i++) ctx.k.swiglu(op.gate.row<float>(i), op.up.row<float>(i), op.out.row<float>(i), (int)op.n);
    return true;
  }
  bool operator()(const RopeOp<Compiled>& op) const {
    const int64_t half = op.head_dim / 2;
    auto rotate = [&](int64_t i, int64_t pos) {
      ctx.k.rope(op.x.row<float>(i), (int)op.heads, (int)op.head_dim, op.cos.row<float>(0) + pos * half, op.sin.row<float>(0) + pos * half, (int)op.style);
    };
    if (op.place.seq_slot >= 0) {
      // The angle depends on the position only: the row's KV slot is store's and attention's business.
      for (int64_t i = 0; i < M; i++) {
        int64_t pos;
        if (!param(p, op.place.seq_slot + 2 * (int)i + 1, 0, op.capacity - 1, &pos, err, "position")) return false;
        rotate(i, pos);
      }
      return true;
    }
    int64_t pos;
    if (!param(p, op.place.pos_slot, 0, op.capacity - M, &pos, err, "position")) return false;
    for (int64_t i = 0; i < M; i++) rotate(i, pos + i);
    return true;
  }
  bool operator()(const StoreOp<Compiled>& op) const {
    // Row i goes to cache row kv_cache_row(slot, position) (one slot, consecutive positions without seq_slot).
    int64_t pos = 0, slot = 0;
    if (op.place.seq_slot < 0 && !param(p, op.place.pos_slot, 0, op.positions - M, &pos, err, "position")) return false;
    for (int64_t i = 0; i < M; i++) {
      int64_t at = pos + i;
      if (op.place.seq_slot >= 0 && !seq_row(p, op.place.seq_slot, op.slots, op.positions, i, &slot, &at, err)) return false;
      const int64_t row = kv_cache_row(slot, at, op.capacity);
      if (op.kv_type == KvType::F16) ctx.k.f32_to_f16(op.x.row<float>(i), op.cache.row<uint16_t>(row), (int)op.n);
      else std::memcpy(op.cache.row<float>(row), op.x.row<float>(i), (size_t)op.n * 4);
    }
    return true;
  }
  bool operator()(const AttentionOp<Compiled>& op) const {
    if (op.place.seq_slot >= 0) return run_attention_seq(ctx, p, op, M, err);
    int64_t pos;
    if (!param(p, op.place.pos_slot, 0, op.positions - M, &pos, err, "position")) return false;
    attention(ctx, attention_args(op, 0, M, pos, 0));
    return true;
  }
  bool operator()(const MoeOp<Compiled>& op) const {
    run_moe(ctx, op, M, R);
    return true;
  }
  bool operator()(const ArgmaxOp<Compiled>& op) const {
    for (int64_t i = 0; i < M; i++) p.params[op.out_slot + i] = ctx.k.argmax(op.x.row<float>(i), (int)op.n);
    return true;
  }
  bool operator()(const GatherOp<Compiled>& op) const {
    // Out row i is a copy of row params[rows_slot + i] (the rows whose logits a step needs).
    for (int64_t i = 0; i < M; i++) {
      int64_t from;
      if (!param(p, op.rows_slot + (int)i, 0, p.max_rows - 1, &from, err, "gathered row")) return false;
      std::memmove(op.out.row<float>(i), op.x.row<float>(from), (size_t)op.n * 4);
    }
    return true;
  }
  bool operator()(const TapOp<Compiled>& op) const {
    for (int64_t i = 0; i < M; i++) std::memmove(op.out.row<float>(i), op.x.row<float>(i), (size_t)op.n * 4);
    return true;
  }
};

static bool overlaps(const float* a, int64_t na, const float* b, int64_t nb) { return a < b + nb && b < a + na; }

// The floats that rows [0, rows) of a view of rows of n elements span, first to last.
static int64_t span(const View& v, int64_t rows, int64_t n) { return (rows - 1) * v.stride + n; }

// A matmul op that can share a pool job with its neighbours of the same x: one GEMV (one row, or
// only the last: x at that row, `rows` 1), or 2..kGemvRowsMax rows through a kernel that reads each
// weight row once for all of them (reads_rows_once).
struct Batchable {
  const MatrixPlan* m;
  View x, y;
  int rows;
  Activations a;
};
static bool batchable(const KernelTable& k, const Op& op, int64_t M, Batchable* b) {
  const auto* mm = std::get_if<MatMulOp<Compiled>>(&op.body);
  if (!mm) return false;
  if (mm->last_row_only || M == 1) {
    View x = mm->x;
    x.base = reinterpret_cast<uint8_t*>(mm->x.row<float>(M - 1));
    *b = {mm->matrix, x, mm->out, 1, mm->activations};
    return true;
  }
  if (M > kGemvRowsMax || mm->matrix->d.pretransposed || !reads_rows_once(k, mm->matrix->d, mm->activations)) return false;
  *b = {mm->matrix, mm->x, mm->out, (int)M, mm->activations};
  return true;
}

std::string run_program(Context& ctx, const Program& p) {
  std::string err;
  auto rows_of = [&](const Op& op, int64_t* M, int64_t* R, std::string* e) {
    *R = op.rows.max_rows > 0 ? op.rows.max_rows : p.max_rows;
    return param(p, op.rows.m_slot, 1, *R, M, e, "rows");
  };
  std::vector<Batchable> group;
  std::vector<GemvJob> jobs;
  std::vector<RowsJob> rows_jobs;
  for (size_t i = 0; i < p.ops.size(); i++) {
    int64_t M = 1, R = 1;
    if (!rows_of(p.ops[i], &M, &R, &err)) return err;
    // Consecutive matmuls of the same x (q, k and v; gate and up) as one pool job: one wake-up
    // instead of one per matrix, x prepared once per thread, each product its lone GEMV's. One-row
    // matmuls go to gemv_batch, those of 2..kGemvRowsMax rows (decode rows of several sequences) to
    // gemv_rows_once. Only while no output overlaps x or another output (the first op's own output
    // and x are the op's business).
    Batchable first;
    if (batchable(ctx.k, p.ops[i], M, &first)) {
      group.assign(1, first);
      const int rows = first.rows;
      const float* x0 = first.x.row<float>(0);
      size_t j = i + 1;
      for (; j < p.ops.size(); j++) {
        int64_t Mj = 1, Rj = 1;
        Batchable next;
        std::string ahead;  // a bad param is reported when the loop reaches its op, after the ones before it ran
        if (!rows_of(p.ops[j], &Mj, &Rj, &ahead) || !batchable(ctx.k, p.ops[j], Mj, &next) || next.rows != rows || next.x.row<float>(0) != x0 ||
            (rows > 1 && next.x.stride != first.x.stride) || next.a != first.a)
          break;
        const int64_t xn = span(first.x, rows, next.m->d.K), yn = span(next.y, rows, next.m->d.N);
        const float* y0 = next.y.row<float>(0);
        const bool clash = overlaps(y0, yn, x0, xn) || std::any_of(group.begin(), group.end(), [&](const Batchable& b) {
                             const float* b0 = b.y.row<float>(0);
                             const int64_t bn = span(b.y, rows, b.m->d.N);
                             return overlaps(b0, bn, x0, xn) || overlaps(b0, bn, y0, yn);
                           });
        if (clash) break;
        group.push_back(next);
      }
      if (group.size() > 1) {
        if (rows == 1) {
          jobs.clear();
          for (const Batchable& b : group) jobs.push_back({b.m, x0, b.y.row<float>(0)});
          gemv_batch(ctx, jobs.data(), (int)jobs.size(), first.a);
        } else {
          rows_jobs.clear();
          for (const Batchable& b : group) rows_jobs.push_back({b.m, b.y});
          gemv_rows_once(ctx, rows_jobs.data(), (int)rows_jobs.size(), first.x, rows, first.a);
        }
        i = j - 1;
        continue;
      }
    }
    if (!std::visit(RunOp{ctx, p, M, R, &err}, p.ops[i].body)) return err;
  }
  return err;
}

}  // namespace ie
