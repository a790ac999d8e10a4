/**
 * The linear algebra the search and the gate share: activations are rows × width matrices,
 * row-major f32; a matrix's outputs over them come from the kernels (what the engine runs).
 */
import { decodeTensor, type ConvertedTensor, type IebinReader, type TensorEntry } from '@ie/format';
import type { KernelContext, WeightMatrix } from '@ie/kernels';
import type { TensorPlan } from '@ie/quant';
import { matrixSpec } from '../weights.js';

/** Row-major f32 values of a stored tensor. */
export function valuesOf(reader: IebinReader, t: TensorEntry): Float32Array {
  return decodeTensor(t, reader.view(t.name).bytes);
}

/** `want` rows of X (rows × width) at every (rows / want)-th row; X itself when it has no more than `want`. */
export function subsample(X: Float32Array, rows: number, width: number, want: number): { X: Float32Array; n: number } {
  if (rows <= want) return { X, n: rows };
  const step = rows / want;
  const out = new Float32Array(want * width);
  for (let i = 0; i < want; i++) out.set(X.subarray(Math.floor(i * step) * width, (Math.floor(i * step) + 1) * width), i * width);
  return { X: out, n: want };
}

/** X (n × s.length) with column k divided by s[k], rounded to f32: the input a column-scaled matrix sees. */
export function divideColumns(X: Float32Array, n: number, s: Float32Array): Float32Array {
  const w = s.length;
  const out = new Float32Array(n * w);
  for (let r = 0; r < n; r++) for (let k = 0; k < w; k++) out[r * w + k] = Math.fround(X[r * w + k] / s[k]);
  return out;
}

/** ‖ref − got‖² / ‖ref‖² (the absolute squared error when ref is all zeros). */
export function relativeError(ref: Float32Array, got: Float32Array): number {
  let e = 0;
  let s = 0;
  for (let i = 0; i < ref.length; i++) {
    e += (ref[i] - got[i]) ** 2;
    s += ref[i] ** 2;
  }
  return s > 0 ? e / s : e;
}

/** Y = X Wᵀ for n rows of X: n × m.rows outputs. */
export function outputsOf(ctx: KernelContext, m: WeightMatrix, X: Float32Array, n: number): Float32Array {
  const Y = new Float32Array(n * m.rows);
  ctx.gemm(m, X, n, Y);
  return Y;
}

/** Hands `use` a kernel matrix over a plan's encoded bytes, freed when it returns. */
export function withMatrix<T>(ctx: KernelContext, plan: TensorPlan, enc: ConvertedTensor, use: (m: WeightMatrix) => T): T {
  const m = ctx.matrix(matrixSpec(plan.dtype, plan.shape, enc.quant), enc.bytes);
  try {
    return use(m);
  } finally {
    m.dispose();
  }
}
