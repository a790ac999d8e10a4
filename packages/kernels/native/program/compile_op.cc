// Compiling a program: every op's numbers range-checked and every view resolved against the
// program's buffers, one compile_<kind> per op kind, each checking its own fields. A view's
// extent is computed with overflow-checked arithmetic (a stride near 2^61 must not wrap the
// check). What is wrong is reported as one message naming the op and the field; the N-API
// layer throws it as KERNELS_BAD_ARGUMENT.
#include <cmath>
#include <string>
#include <utility>

#include "attention/attention.h"
#include "program/program.h"

namespace ie {
namespace {

struct CompileError {
  std::string message;
};
[[noreturn]] void fail(std::string message) { throw CompileError{std::move(message)}; }

inline bool ck_mul(uint64_t a, uint64_t b, uint64_t* r) { return !__builtin_mul_overflow(a, b, r); }
inline bool ck_add(uint64_t a, uint64_t b, uint64_t* r) { return !__builtin_add_overflow(a, b, r); }

// An integer in [lo, hi], or the message the N-API layer always gave for one that is not.
int64_t integer(const Num& v, const std::string& what, int64_t lo, int64_t hi) {
  if (v.state != Num::Number) fail(what + " must be a number");
  if (!(v.v >= (double)lo && v.v <= (double)hi) || v.v != std::floor(v.v)) fail(what + " must be an integer in " + std::to_string(lo) + ".." + std::to_string(hi));
  return (int64_t)v.v;
}
int64_t int_opt(const Num& v, const char* key, int64_t dflt, int64_t lo, int64_t hi) { return v.state == Num::Absent ? dflt : integer(v, key, lo, hi); }
int64_t int_req(const Num& v, const char* key, int64_t lo, int64_t hi) {
  if (v.state == Num::Absent) fail(std::string(key) + " is required");
  return integer(v, key, lo, hi);
}
double real_opt(const Num& v, const char* key, double dflt) {
  if (v.state == Num::Absent) return dflt;
  if (v.state != Num::Number) fail(std::string(key) + " must be a number");
  return v.v;
}
bool flag(const Num& v, const char* key) { return int_opt(v, key, 0, 0, 1) == 1; }

// What every op's compile_<kind> needs: the program so far, the op's name and its row count.
struct Compiler {
  const ProgramArgs& args;
  const Program& prog;
  std::string where;  // "ops[i]"
  int64_t R = 1;      // the op's largest row count
  int m_slot = -1;

