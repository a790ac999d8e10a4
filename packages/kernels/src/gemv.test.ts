import { afterAll, describe, expect, it } from 'vitest';
import { firstDifference, seededFloats } from '@ie/testing';
import { ALL_VARIANTS, makeMatrix, refGemv, variantName, worstRelError } from '../test/helpers.js';
import { KernelContext } from './index.js';

const probe = KernelContext.create({ threads: 1 });
const ISAS = probe.info().supportedIsas as Array<'scalar' | 'avx2' | 'avxvnni' | 'avx512'>;
probe.close();
const contexts = new Map<string, KernelContext>();
function ctx(isa: string, threads: number): KernelContext {
  const key = `${isa}/${threads}`;
  if (!contexts.has(key)) contexts.set(key, KernelContext.create({ isa: isa as 'scalar', threads }));
  return contexts.get(key) as KernelContext;
}
afterAll(() => contexts.forEach((c) => c.close()));

// Odd sizes: K and N not multiples of the vector width or the group, plus one big enough for the pool.
// K past 4096 takes the AVX2 long-row path (12 rows share each load of x): 29 rows = two blocks and a remainder.
// 141 x 4013: the AVX2 float rows far enough apart to go in fours (Zen 5) or pairs, with a row left over.
// 67 x 16411: rows far enough apart to go in pairs (row_streams.h; the AVX-512 float and int8w rows in fours) with rows left over, at one thread
// for every type and at two to four for the wider ones, one by one for the rest; the bits must agree.
const SHAPES: Array<[number, number]> = [
  [1, 1],
  [3, 15],
  [37, 67],
  [70, 200],
  [5, 333],
  [300, 333],
  [29, 4105],
  [141, 4013],
  [67, 16411],
];

describe.each(ISAS)('GEMV on %s', (isa) => {
  it.each(ALL_VARIANTS.map((v) => [variantName(v), v] as const))('%s matches the float64 product of the dequantized matrix', (_n, v) => {
    for (const [rows, cols] of SHAPES) {
      if (typeof (v as { layout?: unknown }).layout === 'number' || (v as { blockK?: number }).blockK) {
        if (cols < 64 && rows > 3) continue; // blocked layouts need a panel or more to be interesting
      }
      const m = makeMatrix(v, rows, cols, rows * 7919 + cols);
      const x = seededFloats(cols, cols + 3);
      const { y: want, mag } = refGemv(m.values, rows, cols, x);
      let first: Float32Array | null = null;
      for (const threads of [1, 2, 3, 4]) {
        const c = ctx(isa, threads);
        const y = new Float32Array(rows).fill(Number.NaN);
        c.gemv(c.matrix(m.spec, m.bytes), x, y);
        expect(worstRelError(y, want, mag), `${rows}x${cols} threads ${threads}`).toBeLessThan(1e-5);
        // Deterministic reductions: bit-identical for every thread count.
        if (first) expect(firstDifference(y, first), `${rows}x${cols} threads ${threads} vs 1`).toBeNull();
        else first = y;
      }
    }
  });
});

describe('SIMD variants against the scalar reference', () => {
  it.each(ALL_VARIANTS.map((v) => [variantName(v), v] as const))('%s', (_n, v) => {
    const rows = 70;
    const cols = 200;
    const m = makeMatrix(v, rows, cols, 17);
    const x = seededFloats(cols, 5);
    const ref = new Float32Array(rows);
    const refCtx = ctx('scalar', 1);
    refCtx.gemv(refCtx.matrix(m.spec, m.bytes), x, ref);
    const { mag } = refGemv(m.values, rows, cols, x);
    for (const isa of ISAS.filter((i) => i !== 'scalar')) {
      const y = new Float32Array(rows);
      const c = ctx(isa, 2);
      c.gemv(c.matrix(m.spec, m.bytes), x, y);
      expect(worstRelError(y, Float64Array.from(ref), mag), isa).toBeLessThan(2e-6);
    }
  });
});

// JavaScript's buffers start 16 bytes past a 64-byte boundary: the kernels read x from an aligned
// copy when it is not aligned. Wherever x starts in its buffer (one of the 16 offsets lands on a
// 64-byte boundary and is read in place), each ISA gives the same bits.
describe('where x starts in its buffer', () => {
  it.each(ISAS)('does not change a GEMV on %s', (isa) => {
    for (const v of ALL_VARIANTS) {
      const [rows, cols] = [21, 4105];
      const m = makeMatrix(v, rows, cols, 31);
      const c = ctx(isa, 2);
      const mat = c.matrix(m.spec, m.bytes);
      const buf = seededFloats(cols + 16, 9);
      for (let off = 0; off < 16; off++) {
        const x = buf.subarray(off, off + cols);
        const y = new Float32Array(rows).fill(Number.NaN);
        c.gemv(mat, x, y);
        const y0 = new Float32Array(rows).fill(Number.NaN);
        c.gemv(mat, Float32Array.from(x), y0);
        expect(firstDifference(y, y0), `${variantName(v)} offset ${off}`).toBeNull();
      }
      mat.dispose();
    }
  });
});
