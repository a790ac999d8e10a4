/**
 * Round-to-nearest packers for the IEBIN `i8` and `q4` layouts, and their unpackers.
 * They are the only code that writes those bytes. Symmetric q4 with group 32 and f16
 * scales reproduces llama.cpp's `quantize_row_q4_0_ref` byte for byte (scale = the signed
 * value of largest magnitude / -8, code = min(15, floor(x/scale + 8.5)) in f32), and
 * per-group i8 with group 32 reproduces `quantize_row_q8_0_ref`, so ie and llama.cpp can
 * run identical weights.
 */
import {
  GROUP_SIZES,
  Q4_SYMMETRIC_ZERO,
  SCALE_DTYPES,
  f16BitsToF32,
  bf16BitsToF32,
  f32ToBf16Bits,
  f32ToF16Bits,
  quantGeometry,
  type QuantGeometry,
  type QuantParams,
  type ScaleDtype,
} from '@ie/format';
import { QuantError } from './errors.js';

export interface PackedTensor {
  /** Row-major IEBIN bytes (apply a layout with @ie/format's applyLayout). */
  bytes: Uint8Array;
  quant: QuantParams;
}

export interface Int8PackOptions {
  granularity: 'per_row' | 'per_group';
  /** Required for per_group: 32, 64 or 128. */
  groupSize?: number;
  scaleDtype?: ScaleDtype;
  /** Per group (row-major over rows x groups), the fraction of the group's range the scale spans (1 = RTN). */
  clip?: Float32Array;
}

export interface Int4PackOptions {
  scheme: 'symmetric' | 'affine';
  groupSize: number;
  scaleDtype?: ScaleDtype;
  /** Per group (row-major over rows x groups), the fraction of the group's range the scale spans (1 = RTN). */
  clip?: Float32Array;
}

const fr = Math.fround;

/** A scale as the kernels will see it after storage in `dtype`. */
function roundScale(v: number, dtype: ScaleDtype): number {
  if (dtype === 'f32') return fr(v);
  return dtype === 'f16' ? f16BitsToF32(f32ToF16Bits(v)) : bf16BitsToF32(f32ToBf16Bits(v));
}

function writeScale(v: number, dtype: ScaleDtype, out: DataView, at: number): void {
  if (dtype === 'f32') out.setFloat32(at, v, true);
  else out.setUint16(at, dtype === 'f16' ? f32ToF16Bits(v) : f32ToBf16Bits(v), true);
}

/** Which of the three group encodings, and its scale dtype. */
export type GroupKind = 'q4_symmetric' | 'q4_affine' | 'i8';

export interface GroupCodes {
  /** The scale before storage rounding (what is written), and after (what decodes). */
  scale: number;
  stored: number;
  zero: number;
  /** Squared reconstruction error of the group as it decodes. */
  sse: number;
}

/** A group's extremes: the range (containing 0), the largest magnitude and its signed value. */
export interface GroupExtremes {
  lo: number;
  hi: number;
  amax: number;
  signedMax: number;
}

export function groupExtremes(values: Float32Array, src: number, n: number): GroupExtremes {
  let lo = 0;
  let hi = 0;
  let amax = 0;
  let signedMax = 0;
  for (let j = 0; j < n; j++) {
    const v = values[src + j];
    if (v < lo) lo = v;
    if (v > hi) hi = v;
    if (Math.abs(v) > amax) {
      amax = Math.abs(v);
      signedMax = v;
    }
  }
  return { lo, hi, amax, signedMax };
}

/**
 * Quantizes values[src .. src+n) as one group whose scale spans `ratio` of its range, writing
 * codes to `codes[0 .. n)` and measuring the group's reconstruction error. The only definition
 * of the three encodings: packers and the clip search both call it, so what the search
 * measures is what is packed.
 */
