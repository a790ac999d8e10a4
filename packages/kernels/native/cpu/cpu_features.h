// What the CPU (and the OS, via XCR0) supports, read once with CPUID.
#pragma once
#include <string>

namespace ie {

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512vnni = false, avx512bf16 = false, avx512fp16 = false, avx_vnni = false;
  std::string brand;
};

CpuFeatures detect_cpu_features();

// The instruction-set variants ie builds, from lowest to highest.
enum class Isa : int { Scalar = 0, Avx2 = 1, Avx512 = 2 };
const char* isa_name(Isa isa);
// Whether this CPU can run the variant.
bool isa_supported(const CpuFeatures& f, Isa isa);
// The best supported variant, capped by `requested` ("scalar" | "avx2" | "avx512" | "" for
// no cap, e.g. from IE_ISA). Sets `error` if `requested` is unknown or not supported.
Isa choose_isa(const CpuFeatures& f, const std::string& requested, std::string* error);

}  // namespace ie
