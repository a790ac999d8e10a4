// Twelve independent accumulator chains per thread: more than FMA latency x throughput on any
// current core (4 x 2 on Zen 3 and Golden Cove), so the loop runs at the FMA units' issue rate.
#include "cpu/fma_peak.h"

#include <immintrin.h>

#include <chrono>
#include <vector>

#include "cpu/target.h"

namespace ie {
namespace {

constexpr int kChains = 12;

__attribute__((target("avx2,fma"))) float fma_loop_avx2(long iters) {
  __m256 a[kChains];
  for (int i = 0; i < kChains; i++) a[i] = _mm256_set1_ps(0.001f * i);
  const __m256 b = _mm256_set1_ps(0.999f), c = _mm256_set1_ps(0.001f);
  for (long it = 0; it < iters; it++) {
#pragma GCC unroll 12
    for (int i = 0; i < kChains; i++) a[i] = _mm256_fmadd_ps(a[i], b, c);
  }
  __m256 s = a[0];
  for (int i = 1; i < kChains; i++) s = _mm256_add_ps(s, a[i]);
  return _mm256_cvtss_f32(s);
}

IE_TARGET_AVX512 float fma_loop_avx512(long iters) {
  __m512 a[kChains];
  for (int i = 0; i < kChains; i++) a[i] = _mm512_set1_ps(0.001f * i);
  const __m512 b = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(0.001f);
  for (long it = 0; it < iters; it++) {
#pragma GCC unroll 12
    for (int i = 0; i < kChains; i++) a[i] = _mm512_fmadd_ps(a[i], b, c);
  }
  __m512 s = a[0];
  for (int i = 1; i < kChains; i++) s = _mm512_add_ps(s, a[i]);
  return _mm512_reduce_add_ps(s);
}

}  // namespace

double measure_fma_peak(Context& ctx, double seconds) {
  const int lanes = ctx.k.isa >= Isa::Avx512 ? 16 : ctx.k.isa >= Isa::Avx2 ? 8 : 0;
  if (lanes == 0) return 0.0;
  auto loop = lanes == 16 ? fma_loop_avx512 : fma_loop_avx2;
  // Calibrate on the calling thread, then run every thread for about `seconds`.
  long iters = 1 << 16;
  for (;;) {
    const auto t0 = std::chrono::steady_clock::now();
    volatile float sink = loop(iters);
    (void)sink;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s > seconds / 8 || iters > (1L << 40)) {
      iters = (long)(iters * (seconds / s));
      break;
    }
    iters *= 4;
  }
  std::vector<float> sink(ctx.pool.size());
  const auto t0 = std::chrono::steady_clock::now();
  ctx.pool.run([&](int t, int) { sink[t] = loop(iters); });
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return (double)iters * kChains * lanes * 2 * ctx.pool.size() / s / 1e9;
}

}  // namespace ie