export function quantizeGroup(
  kind: GroupKind,
  values: Float32Array,
  src: number,
  n: number,
  ratio: number,
  scaleDtype: ScaleDtype,
  codes: Uint8Array | Int8Array,
  ext: GroupExtremes = groupExtremes(values, src, n),
): GroupCodes {
  let sse = 0;
  if (kind === 'q4_affine') {
    // The range contains 0 so that padding (code = zero) decodes to exactly 0.
    const scale = fr(fr(fr(ext.hi - ext.lo) * ratio) / 15);
    const s = roundScale(scale, scaleDtype);
    const zero = s !== 0 ? Math.max(0, Math.min(15, Math.round(fr(-ext.lo * ratio) / s))) : 0;
    const is = s !== 0 ? 1 / s : 0;
    for (let j = 0; j < n; j++) {
      const x = values[src + j];
      let c = Math.floor(x * is + 0.5) + zero; // Math.round
      if (c < 0) c = 0;
      else if (c > 15) c = 15;
      codes[j] = c;
      const e = x - (c - zero) * s;
      sse += e * e;
    }
    return { scale, stored: s, zero, sse };
  }
  if (kind === 'i8') {
    const d = fr(fr(ext.amax * ratio) / 127);
    const s = roundScale(d, scaleDtype);
    // As quantize_row_q8_0_ref: the unrounded scale's reciprocal, roundf (half away from zero).
    const id = d !== 0 ? fr(1 / d) : 0;
    for (let j = 0; j < n; j++) {
      const x = values[src + j];
      const y = fr(x * id);
      // roundf: half away from zero (truncation of |y| + 0.5 is exact for these magnitudes).
      let c = y >= 0 ? (y + 0.5) | 0 : -((0.5 - y) | 0);
      if (c > 127) c = 127;
      else if (c < -127) c = -127;
      codes[j] = c;
      const e = x - c * s;
      sse += e * e;
    }
    return { scale: d, stored: s, zero: 0, sse };
  }
  // As quantize_row_q4_0_ref: scale = the signed extreme / -8, code = min(15, floor(x/scale + 8.5)).
  const d = fr(fr(ext.signedMax * ratio) / -8);
  const s = roundScale(d, scaleDtype);
  const id = d !== 0 ? fr(1 / d) : 0;
  for (let j = 0; j < n; j++) {
    const x = values[src + j];
    // floor(), clamped below at 0: truncation agrees on every value the clamp keeps.
    let c = fr(fr(x * id) + 8.5) | 0;
    if (c > 15) c = 15;
    else if (c < 0) c = 0;
    codes[j] = c;
    const e = x - (c - Q4_SYMMETRIC_ZERO) * s;
    sse += e * e;
  }
  return { scale: d, stored: s, zero: Q4_SYMMETRIC_ZERO, sse };
}

/**
 * The packers' options come from callers in plain JavaScript too: a value outside the spec's
 * choices would otherwise be written into the tensor's quant record as it is.
 */
function checkOptions(opts: unknown, choices: Record<string, readonly string[]>): void {
  if (typeof opts !== 'object' || opts === null || Array.isArray(opts))
    throw new QuantError('QUANT_BAD_PARAMS', `must be an object, got ${opts === null ? 'null' : typeof opts}`, 'options');
  const o = opts as Record<string, unknown>;
  for (const [key, allowed] of Object.entries(choices)) {
    const v = o[key];
    if (v !== undefined && !allowed.includes(v as string))
      throw new QuantError('QUANT_BAD_PARAMS', `must be one of ${allowed.join(', ')}, got ${JSON.stringify(v) ?? String(v)}`, key);
  }
}

