// The read-bandwidth probe's readers. Which one is fastest depends on the machine: on the Zen 3
// VMs ie was tuned on, one sequential stream per core reads about twice what four interleaved
// streams read, while Intel server cores want several streams in flight; so the probe tries
// each and keeps the best. Each reader touches every 64-byte line once and folds the loads into
// a value the compiler cannot drop; the SIMD loops are compiled for their ISA by attribute and
// run only when the context's ISA has it.
#include "mem/read_probe.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <vector>

#include "cpu/target.h"

namespace ie {
namespace {

using Reader = double (*)(const uint8_t* p, size_t n);

double read_scalar(const uint8_t* p, size_t n) {
  uint64_t s = 0;
  for (size_t i = 0; i < n; i += 64) s += *reinterpret_cast<const uint64_t*>(p + i);
  return (double)s;
}

// S streams over S equal parts of the slice; PF: software prefetch (non-temporal) 1 KiB ahead.
template <int S, bool PF>
__attribute__((target("avx2"))) double read_avx2(const uint8_t* p, size_t n) {
  const size_t q = n / S / 64 * 64;
  __m256i acc[S];
  for (int s = 0; s < S; s++) acc[s] = _mm256_setzero_si256();
  for (size_t i = 0; i < q; i += 64)
    for (int s = 0; s < S; s++) {
      const uint8_t* a = p + s * q + i;
      if (PF) _mm_prefetch(reinterpret_cast<const char*>(a + 1024), _MM_HINT_NTA);
      acc[s] = _mm256_xor_si256(acc[s], _mm256_xor_si256(_mm256_load_si256(reinterpret_cast<const __m256i*>(a)), _mm256_load_si256(reinterpret_cast<const __m256i*>(a + 32))));
    }
  __m256i a = acc[0];
  for (int s = 1; s < S; s++) a = _mm256_xor_si256(a, acc[s]);
  return (double)(uint64_t)_mm256_extract_epi64(a, 0) + read_scalar(p + S * q, n - S * q);
}

template <int S, bool PF>
IE_TARGET_AVX512 double read_avx512(const uint8_t* p, size_t n) {
  const size_t q = n / S / 64 * 64;
  __m512i acc[S];
  for (int s = 0; s < S; s++) acc[s] = _mm512_setzero_si512();
  for (size_t i = 0; i < q; i += 64)
    for (int s = 0; s < S; s++) {
      const uint8_t* a = p + s * q + i;
      if (PF) _mm_prefetch(reinterpret_cast<const char*>(a + 1024), _MM_HINT_NTA);
      acc[s] = _mm512_xor_si512(acc[s], _mm512_load_si512(a));
    }
  __m512i a = acc[0];
  for (int s = 1; s < S; s++) a = _mm512_xor_si512(a, acc[s]);
  return (double)_mm512_reduce_add_epi64(a) + read_scalar(p + S * q, n - S * q);
}

struct Variant {
  const char* name;
  Reader avx2, avx512;
};

constexpr Variant kVariants[] = {
    {"1 stream/thread", read_avx2<1, false>, read_avx512<1, false>},
    {"2 streams/thread", read_avx2<2, false>, read_avx512<2, false>},
    {"4 streams/thread", read_avx2<4, false>, read_avx512<4, false>},
    {"8 streams/thread", read_avx2<8, false>, read_avx512<8, false>},
    {"16 streams/thread", read_avx2<16, false>, read_avx512<16, false>},
    {"1 stream/thread, nta prefetch", read_avx2<1, true>, read_avx512<1, true>},
    {"4 streams/thread, nta prefetch", read_avx2<4, true>, read_avx512<4, true>},
};

}  // namespace

ReadProbe probe_read_bandwidth(Context& ctx, const uint8_t* p, size_t n, int passes) {
  ReadProbe best;
  // The SIMD readers use aligned loads: start at the first 64-byte boundary (JavaScript buffers
  // are only 8- or 16-byte aligned); the skipped head is under 64 bytes.
  const size_t skip = (64 - reinterpret_cast<uintptr_t>(p) % 64) % 64;
  if (n < skip + 64) return best;
  p += skip;
  n = (n - skip) / 64 * 64;
  best.bytes = n;
  best.seconds = 1e300;
  std::vector<double> sink(ctx.pool.size(), 0.0);
  // Two ways to share the buffer between threads: one contiguous slice each, or 2 MiB pieces handed
  // out from a shared counter, as the engine's matmuls hand out row ranges (matmul/matmul.h,
  // RowRanges). Where one vCPU of a VM runs slower than the other, the slices wait for it and the
  // engine does not: one Zen 4 VM's 2-thread slices read 34 GB/s while a gpt-oss decode streamed 45.
  constexpr size_t kPiece = 2 << 20;
  for (const bool shared : {false, true}) {
    if (shared && (ctx.pool.size() == 1 || n < 2 * kPiece)) break;
    for (const Variant& v : kVariants) {
      Reader r = read_scalar;
      if (ctx.k.isa >= Isa::Avx512) r = v.avx512;
      else if (ctx.k.isa >= Isa::Avx2) r = v.avx2;
      for (int pass = 0; pass < passes; pass++) {
        std::atomic<size_t> next{0};
        const auto t0 = std::chrono::steady_clock::now();
        ctx.pool.run([&](int t, int nt) {
          if (shared) {
            for (size_t b; (b = next.fetch_add(kPiece, std::memory_order_relaxed)) < n;) sink[t] += r(p + b, std::min(kPiece, n - b));
            return;
          }
          int64_t b, e;
          ThreadPool::chunk((int64_t)n, 1 << 16, t, nt, &b, &e);
          if (e > b) sink[t] += r(p + b, (size_t)(e - b));
        });
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (secs < best.seconds) {
          best.seconds = secs;
          best.variant = std::string(r == read_scalar ? "scalar" : v.name) + (shared ? ", 2 MiB pieces from a shared counter" : "");
        }
      }
      if (r == read_scalar) break;  // one scalar reader is enough
    }
  }
  for (double s : sink) best.checksum += s;
  return best;
}

}  // namespace ie
