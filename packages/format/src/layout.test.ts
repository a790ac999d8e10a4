import { describe, expect, it } from 'vitest';
import { seededFloats } from '@ie/testing';
import { f32ToF16Bits } from './dtype.js';
import { blockedUnitOffset, quantGeometry, reorderBlockedK, tensorByteSize, transposeBytes, type QuantSpec } from './layout.js';
import { applyLayout, decodeTensor, encodeFloat, removeLayout, type TensorDescriptor } from './tensor.js';

const q = (over: Partial<QuantSpec>): QuantSpec => ({
  scheme: 'symmetric',
  granularity: 'per_group',
  group_size: 64,
  scale_dtype: 'f16',
  scales_offset: 0,
  zeros_offset: null,
  ...over,
});

describe('quantGeometry', () => {
  it('sizes q4 planes with padded last groups and 64-byte plane alignment', () => {
    const g = quantGeometry('q4', 3, 100, q({}));
    expect([g.groupsPerRow, g.quantRowBytes, g.quantBytes, g.scalesOffset, g.scaleBytes, g.totalBytes]).toEqual([
      2,
      64,
      192n,
      192n,
      12n,
      204n,
    ]);
    const a = quantGeometry('q4', 3, 100, q({ scheme: 'affine', scale_dtype: 'f32' }));
    expect([a.scalesOffset, a.scaleBytes, a.zerosOffset, a.zeroBytes, a.totalBytes]).toEqual([192n, 24n, 256n, 6n, 262n]);
  });

  it('sizes i8 per-row and per-group planes', () => {
    const r = quantGeometry('i8', 5, 7, q({ granularity: 'per_row', group_size: 7, scale_dtype: 'f32' }));
    expect([r.groupsPerRow, r.quantRowBytes, r.quantBytes, r.scalesOffset, r.totalBytes]).toEqual([1, 7, 35n, 64n, 84n]);
    const g = quantGeometry('i8', 2, 33, q({ group_size: 32 }));
    expect([g.groupsPerRow, g.quantRowBytes, g.quantBytes, g.scalesOffset, g.totalBytes]).toEqual([2, 64, 128n, 128n, 136n]);
  });

  it('computes sizes in BigInt so huge shapes do not overflow', () => {
    expect(tensorByteSize('f32', [2 ** 30, 2 ** 30], null)).toBe(2n ** 62n);
  });
});

describe('blocked-K and pretranspose', () => {
  it('places unit (row, u) at panel-major offsets and inverts exactly', () => {
    const grid = { rows: 3, unitsPerRow: 5, unitBytes: 2, unitCols: 64 };
    // blockK 128 = 2 units per panel: panels of widths 2, 2, 1.
    expect(blockedUnitOffset(grid, 128, 0, 0)).toBe(0);
    expect(blockedUnitOffset(grid, 128, 1, 0)).toBe(2 * 2);
    expect(blockedUnitOffset(grid, 128, 0, 2)).toBe(6 * 2);
    expect(blockedUnitOffset(grid, 128, 2, 4)).toBe((12 + 2) * 2);
    const src = new Uint8Array(30).map((_, i) => i + 1);
    const b = reorderBlockedK(src, grid, 128);
    expect(Array.from(b.subarray(0, 4))).toEqual([1, 2, 3, 4]); // row 0 units 0..1
    expect(Array.from(b.subarray(4, 8))).toEqual([11, 12, 13, 14]); // row 1 units 0..1
    expect(reorderBlockedK(b, grid, 128, true)).toEqual(src);
  });

  it('transposes element-wise for 1-, 2- and 4-byte elements', () => {
    for (const eb of [1, 2, 4]) {
      const rows = 67;
      const cols = 45;
      const src = new Uint8Array(rows * cols * eb).map((_, i) => (i * 7 + 3) & 255);
      const t = transposeBytes(src, rows, cols, eb);
      for (const [r, c] of [
        [0, 0],
        [5, 44],
        [66, 3],
      ]) {
        expect(Array.from(t.subarray((c * rows + r) * eb, (c * rows + r + 1) * eb))).toEqual(
          Array.from(src.subarray((r * cols + c) * eb, (r * cols + c + 1) * eb)),
        );
      }
      expect(transposeBytes(t, cols, rows, eb)).toEqual(src);
    }
  });

  it('decodes the same values from every layout of a float tensor', () => {
    const rows = 37;
    const cols = 200;
    const values = seededFloats(rows * cols, 11);
    for (const dtype of ['f32', 'f16', 'bf16'] as const) {
      const rm = encodeFloat(values, dtype);
      const base: TensorDescriptor = { dtype, shape: [rows, cols], layout: { order: 'row_major', block_k: 0 }, quant: null };
      const ref = decodeTensor(base, rm);
      for (const layout of [
        { order: 'pretransposed' as const, block_k: 0 },
        { order: 'row_major' as const, block_k: 64 },
        { order: 'row_major' as const, block_k: 128 },
      ]) {
        const t = { ...base, layout };
        const stored = applyLayout(t, rm);
        expect(stored).not.toEqual(rm);
        expect(removeLayout(t, stored)).toEqual(rm);
        expect(decodeTensor(t, stored)).toEqual(ref);
      }
    }
  });
});

