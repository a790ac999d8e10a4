#include "program/program.h"

#include <cstring>

#include "attention/attention.h"

namespace ie {

static bool param(const Program& p, int slot, int64_t lo, int64_t hi, int64_t* out, std::string* err, const char* what) {
  if (slot < 0) {
    *out = lo;
    return true;
  }
  const int64_t v = p.params[slot];
  if (v < lo || v > hi) {
    *err = std::string(what) + " " + std::to_string(v) + " is outside " + std::to_string(lo) + ".." + std::to_string(hi);
    return false;
  }
  *out = v;
  return true;
}

std::string run_program(Context& ctx, const Program& p) {
  std::string err;
  const KernelTable& k = ctx.k;
  for (const Op& op : p.ops) {
    int64_t M = 1;
    if (!param(p, op.m_slot, 1, p.max_rows, &M, &err, "rows")) return err;
    switch (op.kind) {
      case OpKind::Embed: {
        for (int64_t i = 0; i < M; i++) {
          int64_t id;
          if (!param(p, op.ids_slot + (int)i, 0, op.matrix->d.N - 1, &id, &err, "token id")) return err;
          matrix_row(ctx, *op.matrix, id, op.out.row<float>(i));
        }
        break;
      }
      case OpKind::RmsNorm:
        for (int64_t i = 0; i < M; i++) k.rmsnorm(op.a.row<float>(i), op.b.row<float>(0), (int)op.n, op.eps, op.out.row<float>(i));
        break;
      case OpKind::MatMul:
        if (op.last_row_only || M == 1) gemv(ctx, *op.matrix, op.a.row<float>(M - 1), op.out.row<float>(0), op.activations);
        else gemm(ctx, *op.matrix, op.a.row<float>(0), (int)M, op.out.row<float>(0));
        break;
      case OpKind::Add:
        for (int64_t i = 0; i < M; i++) k.add(op.a.row<float>(i), op.b.row<float>(i), op.out.row<float>(i), (int)op.n);
        break;
      case OpKind::SwiGlu:
        for (int64_t i = 0; i < M; i++) k.swiglu(op.a.row<float>(i), op.b.row<float>(i), op.out.row<float>(i), (int)op.n);
        break;
      case OpKind::Rope: {
        int64_t pos;
        if (!param(p, op.pos_slot, 0, op.capacity - M, &pos, &err, "position")) return err;
        const int half = op.head_dim / 2;
        for (int64_t i = 0; i < M; i++) k.rope(op.out.row<float>(i), op.heads, op.head_dim, op.a.row<float>(0) + (pos + i) * half, op.b.row<float>(0) + (pos + i) * half, op.style);
        break;
      }
      case OpKind::Store: {
        int64_t pos;
        if (!param(p, op.pos_slot, 0, op.capacity - M, &pos, &err, "position")) return err;
        for (int64_t i = 0; i < M; i++) {
          if (op.kv_type == KvType::F16) k.f32_to_f16(op.a.row<float>(i), op.out.row<uint16_t>(pos + i), (int)op.n);
          else std::memcpy(op.out.row<float>(pos + i), op.a.row<float>(i), (size_t)op.n * 4);
        }
        break;
      }
      case OpKind::Attention: {
        int64_t pos;
        if (!param(p, op.pos_slot, 0, op.capacity - M, &pos, &err, "position")) return err;
        AttentionArgs a;
        a.q = op.a.row<float>(0);
        a.q_stride = op.a.stride;
        a.n_queries = (int)M;
        a.pos0 = (int)pos;
        a.k = op.b.base;
        a.v = op.c.base;
        a.kv_type = op.kv_type;
        a.kv_stride = (ptrdiff_t)op.b.stride;
        a.n_heads = op.heads;
        a.n_kv_heads = op.kv_heads;
        a.head_dim = op.head_dim;
        a.window = op.window;
        a.scale = op.scale;
        a.out = op.out.row<float>(0);
        a.out_stride = op.out.stride;
        attention(ctx, a);
        break;
      }
      case OpKind::Argmax: {
        const float* x = op.a.row<float>(0);
        p.params[op.out_slot] = k.argmax(x, (int)op.n);
        break;
      }
    }
  }
  return err;
}

}  // namespace ie