  int slot(const Num& v, const char* key) const { return (int)int_opt(v, key, -1, -1, (int64_t)prog.params_len - 1); }
  const MatrixPlan& matrix(const MatrixPlan* m) const {
    if (!m) fail(where + " needs a matrix");
    return *m;
  }
  void need_n(int64_t n) const {
    if (n < 1) fail(where + " needs n >= 1");
  }
  int64_t n(const Num& v) const { return int_opt(v, "n", 0, 0, 1ll << 30); }
  // A view [buffer, offset, stride] that must hold `rows` rows of `width` elements of `elem`
  // bytes: offset + (rows - 1) * stride + width <= the buffer's length.
  View view(const ViewArg& a, const char* key, int64_t rows, int64_t width, int elem = 4) const {
    const std::string what = where + "." + key;
    if (!a.shaped) fail(what + " must be [buffer, offset, stride]");
    const int64_t nb = (int64_t)args.buffers.size();
    const int64_t b = integer(a.buffer, what + "[0] (buffer)", 0, nb - 1 < 0 ? 0 : nb - 1);
    if (b >= nb) fail(what + ": no buffer " + std::to_string(b));
    const BufferArg& t = args.buffers[(size_t)b];
    const int64_t off = integer(a.offset, what + "[1] (offset)", 0, (int64_t)t.len);
    const int64_t stride = integer(a.stride, what + "[2] (stride)", 0, (int64_t)t.len);
    if (t.elem != elem) fail(what + ": buffer " + std::to_string(b) + " has the wrong element type");
    uint64_t span = 0;
    const bool ok = width >= 0 && rows >= 1 && ck_mul((uint64_t)(rows - 1), (uint64_t)stride, &span) && ck_add(span, (uint64_t)off, &span) && ck_add(span, (uint64_t)width, &span) && span <= t.len;
    if (!ok)
      fail(what + ": " + std::to_string(rows) + " rows of " + std::to_string(width) + " (stride " + std::to_string(stride) + ", offset " + std::to_string(off) + ") do not fit buffer " + std::to_string(b) + " (" + std::to_string(t.len) + " elements)");
    View v;
    v.base = t.base + (size_t)off * (size_t)elem;
    v.stride = stride;
    v.elem = elem;
    return v;
  }
  // Rope's, store's and attention's place; `slots` > 1 needs a KV slot per row.
  Place<Compiled> place(const Place<Wire>& w, int64_t slots, int64_t capacity) const {
    Place<Compiled> p;
    p.pos_slot = slot(w.pos_slot, "posSlot");
    p.seq_slot = slot(w.seq_slot, "seqSlot");
    if (p.seq_slot >= 0) {
      if ((int64_t)p.seq_slot + 2 * R > prog.params_len) fail(where + ": seqSlot must leave 2 x maxRows params (a KV slot and a position per row)");
    } else if (slots != 1) {
      fail(where + ": a cache arena of several slots needs seqSlot (a KV slot per row)");
    }
    if (capacity < 1) fail(where + " needs a capacity");
    return p;
  }
};

int kv_elem(KvType t) { return t == KvType::F16 ? 2 : 4; }

EmbedOp<Compiled> compile_embed(const Compiler& c, const EmbedOp<Wire>& w) {
  EmbedOp<Compiled> op;
  op.ids_slot = c.slot(w.ids_slot, "idsSlot");
  op.matrix = &c.matrix(w.matrix);
  if (op.ids_slot < 0 || op.ids_slot + c.R > c.prog.params_len) fail(c.where + ": idsSlot must leave maxRows params");
  op.out = c.view(w.out, "out", c.R, op.matrix->d.K);
  return op;
}

RmsNormOp<Compiled> compile_rmsnorm(const Compiler& c, const RmsNormOp<Wire>& w) {
  RmsNormOp<Compiled> op;
  op.n = c.n(w.n);
  op.eps = (float)real_opt(w.eps, "eps", 0);
  op.x = c.view(w.x, "x", c.R, op.n);
  op.weight = c.view(w.weight, "weight", 1, op.n);
  op.out = c.view(w.out, "out", c.R, op.n);
  c.need_n(op.n);
  return op;
}

MatMulOp<Compiled> compile_matmul(const Compiler& c, const MatMulOp<Wire>& w) {
  MatMulOp<Compiled> op;
  op.activations = (Activations)int_opt(w.activations, "activations", 0, 0, 1);
  op.last_row_only = flag(w.last_row_only, "lastRowOnly");
  op.matrix = &c.matrix(w.matrix);
  const MatrixDesc& d = op.matrix->d;
  op.x = c.view(w.x, "x", c.R, d.K);
  op.out = c.view(w.out, "out", op.last_row_only ? 1 : c.R, d.N);
  if (!op.last_row_only && c.R > 1 && (op.x.stride != d.K || op.out.stride != d.N)) fail(c.where + ": batched matmul rows must be contiguous (stride K in, N out)");
  return op;
}

AddOp<Compiled> compile_add(const Compiler& c, const AddOp<Wire>& w) {
  AddOp<Compiled> op;
  op.n = c.n(w.n);
  op.a = c.view(w.a, "a", c.R, op.n);
  op.b = c.view(w.b, "b", c.R, op.n);
  op.out = c.view(w.out, "out", c.R, op.n);
  c.need_n(op.n);
  return op;
}

SwiGluOp<Compiled> compile_swiglu(const Compiler& c, const SwiGluOp<Wire>& w) {
  SwiGluOp<Compiled> op;
  op.n = c.n(w.n);
  op.gate = c.view(w.gate, "gate", c.R, op.n);
  op.up = c.view(w.up, "up", c.R, op.n);
  op.out = c.view(w.out, "out", c.R, op.n);
  c.need_n(op.n);
  return op;
}

RopeOp<Compiled> compile_rope(const Compiler& c, const RopeOp<Wire>& w) {
  RopeOp<Compiled> op;
  op.heads = int_opt(w.heads, "heads", 0, 0, 1 << 16);
  op.head_dim = int_opt(w.head_dim, "headDim", 0, 0, 1 << 16);
  op.style = (RopeStyle)int_opt(w.style, "style", 0, 0, 1);
  op.capacity = int_opt(w.capacity, "capacity", 0, 0, 1ll << 24);
  if (op.head_dim < 2 || op.head_dim % 2 || op.heads < 1) fail(c.where + ": rope needs heads and an even headDim");
  op.x = c.view(w.x, "x", c.R, op.heads * op.head_dim);
  op.cos = c.view(w.cos, "cos", 1, op.capacity * (op.head_dim / 2));
  op.sin = c.view(w.sin, "sin", 1, op.capacity * (op.head_dim / 2));
  op.place = c.place(w.place, 1, op.capacity);
  return op;
}

// The positions a KV slot runs through: capacity (a plain cache), or more (a ring over capacity rows).
int64_t ring_positions(const Num& positions, int64_t capacity) { return int_opt(positions, "positions", capacity, capacity, 1ll << 24); }

StoreOp<Compiled> compile_store(const Compiler& c, const StoreOp<Wire>& w) {
  StoreOp<Compiled> op;
  op.n = c.n(w.n);
  op.kv_type = (KvType)int_opt(w.kv_type, "kvType", 0, 0, 1);
  op.capacity = int_opt(w.capacity, "capacity", 0, 0, 1ll << 24);
  op.slots = int_opt(w.slots, "slots", 1, 1, 1 << 16);
  op.positions = ring_positions(w.positions, op.capacity);
  op.x = c.view(w.x, "x", c.R, op.n);
  op.cache = c.view(w.cache, "cache", op.capacity * op.slots, op.n, kv_elem(op.kv_type));
  op.place = c.place(w.place, op.slots, op.positions);
  c.need_n(op.n);
  return op;
}

AttentionOp<Compiled> compile_attention(const Compiler& c, const AttentionOp<Wire>& w) {
  AttentionOp<Compiled> op;
  op.heads = int_opt(w.heads, "heads", 0, 0, 1 << 16);
  op.kv_heads = int_opt(w.kv_heads, "kvHeads", 0, 0, 1 << 16);
  op.head_dim = int_opt(w.head_dim, "headDim", 0, 0, 1 << 16);
  op.window = int_opt(w.window, "window", 0, 0, 1 << 24);
  op.kv_type = (KvType)int_opt(w.kv_type, "kvType", 0, 0, 1);
  op.capacity = int_opt(w.capacity, "capacity", 0, 0, 1ll << 24);
  op.slots = int_opt(w.slots, "slots", 1, 1, 1 << 16);
  op.positions = ring_positions(w.positions, op.capacity);
  // A ring must keep every position a query of the op's rows still sees when the rows' own
  // keys are stored: the window behind the first row, plus the rows.
  if (op.positions > op.capacity && (op.window < 1 || op.capacity < op.window + c.R - 1))
    fail(c.where + ": a ring cache (positions above capacity) needs a window and capacity >= window + rows - 1");
  op.scale = (float)real_opt(w.scale, "scale", 0);
  if (op.heads < 1 || op.kv_heads < 1 || op.head_dim < 1 || op.heads % op.kv_heads) fail(c.where + ": attention needs heads, kvHeads (dividing heads) and headDim");
  const int64_t width = op.heads * op.head_dim, kvw = op.kv_heads * op.head_dim, rows = op.capacity * op.slots;
  op.q = c.view(w.q, "q", c.R, width);
  op.k = c.view(w.k, "k", rows, kvw, kv_elem(op.kv_type));
  op.v = c.view(w.v, "v", rows, kvw, kv_elem(op.kv_type));
  op.out = c.view(w.out, "out", c.R, width);
  if (op.k.stride != op.v.stride || op.k.stride < kvw) fail(c.where + ": K and V caches need the same row stride, at least kvHeads*headDim");
  if (w.sinks.set) op.sinks = c.view(w.sinks, "sinks", 1, op.heads);
  op.place = c.place(w.place, op.slots, op.positions);
  const uint64_t scratch = attention_scratch_floats(op.heads, op.kv_heads, op.head_dim, op.positions, op.window, c.R);
  if (scratch > kMaxAttentionScratchFloats)
    fail(c.where + ": attention over " + std::to_string(op.positions) + " positions with " + std::to_string(op.heads / op.kv_heads) + " query heads per KV head needs " +
         std::to_string(scratch * 4 >> 20) + " MiB of scratch a thread, over the " + std::to_string(kMaxAttentionScratchFloats * 4 >> 20) + " MiB limit");
  return op;
}

// Three lists of one Matrix per expert: gate and up [F, D], down [D, F].
void check_experts(const Compiler& c, const MoeOp<Wire>& w) {
  const size_t E = w.gate.size();
  if (E < 1 || w.up.size() != E || w.down.size() != E) fail(c.where + ": gate, up and down need one Matrix per expert each");
  const int64_t D = w.gate[0]->d.K, F = w.gate[0]->d.N;
  for (size_t e = 0; e < E; e++) {
    const MatrixDesc &g = w.gate[e]->d, &u = w.up[e]->d, &d = w.down[e]->d;
    if (g.N != F || g.K != D || u.N != F || u.K != D || d.N != D || d.K != F)
      fail(c.where + ": expert " + std::to_string(e) + " has a matrix of another shape (gate and up [F, D], down [D, F])");
  }
}

MoeOp<Compiled> compile_moe(const Compiler& c, const MoeOp<Wire>& w) {
  check_experts(c, w);
  MoeOp<Compiled> op;
  op.gate = w.gate;
  op.up = w.up;
  op.down = w.down;
  const int64_t E = (int64_t)w.gate.size(), D = w.gate[0]->d.K, F = w.gate[0]->d.N;
  op.activations = (Activations)int_opt(w.activations, "activations", 0, 0, 1);
  op.top_k = int_req(w.top_k, "topK", 1, E);
  op.alpha = (float)real_opt(w.alpha, "alpha", NAN);
  op.limit = (float)real_opt(w.limit, "limit", NAN);
  if (!std::isfinite(op.alpha) || !(op.limit > 0)) fail(c.where + ": alpha must be finite and limit positive");
  op.x = c.view(w.x, "x", c.R, D);
  op.router = c.view(w.router, "router", c.R, E);
  op.out = c.view(w.out, "out", c.R, D);
  op.gate_bias = c.view(w.gate_bias, "gateBias", E, F);
  op.up_bias = c.view(w.up_bias, "upBias", E, F);
  op.down_bias = c.view(w.down_bias, "downBias", E, D);
  op.scratch.x = c.view(w.scratch.x, "scratch.x", c.R, D);
  op.scratch.gate = c.view(w.scratch.gate, "scratch.gate", c.R, F);
  op.scratch.up = c.view(w.scratch.up, "scratch.up", c.R, F);
  op.scratch.y = c.view(w.scratch.y, "scratch.y", c.R, D);
  const auto& s = op.scratch;
  if (s.x.stride != D || s.gate.stride != F || s.up.stride != F || s.y.stride != D)
    fail(c.where + ": MoE scratch rows must be contiguous (scratch.x, scratch.y stride D; scratch.gate, scratch.up stride F)");
  return op;
}

ArgmaxOp<Compiled> compile_argmax(const Compiler& c, const ArgmaxOp<Wire>& w) {
  ArgmaxOp<Compiled> op;
  op.n = c.n(w.n);
  op.out_slot = c.slot(w.out_slot, "outSlot");
  // One result per row: outSlot must leave a param for each of the rows a run may have.
  const int64_t rows = c.m_slot < 0 ? 1 : c.R;
  if (op.out_slot < 0 || op.out_slot + rows > c.prog.params_len) fail(c.where + ": argmax needs outSlot, leaving a param per row");
  op.x = c.view(w.x, "x", rows, op.n);
  c.need_n(op.n);
  return op;
}

GatherOp<Compiled> compile_gather(const Compiler& c, const GatherOp<Wire>& w) {
  GatherOp<Compiled> op;
  op.n = c.n(w.n);
  op.rows_slot = c.slot(w.rows_slot, "rowsSlot");
  // R rows out, gathered from any of the program's rows.
  if (op.rows_slot < 0 || op.rows_slot + c.R > c.prog.params_len) fail(c.where + ": gather needs rowsSlot, leaving a param per row");
  op.x = c.view(w.x, "x", c.prog.max_rows, op.n);
  op.out = c.view(w.out, "out", c.R, op.n);
  c.need_n(op.n);
  return op;
}

TapOp<Compiled> compile_tap(const Compiler& c, const TapOp<Wire>& w) {
  TapOp<Compiled> op;
  op.n = c.n(w.n);
  op.x = c.view(w.x, "x", c.R, op.n);
  op.out = c.view(w.out, "out", c.R, op.n);
  c.need_n(op.n);
  return op;
}

OpBody<Compiled> compile_body(const Compiler& c, OpKind kind, const OpBody<Wire>& w) {
  switch (kind) {
    case OpKind::Embed: return compile_embed(c, std::get<EmbedOp<Wire>>(w));
    case OpKind::RmsNorm: return compile_rmsnorm(c, std::get<RmsNormOp<Wire>>(w));
    case OpKind::MatMul: return compile_matmul(c, std::get<MatMulOp<Wire>>(w));
    case OpKind::Add: return compile_add(c, std::get<AddOp<Wire>>(w));
    case OpKind::Rope: return compile_rope(c, std::get<RopeOp<Wire>>(w));
    case OpKind::Store: return compile_store(c, std::get<StoreOp<Wire>>(w));
    case OpKind::Attention: return compile_attention(c, std::get<AttentionOp<Wire>>(w));
    case OpKind::SwiGlu: return compile_swiglu(c, std::get<SwiGluOp<Wire>>(w));
    case OpKind::Argmax: return compile_argmax(c, std::get<ArgmaxOp<Wire>>(w));
    case OpKind::Moe: return compile_moe(c, std::get<MoeOp<Wire>>(w));
    case OpKind::Gather: return compile_gather(c, std::get<GatherOp<Wire>>(w));
    case OpKind::Tap: return compile_tap(c, std::get<TapOp<Wire>>(w));
  }
  fail("unknown op kind");
}

Op compile_op(const ProgramArgs& args, const Program& prog, size_t i) {
  const OpArgs& a = args.ops[i];
  const int64_t k = int_req(a.kind, "kind", 0, kOpKindCount - 1);
  if (!a.body || a.body->index() != (size_t)k) fail("kind must be an integer in 0.." + std::to_string(kOpKindCount - 1));
  Compiler c{args, prog, "ops[" + std::to_string(i) + "]"};
  Op op;
  op.rows.m_slot = c.m_slot = c.slot(a.rows.m_slot, "mSlot");
  // An op may declare fewer rows than the program (its buffers then hold only those).
  op.rows.max_rows = int_opt(a.rows.max_rows, "maxRows", 0, 0, prog.max_rows);
  c.R = op.rows.max_rows > 0 ? op.rows.max_rows : prog.max_rows;
  op.body = compile_body(c, (OpKind)k, *a.body);
  return op;
}

}  // namespace

std::string compile_program(const ProgramArgs& args, Program* out) {
  try {
    Program p;
    p.max_rows = int_opt(args.max_rows, "maxRows", 1, 1, 1 << 16);
    p.params = args.params;
    p.params_len = args.params_len;
    p.ops.reserve(args.ops.size());
    for (size_t i = 0; i < args.ops.size(); i++) p.ops.push_back(compile_op(args, p, i));
    *out = std::move(p);
    return "";
  } catch (const CompileError& e) {
    return e.message;
  }
}

}  // namespace ie
