import { afterAll, describe, expect, it } from 'vitest';
import { KernelContext, type WeightMatrix } from '@ie/kernels';
import type { TensorPlan } from '@ie/quant';
import { seededFloats } from '@ie/testing';
import { divideColumns, outputsOf, relativeError, subsample, withMatrix } from './linear.js';

const f32Plan = (rows: number, cols: number) => ({ name: 'w', dtype: 'f32', shape: [rows, cols], quant: null }) as unknown as TensorPlan;
const bytesOf = (v: Float32Array) => new Uint8Array(v.buffer, v.byteOffset, v.byteLength);

describe('linear: the row arithmetic the search and the gate share', () => {
  const ctx = KernelContext.create({ threads: 1 });
  afterAll(() => ctx.close());

  it('subsample takes every (rows / want)-th row, or X itself when it is small enough', () => {
    const X = seededFloats(10 * 3, 1);
    const { X: S, n } = subsample(X, 10, 3, 4);
    expect(n).toBe(4);
    // step 2.5: rows 0, 2, 5, 7.
    expect([...S]).toEqual([0, 2, 5, 7].flatMap((r) => [...X.subarray(r * 3, r * 3 + 3)]));
    expect(subsample(X, 10, 3, 10)).toEqual({ X, n: 10 });
    expect(subsample(X, 10, 3, 12).X).toBe(X);
  });

  it('divideColumns divides column k by s[k], rounded to f32', () => {
    const X = seededFloats(3 * 4, 2);
    const s = Float32Array.from([0.5, 2, 1.5, 3]);
    const Y = divideColumns(X, 3, s);
    for (let r = 0; r < 3; r++) for (let k = 0; k < 4; k++) expect(Y[r * 4 + k]).toBe(Math.fround(X[r * 4 + k] / s[k]));
  });

  it('relativeError is the squared error over the squared reference (absolute against zeros)', () => {
    expect(relativeError(Float32Array.from([3, 4]), Float32Array.from([3, 3]))).toBeCloseTo(1 / 25, 12);
    expect(relativeError(Float32Array.from([0, 0]), Float32Array.from([1, 2]))).toBe(5);
    const a = seededFloats(64, 3);
    expect(relativeError(a, a)).toBe(0);
  });

  it('outputsOf is X Wᵀ through the kernels; withMatrix frees its matrix after use', () => {
    const [N, K, M] = [5, 64, 3];
    const W = seededFloats(N * K, 4);
    const X = seededFloats(M * K, 5);
    let used: WeightMatrix | undefined;
    const Y = withMatrix(ctx, f32Plan(N, K), { dtype: 'f32', quant: null, bytes: bytesOf(W) }, (m) => {
      used = m;
      return outputsOf(ctx, m, X, M);
    });
    expect(Y).toHaveLength(M * N);
    for (let r = 0; r < M; r++)
      for (let n = 0; n < N; n++) {
        let want = 0;
        for (let k = 0; k < K; k++) want += W[n * K + k] * X[r * K + k];
        expect(Y[r * N + n]).toBeCloseTo(want, 4);
      }
    expect(() => outputsOf(ctx, used as WeightMatrix, X, M)).toThrow(expect.objectContaining({ code: 'KERNELS_CLOSED' }));
  });
});
