/** Weight precisions, as the seed names them (IE_PRECISION), and how they map to IEBIN dtypes. */
import { BLOCK_DTYPES, expectedTensors, type BlockDtype, type Dtype, type ModelConfig, type TensorEntry } from '@ie/format';

/** What IE_PRECISION / --precision may ask for: every matrix at (or below) one of these. */
export const PRECISIONS = ['fp32', 'fp16', 'bf16', 'int8w', 'int4w'] as const;
export type Precision = (typeof PRECISIONS)[number];

/**
 * What one matrix is stored as: a precision, or a GGUF block format imported as-is (q4_k, q6_k, ...),
 * which runs in its own kernels and is never a conversion target.
 */
export type WeightKind = Precision | BlockDtype;
export const WEIGHT_KINDS: readonly WeightKind[] = [...PRECISIONS.slice(0, 4), 'q6_k', 'q5_k', 'q4_k', 'iq4_nl', 'mxfp4', 'int4w'];

/** The dtype a projection matrix has at each precision. */
export const PRECISION_DTYPE: Record<Precision, Dtype> = { fp32: 'f32', fp16: 'f16', bf16: 'bf16', int8w: 'i8', int4w: 'q4' };

/**
 * How much information a kind keeps (about bits per weight, ordered): a requested precision
 * converts only the matrices ranked above it; converting to a higher rank is refused.
 */
export const KIND_RANK: Record<WeightKind, number> = {
  fp32: 3,
  fp16: 2,
  bf16: 2,
  int8w: 1,
  q6_k: 0.75,
  q5_k: 0.6,
  q4_k: 0.1,
  iq4_nl: 0.05,
  mxfp4: 0.02,
  int4w: 0,
};

export const DTYPE_KIND: Record<Dtype, WeightKind> = {
  f32: 'fp32',
  f16: 'fp16',
  bf16: 'bf16',
  i8: 'int8w',
  q4: 'int4w',
  ...(Object.fromEntries(BLOCK_DTYPES.map((d) => [d, d])) as Record<BlockDtype, BlockDtype>),
};

/** How many matrices are of each kind, and the mix in words: "mixed: 98 int4w, 56 int8w, 2 fp32". */
export type PrecisionMix = Partial<Record<WeightKind, number>>;
export function describeMix(mix: PrecisionMix): string {
  const present = WEIGHT_KINDS.filter((p) => mix[p]);
  return present.length === 1 ? present[0] : `mixed: ${present.map((p) => `${mix[p]} ${p}`).join(', ')}`;
}

/** A file's precision: the kind its projection matrices share, or 'mixed'. */
export function filePrecision(projections: readonly TensorEntry[]): WeightKind | 'mixed' {
  const set = new Set(projections.map((t) => DTYPE_KIND[t.dtype]));
  return set.size === 1 ? [...set][0] : 'mixed';
}

/** The precision mix of a file's projection matrices (what a model runs at by default). */
export function filePrecisionMix(config: ModelConfig, tensors: readonly TensorEntry[]): PrecisionMix {
  const roles = new Map(expectedTensors(config).map((e) => [e.name, e.role]));
  const mix: PrecisionMix = {};
  for (const t of tensors) if (roles.get(t.name) === 'projection') mix[DTYPE_KIND[t.dtype]] = (mix[DTYPE_KIND[t.dtype]] ?? 0) + 1;
  return mix;
}
