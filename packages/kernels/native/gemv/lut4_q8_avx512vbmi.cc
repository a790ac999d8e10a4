// mxfp4 and iq4_nl against int8 activations in steps of four blocks (gemv/lut4_q8_avx512.h), their
// codes gathered by a VBMI byte permute. Built with -mavx512vbmi; registered over the two-block
// kernels of int8act_blocks_avx512vnni.cc only where CPUID reports AVX512_VBMI (Ice Lake and later,
// Zen 4 and later: not Skylake-SP or Cascade Lake).
#include "cpu/kernel_table.h"
#include "gemv/lut4_q8_avx512.h"

namespace ie {
namespace {

void gemv_iq4_nl_q8_avx512vbmi(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) { gemv_lut4_q8<Iq4NlBlock, true>(w, xq, xd, y, rows, acc); }
void gemv_mxfp4_q8_avx512vbmi(const WeightRows& w, const int8_t* xq, const float* xd, float* y, int rows, bool acc) { gemv_lut4_q8<Mxfp4Block, true>(w, xq, xd, y, rows, acc); }

}  // namespace

void register_lut4_q8_avx512vbmi(KernelTable& t) {
  t.gemv_q8[(int)WeightType::IQ4_NL] = gemv_iq4_nl_q8_avx512vbmi;
  t.gemv_q8[(int)WeightType::MXFP4] = gemv_mxfp4_q8_avx512vbmi;
}

}  // namespace ie
