/**
 * Packers for llama.cpp's block formats (q4_k, q5_k, q6_k, iq4_nl; docs/iebin.md "Block dtypes"),
 * so ie can write the K-quant GGUF files people download (`ie synth --format gguf --dtype q4_k_m`)
 * and compare itself with llama.cpp on them. Each scale is fitted by least squares over its
 * codes (a few alternating rounds: codes for a scale, then the scale for those codes), then the
 * codes are recomputed against the scales exactly as they are stored (f16 super-scales times
 * 6- or 8-bit sub-scales), so what a decoder reads back is the best this packer found.
 */
import { BLOCK_FORMATS, IQ4_NL_LEVELS, f16BitsToF32, f32ToF16Bits, quantizeMxfp4, type BlockDtype } from '@ie/format';
import { QuantError } from '../errors.js';

const fr = Math.fround;
const clamp = (v: number, lo: number, hi: number) => (v < lo ? lo : v > hi ? hi : v);
const asF16 = (v: number) => f16BitsToF32(f32ToF16Bits(v));

/** Fits x[at..at + 32) ≈ s * q - m (q in 0..L, s > 0, m >= 0); returns [s, m]. */
function fitScaleMin(x: Float32Array, at: number, L: number): [number, number] {
  const n = 32;
  let lo = 0;
  let hi = 0;
  for (let i = at; i < at + n; i++) {
    if (x[i] < lo) lo = x[i];
    if (x[i] > hi) hi = x[i];
  }
  if (hi === lo) return [0, -lo];
  let s = (hi - lo) / L;
  let m = -lo;
  let best: [number, number] = [s, m];
  let bestErr = Infinity;
  for (let round = 0; round < 4; round++) {
    let sq = 0;
    let sqq = 0;
    let sx = 0;
    let sqx = 0;
    let err = 0;
    const inv = 1 / s;
    for (let i = at; i < at + n; i++) {
      const v = x[i];
      const q = clamp(Math.round((v + m) * inv), 0, L);
      const e = v - (s * q - m);
      err += e * e;
      sq += q;
      sqq += q * q;
      sx += v;
      sqx += q * v;
    }
    if (err < bestErr) {
      bestErr = err;
      best = [s, m];
    }
    // Least squares of x on q: slope s, intercept -m (kept <= 0).
    const det = n * sqq - sq * sq;
    if (det <= 0) break;
    let ns = (n * sqx - sq * sx) / det;
    let nm = -(sx - ns * sq) / n;
    if (nm < 0) {
      nm = 0;
      ns = sqq > 0 ? sqx / sqq : ns;
    }
    if (!(ns > 0)) break;
    s = ns;
    m = nm;
  }
  return best;
}

function packK45(x: Float32Array, bits: 4 | 5): Uint8Array {
  const { bytes } = BLOCK_FORMATS[bits === 4 ? 'q4_k' : 'q5_k'];
  const L = (1 << bits) - 1;
  const nb = x.length / 256;
  const out = new Uint8Array(nb * bytes);
  const dv = new DataView(out.buffer);
  const s = new Float64Array(8);
  const m = new Float64Array(8);
  const sc = new Uint8Array(8);
  const mn = new Uint8Array(8);
  for (let b = 0; b < nb; b++) {
    const v = x.subarray(256 * b, 256 * b + 256);
    let smax = 0;
    let mmax = 0;
    for (let j = 0; j < 8; j++) {
      [s[j], m[j]] = fitScaleMin(x, 256 * b + 32 * j, L);
      smax = Math.max(smax, s[j]);
      mmax = Math.max(mmax, m[j]);
    }
    const d = asF16(smax / 63);
    const dmin = asF16(mmax / 63);
    for (let j = 0; j < 8; j++) {
      sc[j] = d > 0 ? clamp(Math.round(s[j] / d), 0, 63) : 0;
      mn[j] = dmin > 0 ? clamp(Math.round(m[j] / dmin), 0, 63) : 0;
    }
    const o = b * bytes;
    dv.setUint16(o, f32ToF16Bits(d), true);
    dv.setUint16(o + 2, f32ToF16Bits(dmin), true);
    // 6-bit scales and mins: j < 4 in the low 6 bits of bytes j / j + 4; j >= 4 split into a low
    // nibble (byte j + 4) and two high bits (the top of bytes j - 4 / j).
    for (let j = 0; j < 4; j++) {
      out[o + 4 + j] = sc[j] | ((sc[j + 4] >> 4) << 6);
      out[o + 8 + j] = mn[j] | ((mn[j + 4] >> 4) << 6);
      out[o + 12 + j] = (sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4);
    }
    const qh = o + 16;
    const qs = o + (bits === 5 ? 48 : 16);
    for (let j = 0; j < 8; j++) {
      const ds = fr(d * sc[j]);
      const dm = fr(dmin * mn[j]);
      const ids = ds > 0 ? 1 / ds : 0;
      for (let l = 0; l < 32; l++) {
        const q = clamp(Math.round((v[32 * j + l] + dm) * ids), 0, L);
        out[qs + 32 * (j >> 1) + l] |= (q & 15) << (j & 1 ? 4 : 0);
        if (bits === 5 && q & 16) out[qh + l] |= 1 << j;
      }
    }
  }
  return out;
}