function check(
  values: Float32Array,
  rows: number,
  cols: number,
  groupSize: number | undefined,
  perRow: boolean,
  clip: Float32Array | undefined,
): void {
  if (!(values instanceof Float32Array))
    throw new QuantError('QUANT_BAD_SHAPE', `values must be a Float32Array, got ${values === null ? 'null' : typeof values}`);
  if (!Number.isSafeInteger(rows) || !Number.isSafeInteger(cols) || rows < 1 || cols < 1)
    throw new QuantError('QUANT_BAD_SHAPE', `rows and cols must be positive integers, got ${rows} x ${cols}`);
  if (values.length !== rows * cols) throw new QuantError('QUANT_BAD_SHAPE', `got ${values.length} values for ${rows} x ${cols}`);
  if (!perRow && !GROUP_SIZES.includes(groupSize as 32))
    throw new QuantError('QUANT_BAD_PARAMS', `group size must be one of ${GROUP_SIZES.join(', ')}, got ${groupSize}`, 'group_size');
  for (let i = 0; i < values.length; i++)
    if (!Number.isFinite(values[i]))
      throw new QuantError('QUANT_NON_FINITE', `value ${i} (row ${Math.floor(i / cols)}, col ${i % cols}) is ${values[i]}`);
  if (clip) {
    const groups = rows * (perRow ? 1 : Math.ceil(cols / (groupSize as number)));
    if (clip.length !== groups)
      throw new QuantError('QUANT_BAD_PARAMS', `clip has ${clip.length} ratios, the tensor has ${groups} groups`, 'clip');
    for (let i = 0; i < clip.length; i++)
      if (!(clip[i] > 0 && clip[i] <= 1))
        throw new QuantError('QUANT_BAD_PARAMS', `clip ratio ${i} is ${clip[i]}; ratios are in (0, 1]`, 'clip');
  }
}

/** Symmetric int8 with one scale per row or per group: value = code * scale. */
export function packInt8(values: Float32Array, rows: number, cols: number, opts: Int8PackOptions): PackedTensor {
  checkOptions(opts, { granularity: ['per_row', 'per_group'], scaleDtype: SCALE_DTYPES });
  if (opts.granularity === undefined) throw new QuantError('QUANT_BAD_PARAMS', 'is required: per_row or per_group', 'granularity');
  const perRow = opts.granularity === 'per_row';
  check(values, rows, cols, opts.groupSize, perRow, opts.clip);
  const quant: QuantParams = {
    scheme: 'symmetric',
    granularity: opts.granularity,
    group_size: perRow ? cols : (opts.groupSize as number),
    scale_dtype: opts.scaleDtype ?? 'f16',
  };
  const g = quantGeometry('i8', rows, cols, quant);
  const out = new Uint8Array(Number(g.totalBytes));
  const dv = new DataView(out.buffer);
  const G = g.groupSize;
  const sb = quant.scale_dtype === 'f32' ? 4 : 2;
  for (let r = 0; r < rows; r++) {
    for (let gi = 0; gi < g.groupsPerRow; gi++) {
      const k0 = gi * G;
      const n = Math.min(G, cols - k0);
      const si = r * g.groupsPerRow + gi;
      const codes = new Int8Array(out.buffer, r * g.quantRowBytes + k0, n);
      const q = quantizeGroup('i8', values, r * cols + k0, n, opts.clip ? opts.clip[si] : 1, quant.scale_dtype, codes);
      writeScale(q.scale, quant.scale_dtype, dv, Number(g.scalesOffset) + si * sb);
    }
  }
  return { bytes: out, quant };
}

/**
 * 4-bit groupwise. symmetric: value = (code - 8) * scale, scale = m / -8 where m is the
 * group's value of largest magnitude (llama.cpp Q4_0). affine: value = (code - zero) * scale
 * with scale = (max - min) / 15 and zero = round(-min / scale) in 0..15.
 */
