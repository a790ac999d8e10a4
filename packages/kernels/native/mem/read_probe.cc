// The bandwidth probe's inner loop: touch every 64-byte line once and fold the loads into a
// value the compiler cannot drop. The AVX2 loop is compiled for AVX2 by attribute and used only
// when the caller says the CPU has it.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

static double probe_scalar(const uint8_t* p, size_t n) {
  uint64_t s = 0;
  for (size_t i = 0; i < n; i += 64) s += *reinterpret_cast<const uint64_t*>(p + i);
  return (double)s;
}

__attribute__((target("avx2"))) static double probe_avx2(const uint8_t* p, size_t n) {
  __m256i a = _mm256_setzero_si256(), b = _mm256_setzero_si256();
  for (size_t i = 0; i < n; i += 64) {
    a = _mm256_xor_si256(a, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i)));
    b = _mm256_xor_si256(b, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
  }
  a = _mm256_xor_si256(a, b);
  return (double)(uint64_t)_mm256_extract_epi64(a, 0) + (double)(uint64_t)_mm256_extract_epi64(a, 3);
}

extern "C" double ie_read_probe(const uint8_t* p, size_t n, bool avx2) {
  if (reinterpret_cast<uintptr_t>(p) % 32 != 0) return probe_scalar(p, n);
  return avx2 ? probe_avx2(p, n) : probe_scalar(p, n);
}
