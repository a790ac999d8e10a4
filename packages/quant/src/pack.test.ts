import { describe, expect, it } from 'vitest';
import { decodeTensor, f16BitsToF32, splitBlocks, type QuantParams } from '@ie/format';
import { firstDifference, quantizeQ4_0, quantizeQ8_0, sameBytes, seededFloats } from '@ie/testing';
import { QuantError } from './errors.js';
import { packInt4Groupwise, packInt8, unpackInt4Groupwise, unpackInt8 } from './pack.js';

const desc = (dtype: 'i8' | 'q4', rows: number, cols: number, quant: QuantParams) => ({
  dtype,
  shape: [rows, cols],
  layout: { order: 'row_major' as const, block_k: 0 },
  quant: { ...quant, scales_offset: 0, zeros_offset: null },
});

/** Heavy-tailed seeded weights: uniform plus a few outliers, never zeros. */
function weights(n: number, seed: number): Float32Array {
  const v = seededFloats(n, seed, 0.05);
  for (let i = 0; i < n; i += 97) v[i] *= 8;
  return v;
}

describe('llama.cpp compatibility', () => {
  it('symmetric q4, group 32, f16 scales is quantize_row_q4_0_ref byte for byte', () => {
    const rows = 9;
    const cols = 96;
    const v = weights(rows * cols, 1);
    const p = packInt4Groupwise(v, rows, cols, { scheme: 'symmetric', groupSize: 32, scaleDtype: 'f16' });
    expect(sameBytes(p.bytes, splitBlocks(quantizeQ4_0(v), 16))).toBe(true);
  });

  it('per-group i8, group 32, f16 scales is quantize_row_q8_0_ref byte for byte', () => {
    const v = weights(5 * 64, 2);
    const p = packInt8(v, 5, 64, { granularity: 'per_group', groupSize: 32, scaleDtype: 'f16' });
    expect(sameBytes(p.bytes, splitBlocks(quantizeQ8_0(v), 32))).toBe(true);
  });
});

describe('pack, unpack and the reference decoder agree at odd sizes', () => {
  const shapes: Array<[number, number]> = [
    [1, 1],
    [3, 33],
    [7, 100],
    [5, 200],
    [2, 129],
  ];
  for (const [rows, cols] of shapes) {
    for (const G of [32, 64, 128]) {
      for (const scheme of ['symmetric', 'affine'] as const) {
        for (const scaleDtype of ['f16', 'bf16', 'f32'] as const) {
          it(`q4 ${scheme} g${G} ${scaleDtype} ${rows}x${cols}`, () => {
            const v = weights(rows * cols, rows * 1000 + cols + G);
            const p = packInt4Groupwise(v, rows, cols, { scheme, groupSize: G, scaleDtype });
            const u = unpackInt4Groupwise(p.bytes, rows, cols, p.quant);
            const deq = new Float32Array(rows * cols);
            const gpr = Math.ceil(cols / G);
            for (let r = 0; r < rows; r++) {
              for (let k = 0; k < cols; k++) {
                const gi = r * gpr + Math.floor(k / G);
                const s = u.scales[gi];
                const x = (u.codes[r * cols + k] - u.zeros[gi]) * s;
                deq[r * cols + k] = x;
                // RTN error: half a step, a whole step where symmetric clamps code 16 to 15.
                const bound = (scheme === 'symmetric' ? 1 : 0.5) * Math.abs(s) * (1 + 1e-6) + 1e-12;
                expect(Math.abs(x - v[r * cols + k])).toBeLessThanOrEqual(bound + Math.abs(v[r * cols + k]) * 2 ** -7);
              }
            }
            expect(firstDifference(decodeTensor(desc('q4', rows, cols, p.quant), p.bytes), deq)).toBeNull();
            // Padding past K holds the zero code, so it decodes to exactly 0.
            if (cols % G !== 0) {
              const tail = (cols % G) as number;
              const byteIdx = (gpr - 1) * (G / 2) + (tail % (G / 2));
              const nib = tail < G / 2 ? p.bytes[byteIdx] & 15 : p.bytes[byteIdx] >> 4;
              expect(nib).toBe(u.zeros[gpr - 1]);
            }
          });
        }
      }
      it(`i8 per-group g${G} ${rows}x${cols}`, () => {
        const v = weights(rows * cols, rows + cols * 7 + G);
        const p = packInt8(v, rows, cols, { granularity: 'per_group', groupSize: G, scaleDtype: 'bf16' });
        const u = unpackInt8(p.bytes, rows, cols, p.quant);
        const gpr = Math.ceil(cols / G);
        const deq = Array.from(u.codes, (c, i) => c * u.scales[Math.floor(i / cols) * gpr + Math.floor((i % cols) / G)]);
        expect(firstDifference(decodeTensor(desc('i8', rows, cols, p.quant), p.bytes), Float32Array.from(deq))).toBeNull();
      });
    }
    it(`i8 per-row ${rows}x${cols}`, () => {
      const v = weights(rows * cols, rows * 3 + cols);
      const p = packInt8(v, rows, cols, { granularity: 'per_row', scaleDtype: 'f32' });
      expect(p.quant.group_size).toBe(cols);
      const u = unpackInt8(p.bytes, rows, cols, p.quant);
      for (let i = 0; i < v.length; i++) {
        const s = u.scales[Math.floor(i / cols)];
        expect(Math.abs(u.codes[i] * s - v[i])).toBeLessThanOrEqual(s * 0.5 * (1 + 1e-6));
      }
      expect(Math.max(...Array.from(u.codes, Math.abs))).toBe(127); // the largest weight of some row uses the full range
    });
  }
});

