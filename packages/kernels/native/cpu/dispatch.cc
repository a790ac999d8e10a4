#include "cpu/kernel_table.h"

namespace ie {

KernelTable make_kernel_table(Isa isa, const CpuFeatures& f) {
  KernelTable t;
  register_ref(t);
  if (isa >= Isa::Avx2) register_avx2(t, f);
  if (isa >= Isa::AvxVnni && f.avx_vnni) register_avxvnni(t, f);
  if (isa >= Isa::Avx512) register_avx512(t, f);
  t.isa = isa;
  return t;
}

}  // namespace ie
