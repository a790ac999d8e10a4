import { describe, expect, it } from 'vitest';
import { bf16BitsToF32, decodeBf16, decodeF16, encodeBf16, encodeF16, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from './dtype.js';

const isNaNBits16 = (h: number, expBits: number) => (h & expBits) === expBits && (h & ~(expBits | 0x8000) & 0xffff) !== 0;

describe('f16 codec', () => {
  it('round-trips every non-NaN f16 bit pattern', () => {
    let checked = 0;
    for (let h = 0; h < 65536; h++) {
      if (isNaNBits16(h, 0x7c00)) continue;
      expect(f32ToF16Bits(f16BitsToF32(h))).toBe(h);
      checked++;
    }
    expect(checked).toBe(65536 - 2 * 1023);
  });

  it('decodes known values', () => {
    expect(f16BitsToF32(0x3c00)).toBe(1);
    expect(f16BitsToF32(0xc000)).toBe(-2);
    expect(f16BitsToF32(0x7bff)).toBe(65504);
    expect(f16BitsToF32(0x0001)).toBe(2 ** -24);
    expect(f16BitsToF32(0x7c00)).toBe(Infinity);
    expect(f16BitsToF32(0xfc00)).toBe(-Infinity);
    expect(Object.is(f16BitsToF32(0x8000), -0)).toBe(true);
    expect(Number.isNaN(f16BitsToF32(0x7e00))).toBe(true);
  });

  it('rounds every midpoint between neighbours to the even one', () => {
    // The midpoint of two adjacent f16 values needs 12 significant bits: exact in f32.
    for (let h = 0; h < 0x7bff; h++) {
      const lo = f16BitsToF32(h);
      const hi = f16BitsToF32(h + 1);
      const mid = (lo + hi) / 2;
      expect(Math.fround(mid)).toBe(mid);
      const even = h % 2 === 0 ? h : h + 1;
      expect(f32ToF16Bits(mid)).toBe(even);
      expect(f32ToF16Bits(-mid)).toBe(even | 0x8000);
      // Just off the midpoint goes to the nearer neighbour.
      expect(f32ToF16Bits(mid - (hi - lo) / 8)).toBe(h);
      expect(f32ToF16Bits(mid + (hi - lo) / 8)).toBe(h + 1);
    }
  });

  it('keeps NaN and infinities, overflows to infinity, underflows to signed zero', () => {
    expect(isNaNBits16(f32ToF16Bits(NaN), 0x7c00)).toBe(true);
    expect(f32ToF16Bits(Infinity)).toBe(0x7c00);
    expect(f32ToF16Bits(-Infinity)).toBe(0xfc00);
    expect(f32ToF16Bits(65519)).toBe(0x7bff);
    expect(f32ToF16Bits(65520)).toBe(0x7c00); // the midpoint to "65536" rounds to even: infinity
    expect(f32ToF16Bits(1e10)).toBe(0x7c00);
    expect(f32ToF16Bits(2 ** -25)).toBe(0); // tie between 0 and the smallest subnormal
    expect(f32ToF16Bits(1.5 * 2 ** -25)).toBe(1);
    expect(f32ToF16Bits(-1e-30)).toBe(0x8000);
  });

  it('encodes arrays like the scalar path', () => {
    const v = new Float32Array([0.1, -3.75, 1e-6, 70000, NaN, -0]);
    const bits = encodeF16(v);
    expect(Array.from(bits)).toEqual(Array.from(v).map(f32ToF16Bits));
    const back = decodeF16(bits);
    expect(back[1]).toBe(-3.75);
    expect(back[3]).toBe(Infinity);
    expect(Number.isNaN(back[4])).toBe(true);
    expect(() => decodeF16(bits, new Float32Array(2))).toThrow(RangeError);
  });
});

describe('bf16 codec', () => {
  it('round-trips every non-NaN bf16 pattern and rounds midpoints to even', () => {
    for (let h = 0; h < 65536; h++) {
      if (isNaNBits16(h, 0x7f80)) continue;
      const v = bf16BitsToF32(h);
      expect(f32ToBf16Bits(v)).toBe(h);
      if ((h & 0x7fff) < 0x7f7f) {
        const next = bf16BitsToF32(h + 1);
        const mid = (v + next) / 2;
        const even = h % 2 === 0 ? h : h + 1;
        expect(f32ToBf16Bits(mid)).toBe(even);
      }
    }
  });

  it('keeps NaN (quiet) and infinities; overflows past the largest bf16 to infinity', () => {
    expect(isNaNBits16(f32ToBf16Bits(NaN), 0x7f80)).toBe(true);
    // A signalling NaN whose payload sits in the low 16 bits must not become infinity.
    const f = new Float32Array(1);
    new Uint32Array(f.buffer)[0] = 0x7f800001;
    expect(isNaNBits16(encodeBf16(f)[0], 0x7f80)).toBe(true);
    expect(f32ToBf16Bits(Infinity)).toBe(0x7f80);
    expect(f32ToBf16Bits(3.4e38)).toBe(0x7f80);
    expect(decodeBf16(new Uint16Array([0x3f80, 0xc040]))).toEqual(new Float32Array([1, -3]));
  });
});
