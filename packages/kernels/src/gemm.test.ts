import { afterAll, describe, expect, it } from 'vitest';
import { firstDifference, seededFloats } from '@ie/testing';
import { ALL_VARIANTS, makeMatrix, refGemv, variantName, worstRelError } from '../test/helpers.js';
import { KernelContext } from './index.js';

const probe = KernelContext.create({ threads: 1 });
const ISAS = probe.info().supportedIsas as Array<'scalar' | 'avx2' | 'avxvnni' | 'avx512'>;
probe.close();
const contexts: KernelContext[] = [];
afterAll(() => contexts.forEach((c) => c.close()));

describe.each(ISAS)('GEMM (prefill) on %s', (isa) => {
  const byThreads = [1, 2, 3, 4].map((threads) => {
    const c = KernelContext.create({ isa, threads });
    contexts.push(c);
    return c;
  });
  it.each(ALL_VARIANTS.map((v) => [variantName(v), v] as const))(
    '%s: every token row matches the float64 product, for every thread count',
    (_n, v) => {
      // Odd sizes around the register blocks (6x16 AVX2, 14x32 AVX-512, 4x8 scalar) and K past one 256-wide K block.
      for (const [rows, cols, M] of [
        [37, 67, 3],
        [70, 200, 7],
        [130, 129, 17],
        [45, 777, 15],
        [33, 1000, 29],
      ] as const) {
        const m = makeMatrix(v, rows, cols, rows + cols * 31);
        const X = seededFloats(M * cols, 11 + M);
        let first: Float32Array | null = null;
        for (const c of byThreads) {
          const Y = new Float32Array(M * rows).fill(Number.NaN);
          c.gemm(c.matrix(m.spec, m.bytes), X, M, Y);
          for (let t = 0; t < M; t++) {
            const { y, mag } = refGemv(m.values, rows, cols, X.subarray(t * cols, (t + 1) * cols));
            expect(worstRelError(Y.subarray(t * rows, (t + 1) * rows), y, mag), `${rows}x${cols} token ${t}`).toBeLessThan(1e-5);
          }
          if (first) expect(firstDifference(Y, first)).toBeNull();
          else first = Y;
        }
      }
    },
  );
});

describe('gemmAsync', () => {
  it('computes what gemm does, off the event loop', async () => {
    const c = KernelContext.create({ threads: 2 });
    contexts.push(c);
    const m = makeMatrix({ dtype: 'q4', group: 64 }, 2048, 2048, 3);
    const M = 64;
    const X = seededFloats(M * 2048, 4);
    const sync = new Float32Array(M * 2048);
    const mat = c.matrix(m.spec, m.bytes);
    c.gemm(mat, X, M, sync);
    // Off the loop means the loop turns while the product runs: a setImmediate queued after the call
    // fires before the call settles. A call that blocked would settle first (its promise resolves in a
    // microtask), so it fails every try; a CPU-starved CI machine may preempt the loop for the whole
    // product once, hence three tries. Timer counts measured the machine's load, not this.
    const async = new Float32Array(M * 2048);
    let turnedWhileRunning = false;
    for (let attempt = 0; attempt < 3 && !turnedWhileRunning; attempt++) {
      let settled = false;
      const call = c.gemmAsync(mat, X, M, async).then(() => {
        settled = true;
      });
      await new Promise<void>((resolve) => setImmediate(resolve));
      turnedWhileRunning = !settled;
      await call;
      expect(firstDifference(async, sync)).toBeNull();
    }
    expect(turnedWhileRunning).toBe(true);
  });
});
