import { decodeTensor } from '@ie/format';
import { seededFloats } from '@ie/testing';
import { describe, expect, it } from 'vitest';
import { packInt4Groupwise, packInt8 } from '../pack.js';
import {
  CLIP_GRID,
  activationScales,
  applyTransforms,
  decodeScales,
  dequantizeMatrix,
  encodeScales,
  quantizeMatrix,
  searchClip,
  type QuantTarget,
} from './quantize.js';

/** Heavy-tailed seeded weights (a few outliers per row), never zeros. */
function weights(n: number, seed: number): Float32Array {
  const v = seededFloats(n, seed, 0.05);
  for (let i = 3; i < n; i += 41) v[i] *= 9;
  return v;
}

const q4 = (G: number, scheme: 'symmetric' | 'affine' = 'symmetric'): QuantTarget => ({
  dtype: 'q4',
  quant: { scheme, granularity: 'per_group', group_size: G, scale_dtype: 'f16' },
});
const i8row = (cols: number): QuantTarget => ({
  dtype: 'i8',
  quant: { scheme: 'symmetric', granularity: 'per_row', group_size: cols, scale_dtype: 'f16' },
});

function sse(a: Float32Array, b: Float32Array, from = 0, to = a.length): number {
  let s = 0;
  for (let i = from; i < to; i++) s += (a[i] - b[i]) ** 2;
  return s;
}

describe('clip search', () => {
  const targets: Array<[string, QuantTarget, number, number]> = [
    ['q4 symmetric g32', q4(32), 7, 96],
    ['q4 symmetric g64 (padded last group)', q4(64), 5, 150],
    ['q4 affine g128', q4(128, 'affine'), 3, 256],
    ['i8 per row', i8row(77), 4, 77],
  ];
  it.each(targets)('%s: never worse than RTN per group, better overall on outliers', (_, t, rows, cols) => {
    const v = weights(rows * cols, rows * cols);
    const rtn = dequantizeMatrix(quantizeMatrix(v, rows, cols, t, 'rtn').bytes, rows, cols, t);
    const clip = dequantizeMatrix(quantizeMatrix(v, rows, cols, t, 'clip').bytes, rows, cols, t);
    const G = t.quant.granularity === 'per_row' ? cols : t.quant.group_size;
    for (let r = 0; r < rows; r++)
      for (let k0 = 0; k0 < cols; k0 += G) {
        const a = r * cols + k0;
        const b = r * cols + Math.min(cols, k0 + G);
        expect(sse(v, clip, a, b)).toBeLessThanOrEqual(sse(v, rtn, a, b) * (1 + 1e-12));
      }
    // 4 bits gain several percent; 8 bits have little rounding error left to trade for clipping.
    if (t.dtype === 'q4') expect(sse(v, clip)).toBeLessThan(sse(v, rtn) * 0.98);
    const ratios = searchClip(v, rows, cols, t);
    expect(ratios.every((x) => CLIP_GRID.some((g) => Math.fround(g) === x))).toBe(true);
    if (t.dtype === 'q4') expect(ratios.some((x) => x < 1)).toBe(true);
  });

  it('rtn is the plain packer, byte for byte (llama.cpp Q4_0 stays Q4_0)', () => {
    const v = weights(6 * 96, 3);
    expect(quantizeMatrix(v, 6, 96, q4(32), 'rtn').bytes).toEqual(
      packInt4Groupwise(v, 6, 96, { scheme: 'symmetric', groupSize: 32, scaleDtype: 'f16' }).bytes,
    );
    expect(quantizeMatrix(v, 6, 96, i8row(96), 'rtn').bytes).toEqual(
      packInt8(v, 6, 96, { granularity: 'per_row', scaleDtype: 'f16' }).bytes,
    );
    // All-ones clip ratios are RTN too.
    expect(packInt4Groupwise(v, 6, 96, { scheme: 'symmetric', groupSize: 32, clip: new Float32Array(18).fill(1) }).bytes).toEqual(
      quantizeMatrix(v, 6, 96, q4(32), 'rtn').bytes,
    );
  });

  it("dequantizeMatrix is the format's reference decoder", () => {
    for (const t of [q4(32), q4(64, 'affine'), i8row(70)]) {
      const cols = t.dtype === 'i8' ? 70 : 100;
      const v = weights(5 * cols, cols);
      const p = quantizeMatrix(v, 5, cols, t, 'clip');
      const ref = decodeTensor(
        {
          dtype: t.dtype,
          shape: [5, cols],
          layout: { order: 'row_major', block_k: 0 },
          quant: { ...p.quant, scales_offset: 0, zeros_offset: null },
        },
        p.bytes,
      );
      expect(dequantizeMatrix(p.bytes, 5, cols, t)).toEqual(ref);
    }
  });
});

describe('activation-aware scaling', () => {
  it('scales are 1 at alpha 0, grow with the activation magnitude, and are normalized to max * min = 1', () => {
    const mean = Float64Array.from({ length: 37 }, (_, i) => 0.01 + ((i * 7919) % 37) / 10);
    expect([...activationScales(mean, 0)].every((x) => x === 1)).toBe(true);
    const s = activationScales(mean, 0.5);
    let lo = Number.POSITIVE_INFINITY;
    let hi = 0;
    for (let i = 0; i < s.length; i++) {
      lo = Math.min(lo, s[i]);
      hi = Math.max(hi, s[i]);
      expect(s[i]).toBeCloseTo(Math.sqrt(mean[i]) / Math.sqrt(Math.sqrt(0.01) * Math.sqrt(0.01 + 3.6)), 5);
    }
    expect(lo * hi).toBeCloseTo(1, 6);
  });

  it('folding is exact in float64: (W diag(s)) (x / s) = W x, and divide_rows scales outputs', () => {
    const rows = 9;
    const cols = 13;
    const W = weights(rows * cols, 11);
    const x = seededFloats(cols, 12, 1);
    const s = activationScales(Float64Array.from(seededFloats(cols, 13, 1), Math.abs), 0.7);
    const r = activationScales(Float64Array.from(seededFloats(rows, 14, 1), Math.abs), 0.4);
    const Ws = Float32Array.from(W);
    const scales = new Map([
      ['s', s],
      ['r', r],
    ]);
    applyTransforms(
      Ws,
      [rows, cols],
      [
        { op: 'scale_columns', by: 's' },
        { op: 'divide_rows', by: 'r' },
      ],
      scales,
    );
    for (let n = 0; n < rows; n++) {
      let want = 0;
      let got = 0;
      for (let k = 0; k < cols; k++) {
        want += W[n * cols + k] * x[k];
        got += Ws[n * cols + k] * (x[k] / s[k]);
      }
      expect(got * r[n]).toBeCloseTo(want, 5);
    }
    const norm = Float32Array.from(x);
    applyTransforms(norm, [cols], [{ op: 'divide', by: 's' }], scales);
    for (let k = 0; k < cols; k++) expect(norm[k]).toBe(Math.fround(x[k] / s[k]));
    expect(() => applyTransforms(norm, [cols], [{ op: 'divide', by: 'r' }], scales)).toThrow(/divide needs 13 scales from r, got 9/);
  });

  it('scales survive base64', () => {
    const s = seededFloats(33, 5, 3);
    expect(decodeScales(encodeScales(s))).toEqual(s);
  });
});
