#include "cpu/cpu_features.h"

#include <cpuid.h>
#include <cstdint>
#include <cstring>

namespace ie {

static uint64_t xgetbv0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return ((uint64_t)edx << 32) | eax;
}

CpuFeatures detect_cpu_features() {
  CpuFeatures f;
  unsigned a, b, c, d;
  if (!__get_cpuid(0, &a, &b, &c, &d)) return f;
  const unsigned max_leaf = a;
  f.amd = b == 0x68747541 && d == 0x69746e65 && c == 0x444d4163;  // "AuthenticAMD"
  __get_cpuid(1, &a, &b, &c, &d);
  const int base_family = (a >> 8) & 0xf, base_model = (a >> 4) & 0xf;
  f.family = base_family == 0xf ? base_family + (int)((a >> 20) & 0xff) : base_family;
  f.model = base_family == 0xf || base_family == 0x6 ? base_model + (int)(((a >> 16) & 0xf) << 4) : base_model;
  const bool osxsave = c & (1u << 27);
  const bool avx = c & (1u << 28);
  f.fma = c & (1u << 12);
  f.f16c = c & (1u << 29);
  uint64_t xcr0 = osxsave ? xgetbv0() : 0;
  const bool os_ymm = (xcr0 & 0x6) == 0x6;             // SSE + AVX state
  const bool os_zmm = (xcr0 & 0xe6) == 0xe6;           // + opmask, ZMM_Hi256, Hi16_ZMM
  if (!(avx && os_ymm)) f.fma = f.f16c = false;
  if (max_leaf >= 7) {
    __get_cpuid_count(7, 0, &a, &b, &c, &d);
    f.avx2 = os_ymm && (b & (1u << 5));
    f.avx512f = os_zmm && (b & (1u << 16));
    f.avx512dq = f.avx512f && (b & (1u << 17));
    f.avx512bw = f.avx512f && (b & (1u << 30));
    f.avx512vl = f.avx512f && (b & (1u << 31));
    f.avx512vnni = f.avx512f && (c & (1u << 11));
    f.avx512vbmi = f.avx512f && (c & (1u << 1));
    f.avx512fp16 = f.avx512f && (d & (1u << 23));
    __get_cpuid_count(7, 1, &a, &b, &c, &d);
    f.avx512bf16 = f.avx512f && (a & (1u << 5));
    f.avx_vnni = os_ymm && (a & (1u << 4));
  }
  char brand[49] = {0};
  if (__get_cpuid(0x80000000, &a, &b, &c, &d) && a >= 0x80000004) {
    for (unsigned i = 0; i < 3; i++) {
      __get_cpuid(0x80000002 + i, &a, &b, &c, &d);
      std::memcpy(brand + 16 * i, &a, 4);
      std::memcpy(brand + 16 * i + 4, &b, 4);
      std::memcpy(brand + 16 * i + 8, &c, 4);
      std::memcpy(brand + 16 * i + 12, &d, 4);
    }
  }
  f.brand = brand;
  while (!f.brand.empty() && f.brand.back() == ' ') f.brand.pop_back();
  return f;
}

bool prefers_four_row_streams(const CpuFeatures& f) { return f.amd && f.family >= 0x1a; }

LineFetch weight_line_fetch(const CpuFeatures& f) { return f.amd ? LineFetch::Nta : LineFetch::T0; }

bool avx512_half_floats_in_four_rows(const CpuFeatures& f) { return prefers_four_row_streams(f) || !f.amd; }

bool half_floats_in_four_rows(const CpuFeatures& f) { return f.amd && f.family == 0x19 && !f.avx512f; }

bool avx512_full_width(const CpuFeatures& f) { return !(f.amd && f.family == 0x19); }

// Zen 5 and later, and the AMD cores without AVX-512 (Zen 3 and before); not Zen 4 (see the header).
bool i8_rows_in_far_pairs(const CpuFeatures& f) { return f.amd && (f.family >= 0x1a || !f.avx512f); }

bool q4_records_for_one_row(const CpuFeatures& f) { return f.amd && f.family == 0x19 && !f.avx512f; }

bool kquant_records_for_one_row(const CpuFeatures& f) { return q4_records_for_one_row(f) || !f.amd || f.family >= 0x1a; }

bool i8_records_for_one_row(const CpuFeatures& f) { return !f.amd || f.family >= 0x1a; }

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return "scalar";
    case Isa::Avx2: return "avx2";
    case Isa::AvxVnni: return "avxvnni";
    case Isa::Avx512: return "avx512";
  }
  return "?";
}

bool isa_supported(const CpuFeatures& f, Isa isa) {
  switch (isa) {
    case Isa::Scalar: return true;
    case Isa::Avx2: return f.avx2 && f.fma && f.f16c;
    case Isa::AvxVnni: return isa_supported(f, Isa::Avx2) && f.avx_vnni;
    case Isa::Avx512: return isa_supported(f, Isa::Avx2) && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq;
  }
  return false;
}

Isa choose_isa(const CpuFeatures& f, const std::string& requested, std::string* error) {
  Isa best = Isa::Scalar;
  for (Isa i : kAllIsas) if (isa_supported(f, i)) best = i;
  if (requested.empty()) return best;
  for (Isa i : kAllIsas) {
    if (requested == isa_name(i)) {
      if (!isa_supported(f, i)) {
        *error = std::string("IE_ISA=") + requested + " is not supported by this CPU (best: " + isa_name(best) + ")";
        return best;
      }
      return i;
    }
  }
  *error = "IE_ISA must be scalar, avx2, avxvnni or avx512, got \"" + requested + "\"";
  return best;
}

}  // namespace ie
