import { afterAll, describe, expect, it } from 'vitest';
import { firstDifference, seededFloats } from '@ie/testing';
import { makeMatrix, quantizedX, refGemv, variantName, worstRelError, xBlock, type Variant } from '../test/helpers.js';
import { KernelContext } from './index.js';

// One context per ISA and thread count, shared by every case: a context per case left some
// thousand pool threads alive until afterAll, whose closing then outran the hook's timeout on a
// loaded 2-core CI machine.
const contexts = new Map<string, KernelContext>();
const make = (o: { isa?: 'scalar' | 'avx2' | 'avxvnni' | 'avx512'; threads: number }) => {
  const key = `${o.isa ?? 'best'}/${o.threads}`;
  let c = contexts.get(key);
  if (!c) contexts.set(key, (c = KernelContext.create(o)));
  return c;
};
afterAll(() => contexts.forEach((c) => c.close()));

const VARIANTS: Variant[] = [
  { dtype: 'q4', group: 32 },
  { dtype: 'q4', group: 64 },
  { dtype: 'q4', group: 128 },
  { dtype: 'q4', group: 64, affine: true },
  { dtype: 'q4', group: 32, affine: true, scale: 'bf16' },
  { dtype: 'q4', group: 128, affine: true },
  { dtype: 'q4', group: 128, scale: 'f32', blockK: 128 },
  { dtype: 'i8', group: 32 },
  { dtype: 'i8', group: 64, scale: 'bf16' },
  { dtype: 'i8', group: 128 },
  { dtype: 'i8', group: 'row' },
  { dtype: 'i8', group: 'row', blockK: 64 },
];

const best = make({ threads: 1 }).info();
const ISAS = best.supportedIsas as Array<'scalar' | 'avx2' | 'avxvnni' | 'avx512'>;

/** The int8 kernels a context on `isa` must use: never the scalar reference on a SIMD CPU. */
function expectedVariant(isa: string, f: typeof best.features): string {
  if (isa === 'avx512' && f.avx512vnni) return 'avx512vnni';
  if ((isa === 'avx512' || isa === 'avxvnni') && f.avxVnni) return 'avxvnni';
  return isa === 'scalar' ? 'scalar' : 'avx2';
}

describe('int8-activation mode', () => {
  it.each(ISAS)('on %s runs its own kernels, never the scalar fallback', (isa) => {
    expect(make({ isa, threads: 1 }).info().int8Activations).toBe(expectedVariant(isa, best.features));
  });

  it.each(ISAS)('on %s has its own int8 prefill GEMM', (isa) => {
    const gemm = { scalar: 'scalar', avx2: '8x6 avx2', avxvnni: '8x8 avxvnni', avx512vnni: '16x8 avx512vnni' }[
      expectedVariant(isa, best.features)
    ];
    expect(make({ isa, threads: 1 }).info().int8Gemm).toBe(gemm);
  });

  it.each(ISAS.flatMap((isa) => VARIANTS.map((v) => [isa, variantName(v), v] as const)))(
    '%s %s: equals W times the quantized x, for every thread count and against the scalar reference',
    (isa, _n, v) => {
      const ref = make({ isa: 'scalar', threads: 1 });
      for (const [rows, cols] of [
        [1, 40],
        [37, 67],
        [70, 200],
        [300, 333],
        [9, 1000],
        [5, 4099],
        // Long rows: at one thread the q4 kernels read row r beside row r + 18 (148 KiB on), at
        // three and four threads one row at a time; the results must not differ.
        [37, 16411],
      ] as const) {
        if ((v as { blockK?: number }).blockK && cols < 128) continue;
        const m = makeMatrix(v, rows, cols, rows * 131 + cols);
        const x = seededFloats(cols, cols + 7, 3);
        const { y: want, mag } = refGemv(m.values, rows, cols, quantizedX(x, xBlock(v)));
        const yref = new Float32Array(rows);
        ref.gemv(ref.matrix(m.spec, m.bytes), x, yref, { activations: 'int8' });
        expect(worstRelError(yref, want, mag), `scalar ${rows}x${cols}`).toBeLessThan(1e-5);
        let first: Float32Array | null = null;
        for (const threads of [1, 2, 3, 4]) {
          const c = make({ isa, threads });
          const y = new Float32Array(rows);
          c.gemv(c.matrix(m.spec, m.bytes), x, y, { activations: 'int8' });
          expect(worstRelError(y, want, mag), `${rows}x${cols} threads ${threads}`).toBeLessThan(1e-5);
          if (first) expect(firstDifference(y, first)).toBeNull();
          else first = y;
        }
        // Against FP32 activations the difference is the activation rounding: report-level bound.
        const { y: exact, mag: m2 } = refGemv(m.values, rows, cols, x);
        expect(worstRelError(first as Float32Array, exact, m2)).toBeLessThan(2e-2);
      }
    },
  );

  it('leaves float weights on the FP32 path', () => {
    const c = make({ threads: 1 });
    const m = makeMatrix({ dtype: 'f16' }, 20, 70, 3);
    const x = seededFloats(70, 1);
    const a = new Float32Array(20);
    const b = new Float32Array(20);
    c.gemv(c.matrix(m.spec, m.bytes), x, a);
    c.gemv(c.matrix(m.spec, m.bytes), x, b, { activations: 'int8' });
    expect(firstDifference(a, b)).toBeNull();
    expect(() => c.gemv(c.matrix(m.spec, m.bytes), x, b, { activations: 'int4' as 'int8' })).toThrow(
      expect.objectContaining({ code: 'KERNELS_BAD_ARGUMENT' }),
    );
  });
});

