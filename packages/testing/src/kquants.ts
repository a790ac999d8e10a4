/**
 * Quantizers of our own for ggml's K-quant (Q4_K, Q5_K, Q6_K) and IQ4_NL blocks, for test
 * fixtures: simple min/max fits, not llama.cpp's search, but they write valid blocks in ggml's
 * exact layout (the scale packing follows get_scale_min_k4's inverse). With them, tests make
 * GGUF files whose every value is known, then check the importer, the decoder and the kernels
 * against the dequantization formulas.
 */
import { refF16BitsToF32, refF32ToF16Bits } from './ggml.js';

const fr = Math.fround;
const clamp = (v: number, lo: number, hi: number) => Math.max(lo, Math.min(hi, v));
/** A value as the f16 it will be stored as. */
const asF16 = (v: number) => refF16BitsToF32(refF32ToF16Bits(v));

/** The 12 scale bytes of a q4_k / q5_k block from 8 six-bit scales and 8 six-bit mins. */
export function packKScales(sc: number[], m: number[]): Uint8Array {
  const out = new Uint8Array(12);
  for (let j = 0; j < 4; j++) {
    out[j] = sc[j] | ((sc[j + 4] >> 4) << 6);
    out[j + 4] = m[j] | ((m[j + 4] >> 4) << 6);
    out[j + 8] = (sc[j + 4] & 15) | ((m[j + 4] & 15) << 4);
  }
  return out;
}

/** Q4_K (bits 4) or Q5_K (bits 5) blocks of x (length a multiple of 256). */
function quantizeK(x: Float32Array, bits: 4 | 5): Uint8Array {
  const bs = bits === 4 ? 144 : 176;
  const levels = (1 << bits) - 1;
  const nb = x.length / 256;
  const out = new Uint8Array(nb * bs);
  for (let b = 0; b < nb; b++) {
    const v = x.subarray(256 * b, 256 * (b + 1));
    const scale = new Array<number>(8);
    const min = new Array<number>(8);
    for (let s = 0; s < 8; s++) {
      let lo = 0;
      let hi = 0;
      for (let l = 0; l < 32; l++) {
        lo = Math.min(lo, v[32 * s + l]);
        hi = Math.max(hi, v[32 * s + l]);
      }
      scale[s] = (hi - lo) / levels;
      min[s] = -lo;
    }
    const d = asF16(Math.max(...scale) / 63);
    const dmin = asF16(Math.max(...min) / 63);
    const sc = scale.map((s) => (d > 0 ? clamp(Math.round(s / d), 0, 63) : 0));
    const m = min.map((s) => (dmin > 0 ? clamp(Math.round(s / dmin), 0, 63) : 0));
    const o = b * bs;
    const dv = new DataView(out.buffer, out.byteOffset);
    dv.setUint16(o, refF32ToF16Bits(d), true);
    dv.setUint16(o + 2, refF32ToF16Bits(dmin), true);
    out.set(packKScales(sc, m), o + 4);
    const qh = o + 16;
    const qs = o + (bits === 5 ? 48 : 16);
    for (let s = 0; s < 8; s++) {
      const ds = fr(d * sc[s]);
      const dm = fr(dmin * m[s]);
      for (let l = 0; l < 32; l++) {
        const q = ds > 0 ? clamp(Math.round((v[32 * s + l] + dm) / ds), 0, levels) : 0;
        const j = s >> 1;
        const byte = qs + 32 * j + l;
        out[byte] |= (q & 15) << (s & 1 ? 4 : 0);
        if (bits === 5 && q & 16) out[qh + l] |= 1 << s;
      }
    }
  }
  return out;
}

export const quantizeQ4_K = (x: Float32Array) => quantizeK(x, 4);
export const quantizeQ5_K = (x: Float32Array) => quantizeK(x, 5);

/** Q6_K blocks of x (length a multiple of 256): one int8 scale per 16 elements. */
export function quantizeQ6_K(x: Float32Array): Uint8Array {
  const nb = x.length / 256;
  const out = new Uint8Array(nb * 210);
  const dv = new DataView(out.buffer, out.byteOffset);
  for (let b = 0; b < nb; b++) {
    const v = x.subarray(256 * b, 256 * (b + 1));
    const sub = new Array<number>(16);
    for (let s = 0; s < 16; s++) {
      let amax = 0;
      for (let l = 0; l < 16; l++) amax = Math.max(amax, Math.abs(v[16 * s + l]));
      sub[s] = amax / 31;
    }
    const d = asF16(Math.max(...sub) / 127);
    const sc = sub.map((s) => (d > 0 ? clamp(Math.round(s / d), -128, 127) : 0));
    const o = b * 210;
    const q = new Uint8Array(256);
    for (let i = 0; i < 256; i++) {
      const ds = fr(d * sc[i >> 4]);
      q[i] = ds > 0 ? clamp(Math.round(v[i] / ds) + 32, 0, 63) : 32;
    }
    // Element 128h + 32k + l (k = 0..3) lives in ql[64h + l + 32(k & 1)] (low nibble for k < 2) and qh[32h + l] bits 2k.
    for (let h = 0; h < 2; h++)
      for (let l = 0; l < 32; l++) {
        const e = (k: number) => q[128 * h + 32 * k + l];
        out[o + 64 * h + l] = (e(0) & 15) | ((e(2) & 15) << 4);
        out[o + 64 * h + l + 32] = (e(1) & 15) | ((e(3) & 15) << 4);
        out[o + 128 + 32 * h + l] = (e(0) >> 4) | ((e(1) >> 4) << 2) | ((e(2) >> 4) << 4) | ((e(3) >> 4) << 6);
      }
    for (let s = 0; s < 16; s++) out[o + 192 + s] = sc[s] & 255;
    dv.setUint16(o + 208, refF32ToF16Bits(d), true);
  }
  return out;
}