describe('byte layout by hand', () => {
  it('packs one symmetric q4 group of 32 as the spec says', () => {
    // x_j = j - 16 for j < 32: the largest magnitude is -16, scale = -16 / -8 = 2.
    const v = Float32Array.from({ length: 32 }, (_, j) => j - 16);
    const p = packInt4Groupwise(v, 1, 32, { scheme: 'symmetric', groupSize: 32, scaleDtype: 'f16' });
    expect(p.bytes.length).toBe(64 + 2);
    expect(f16BitsToF32(p.bytes[64] | (p.bytes[65] << 8))).toBe(2);
    // code = floor(x/2 + 8.5): element j in the low nibble of byte j, element j + 16 in its high nibble.
    const code = (x: number) => Math.min(15, Math.floor(x / 2 + 8.5));
    for (let j = 0; j < 16; j++) expect(p.bytes[j]).toBe(code(j - 16) | (code(j) << 4));
  });
});

describe('errors', () => {
  it('refuses non-finite weights, bad group sizes and wrong lengths with codes', () => {
    const v = new Float32Array(64).fill(0.5);
    v[37] = NaN;
    expect(() => packInt4Groupwise(v, 2, 32, { scheme: 'symmetric', groupSize: 32 })).toThrow(
      expect.objectContaining({ code: 'QUANT_NON_FINITE', message: expect.stringContaining('row 1, col 5') }),
    );
    expect(() => packInt4Groupwise(new Float32Array(64), 1, 64, { scheme: 'symmetric', groupSize: 48 })).toThrow(QuantError);
    expect(() => packInt8(new Float32Array(10), 3, 3, { granularity: 'per_row' })).toThrow(
      expect.objectContaining({ code: 'QUANT_BAD_SHAPE' }),
    );
    expect(() =>
      unpackInt8(new Uint8Array(3), 1, 32, { scheme: 'symmetric', granularity: 'per_row', group_size: 32, scale_dtype: 'f16' }),
    ).toThrow(expect.objectContaining({ code: 'QUANT_BAD_PACKED' }));
  });

  it('refuses options outside the spec by name, and values that are not a Float32Array', () => {
    const v = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i * 0.7));
    const refused = (f: () => unknown, field: string, what: string) =>
      expect(f).toThrow(expect.objectContaining({ code: 'QUANT_BAD_PARAMS', field, message: expect.stringContaining(what) }));
    // Each would otherwise be written into the tensor's quant record as given.
    refused(() => packInt8(v, 2, 32, { granularity: 'per_block' as 'per_row' }), 'granularity', '"per_block"');
    refused(() => packInt8(v, 2, 32, { granularity: 'per_row', scaleDtype: 'f64' as 'f32' }), 'scaleDtype', '"f64"');
    refused(() => packInt8(v, 2, 32, {} as never), 'granularity', 'per_row or per_group');
    refused(() => packInt4Groupwise(v, 2, 32, { scheme: 'asymmetric' as 'affine', groupSize: 32 }), 'scheme', '"asymmetric"');
    refused(() => packInt4Groupwise(v, 2, 32, { scheme: 'affine', groupSize: 32, scaleDtype: 'e8m0' as 'f16' }), 'scaleDtype', '"e8m0"');
    refused(() => packInt4Groupwise(v, 2, 32, null as never), 'options', 'got null');
    expect(() => packInt8(Array.from(v) as never, 2, 32, { granularity: 'per_row' })).toThrow(
      expect.objectContaining({ code: 'QUANT_BAD_SHAPE', message: expect.stringContaining('Float32Array') }),
    );
  });

  it('packs an all-zero group to scale 0 and zero codes', () => {
    const p = packInt4Groupwise(new Float32Array(32), 1, 32, { scheme: 'affine', groupSize: 32, scaleDtype: 'f32' });
    expect(Array.from(decodeTensor(desc('q4', 1, 32, p.quant), p.bytes)).every((x) => x === 0)).toBe(true);
  });
});
