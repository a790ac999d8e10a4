// mxfp4 and iq4_nl against int8 activations in steps of four blocks (gemv/lut4_q8_avx512.h), their
// codes gathered by a VBMI byte permute. Built with -mavx512vbmi; registered over the two-block
// kernels of int8act_blocks_avx512vnni.cc only where CPUID reports AVX512_VBMI (Ice Lake and later,
// Zen 4 and later: not Skylake-SP or Cascade Lake).
#include "cpu/kernel_table.h"
#include "gemv/lut4_q8_avx512.h"

namespace ie {
namespace {

}  // namespace

void register_lut4_q8_avx512vbmi(KernelTable& t, const CpuFeatures& f) { register_lut4_q8<true>(t, f); }

}  // namespace ie