const Q6_TARGETS = [-32, -31.5, -31, -30.5, -30, -29, 31, 30.5, 30];

/**
 * Fits x[at..at + 16) ≈ s * q (q in -32..31, s of either sign); returns s. Each candidate maps the
 * largest magnitude onto a level near an end, rounds, and refits s to those codes by least
 * squares, whose error is then sum x^2 - (sum q x)^2 / sum q^2 without a second pass.
 */
function fitQ6(x: Float32Array, at: number): number {
  let vmax = 0;
  let sxx = 0;
  for (let i = at; i < at + 16; i++) {
    if (Math.abs(x[i]) > Math.abs(vmax)) vmax = x[i];
    sxx += x[i] * x[i];
  }
  if (vmax === 0) return 0;
  let best = 0;
  let bestErr = Infinity;
  for (const c of Q6_TARGETS) {
    const inv = c / vmax;
    let sqq = 0;
    let sqx = 0;
    for (let i = at; i < at + 16; i++) {
      const q = clamp(Math.round(x[i] * inv), -32, 31);
      sqq += q * q;
      sqx += q * x[i];
    }
    if (sqq === 0) continue;
    const err = sxx - (sqx * sqx) / sqq;
    if (err < bestErr) {
      bestErr = err;
      best = sqx / sqq;
    }
  }
  return best;
}

function packQ6(x: Float32Array): Uint8Array {
  const nb = x.length / 256;
  const out = new Uint8Array(nb * 210);
  const dv = new DataView(out.buffer);
  const q = new Uint8Array(256);
  const s = new Float64Array(16);
  const sc = new Int8Array(16);
  for (let b = 0; b < nb; b++) {
    const v = x.subarray(256 * b, 256 * b + 256);
    let amax = 0;
    for (let g = 0; g < 16; g++) {
      s[g] = fitQ6(x, 256 * b + 16 * g);
      amax = Math.max(amax, Math.abs(s[g]));
    }
    const d = asF16(amax / 127);
    for (let g = 0; g < 16; g++) sc[g] = d > 0 ? clamp(Math.round(s[g] / d), -128, 127) : 0;
    for (let g = 0; g < 16; g++) {
      const ds = fr(d * sc[g]);
      const ids = ds !== 0 ? 1 / ds : 0;
      for (let i = 16 * g; i < 16 * g + 16; i++) q[i] = clamp(Math.round(v[i] * ids), -32, 31) + 32;
    }
    const o = b * 210;
    // Element 128h + 32k + l: low nibble in ql[64h + l + 32(k & 1)] (high half of the byte for k >= 2), top two bits in qh[32h + l] at bit 2k.
    for (let h = 0; h < 2; h++)
      for (let l = 0; l < 32; l++) {
        const e = (k: number) => q[128 * h + 32 * k + l];
        out[o + 64 * h + l] = (e(0) & 15) | ((e(2) & 15) << 4);
        out[o + 64 * h + l + 32] = (e(1) & 15) | ((e(3) & 15) << 4);
        out[o + 128 + 32 * h + l] = (e(0) >> 4) | ((e(1) >> 4) << 2) | ((e(2) >> 4) << 4) | ((e(3) >> 4) << 6);
      }
    for (let g = 0; g < 16; g++) out[o + 192 + g] = sc[g] & 255;
    dv.setUint16(o + 208, f32ToF16Bits(d), true);
  }
  return out;
}

