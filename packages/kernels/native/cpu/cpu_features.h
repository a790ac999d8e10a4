// What the CPU (and the OS, via XCR0) supports, read once with CPUID.
#pragma once
#include <string>

namespace ie {

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512vnni = false, avx512vbmi = false, avx512bf16 = false, avx512fp16 = false, avx_vnni = false;
  bool amd = false;
  int family = 0, model = 0;  // CPUID's display family and model (extended fields folded in)
  std::string brand;
};

CpuFeatures detect_cpu_features();

// Whether the float GEMVs (AVX-512 and AVX2, each line prefetched non-temporally) and the AVX-512
// int8w GEMVs (FP32 and int8 activations) read four far-apart rows (gemv/row_streams.h) rather than
// pairs: on Zen 5 (AMD family 0x1A) and later. One Zen 4 core (family 0x19) streams bf16 / f16 / f32
// at 15-24 GB/s in fours and 22-29 in pairs, int8w with int8 activations 20-21 against 21-25; one
// Zen 5 core bf16 31-37 in fours against 27-28 in pairs (AVX2: 82-90% of the read probe against
// 61-89%), int8w with FP32 activations 93-96% of the probe against 79-81%.
bool prefers_four_row_streams(const CpuFeatures& f);

// How the kernels that prefetch every line of their weight rows in software (the float GEMVs'
// four-row reads and several-rows passes, the AVX-512 MXFP4 / IQ4_NL GEMVs with FP32 or int8
// activations, the AVX-512 int8w x q8 four-row reads, a lone row over K-quant records) fetch it:
// non-temporally on AMD cores (measured on Zen 3, 4 and 5), with T0 elsewhere. On an Intel core
// (KVM's "Intel Xeon Processor", family 6 model 0xA7, AMX and AVX512-FP16: Sapphire Rapids class,
// 2 MiB L2 a core) each NTA prefetch holds an L1 fill buffer for a whole DRAM round trip without
// the L2 streamer's help, so a stream so fetched tops out near 6-7 GB/s a core: TinyLlama's shapes
// from DRAM, alternated in two rounds (`ONLY=... GIB=1 THREADS=1,2`), against the read probe at one
// / two threads: MXFP4 with FP32 activations 43-44% / 43-45% with NTA, 74% / 64-66% with T0, 57-60%
// / 47-50% with none; MXFP4 with int8 activations 39-41% / 36% -> 80-84% / 77%; IQ4_NL with int8
// activations 39% / 34-35% -> 80-83% / 66-73%; eight f16 activation rows (`ROWS=8`) 26.5 / 52
// GFLOP/s with NTA, 89.7 / 173 with T0, 70.7 / 143 with none (f32 25.6 / 48.8 -> 56 / 114).
enum class LineFetch { Nta, T0, None };
LineFetch weight_line_fetch(const CpuFeatures& f);

// Whether the AVX-512 f16 / bf16 GEMVs read a lone activation row's weight rows in four far-apart
// streams (with weight_line_fetch's prefetch) rather than pairs with none: where f32 does (Zen 5,
// prefers_four_row_streams) and on Intel cores, where f32 stays in pairs. The Intel core above,
// TinyLlama's shapes from DRAM, two rounds alternated, one / two threads: f16 81-86% / 79-81% of the
// read probe in pairs, 95-96% / 88-93% in fours with T0; bf16 78% / 75-77% -> 90-93% / 86-87%; f32
// in fours with T0 88% / 84-87% against 91% / 90% in pairs (in fours with none 93-94% / 90-91%).
bool avx512_half_floats_in_four_rows(const CpuFeatures& f);

