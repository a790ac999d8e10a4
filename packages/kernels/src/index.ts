/**
 * @ie/kernels — the C++ SIMD addon of the ie inference engine: a thread pool with affinity and
 * NUMA hints, CPU dispatch chosen once from CPUID, fused-dequantization GEMV/GEMM for f32, f16,
 * bf16, int8 and int4 weights (FP32 activations and accumulation), the other decode ops, and
 * read-only mmap. It computes on buffers and knows nothing about files or models.
 */
export {
  KernelContext,
  type ContextInfo,
  type AttentionArgs,
  type MapOptions,
  type LoadFileOptions,
  type GemvOptions,
  type ReadBandwidth,
} from './context.js';
export { WeightMatrix, MappedFile } from './handles.js';
export {
  AFFINITIES,
  NUMA_POLICIES,
  ISAS,
  MAX_THREADS,
  checkContextOptions,
  type ContextOptions,
  type Affinity,
  type NumaPolicy,
  type Isa,
} from './options.js';
export { matrixByteSize, rows16Unfit, blockedKUnfit, preferredBlockK, PANEL_COLUMNS, type MatrixSpec } from './matrix-spec.js';
export { alignedBytes } from './aligned-bytes.js';
export { attentionMaxPositions, type AttentionShape } from './attention-limit.js';
export { Program } from './program.js';
export { kvCacheRow, type MoeOp, type ProgramSpec, type ProgramOp, type View, type Rows, type Place } from './program-types.js';
export {
  KERNEL_CONSTANTS,
  type WeightDtype,
  type ScaleDtype,
  type KvDtype,
  type OpName,
  type ActivationDtype,
  type RopeStyle,
} from './constants.js';
export { KernelError, KERNEL_ERROR_CODES, type KernelErrorCode } from './errors.js';