const IQ4 = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];

/** IQ4_NL blocks of x (length a multiple of 32): the nearest of 16 fixed levels, one f16 scale. */
export function quantizeIQ4_NL(x: Float32Array): Uint8Array {
  const nb = x.length / 32;
  const out = new Uint8Array(nb * 18);
  const dv = new DataView(out.buffer, out.byteOffset);
  for (let b = 0; b < nb; b++) {
    let amax = 0;
    let vmax = 0;
    for (let j = 0; j < 32; j++) {
      const v = x[32 * b + j];
      if (Math.abs(v) > amax) {
        amax = Math.abs(v);
        vmax = v;
      }
    }
    const d = asF16(vmax / -127);
    dv.setUint16(18 * b, refF32ToF16Bits(d), true);
    for (let j = 0; j < 32; j++) {
      let best = 0;
      for (let i = 1; i < 16; i++) if (Math.abs(d * IQ4[i] - x[32 * b + j]) < Math.abs(d * IQ4[best] - x[32 * b + j])) best = i;
      out[18 * b + 2 + (j & 15)] |= best << (j < 16 ? 0 : 4);
    }
  }
  return out;
}

/**
 * The dequantization formulas of ggml (dequantize_row_q4_K / q5_K / q6_K / iq4_nl), written here
 * a second time, element by element, as the oracle the decoder and the kernels are checked against.
 */
export function dequantizeKBlocks(type: 'q4_k' | 'q5_k' | 'q6_k' | 'iq4_nl', b: Uint8Array): Float32Array {
  const f16 = (at: number) => refF16BitsToF32(b[at] | (b[at + 1] << 8));
  if (type === 'iq4_nl') {
    const out = new Float32Array((b.length / 18) * 32);
    for (let i = 0; i < out.length; i++) {
      const blk = Math.floor(i / 32),
        j = i % 32;
      const byte = b[18 * blk + 2 + (j & 15)];
      out[i] = fr(f16(18 * blk) * IQ4[j < 16 ? byte & 15 : byte >> 4]);
    }
    return out;
  }
  if (type === 'q6_k') {
    const out = new Float32Array((b.length / 210) * 256);
    for (let i = 0; i < out.length; i++) {
      const o = 210 * Math.floor(i / 256),
        e = i % 256;
      const h = e >> 7,
        k = (e >> 5) & 3,
        l = e & 31;
      const low = b[o + 64 * h + l + 32 * (k & 1)];
      const q = ((k < 2 ? low & 15 : low >> 4) | (((b[o + 128 + 32 * h + l] >> (2 * k)) & 3) << 4)) - 32;
      const sc = (b[o + 192 + (e >> 4)] << 24) >> 24;
      out[i] = fr(fr(f16(o + 208) * sc) * q);
    }
    return out;
  }
  const bs = type === 'q4_k' ? 144 : 176;
  const out = new Float32Array((b.length / bs) * 256);
  for (let i = 0; i < out.length; i++) {
    const o = bs * Math.floor(i / 256),
      e = i % 256;
    const s = e >> 5,
      j = s >> 1,
      l = e & 31;
    const sb = o + 4;
    const sc = s < 4 ? b[sb + s] & 63 : (b[sb + s + 4] & 15) | ((b[sb + s - 4] >> 6) << 4);
    const m = s < 4 ? b[sb + s + 4] & 63 : (b[sb + s + 4] >> 4) | ((b[sb + s] >> 6) << 4);
    const byte = b[o + (type === 'q5_k' ? 48 : 16) + 32 * j + l];
    let q = s & 1 ? byte >> 4 : byte & 15;
    if (type === 'q5_k' && b[o + 16 + l] & (1 << s)) q += 16;
    out[i] = fr(fr(fr(f16(o) * sc) * q) - fr(f16(o + 2) * m));
  }
  return out;
}
