#include "attention/attention.h"

#include <algorithm>

namespace ie {

void attention(Context& ctx, const AttentionArgs& a) {
  const int tasks = a.n_queries * a.n_heads;
  const int group = a.n_heads / a.n_kv_heads;
  const bool f16 = a.kv_type == KvType::F16;
  const size_t esize = f16 ? 2 : 4;
  auto body = [&](int t, int n) {
    int64_t b, e;
    ThreadPool::chunk(tasks, 1, t, n, &b, &e);
    for (int64_t task = b; task < e; task++) {
      const int i = (int)(task / a.n_heads), h = (int)(task % a.n_heads), kvh = h / group;
      const int pos = a.pos0 + i;
      const int t0 = a.window > 0 ? std::max(0, pos - a.window + 1) : 0;
      const int len = pos - t0 + 1;
      float* scores = ctx.scratch(t, (size_t)len);
      const float* q = a.q + i * a.q_stride + h * a.head_dim;
      const uint8_t* kb = static_cast<const uint8_t*>(a.k) + (size_t)kvh * a.head_dim * esize;
      const uint8_t* vb = static_cast<const uint8_t*>(a.v) + (size_t)kvh * a.head_dim * esize;
      const size_t row = (size_t)a.kv_stride * esize;
      for (int j = 0; j < len; j++) {
        const uint8_t* kr = kb + (size_t)(t0 + j) * row;
        scores[j] = a.scale * (f16 ? ctx.k.dot_f16(q, reinterpret_cast<const uint16_t*>(kr), a.head_dim) : ctx.k.dot(q, reinterpret_cast<const float*>(kr), a.head_dim));
      }
      ctx.k.softmax(scores, len);
      float* out = a.out + i * a.out_stride + h * a.head_dim;
      std::fill(out, out + a.head_dim, 0.0f);
      for (int j = 0; j < len; j++) {
        const uint8_t* vr = vb + (size_t)(t0 + j) * row;
        if (f16) ctx.k.axpy_f16(scores[j], reinterpret_cast<const uint16_t*>(vr), out, a.head_dim);
        else ctx.k.axpy(scores[j], reinterpret_cast<const float*>(vr), out, a.head_dim);
      }
    }
  };
  // One short query is cheaper on the calling thread than a pool wake-up.
  if ((int64_t)tasks * (a.pos0 + a.n_queries) * a.head_dim < (1 << 14) || ctx.pool.size() == 1) ctx.pool.run_serial(body);
  else ctx.pool.run(body);
}

}  // namespace ie
