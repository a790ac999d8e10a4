/**
 * @ie/kernels — the C++ SIMD addon of the ie inference engine: a thread pool with affinity and
 * NUMA hints, CPU dispatch chosen once from CPUID, fused-dequantization GEMV/GEMM for f32, f16,
 * bf16, int8 and int4 weights (FP32 activations and accumulation), the other decode ops, and
 * read-only mmap. It computes on buffers and knows nothing about files or models.
 */
export {
  KernelContext,
  WeightMatrix,
  MappedFile,
  resolveContextOptions,
  type ContextOptions,
  type ContextInfo,
  type Affinity,
  type NumaPolicy,
  type Isa,
  type AttentionArgs,
  type MapOptions,
  type GemvOptions,
  type ReadBandwidth,
} from './context.js';
export { matrixByteSize, type MatrixSpec } from './matrix-spec.js';
export { Program, type MoeOp, type ProgramSpec, type ProgramOp, type View, type Rows } from './program.js';
export { KERNEL_CONSTANTS, type WeightDtype, type ScaleDtype, type KvDtype } from './constants.js';
export { KernelError, KERNEL_ERROR_CODES, type KernelErrorCode } from './errors.js';