export function packInt4Groupwise(values: Float32Array, rows: number, cols: number, opts: Int4PackOptions): PackedTensor {
  checkOptions(opts, { scheme: ['symmetric', 'affine'], scaleDtype: SCALE_DTYPES });
  if (opts.scheme === undefined) throw new QuantError('QUANT_BAD_PARAMS', 'is required: symmetric or affine', 'scheme');
  check(values, rows, cols, opts.groupSize, false, opts.clip);
  const quant: QuantParams = {
    scheme: opts.scheme,
    granularity: 'per_group',
    group_size: opts.groupSize,
    scale_dtype: opts.scaleDtype ?? 'f16',
  };
  const g = quantGeometry('q4', rows, cols, quant);
  const out = new Uint8Array(Number(g.totalBytes));
  const dv = new DataView(out.buffer);
  const G = g.groupSize;
  const half = G / 2;
  const sb = quant.scale_dtype === 'f32' ? 4 : 2;
  const kind: GroupKind = opts.scheme === 'affine' ? 'q4_affine' : 'q4_symmetric';
  const codes = new Uint8Array(G);
  for (let r = 0; r < rows; r++) {
    for (let gi = 0; gi < g.groupsPerRow; gi++) {
      const k0 = gi * G;
      const n = Math.min(G, cols - k0);
      const si = r * g.groupsPerRow + gi;
      const q = quantizeGroup(kind, values, r * cols + k0, n, opts.clip ? opts.clip[si] : 1, quant.scale_dtype, codes);
      codes.fill(q.zero, n);
      writeScale(q.scale, quant.scale_dtype, dv, Number(g.scalesOffset) + si * sb);
      if (g.zerosOffset !== null) out[Number(g.zerosOffset) + si] = q.zero;
      const dst = r * g.quantRowBytes + gi * half;
      for (let j = 0; j < half; j++) out[dst + j] = codes[j] | (codes[j + half] << 4);
    }
  }
  return { bytes: out, quant };
}

export interface UnpackedInt8 {
  /** rows x cols codes (padding dropped). */
  codes: Int8Array;
  /** rows x groupsPerRow scales as f32. */
  scales: Float32Array;
  geometry: QuantGeometry;
}

export interface UnpackedInt4 {
  /** rows x cols codes 0..15 (padding dropped). */
  codes: Uint8Array;
  scales: Float32Array;
  /** rows x groupsPerRow zero points (8 for symmetric). */
  zeros: Uint8Array;
  geometry: QuantGeometry;
}

function readScales(bytes: Uint8Array, g: QuantGeometry, dtype: ScaleDtype): Float32Array {
  const n = g.rows * g.groupsPerRow;
  const dv = new DataView(bytes.buffer, bytes.byteOffset + Number(g.scalesOffset), Number(g.scaleBytes));
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++)
    out[i] =
      dtype === 'f32'
        ? dv.getFloat32(4 * i, true)
        : dtype === 'f16'
          ? f16BitsToF32(dv.getUint16(2 * i, true))
          : bf16BitsToF32(dv.getUint16(2 * i, true));
  return out;
}

function checkPacked(bytes: Uint8Array, g: QuantGeometry): void {
  if (BigInt(bytes.length) !== g.totalBytes)
    throw new QuantError('QUANT_BAD_PACKED', `got ${bytes.length} bytes, the geometry takes ${g.totalBytes}`);
}

export function unpackInt8(bytes: Uint8Array, rows: number, cols: number, quant: QuantParams): UnpackedInt8 {
  const g = quantGeometry('i8', rows, cols, quant);
  checkPacked(bytes, g);
  const codes = new Int8Array(rows * cols);
  const src = new Int8Array(bytes.buffer, bytes.byteOffset, Number(g.quantBytes));
  for (let r = 0; r < rows; r++) codes.set(src.subarray(r * g.quantRowBytes, r * g.quantRowBytes + cols), r * cols);
  return { codes, scales: readScales(bytes, g, quant.scale_dtype), geometry: g };
}

export function unpackInt4Groupwise(bytes: Uint8Array, rows: number, cols: number, quant: QuantParams): UnpackedInt4 {
  const g = quantGeometry('q4', rows, cols, quant);
  checkPacked(bytes, g);
  const G = g.groupSize;
  const half = G / 2;
  const codes = new Uint8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < cols; k++) {
      const gi = Math.floor(k / G);
      const j = k - gi * G;
      const byte = bytes[r * g.quantRowBytes + gi * half + (j % half)];
      codes[r * cols + k] = j < half ? byte & 15 : byte >> 4;
    }
  }
  const nz = rows * g.groupsPerRow;
  const zeros =
    g.zerosOffset === null ? new Uint8Array(nz).fill(Q4_SYMMETRIC_ZERO) : bytes.slice(Number(g.zerosOffset), Number(g.zerosOffset) + nz);
  return { codes, scales: readScales(bytes, g, quant.scale_dtype), zeros, geometry: g };
}