describe('reference decoder (the spec, executable)', () => {
  it('decodes q4 symmetric: byte j holds element j (low nibble) and j + G/2 (high nibble), value (q - 8) * scale', () => {
    // One row, K = 40 with G = 32: two groups, the second padded (8 real elements).
    const t: TensorDescriptor = { dtype: 'q4', shape: [1, 40], layout: { order: 'row_major', block_k: 0 }, quant: q({ group_size: 32 }) };
    const bytes = new Uint8Array(Number(tensorByteSize('q4', [1, 40], t.quant)));
    expect(bytes.length).toBe(64 + 4);
    for (let j = 0; j < 16; j++) bytes[j] = (j & 15) | ((15 - j) << 4); // group 0
    for (let j = 0; j < 16; j++) bytes[16 + j] = 8 | (8 << 4); // group 1: all zero codes...
    bytes[16] = 3 | (8 << 4); // ...but element 32 = (3 - 8) * s1
    const dv = new DataView(bytes.buffer);
    dv.setUint16(64, f32ToF16Bits(0.5), true);
    dv.setUint16(66, f32ToF16Bits(-2), true);
    const v = decodeTensor(t, bytes);
    expect(v[0]).toBe((0 - 8) * 0.5);
    expect(v[5]).toBe((5 - 8) * 0.5);
    expect(v[16]).toBe((15 - 8) * 0.5); // high nibble of byte 0
    expect(v[31]).toBe((0 - 8) * 0.5); // high nibble of byte 15
    expect(v[32]).toBe((3 - 8) * -2);
    expect(Math.abs(v[39])).toBe(0); // padding decodes to (8 - 8) * s
  });

  it('decodes q4 affine with per-group zero points and i8 with per-row scales', () => {
    const qa = q({ scheme: 'affine', group_size: 32, scale_dtype: 'f32' });
    const ta: TensorDescriptor = { dtype: 'q4', shape: [2, 32], layout: { order: 'row_major', block_k: 0 }, quant: qa };
    const g = quantGeometry('q4', 2, 32, qa);
    const b = new Uint8Array(Number(g.totalBytes));
    b[0] = 0x21; // row 0: element 0 = 1, element 16 = 2
    b[16] = 0xf0; // row 1: element 0 = 0, element 16 = 15
    const dv = new DataView(b.buffer);
    dv.setFloat32(Number(g.scalesOffset), 0.25, true);
    dv.setFloat32(Number(g.scalesOffset) + 4, 3, true);
    b[Number(g.zerosOffset)] = 1;
    b[Number(g.zerosOffset) + 1] = 4;
    const v = decodeTensor(ta, b);
    expect([v[0], v[16], v[32], v[48]]).toEqual([(1 - 1) * 0.25, (2 - 1) * 0.25, (0 - 4) * 3, (15 - 4) * 3]);

    const qi = q({ granularity: 'per_row', group_size: 3, scale_dtype: 'f32' });
    const gi = quantGeometry('i8', 2, 3, qi);
    const bi = new Uint8Array(Number(gi.totalBytes));
    new Int8Array(bi.buffer).set([1, -2, 127, -127, 0, 5]);
    new DataView(bi.buffer).setFloat32(64, 0.5, true);
    new DataView(bi.buffer).setFloat32(68, 2, true);
    expect(Array.from(decodeTensor({ dtype: 'i8', shape: [2, 3], layout: { order: 'row_major', block_k: 0 }, quant: qi }, bi))).toEqual([
      0.5, -1, 63.5, -254, 0, 10,
    ]);
  });
});
