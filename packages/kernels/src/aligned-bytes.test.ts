import { describe, expect, it } from 'vitest';
import { loadAddon } from './addon.js';
import { KernelContext, KernelError, alignedBytes } from './index.js';

describe('alignedBytes', () => {
  it('gives zero-filled arrays on a 64-byte boundary, of every length', () => {
    const addon = loadAddon();
    for (const n of [0, 1, 63, 64, 65, 4097, 1 << 20]) {
      const b = alignedBytes(n);
      expect(b).toBeInstanceOf(Uint8Array);
      expect(b.length).toBe(n);
      expect(b.byteOffset).toBe(0);
      expect(b.every((v) => v === 0)).toBe(true);
      if (n > 0) expect(addon.addressAlignment(b)).toBeGreaterThanOrEqual(64);
    }
    // The check itself can fail: a view one byte in is 1-aligned.
    expect(addon.addressAlignment(alignedBytes(128).subarray(1))).toBe(1);
  });

  it('refuses lengths that are not byte counts, with KERNELS_BAD_ARGUMENT', () => {
    for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53, '64', null]) {
      const e = (() => {
        try {
          alignedBytes(bad as number);
        } catch (err) {
          return err;
        }
      })();
      expect(e, String(bad)).toBeInstanceOf(KernelError);
      expect((e as KernelError).code).toBe('KERNELS_BAD_ARGUMENT');
    }
    // The addon checks on its own too (it never allocates what the wrapper would refuse).
    const addon = loadAddon();
    for (const bad of [-1, 0.5, Number.NaN, 2 ** 32 + 1, 1e20, '64', undefined])
      expect(() => addon.alignedBytes(bad as number), String(bad)).toThrow(expect.objectContaining({ code: 'KERNELS_BAD_ARGUMENT' }));
  });

  it('holds weights the kernels read as they read any buffer: the same bits', () => {
    const ctx = KernelContext.create({ threads: 2 });
    try {
      // Seeded f32 weights, 37 x 301, in a JavaScript buffer and in an aligned one.
      let s = 12345;
      const w = new Float32Array(37 * 301).map(() => {
        s = (s * 1103515245 + 12345) >>> 0;
        return (s / 2 ** 32 - 0.5) * 0.25;
      });
      const x = new Float32Array(301).map((_, i) => Math.sin(i * 0.7));
      const plain = new Uint8Array(w.buffer.slice(0));
      const aligned = alignedBytes(plain.length);
      aligned.set(plain);
      const y1 = new Float32Array(37);
      const y2 = new Float32Array(37);
      ctx.gemv(ctx.matrix({ dtype: 'f32', shape: [37, 301] }, plain), x, y1);
      ctx.gemv(ctx.matrix({ dtype: 'f32', shape: [37, 301] }, aligned), x, y2);
      expect(Array.from(y2)).toEqual(Array.from(y1));
      // And against float64 (the row sums are of order 1; the product is not all zeros).
      for (let r = 0; r < 37; r++) {
        let ref = 0;
        for (let k = 0; k < 301; k++) ref += w[r * 301 + k] * x[k];
        expect(Math.abs(y2[r] - ref)).toBeLessThan(1e-4);
      }
      expect(y2.some((v) => Math.abs(v) > 0.01)).toBe(true);
    } finally {
      ctx.close();
    }
  });
});
