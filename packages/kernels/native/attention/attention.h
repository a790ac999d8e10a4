// Attention of one query, or of a block of consecutive queries (prefill), over a KV cache,
// with grouped-query heads and an optional sliding window. One query (decode) is built from the
// dispatch table's attn_scores / softmax / attn_mix per KV head (its query heads together), the KV
// heads split between the pool's threads; a prefill
// chunk runs as GEMMs on the packed GEMM's micro-kernel, per (KV head, block of queries).
#pragma once
#include <cstdint>
#include <cstddef>

#include "context.h"

namespace ie {

struct AttentionArgs {
  const float* q = nullptr;   // query i: q + i*q_stride, n_heads*head_dim floats (RoPE applied)
  ptrdiff_t q_stride = 0;
  int n_queries = 1;
  int pos0 = 0;               // query i sits at position pos0 + i; the cache holds [0, pos0 + n_queries)
  const void* k = nullptr;    // cache rows: position t at k + t*kv_stride elements
  const void* v = nullptr;
  KvType kv_type = KvType::F32;
  ptrdiff_t kv_stride = 0;    // elements between positions (n_kv_heads*head_dim for a dense cache)
  int n_heads = 0, n_kv_heads = 0, head_dim = 0;
  int window = 0;             // > 0: attend to the last `window` positions only
  int ring = 0;               // > 0: the cache is a ring of `ring` rows, position t in row t % ring
  float scale = 1.0f;         // usually 1/sqrt(head_dim)
  const float* sinks = nullptr;  // per query head: a learned logit in the softmax's denominator (gpt-oss), or none
  float* out = nullptr;       // query i: out + i*out_stride, n_heads*head_dim floats
  ptrdiff_t out_stride = 0;
};

void attention(Context& ctx, const AttentionArgs& a);

// The scratch one thread's attention over `positions` may need, in floats: a query block's heads
// of one KV head times the positions they see, plus their packed rows. Callers refuse shapes whose
// scratch exceeds kMaxAttentionScratchFloats (1 GiB a thread) before any thread allocates it: an
// allocation failing inside a pool thread would end the process.
constexpr uint64_t kMaxAttentionScratchFloats = uint64_t(1) << 28;
uint64_t attention_scratch_floats(int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, int64_t positions, int64_t window, int64_t n_queries);
// The most positions whose scratch stays within kMaxAttentionScratchFloats for this shape (0 if
// none; 2^31 - 1 where a window bounds the span), so that callers can size a context up front.
int64_t attention_max_positions(int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, int64_t window, int64_t n_queries);

// Several short attentions at once (decode rows of different sequences, each over its own cache):
// every (query, KV head) of all of them is one task of a single pool job (its query heads split
// into a few tasks when there are fewer pairs than threads). Each query's result is
// what attention() gives it alone for n_queries < 4: a task is computed the same whichever thread
// runs it (longer blocks belong in attention(), whose batched path reads K and V once per block).
void attention_many(Context& ctx, const AttentionArgs* list, int count);

}  // namespace ie
