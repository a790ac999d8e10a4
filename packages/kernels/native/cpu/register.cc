// Which files fill the dispatch table for each variant.
#include "cpu/kernel_table.h"

namespace ie {

void register_gemv_ref(KernelTable& t);
void register_gemm_ref(KernelTable& t);
void register_ops_ref(KernelTable& t);
void register_gemv_avx2(KernelTable& t, const CpuFeatures& f);
void register_gemm_avx2(KernelTable& t);
void register_ops_avx2(KernelTable& t);
void register_gemv_avx512(KernelTable& t, const CpuFeatures& f);
void register_gemm_avx512(KernelTable& t);
void register_ops_avx512(KernelTable& t);
void register_q8_ref(KernelTable& t);
void register_q8_avx2(KernelTable& t, const CpuFeatures& f);
void register_q8_avxvnni(KernelTable& t, const CpuFeatures& f);
void register_q8_avx512vnni(KernelTable& t, const CpuFeatures& f);
void register_blocks_ref(KernelTable& t);
void register_blocks_avx2(KernelTable& t);
void register_q8_blocks_avx512vnni(KernelTable& t, const CpuFeatures& f);
void register_lut4_q8_avx512vbmi(KernelTable& t, const CpuFeatures& f);
void register_blocks_avx512(KernelTable& t, const CpuFeatures& f);
void register_gemm_q8_avxvnni(KernelTable& t);
void register_gemm_q8_avx512vnni(KernelTable& t);
void register_q4x16_ref(KernelTable& t);
void register_q4x16_avx512vnni(KernelTable& t, const CpuFeatures& f);
void register_i8x16_ref(KernelTable& t);
void register_i8x16_avx2(KernelTable& t);
void register_i8x16_avx512vnni(KernelTable& t, const CpuFeatures& f);
void register_kquant_x16_ref(KernelTable& t);
void register_kquant_x16_avx2(KernelTable& t, const CpuFeatures& f);
void register_pack_kquant_x16_avx512(KernelTable& t);
void register_kquant_x16_avx512vnni(KernelTable& t, const CpuFeatures& f);

void register_ref(KernelTable& t) {
  register_gemv_ref(t);
  register_gemm_ref(t);
  register_ops_ref(t);
  register_q8_ref(t);
  register_blocks_ref(t);
  register_q4x16_ref(t);
  register_i8x16_ref(t);
  register_kquant_x16_ref(t);
}

void register_avx2(KernelTable& t, const CpuFeatures& f) {
  register_gemv_avx2(t, f);
  register_gemm_avx2(t);
  register_ops_avx2(t);
  register_q8_avx2(t, f);
  register_blocks_avx2(t);
  register_i8x16_avx2(t);
  register_kquant_x16_avx2(t, f);
}

void register_avxvnni(KernelTable& t, const CpuFeatures& f) {
  register_q8_avxvnni(t, f);
  register_gemm_q8_avxvnni(t);
}

void register_avx512(KernelTable& t, const CpuFeatures& f) {
  register_gemv_avx512(t, f);
  register_gemm_avx512(t);
  register_ops_avx512(t);
  register_blocks_avx512(t, f);
  register_pack_kquant_x16_avx512(t);
  if (f.avx512vnni) {
    register_q8_avx512vnni(t, f);
    register_q8_blocks_avx512vnni(t, f);
    if (f.avx512vbmi) register_lut4_q8_avx512vbmi(t, f);
    register_gemm_q8_avx512vnni(t);
    register_q4x16_avx512vnni(t, f);
    register_i8x16_avx512vnni(t, f);
    register_kquant_x16_avx512vnni(t, f);
  }
}

}  // namespace ie
