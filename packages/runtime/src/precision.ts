/** Weight precisions, as the seed names them (IE_PRECISION), and how they map to IEBIN dtypes. */
import type { Dtype, TensorEntry } from '@ie/format';

export const PRECISIONS = ['fp32', 'fp16', 'bf16', 'int8w', 'int4w'] as const;
export type Precision = (typeof PRECISIONS)[number];

/** The dtype a projection matrix has at each precision. */
export const PRECISION_DTYPE: Record<Precision, Dtype> = { fp32: 'f32', fp16: 'f16', bf16: 'bf16', int8w: 'i8', int4w: 'q4' };

/** How much information a precision keeps: converting to a higher rank is refused. */
export const PRECISION_RANK: Record<Precision, number> = { fp32: 3, fp16: 2, bf16: 2, int8w: 1, int4w: 0 };

const DTYPE_PRECISION: Record<Dtype, Precision> = { f32: 'fp32', f16: 'fp16', bf16: 'bf16', i8: 'int8w', q4: 'int4w' };

/** A file's precision: the dtype its projection matrices share, or 'mixed'. */
export function filePrecision(projections: readonly TensorEntry[]): Precision | 'mixed' {
  const set = new Set(projections.map((t) => DTYPE_PRECISION[t.dtype]));
  return set.size === 1 ? [...set][0] : 'mixed';
}