// Whether the AVX2 f16 / bf16 GEMVs read four far-apart rows with the non-temporal prefetch where
// f32 reads pairs (prefers_four_row_streams answers for all three): on Zen 3 (AMD family 0x19
// without AVX-512). There a 16-bit row's two conversions per 16 elements leave two streams per core
// short of requests in flight, while f32 streams at the bus in pairs and slower in fours. One Zen 3
// core, TinyLlama's shapes from DRAM, the two layouts alternated in one process against the read
// probe: bf16 83-96% -> 96-116%, f16 93-101% -> 101-112%; two cores in the VM's fast phases (probe
// 49-52 GB/s) bf16 76-79% -> 83-91%, f16 77-84% -> 78-91%; f32 in fours 85-108% against 89-112%.
bool half_floats_in_four_rows(const CpuFeatures& f);

// Whether 512-bit operations run at full width: not on Zen 4 (AMD family 0x19), which splits each
// into two 256-bit halves. There the AVX2 int8-activation i8 GEMVs (one row of 32 bytes a step,
// vpmaddubsw) beat the AVX-512 VNNI ones: one Zen 4 core, TinyLlama's shapes from DRAM, Q8_0 93-94%
// of the read bandwidth against 73-77%, int8w 91-97% against 77-82%.
bool avx512_full_width(const CpuFeatures& f);

// Whether one sequential stream of a core reads well below what the core can take, so that the
// 256-bit i8 x q8 GEMV (AVX2, AVX-VNNI) reads a lone activation row's weight rows in far-apart
// pairs, each line prefetched 2 KiB ahead, rather than one row at a time: on Zen 5 (AMD family
// 0x1A) and later, and on AMD cores without AVX-512 (Zen 3, family 0x19, and before). `IE_ISA=avx2`
// on a Zen 5 core, TinyLlama Q8_0 decode on one pinned thread, alternated three rounds: 19.0-20.0
// -> 23.2-25.5 tok/s (two threads 36-38 -> 42.5-43.5 in two rounds of three). One Zen 3 core, the
// GEMV from DRAM against the 8-stream read probe, two rounds alternated: int8w 71-83% -> 101-104%,
// Q8_0 74% -> 95-96%. One row at a time stays where it measured at the bus on Zen 4 (93-98%, the
// AVX2 i8 GEMV is its default there), the other family 0x19 core, told apart by its AVX-512. The AVX2
// FP32-activation i8 GEMV follows the same choice (gemv_avx2.cc): one Zen 3 core, two rounds
// alternated, int8w 47-65% -> 70-75% of the probe (two threads 43-60% -> 74-85%), Q8_0 54-62% -> 64-73%.
bool i8_rows_in_far_pairs(const CpuFeatures& f);

// Whether a lone activation row reads q4 and iq4_nl in 16-row records (the 256-bit q4x16 kernels)
// faster than in rows, so that `auto` takes the records for any number of sequences (`q4Rows16` /
// `iq4NlRows16` "always"): on Zen 3 (AMD family 0x19 without AVX-512; Zen 4, the other family 0x19
// core, has it; Zen 2 and before are not measured). One Zen 3
// core, TinyLlama's shapes from DRAM against the 8-stream read probe, two rounds: Q4_0 in rows
// 69-77%, in records 88-99% (two threads 78-80% -> 83-88%); Q4_0 decode 30.1-30.3 -> 37.2-39.9
// tok/s on one thread. Zen 4 and Zen 5 through `IE_ISA=avx2` measured a lone row up to a tenth
// slower in records (they run the AVX-512 kernels natively); Intel's AVX2 cores are not measured.
bool q4_records_for_one_row(const CpuFeatures& f);

