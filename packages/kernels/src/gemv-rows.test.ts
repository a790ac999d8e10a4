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
            // Far-apart weight rows (four or six a pass with several activation rows) with a row left over and a masked tail;
            // the shorter shapes leave two to five rows over, taken as one group.
            [301, 1000],
            // Four far-apart rows a pass with one left over (the AVX2 float GEMV on Zen 5), a whole chunk and a partial one after the steps.
            [141, 4013],
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
            [70, 8192], // alone, rows r and r + 35 are read side by side (143 KiB apart) at one thread; i8 per row: four rows 17 apart
            [5, 8352], // past 8192 columns the AVX-512 q4 kernel's per-call tables leave the stack
          ] as const)
            expectRowsAsAlone(ctx, v, N, K, 300 + K, 'int8', JSON.stringify(v));
      });
});

// Consecutive matmuls of the same rows of x (q, k and v; gate and up) run as one pool job, x
// prepared once per thread and the rows of all the matrices handed out from one counter (in
// shrinking ranges where every matrix is in 16-row records, else tapering ones of at least 512 KiB
// a matrix: the 4000-row one below, 0.7-2.4 MiB, tapers in several): each output row must still be
// its own lone GEMV's, bit for bit, whatever the thread count and for one row of x as for several,
// with row counts that leave partial ranges (N not a multiple of 64) and a matrix of another x (and
// K) in between.
describe('consecutive matmuls of the same rows of x', () => {
  const cases: Array<{ name: string; v: Variant; records: boolean; activations: 'f32' | 'int8' }> = [
    { name: 'q4 g32 records, int8', v: { dtype: 'q4', group: 32 }, records: true, activations: 'int8' },
    { name: 'q4 g64 records, int8', v: { dtype: 'q4', group: 64, scale: 'bf16' }, records: true, activations: 'int8' },
    { name: 'q4 g32 row-major, int8', v: { dtype: 'q4', group: 32 }, records: false, activations: 'int8' },
    { name: 'i8 per row, int8', v: { dtype: 'i8', group: 'row' }, records: false, activations: 'int8' },
    { name: 'bf16', v: { dtype: 'bf16' }, records: false, activations: 'f32' },
  ];
  for (const isa of ISAS)
    for (const c of cases)
      it(`equal each matrix's lone GEMV bit for bit (${isa}, ${c.name})`, () => {
        const K = 320;
        const K2 = 96;
        // q, k, v and two more of the same x; then one of x2 (another K); then gate, up of x again.
        const shapes = [
          [272, K],
          [80, K],
          [16, K],
          [144, K],
          [64, K],
          [48, K2],
          [336, K],
          [208, K],
          [4000, K],
        ] as const;
        let first: Float32Array | null = null;
        for (const threads of [1, 2, 4]) {
          const ctx = KernelContext.create({ threads, isa });
          contexts.push(ctx);
          const mats = shapes.map(([N, k], i) => {
            const m = ctx.matrix(makeMatrix(c.v, N, k, 700 + i).spec, makeMatrix(c.v, N, k, 700 + i).bytes.slice());
            if (c.records) m.interleaveRows16();
            return m;
          });
          if (c.records) expect(mats.every((m) => m.layout === 'rows16')).toBe(true);
          const x = seededFloats(8 * K, 91, 1);
          const x2 = seededFloats(8 * K2, 92, 1);
          const outs = shapes.map(([N]) => new Float32Array(8 * N));
          const params = new Int32Array(1);
          const buffers = [x, x2, ...outs];
          const p = ctx.compile({
            buffers,
            params,
            maxRows: 8,
            ops: shapes.map(([N, k], i) => ({
              op: 'matmul' as const,
              matrix: mats[i],
              x: k === K2 ? [1, 0, K2] : [0, 0, K],
              out: [2 + i, 0, N],
              activations: c.activations,
              mSlot: 0,
            })),
          });
          for (const M of [1, 2, 3, 8]) {
            for (const o of outs) o.fill(Number.NaN);
            params[0] = M;
            p.run();
            const got = new Float32Array(outs.reduce((a, o, i) => a + M * shapes[i][0], 0));
            const want = new Float32Array(got.length);
            let at = 0;
            shapes.forEach(([N, k], i) => {
              got.set(outs[i].subarray(0, M * N), at);
              const [xs, ld] = k === K2 ? [x2, K2] : [x, K];
              for (let r = 0; r < M; r++)
                ctx.gemv(mats[i], xs.subarray(r * ld, r * ld + k), want.subarray(at + r * N, at + (r + 1) * N), {
                  activations: c.activations,
                });
              at += M * N;
            });
            expect(firstDifference(got, want), `${threads} thread(s), M ${M}`).toBeNull();
            if (M === 8) {
              if (first) expect(firstDifference(got, first), `${threads} thread(s) against 1`).toBeNull();
              else first = got;
            }
          }
          for (const m of mats) m.dispose();
        }
      });
});
