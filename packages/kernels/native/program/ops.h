// The program's ops, one struct per kind, with the TypeScript op's field names (kernels/src/
// program-types.ts; camelCase there, snake_case here). Each struct is written once over a
// policy: `Wire` is what the N-API layer read from JavaScript, unchecked (numbers as given,
// views as [buffer, offset, stride] triples); `Compiled` is what compile_op.cc made of it, every
// number range-checked and every view resolved to memory and bounds-checked.
#pragma once
#include <cstdint>
#include <optional>
#include <variant>
#include <vector>

#include "context.h"
#include "cpu/kernel_table.h"
#include "matmul/matmul.h"

namespace ie {

// Numbered for the JS boundary: kernels/src/constants.ts mirrors these (constants.test.ts
// compares them with what the addon reports), and OpBody's alternatives follow this order.
enum class OpKind : int32_t { Embed = 0, RmsNorm = 1, MatMul = 2, Add = 3, Rope = 4, Store = 5, Attention = 6, SwiGlu = 7, Argmax = 8, Moe = 9, Gather = 10, Tap = 11 };
constexpr int kOpKindCount = 12;
struct OpKindName {
  const char* name;  // the TypeScript `op`
  OpKind kind;
};
constexpr OpKindName kOpKindNames[kOpKindCount] = {{"embed", OpKind::Embed},         {"rmsnorm", OpKind::RmsNorm}, {"matmul", OpKind::MatMul},
                                                   {"add", OpKind::Add},             {"rope", OpKind::Rope},       {"store", OpKind::Store},
                                                   {"attention", OpKind::Attention}, {"swiglu", OpKind::SwiGlu},   {"argmax", OpKind::Argmax},
                                                   {"moe", OpKind::Moe},             {"gather", OpKind::Gather},   {"tap", OpKind::Tap}};

// A row-major view: row i of `rows` at base + i * stride elements.
struct View {
  uint8_t* base = nullptr;
  int64_t stride = 0;  // elements between rows (0: the same row for every i, e.g. a bias)
  int elem = 4;        // bytes per element (4 f32, 2 f16)
  template <typename T>
  T* row(int64_t i) const { return reinterpret_cast<T*>(base + i * stride * elem); }
};

// A number as JavaScript gave it: absent (undefined or null), a number (NaN included), or
// something else; compile_op.cc checks it is one and in range.
struct Num {
  enum State : uint8_t { Absent, Number, Other } state = Absent;
  double v = 0;
};
// A view as JavaScript gave it; `shaped`: an array of at least three elements.
struct ViewArg {
  bool set = false, shaped = false;
  Num buffer, offset, stride;
};

struct Wire {
  using Matrix = const MatrixPlan*;  // null when absent (the Matrix itself is unwrapped by N-API)
  using Matrices = std::vector<const MatrixPlan*>;
  using ViewT = ViewArg;
  using Int = Num;
  using Slot = Num;
  using Real = Num;
  template <class E>
  using Enum = Num;
};
struct Compiled {
  using Matrix = const MatrixPlan*;
  using Matrices = std::vector<const MatrixPlan*>;
  using ViewT = View;  // base null: absent (an optional view)
  using Int = int64_t;
  using Slot = int;    // a params index, -1 for none
  using Real = float;
  template <class E>
  using Enum = E;
};

// Every op: its row count's param slot (none: one row) and its largest row count (0: the program's).
template <class P>
struct OpRows {
  typename P::Slot m_slot{};
  typename P::Int max_rows{};
};
// Where rope, store and attention find each row's place: one start position at params[pos_slot],
// or a (KV slot, position) pair per row at params[seq_slot + 2i], params[seq_slot + 2i + 1].
template <class P>
struct Place {
  typename P::Slot pos_slot{}, seq_slot{};
};

template <class P>
struct EmbedOp {
  typename P::Matrix matrix{};
  typename P::ViewT out;
  typename P::Slot ids_slot{};
};
template <class P>
struct RmsNormOp {
  typename P::ViewT x, weight, out;
  typename P::Int n{};
  typename P::Real eps{};
};
template <class P>
struct MatMulOp {
  typename P::Matrix matrix{};
  typename P::ViewT x, out;
  typename P::template Enum<Activations> activations{};
  typename P::template Enum<bool> last_row_only{};  // only the last of the rows (prefill logits)
};
template <class P>
struct AddOp {
  typename P::ViewT a, b, out;
  typename P::Int n{};
};
template <class P>
struct SwiGluOp {
  typename P::ViewT gate, up, out;
  typename P::Int n{};
};
template <class P>
struct RopeOp {
  typename P::ViewT x, cos, sin;  // cos and sin: one table row of headDim/2 per position
  typename P::Int heads{}, head_dim{}, capacity{};
  typename P::template Enum<RopeStyle> style{};
  Place<P> place;
};
template <class P>
struct StoreOp {
  typename P::ViewT x, cache;
  typename P::Int n{}, capacity{}, slots{}, positions{};
  typename P::template Enum<KvType> kv_type{};
  Place<P> place;
};
template <class P>
struct AttentionOp {
  typename P::ViewT q, k, v, out, sinks;  // k, v: the caches; sinks: one logit per head, optional
  typename P::Int heads{}, kv_heads{}, head_dim{}, capacity{}, slots{}, window{}, positions{};
  typename P::template Enum<KvType> kv_type{};
  typename P::Real scale{};
  Place<P> place;
};
// The mixture-of-experts FFN (program-types.ts's MoeOp): per-expert matrices and bias rows,
// scratch rows for the gathered inputs and the experts' outputs.
template <class P>
struct MoeOp {
  typename P::ViewT x, router, out, gate_bias, up_bias, down_bias;
  typename P::Matrices gate, up, down;
  typename P::Int top_k{};
  typename P::Real limit{}, alpha{};
  typename P::template Enum<Activations> activations{};
  struct Scratch {
    typename P::ViewT x, gate, up, y;
  } scratch;
};
template <class P>
struct ArgmaxOp {
  typename P::ViewT x;
  typename P::Int n{};
  typename P::Slot out_slot{};  // one result per row
};
template <class P>
struct GatherOp {
  typename P::ViewT x, out;
  typename P::Int n{};
  typename P::Slot rows_slot{};  // out row i = x row params[rows_slot + i]
};
// A copy of n floats per row: calibration captures a projection's input with it.
template <class P>
struct TapOp {
  typename P::ViewT x, out;
  typename P::Int n{};
};

template <class P>
using OpBody = std::variant<EmbedOp<P>, RmsNormOp<P>, MatMulOp<P>, AddOp<P>, RopeOp<P>, StoreOp<P>, AttentionOp<P>, SwiGluOp<P>, ArgmaxOp<P>, MoeOp<P>,
                            GatherOp<P>, TapOp<P>>;
static_assert(std::variant_size_v<OpBody<Wire>> == kOpKindCount, "one op struct per kind");
static_assert(std::is_same_v<std::variant_alternative_t<(size_t)OpKind::Tap, OpBody<Wire>>, TapOp<Wire>>, "OpBody follows OpKind's order");
static_assert(std::is_same_v<std::variant_alternative_t<(size_t)OpKind::Moe, OpBody<Wire>>, MoeOp<Wire>>, "OpBody follows OpKind's order");

// An op as read from JavaScript: the body is empty when `kind` named no kind.
struct OpArgs {
  Num kind;
  OpRows<Wire> rows;
  std::optional<OpBody<Wire>> body;
};
// The kind `kind` names, if it is one (compile_op.cc reports what is wrong with it otherwise).
inline std::optional<OpKind> op_kind(const Num& kind) {
  if (kind.state != Num::Number || !(kind.v >= 0 && kind.v < kOpKindCount) || kind.v != (double)(int)kind.v) return std::nullopt;
  return (OpKind)(int)kind.v;
}

struct Op {
  OpRows<Compiled> rows;
  OpBody<Compiled> body;
  OpKind kind() const { return (OpKind)body.index(); }
};

// KV cache row of (slot, position) in an arena of slots of `capacity` positions each (one cache: slot 0).
inline int64_t kv_cache_row(int64_t slot, int64_t position, int64_t capacity) { return slot * capacity + position % capacity; }

}  // namespace ie