// A prefill chunk (a matmul op over more than 8 rows) in the int8 mode: where the ISA has an int8
// GEMM for the matrix (symmetric q4 and i8 on every ISA, i8 with one scale per row only where K is
// whole blocks of 32) each token is W times its own quantized x; elsewhere (affine q4) the FP32 GEMM
// runs.
// Either way every token
// is within the activation rounding of W x, and the bits do not depend on the thread count.
describe('a prefill chunk in the int8 mode', () => {
  const CHUNK_VARIANTS: Variant[] = [
    { dtype: 'q4', group: 32 },
    { dtype: 'q4', group: 64, scale: 'bf16' },
    { dtype: 'q4', group: 128, scale: 'f32', blockK: 256 },
    { dtype: 'q4', group: 32, affine: true },
    { dtype: 'i8', group: 32 },
    { dtype: 'i8', group: 64, scale: 'bf16' },
    { dtype: 'i8', group: 128, scale: 'f32', blockK: 256 },
    { dtype: 'i8', group: 'row' },
    { dtype: 'i8', group: 'row', blockK: 192 },
  ];
  const runChunk = (c: KernelContext, m: ReturnType<typeof makeMatrix>, X: Float32Array, M: number, rows: number, cols: number) => {
    const Y = new Float32Array(M * rows).fill(Number.NaN);
    const prog = c.compile({
      buffers: [X, Y],
      params: new Int32Array([M]),
      maxRows: M,
      ops: [{ op: 'matmul', matrix: c.matrix(m.spec, m.bytes), x: [0, 0, cols], out: [1, 0, rows], activations: 'int8', mSlot: 0 }],
    });
    prog.run();
    return Y;
  };
  it.each(ISAS.flatMap((isa) => CHUNK_VARIANTS.map((v) => [isa, variantName(v), v] as const)))('%s %s', (isa, _n, v) => {
    // Odd sizes: rows past a 16-row panel, tokens past an 8-token tile, K past whole groups.
    for (const [rows, cols, M] of [
      [37, 300, 9],
      [70, 1031, 29],
      [16, 512, 12],
    ] as const) {
      const m = makeMatrix(v, rows, cols, rows * 17 + cols);
      const X = seededFloats(M * cols, M + cols, 3);
      const fits = v.dtype === 'q4' ? !v.affine : v.dtype === 'i8' && (v.group !== 'row' || cols % 32 === 0);
      const int8Gemm = fits && make({ isa, threads: 1 }).info().int8Gemm !== 'none';
      let first: Float32Array | null = null;
      for (const threads of [1, 2, 3, 4]) {
        const Y = runChunk(make({ isa, threads }), m, X, M, rows, cols);
        for (let t = 0; t < M; t++) {
          const x = X.subarray(t * cols, (t + 1) * cols);
          const { y: exact, mag } = refGemv(m.values, rows, cols, int8Gemm ? quantizedX(x, xBlock(v)) : x);
          expect(
            worstRelError(Y.subarray(t * rows, (t + 1) * rows), exact, mag),
            `${rows}x${cols} token ${t} threads ${threads}`,
          ).toBeLessThan(1e-5);
        }
        if (first) expect(firstDifference(Y, first)).toBeNull();
        else first = Y;
      }
    }
  });
});
