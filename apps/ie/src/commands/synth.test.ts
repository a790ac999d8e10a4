import { Rng, decodeBlocks, quantizeMxfp4 } from '@ie/format';
import { packBlocks } from '@ie/quant';
import { describe, expect, it } from 'vitest';
import { sameBytes } from '@ie/testing';

describe('synthetic gpt-oss experts', () => {
  it("@ie/format's MXFP4 quantizer (format cannot depend on @ie/quant) packs byte for byte as packBlocks('mxfp4')", () => {
    const v = new Rng(5).fillBell(new Float32Array(32 * 4096), 0.02);
    // Midpoints between E2M1 levels (ties), exact levels, zeros and a wide range of scales.
    const special = [0, -0, 0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5, 6, -0.25, -1.75, -5, 1e-40, 3e38, -2.9];
    for (let b = 0; b < 128; b++)
      for (let j = 0; j < 32; j++) v[32 * b + j] = Math.fround(special[(b + j) % special.length] * 2 ** ((b % 9) - 4));
    for (let i = 0; i < 32 * 128; i++) if (!Number.isFinite(v[i])) v[i] = 1;
    const mine = quantizeMxfp4(v);
    expect(sameBytes(mine, packBlocks('mxfp4', v, 4096, 32))).toBe(true);
    expect(decodeBlocks('mxfp4', mine, 1, 32)[2]).toBe(0); // 0.25 ties to code 0 at scale 1/16 · 16
  });
});