// Whether a lone activation row reads Q4_K and Q6_K in 16-row records (the 256-bit kquant_x16
// kernels) faster than in rows (one row at a time, 256-bit), so that `auto` takes the records for
// any number of sequences (`q4kRows16` / `q6kRows16` "always"): on Zen 3 (as q4 above) and on Zen 5
// (AMD family 0x1A) and later. One Zen 5 core, TinyLlama's shapes from DRAM (`ONLY='q4_k+int8,
// q4_k+int8 rows16,q6_k+int8,q6_k+int8 rows16' GIB=1 THREADS=1,2`): Q4_K 54% -> 67% of the probe
// (two threads 47% -> 60%), Q6_K 68% -> 84% (58% -> 75%); TinyLlama Q4_K_M decode (`ie bench
// --q4-layout auto|rows16`, alternated three rounds) 31.7-34.3 -> 45.4-48.7 tok/s on one thread,
// 56.4-57.4 -> 80.6-82.3 on two. Also on Intel's cores, where a prefill chunk then takes the records'
// int8 kernel instead of the FP32 GEMM over dequantized panels: the Intel core of weight_line_fetch,
// TinyLlama's files against llama.cpp in one run each (`IE_Q4_LAYOUT=rows|rows16 pnpm bench:peer`),
// one / two threads: Q4_K_M prefill 69.8 / 127.2 -> 139.3 / 291.0 tok/s (0.64x / 0.58x -> 1.32x /
// 1.36x llama.cpp), decode alike (19.9 / 32.8 -> 19.4 / 34.2); Q6_K prefill 66.1 / 126.7 -> 130.0 /
// 234.4; through the AVX2 kernels (`IE_ISA=avx2`) Q4_K_M decode 19.2 / 32.9 -> 21.0 / 37.1, prefill
// 49.4 / 90.8 -> 64.6 / 121.3. Zen 4 is not measured.
bool kquant_records_for_one_row(const CpuFeatures& f);

// Whether a lone activation row reads i8 (Q8_0, int8w) faster in 16-row records through the
// AVX-512 VNNI records kernel than in rows, so that `auto` takes them for any number of sequences
// (`i8Rows16` "always"; elsewhere "batched"): on Zen 5 (AMD family 0x1A) and later. One Zen 5 core,
// TinyLlama's shapes from DRAM (`ONLY='q8_0+int8,q8_0+int8 rows16,int8w+int8,int8w+int8 rows16'
// GIB=1 THREADS=1,2`): Q8_0 65% -> 72% of the probe on one thread, 55% -> 78% on two; int8w alike
// (75% / 68% -> 72% / 70%). TinyLlama Q8_0 (`ie bench --i8-layout rows|rows16`, alternated): decode
// 19.9-24.4 -> 22.7-28.0 tok/s on one thread, 35.0-40.5 -> 47.1-53.9 on two; prefill of 384 tokens
// 218-220 -> 266-271 and 391-395 -> 468. Also on Intel's cores: the Intel core of weight_line_fetch,
// TinyLlama Q8_0 against llama.cpp (`IE_I8_LAYOUT=rows|rows16 pnpm bench:peer`, one run each), one /
// two threads: prefill 143.7 / 283.6 -> 174.8 / 302.9 tok/s (1.09x / 1.05x -> 1.3x / 1.16x
// llama.cpp), decode 13.7 / 24.5 -> 13.5 / 23.7 (1.13x / 1.11x -> 1.18x / 1.17x).
bool i8_records_for_one_row(const CpuFeatures& f);

// The instruction-set variants ie builds, from lowest to highest. AvxVnni is AVX2 plus the 256-bit
// VNNI dot product (Alder Lake and later, Zen 5), which only the int8-activation kernels use.
enum class Isa : int { Scalar = 0, Avx2 = 1, AvxVnni = 2, Avx512 = 3 };
constexpr Isa kAllIsas[] = {Isa::Scalar, Isa::Avx2, Isa::AvxVnni, Isa::Avx512};
const char* isa_name(Isa isa);
// Whether this CPU can run the variant.
bool isa_supported(const CpuFeatures& f, Isa isa);
// The best supported variant, capped by `requested` ("scalar" | "avx2" | "avxvnni" | "avx512" | "" for
// no cap, e.g. from IE_ISA). Sets `error` if `requested` is unknown or not supported.
Isa choose_isa(const CpuFeatures& f, const std::string& requested, std::string* error);

}  // namespace ie
