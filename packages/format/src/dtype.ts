/**
 * f16 and bf16 codecs. Encoding rounds to nearest, ties to even; NaN stays NaN
 * (made quiet), ±Inf stays ±Inf, values beyond the target range become ±Inf.
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The IEEE binary16 bits of `x`, rounded to nearest even. */
export function f32ToF16Bits(x: number): number {
  f32[0] = x;
  return f32BitsToF16Bits(u32[0]);
}

function f32BitsToF16Bits(u: number): number {
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  const mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    const m = mant | 0x800000;
    const shift = 14 - e;
    let h = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1) !== 0)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) !== 0)) h++;
  return sign | h;
}

let f16Table: Float32Array | undefined;
/** All 65536 f16 values decoded, built once on first use (256 KiB). */
function f16DecodeTable(): Float32Array {
  if (f16Table) return f16Table;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const e = (h >>> 10) & 0x1f;
    const m = h & 0x3ff;
    if (e === 0) t[h] = sign * m * 2 ** -24;
    else if (e === 31) t[h] = m !== 0 ? NaN : sign * Infinity;
    else t[h] = sign * (1 + m / 1024) * 2 ** (e - 15);
  }
  // NaN payloads: keep the quiet bit pattern rather than JS's canonical NaN.
  const tu = new Uint32Array(t.buffer);
  for (let h = 0; h < 65536; h++) {
    if (((h >>> 10) & 0x1f) === 31 && (h & 0x3ff) !== 0) tu[h] = ((h & 0x8000) << 16) | 0x7f800000 | ((h & 0x3ff) << 13) | 0x400000;
  }
  f16Table = t;
  return t;
}

export function f16BitsToF32(h: number): number {
  return f16DecodeTable()[h & 0xffff];
}

/** The bfloat16 bits of `x`, rounded to nearest even. */
export function f32ToBf16Bits(x: number): number {
  f32[0] = x;
  return f32BitsToBf16Bits(u32[0]);
}

function f32BitsToBf16Bits(u: number): number {
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) | 0x40) & 0xffff;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

export function bf16BitsToF32(h: number): number {
  u32[0] = (h & 0xffff) << 16;
  return f32[0];
}

function checkLengths(a: { length: number }, b: { length: number }): void {
  if (a.length !== b.length) throw new RangeError(`codec: source has ${a.length} elements, destination ${b.length}`);
}

export function encodeF16(src: Float32Array, dst: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  checkLengths(src, dst);
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < bits.length; i++) dst[i] = f32BitsToF16Bits(bits[i]);
  return dst;
}

export function decodeF16(src: Uint16Array, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  checkLengths(src, dst);
  const t = f16DecodeTable();
  for (let i = 0; i < src.length; i++) dst[i] = t[src[i]];
  return dst;
}

export function encodeBf16(src: Float32Array, dst: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  checkLengths(src, dst);
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < bits.length; i++) dst[i] = f32BitsToBf16Bits(bits[i]);
  return dst;
}

export function decodeBf16(src: Uint16Array, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  checkLengths(src, dst);
  const out = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
  for (let i = 0; i < src.length; i++) out[i] = src[i] << 16;
  return dst;
}
