import { describe, expect, it } from 'vitest';
import { BLOCK_FORMATS, decodeBlocks, type BlockDtype } from '@ie/format';
import { dequantizeKBlocks, firstDifference, quantizeIQ4_NL, quantizeQ4_K, quantizeQ5_K, quantizeQ6_K, seededFloats } from '@ie/testing';
import { packBlocks } from './pack.js';

const SIMPLE = { q4_k: quantizeQ4_K, q5_k: quantizeQ5_K, q6_k: quantizeQ6_K, iq4_nl: quantizeIQ4_NL };
// Relative RMS error each format reaches on Gaussian-like weights (4.5, 5.5, 6.5 and 4.5 bits).
const BOUND: Record<keyof typeof SIMPLE, number> = { q4_k: 0.1, q5_k: 0.05, q6_k: 0.025, iq4_nl: 0.1 };

function relRms(got: Float32Array, want: Float32Array): number {
  let e = 0;
  let s = 0;
  for (let i = 0; i < want.length; i++) {
    e += (got[i] - want[i]) ** 2;
    s += want[i] ** 2;
  }
  return Math.sqrt(e / s);
}

/** Seeded weights with the heavier tails real checkpoints have: a sum of uniforms, a few outliers. */
function weights(n: number, seed: number): Float32Array {
  const a = seededFloats(n, seed, 1);
  const b = seededFloats(n, seed + 1, 1);
  const c = seededFloats(n, seed + 2, 1);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (a[i] + b[i] + c[i]) * 0.02 * (i % 97 === 0 ? 6 : 1);
  return out;
}

describe('packBlocks', () => {
  it.each(Object.keys(SIMPLE) as Array<keyof typeof SIMPLE>)(
    "%s: ggml decodes what it writes, within the format's error, and no worse than a min/max fit",
    (dtype) => {
      const e = BLOCK_FORMATS[dtype].elems;
      for (const [rows, cols] of [
        [1, e],
        [3, 3 * e],
        [7, 5 * e],
      ]) {
        const v = weights(rows * cols, rows * 7 + cols);
        const bytes = packBlocks(dtype, v, rows, cols);
        expect(bytes.length).toBe(((rows * cols) / e) * BLOCK_FORMATS[dtype].bytes);
        const got = decodeBlocks(dtype, bytes, rows, cols);
        // @ie/testing's oracle is ggml's dequantize_row_* written out element by element.
        expect(firstDifference(got, dequantizeKBlocks(dtype, bytes))).toBeNull();
        const err = relRms(got, v);
        expect(err, `${rows}x${cols}`).toBeLessThan(BOUND[dtype]);
        const simple = relRms(decodeBlocks(dtype, SIMPLE[dtype](v), rows, cols), v);
        expect(err, `${rows}x${cols} against the min/max fit's ${simple}`).toBeLessThanOrEqual(simple * 1.001);
      }
    },
  );

  it.each([...Object.keys(SIMPLE), 'mxfp4'] as BlockDtype[])('%s: zero and constant blocks decode exactly, never NaN', (dtype) => {
    const e = BLOCK_FORMATS[dtype].elems;
    const v = new Float32Array(2 * e);
    v.fill(0.25, e);
    const got = decodeBlocks(dtype, packBlocks(dtype, v, 1, 2 * e), 1, 2 * e);
    expect(got.every(Number.isFinite)).toBe(true);
    expect(Array.from(got.subarray(0, e))).toEqual(new Array(e).fill(0));
    expect(relRms(got.subarray(e), v.subarray(e))).toBeLessThan(0.01);
  });

  it("mxfp4: each value is the nearest E2M1 step under the block's power-of-two scale, which fits the block's largest value", () => {
    for (const [rows, cols] of [
      [1, 32],
      [5, 96],
    ]) {
      const v = weights(rows * cols, rows + cols);
      const bytes = packBlocks('mxfp4', v, rows, cols);
      expect(bytes.length).toBe((rows * cols * 17) / 32);
      const got = decodeBlocks('mxfp4', bytes, rows, cols);
      for (let b = 0; b < (rows * cols) / 32; b++) {
        const scale = 2 ** (bytes[17 * b] - 127);
        let amax = 0;
        for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(v[32 * b + j]));
        // The smallest power of two that fits: 6 * scale covers amax, 3 * scale does not.
        expect(6 * scale).toBeGreaterThanOrEqual(amax);
        expect(3 * scale).toBeLessThan(amax);
        for (let j = 0; j < 32; j++) {
          const x = v[32 * b + j];
          const steps = [0, 0.5, 1, 1.5, 2, 3, 4, 6].map((m) => Math.sign(x) * m * scale);
          const best = Math.min(...steps.map((s) => Math.abs(s - x)));
          expect(Math.abs(got[32 * b + j] - x)).toBeLessThanOrEqual(best + 1e-12);
        }
      }
      expect(relRms(got, v)).toBeLessThan(0.2);
    }
  });

  it('refuses rows that are not whole blocks, naming the fix', () => {
    expect(() => packBlocks('q4_k', new Float32Array(2 * 288), 2, 288)).toThrow(
      expect.objectContaining({ code: 'QUANT_BAD_PARAMS', message: expect.stringMatching(/whole 256-element blocks.*288 columns/) }),
    );
    expect(() => packBlocks('iq4_nl', new Float32Array(40), 1, 32)).toThrow(expect.objectContaining({ code: 'QUANT_BAD_PARAMS' }));
  });
});
