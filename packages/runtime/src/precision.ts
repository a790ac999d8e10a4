/** Weight precisions, as the seed names them (IE_PRECISION), and how they map to IEBIN dtypes. */
import { expectedTensors, type Dtype, type ModelConfig, type TensorEntry } from '@ie/format';

export const PRECISIONS = ['fp32', 'fp16', 'bf16', 'int8w', 'int4w'] as const;
export type Precision = (typeof PRECISIONS)[number];

/** The dtype a projection matrix has at each precision. */
export const PRECISION_DTYPE: Record<Precision, Dtype> = { fp32: 'f32', fp16: 'f16', bf16: 'bf16', int8w: 'i8', int4w: 'q4' };

/** How much information a precision keeps: converting to a higher rank is refused. */
export const PRECISION_RANK: Record<Precision, number> = { fp32: 3, fp16: 2, bf16: 2, int8w: 1, int4w: 0 };

export const DTYPE_PRECISION: Record<Dtype, Precision> = { f32: 'fp32', f16: 'fp16', bf16: 'bf16', i8: 'int8w', q4: 'int4w' };

/** How many matrices are at each precision, and the mix in words: "mixed: 98 int4w, 56 int8w, 2 fp32". */
export type PrecisionMix = Partial<Record<Precision, number>>;
export function describeMix(mix: PrecisionMix): string {
  const parts = PRECISIONS.filter((p) => mix[p]).map((p) => `${mix[p]} ${p}`);
  return parts.length === 1 ? PRECISIONS.find((p) => mix[p]) as string : `mixed: ${parts.join(', ')}`;
}

/** A file's precision: the dtype its projection matrices share, or 'mixed'. */
export function filePrecision(projections: readonly TensorEntry[]): Precision | 'mixed' {
  const set = new Set(projections.map((t) => DTYPE_PRECISION[t.dtype]));
  return set.size === 1 ? [...set][0] : 'mixed';
}

/** The precision mix of a file's projection matrices (what a model runs at by default). */
export function filePrecisionMix(config: ModelConfig, tensors: readonly TensorEntry[]): PrecisionMix {
  const roles = new Map(expectedTensors(config).map((e) => [e.name, e.role]));
  const mix: PrecisionMix = {};
  for (const t of tensors) if (roles.get(t.name) === 'projection') mix[DTYPE_PRECISION[t.dtype]] = (mix[DTYPE_PRECISION[t.dtype]] ?? 0) + 1;
  return mix;
}
