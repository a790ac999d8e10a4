import { afterAll, describe, expect, it } from 'vitest';
import { firstDifference, seededFloats } from '@ie/testing';
import { makeMatrix, type Variant } from '../test/helpers.js';
import { KernelContext } from './index.js';

// A matmul of 2..8 rows (the decode rows of several sequences in one step) runs the GEMV kernels
// over blocks of weight rows: every row must be bit for bit the single-row GEMV of the same ISA, at
// sizes that hit every tail of the kernels (K below a vector, K not a multiple of 64, rows above
// 4096 columns that take the long-row path), for the float types, at every ISA and thread count.
const probe = KernelContext.create({ threads: 1 });
const ISAS = probe.info().supportedIsas as Array<'scalar' | 'avx2' | 'avxvnni' | 'avx512'>;
probe.close();
const contexts: KernelContext[] = [];
afterAll(() => {
  for (const c of contexts) c.close();
});

/** A matmul op over 2..8 rows against each row's own GEMV, bit for bit (`what` names the case). */
function expectRowsAsAlone(
  ctx: KernelContext,
  v: Variant,
  N: number,
  K: number,
  seed: number,
  activations: 'f32' | 'int8',
  what: string,
): void {
  const w = makeMatrix(v, N, K, seed);
  const mat = ctx.matrix(w.spec, w.bytes);
  const x = seededFloats(8 * K, seed + 100, 1);
  const y = new Float32Array(8 * N);
  const params = new Int32Array(1);
  const p = ctx.compile({
    buffers: [x, y],
    params,
    maxRows: 8,
    ops: [{ op: 'matmul', matrix: mat, x: [0, 0, K], out: [1, 0, N], activations, mSlot: 0 }],
  });
  for (let M = 2; M <= 8; M++) {
    y.fill(Number.NaN);
    params[0] = M;
    p.run();
    const want = new Float32Array(M * N);
    for (let i = 0; i < M; i++) ctx.gemv(mat, x.subarray(i * K, (i + 1) * K), want.subarray(i * N, (i + 1) * N), { activations });
    expect(firstDifference(y.subarray(0, M * N), want), `${what} N ${N} K ${K} M ${M}`).toBeNull();
  }
  mat.dispose();
}

describe('matmuls of several rows', () => {
  for (const isa of ISAS)
    for (const threads of [1, 3])
      for (const dtype of ['f32', 'f16', 'bf16'] as const)
        it(`equal each row's own GEMV bit for bit (${isa}, ${threads} thread(s), ${dtype})`, () => {
          const ctx = KernelContext.create({ threads, isa });
          contexts.push(ctx);
          for (const [N, K] of [
            [37, 5],
            [29, 63],
            [33, 64],
            [21, 200],
            [70, 257],
            [19, 4100],
            [9, 4103],
          ] as const)
            expectRowsAsAlone(ctx, { dtype }, N, K, 100 + K, 'f32', dtype);
        });
});

// With int8 activations (the decode mode of quantized models) each of 2..8 rows is quantized and
// multiplied exactly as the lone int8 GEMV does it, so a sequence decoded in a batch gives the
// tokens it gives alone; also over blocked-K panels.
describe('matmuls of several rows with int8 activations', () => {
  for (const isa of ISAS)
    for (const threads of [1, 3])
      it(`equal each row's own int8 GEMV bit for bit (${isa}, ${threads} thread(s))`, () => {
        const ctx = KernelContext.create({ threads, isa });
        contexts.push(ctx);
        const variants: Variant[] = [
          { dtype: 'q4', group: 32 },
          { dtype: 'q4', group: 32, affine: true, blockK: 128 },
          { dtype: 'q4', group: 64, affine: true },
          { dtype: 'q4', group: 64, scale: 'bf16' },
          { dtype: 'q4', group: 128, scale: 'f32' },
          { dtype: 'q4', group: 128, affine: true, scale: 'bf16' },
          { dtype: 'i8', group: 'row' },
          { dtype: 'i8', group: 32, blockK: 128 },
          { dtype: 'i8', group: 64, scale: 'bf16' },
          { dtype: 'i8', group: 128, scale: 'f32' },
          { dtype: 'i8', group: 'row', scale: 'f32' },
        ];
        for (const v of variants)
          for (const [N, K] of [
            [37, 64],
            [21, 320],
            [9, 4160],
            [13, 4128], // an odd number of 32-groups
            [70, 8192], // alone, rows r and r + 35 are read side by side (143 KiB apart) at one thread
            [5, 8352], // past 8192 columns the AVX-512 q4 kernel's per-call tables leave the stack
          ] as const)
            expectRowsAsAlone(ctx, v, N, K, 300 + K, 'int8', JSON.stringify(v));
      });
});
