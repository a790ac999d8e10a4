// The bandwidth probe's inner loop: touch every 64-byte line once and fold the loads into a
// value the compiler cannot drop. The region is read as four interleaved streams, as a GEMV
// reads four rows at a time, so the figure is what a kernel can get, not one stream's latency
// limit. The SIMD loops are compiled for their ISA by attribute and used only when the caller says
// the CPU has it.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

static double probe_scalar(const uint8_t* p, size_t n) {
  uint64_t s = 0;
  for (size_t i = 0; i < n; i += 64) s += *reinterpret_cast<const uint64_t*>(p + i);
  return (double)s;
}

__attribute__((target("avx2"))) static double probe_avx2(const uint8_t* p, size_t n) {
  const size_t q = n / 4 / 64 * 64;
  __m256i a = _mm256_setzero_si256(), b = _mm256_setzero_si256(), c = _mm256_setzero_si256(), d = _mm256_setzero_si256();
  for (size_t i = 0; i < q; i += 64) {
    a = _mm256_xor_si256(a, _mm256_xor_si256(_mm256_load_si256(reinterpret_cast<const __m256i*>(p + i)), _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 32))));
    b = _mm256_xor_si256(b, _mm256_xor_si256(_mm256_load_si256(reinterpret_cast<const __m256i*>(p + q + i)), _mm256_load_si256(reinterpret_cast<const __m256i*>(p + q + i + 32))));
    c = _mm256_xor_si256(c, _mm256_xor_si256(_mm256_load_si256(reinterpret_cast<const __m256i*>(p + 2 * q + i)), _mm256_load_si256(reinterpret_cast<const __m256i*>(p + 2 * q + i + 32))));
    d = _mm256_xor_si256(d, _mm256_xor_si256(_mm256_load_si256(reinterpret_cast<const __m256i*>(p + 3 * q + i)), _mm256_load_si256(reinterpret_cast<const __m256i*>(p + 3 * q + i + 32))));
  }
  a = _mm256_xor_si256(_mm256_xor_si256(a, b), _mm256_xor_si256(c, d));
  return (double)(uint64_t)_mm256_extract_epi64(a, 0) + (double)(uint64_t)_mm256_extract_epi64(a, 3) + probe_scalar(p + 4 * q, n - 4 * q);
}

__attribute__((target("avx512f"))) static double probe_avx512(const uint8_t* p, size_t n) {
  const size_t q = n / 4 / 64 * 64;
  __m512i a = _mm512_setzero_si512(), b = a, c = a, d = a;
  for (size_t i = 0; i < q; i += 64) {
    a = _mm512_xor_si512(a, _mm512_load_si512(p + i));
    b = _mm512_xor_si512(b, _mm512_load_si512(p + q + i));
    c = _mm512_xor_si512(c, _mm512_load_si512(p + 2 * q + i));
    d = _mm512_xor_si512(d, _mm512_load_si512(p + 3 * q + i));
  }
  a = _mm512_xor_si512(_mm512_xor_si512(a, b), _mm512_xor_si512(c, d));
  return (double)_mm512_reduce_add_epi64(a) + probe_scalar(p + 4 * q, n - 4 * q);
}

// width: 0 scalar, 1 AVX2, 2 AVX-512 (what the context's ISA allows).
extern "C" double ie_read_probe(const uint8_t* p, size_t n, int width) {
  if (reinterpret_cast<uintptr_t>(p) % 64 != 0) return probe_scalar(p, n);
  return width >= 2 ? probe_avx512(p, n) : width == 1 ? probe_avx2(p, n) : probe_scalar(p, n);
}