// The midpoints between neighbouring IQ4_NL levels, and for each integer floor(t) + 128 the level
// nearest to it: the answer for any t is that one or a neighbour, settled by two comparisons.
const LEVELS = Int8Array.from(IQ4_NL_LEVELS);
const MIDPOINTS = Float64Array.from({ length: 16 }, (_, i) => (i < 15 ? (LEVELS[i] + LEVELS[i + 1]) / 2 : Infinity));
const NEAREST = Uint8Array.from({ length: 256 }, (_, i) => {
  let c = 0;
  while (c < 15 && i - 128 > MIDPOINTS[c]) c++;
  return c;
});

/** The index of the IQ4_NL level nearest to t (ties to the lower level). */
function nearestLevel(t: number): number {
  const f = Math.floor(t);
  let c = NEAREST[f < -128 ? 0 : f > 127 ? 255 : f + 128];
  if (t > MIDPOINTS[c]) c++;
  else if (c > 0 && t <= MIDPOINTS[c - 1]) c--;
  return c;
}

function packIq4Nl(x: Float32Array): Uint8Array {
  const nb = x.length / 32;
  const out = new Uint8Array(nb * 18);
  const dv = new DataView(out.buffer);
  for (let b = 0; b < nb; b++) {
    const at = 32 * b;
    let vmax = 0;
    let sxx = 0;
    for (let i = at; i < at + 32; i++) {
      if (Math.abs(x[i]) > Math.abs(vmax)) vmax = x[i];
      sxx += x[i] * x[i];
    }
    let best = 0;
    let bestErr = Infinity;
    // The largest value on or near an end level, then the scale refitted by least squares to the
    // codes that gives (its error sum x^2 - (sum l x)^2 / sum l^2, no second pass).
    for (let t = -4; t <= 4 && vmax !== 0; t++) {
      const id = (-127 + t) / vmax;
      let sll = 0;
      let slx = 0;
      for (let i = at; i < at + 32; i++) {
        const l = LEVELS[nearestLevel(x[i] * id)];
        sll += l * l;
        slx += l * x[i];
      }
      const err = sxx - (slx * slx) / sll;
      if (err < bestErr) {
        bestErr = err;
        best = slx / sll;
      }
    }
    const d = asF16(best);
    dv.setUint16(18 * b, f32ToF16Bits(d), true);
    const id = d !== 0 ? 1 / d : 0;
    for (let j = 0; j < 32; j++) {
      const code = d !== 0 ? nearestLevel(x[at + j] * id) : 8;
      out[18 * b + 2 + (j & 15)] |= code << (j < 16 ? 0 : 4);
    }
  }
  return out;
}

/**
 * `values` (row-major, rows of whole blocks) as `dtype` blocks, llama.cpp's layout byte for byte.
 * Throws QUANT_BAD_PARAMS when a row is not a whole number of blocks.
 */
export function packBlocks(dtype: BlockDtype, values: Float32Array, rows: number, cols: number): Uint8Array {
  const f = BLOCK_FORMATS[dtype];
  if (!f) throw new QuantError('QUANT_BAD_PARAMS', `unknown block dtype ${JSON.stringify(dtype)}`);
  if (cols % f.elems !== 0)
    throw new QuantError(
      'QUANT_BAD_PARAMS',
      `a ${dtype} row is whole ${f.elems}-element blocks; this matrix has ${cols} columns (pick a type whose block divides it, such as q8_0)`,
    );
  if (values.length !== rows * cols)
    throw new QuantError('QUANT_BAD_PARAMS', `expected ${rows * cols} values for [${rows}, ${cols}], got ${values.length}`);
  switch (dtype) {
    case 'q4_k':
      return packK45(values, 4);
    case 'q5_k':
      return packK45(values, 5);
    case 'q6_k':
      return packQ6(values);
    case 'mxfp4':
      // @ie/format's quantizer: synthetic gpt-oss models use the same one (format cannot depend on quant).
      return quantizeMxfp4(values);
    default:
      return packIq4Nl(values);
  }
}
