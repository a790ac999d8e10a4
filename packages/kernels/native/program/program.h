// A program: a fixed list of kernel invocations over fixed buffers, compiled once and run many
// times (a model's decode step, its prefill step). Small integers that change between runs
// (the position, the number of rows, token ids) are read from a params array at run time.
// Running a whole step in C++ keeps the JavaScript thread idle and the per-token host overhead
// to one call; running it on a worker thread keeps the event loop free.
//
// Everything is validated at compile time against declared maxima (rows, positions, KV slots);
// each run checks its params against the same maxima before touching memory.
//
// One run may carry rows of several sequences: RoPE, the KV store and attention then read a
// (KV slot, position) pair per row from the params (`seq_slot`) instead of one start position, and
// the caches are an arena of `slots` slots of `capacity` positions each.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "context.h"
#include "matmul/matmul.h"

namespace ie {

enum class OpKind : int32_t { Embed = 0, RmsNorm = 1, MatMul = 2, Add = 3, Rope = 4, Store = 5, Attention = 6, SwiGlu = 7, Argmax = 8, Moe = 9, Gather = 10 };
constexpr int kOpKindCount = 11;

// A row-major view: row i of `rows` at base + i * stride elements.
struct View {
  uint8_t* base = nullptr;
  int64_t stride = 0;  // elements between rows (0: the same row for every i, e.g. a bias)
  int elem = 4;        // bytes per element (4 f32, 2 f16)
  template <typename T>
  T* row(int64_t i) const { return reinterpret_cast<T*>(base + i * stride * elem); }
};

struct Op {
  OpKind kind = OpKind::Add;
  const MatrixPlan* matrix = nullptr;
  View a, b, c, out;             // inputs a, b, c (attention: q, K cache, V cache) and the output
  int64_t n = 0;                 // elements per row
  float eps = 0, scale = 0;
  int heads = 0, kv_heads = 0, head_dim = 0, style = 0, window = 0;
  KvType kv_type = KvType::F32;
  Activations activations = Activations::F32;
  bool last_row_only = false;    // MatMul: only the last of the M rows (prefill logits)
  int64_t capacity = 0;          // positions the cache / table holds (per KV slot)
  int64_t slots = 1;             // Store/Attention: KV slots in the cache arena
  int64_t max_rows = 0;          // this op's largest row count (0: the program's); e.g. the logit rows of a step
  // ids_slot: Embed's token ids, Gather's source rows; out_slot: Argmax's results (one per row);
  // seq_slot: per-row (KV slot, position) pairs, params[seq_slot + 2i] and [seq_slot + 2i + 1].
  int m_slot = -1, pos_slot = -1, ids_slot = -1, out_slot = -1, seq_slot = -1;
  const float* sinks = nullptr;  // Attention: one logit per head, or none
  // Moe: a = input rows, b = router logits (n experts wide), out += the chosen experts' weighted
  // outputs; per-expert matrices and bias rows; scratch rows for the gathered inputs and outputs.
  struct Experts {
    std::vector<const MatrixPlan*> gate, up, down;
    View gate_bias, up_bias, down_bias, xs, gs, us, ys;
    int top_k = 0;
    float alpha = 0, limit = 0;
  } moe;
};

struct Program {
  std::vector<Op> ops;
  int32_t* params = nullptr;
  int params_len = 0;
  int64_t max_rows = 1;
};

// Runs every op in order. Returns "" or a message (bad params: position past the cache, ...).
std::string run_program(Context& ctx, const Program& p);

}  // namespace ie
