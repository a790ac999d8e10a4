/**
 * Post-training quantization of one matrix: RTN, or per-group clip search (the ratio of the
 * group's range the scale spans, chosen from a grid to minimize the group's reconstruction
 * MSE), after any float rewrite a manifest asks for (activation-aware scaling). The packers in
 * ../pack.ts define the bytes; this file only chooses their parameters.
 */
import { quantGeometry, type QuantParams } from '@ie/format';
import { QuantError } from '../errors.js';
import type { EntryTransform, QuantMethod } from '../manifest/schema.js';
import {
  groupExtremes,
  packInt4Groupwise,
  packInt8,
  quantizeGroup,
  unpackInt4Groupwise,
  unpackInt8,
  type GroupKind,
  type PackedTensor,
} from '../pack.js';

/** Clip ratios the search tries, largest first (ties keep the larger ratio, so RTN wins ties). */
export const CLIP_GRID: readonly number[] = Array.from({ length: 21 }, (_, i) => 1 - i * 0.025);

export type QuantTarget = { dtype: 'q4' | 'i8'; quant: QuantParams };

/** What runs the clip search off the main thread (ClipSearchPool); declared here so pool.ts depends on this file, not both ways. */
export interface ClipSearcher {
  searchClip(values: Float32Array, rows: number, cols: number, t: QuantTarget): Promise<Float32Array>;
}

function groupKind(t: QuantTarget): GroupKind {
  return t.dtype === 'i8' ? 'i8' : t.quant.scheme === 'affine' ? 'q4_affine' : 'q4_symmetric';
}

/** Per group (rows x groups, row-major), the grid ratio that minimizes the squared reconstruction error. */
export function searchClip(
  values: Float32Array,
  rows: number,
  cols: number,
  t: QuantTarget,
  grid: readonly number[] = CLIP_GRID,
): Float32Array {
  const G = t.quant.granularity === 'per_row' ? cols : t.quant.group_size;
  const gpr = Math.ceil(cols / G);
  const kind = groupKind(t);
  const out = new Float32Array(rows * gpr);
  const codes = kind === 'i8' ? new Int8Array(G) : new Uint8Array(G);
  for (let r = 0; r < rows; r++) {
    for (let gi = 0; gi < gpr; gi++) {
      const src = r * cols + gi * G;
      const n = Math.min(G, cols - gi * G);
      let best = Number.POSITIVE_INFINITY;
      let bestRatio = 1;
      const ext = groupExtremes(values, src, n);
      for (const ratio of grid) {
        const { sse } = quantizeGroup(kind, values, src, n, ratio, t.quant.scale_dtype, codes, ext);
        if (sse < best) {
          best = sse;
          bestRatio = ratio;
        }
      }
      out[r * gpr + gi] = bestRatio;
    }
  }
  return out;
}

function pack(values: Float32Array, rows: number, cols: number, t: QuantTarget, clip: Float32Array | undefined): PackedTensor {
  if (t.dtype === 'i8')
    return packInt8(values, rows, cols, {
      granularity: t.quant.granularity,
      groupSize: t.quant.granularity === 'per_group' ? t.quant.group_size : undefined,
      scaleDtype: t.quant.scale_dtype,
      clip,
    });
  return packInt4Groupwise(values, rows, cols, {
    scheme: t.quant.scheme,
    groupSize: t.quant.group_size,
    scaleDtype: t.quant.scale_dtype,
    clip,
  });
}

/** Packs a float matrix as `t` with `method`'s scale choice (awq's scaling is a transform applied before; its scales are then clip-searched). */
export function quantizeMatrix(values: Float32Array, rows: number, cols: number, t: QuantTarget, method: QuantMethod): PackedTensor {
  return pack(values, rows, cols, t, method === 'rtn' ? undefined : searchClip(values, rows, cols, t));
}

/** {@link quantizeMatrix} with the clip search on a pool's worker threads: the same bytes, sooner. */
export async function quantizeMatrixAsync(
  values: Float32Array,
  rows: number,
  cols: number,
  t: QuantTarget,
  method: QuantMethod,
  pool?: ClipSearcher,
): Promise<PackedTensor> {
  if (method === 'rtn' || !pool) return quantizeMatrix(values, rows, cols, t, method);
  return pack(values, rows, cols, t, await pool.searchClip(values, rows, cols, t));
}

/** The f32 values a packed matrix decodes to (what the kernels compute with). */
export function dequantizeMatrix(bytes: Uint8Array, rows: number, cols: number, t: QuantTarget): Float32Array {
  const out = new Float32Array(rows * cols);
  const g = quantGeometry(t.dtype, rows, cols, t.quant);
  const G = g.groupSize;
  if (t.dtype === 'i8') {
    const u = unpackInt8(bytes, rows, cols, t.quant);
    for (let r = 0; r < rows; r++)
      for (let k = 0; k < cols; k++) out[r * cols + k] = u.codes[r * cols + k] * u.scales[r * g.groupsPerRow + Math.floor(k / G)];
    return out;
  }
  const u = unpackInt4Groupwise(bytes, rows, cols, t.quant);
  for (let r = 0; r < rows; r++)
    for (let k = 0; k < cols; k++) {
      const gi = r * g.groupsPerRow + Math.floor(k / G);
      out[r * cols + k] = (u.codes[r * cols + k] - u.zeros[gi]) * u.scales[gi];
    }
  return out;
}

/**
 * Applies a manifest entry's float rewrites in place (in f32, in the listed order):
 * scale_columns W[:, k] *= s[k]; divide_rows W[n, :] /= s[n]; divide v[i] /= s[i].
 */
export function applyTransforms(
  values: Float32Array,
  shape: readonly number[],
  transforms: readonly EntryTransform[],
  scales: ReadonlyMap<string, Float32Array>,
): void {
  const rows = shape.length === 2 ? shape[0] : 1;
  const cols = shape[shape.length - 1];
  for (const t of transforms) {
    const s = scales.get(t.by);
    const want = t.op === 'scale_columns' ? cols : t.op === 'divide_rows' ? rows : values.length;
    if (!s || s.length !== want)
      throw new QuantError('QUANT_BAD_PARAMS', `${t.op} needs ${want} scales from ${t.by}, got ${s?.length ?? 'none'}`, 'transforms');
    if (t.op === 'scale_columns') {
      for (let r = 0; r < rows; r++) for (let k = 0; k < cols; k++) values[r * cols + k] = Math.fround(values[r * cols + k] * s[k]);
    } else if (t.op === 'divide_rows') {
      for (let r = 0; r < rows; r++) for (let k = 0; k < cols; k++) values[r * cols + k] = Math.fround(values[r * cols + k] / s[r]);
    } else {
      for (let i = 0; i < values.length; i++) values[i] = Math.fround(values[i] / s[i]);
    }
  }
}

/**
 * Activation-aware input-channel scales (AWQ): s[k] = mean|x_k|^alpha, normalized so that
 * max(s) * min(s) = 1. alpha = 0 gives all ones (no scaling).
 */
export function activationScales(meanAbs: ArrayLike<number>, alpha: number): Float32Array {
  const n = meanAbs.length;
  const s = new Float64Array(n);
  let lo = Number.POSITIVE_INFINITY;
  let hi = 0;
  for (let k = 0; k < n; k++) {
    s[k] = Math.max(meanAbs[k], 1e-6) ** alpha;
    lo = Math.min(lo, s[k]);
    hi = Math.max(hi, s[k]);
  }
  const norm = Math.sqrt(lo * hi);
  const out = new Float32Array(n);
  for (let k = 0; k < n; k++) out[k] = s[k] / norm;
  return out;
}

export function encodeScales(s: Float32Array): string {
  return Buffer.from(new Uint8Array(s.buffer, s.byteOffset, s.byteLength)).toString('base64');
}

export function decodeScales(b64: string): Float32Array {
  const b = Buffer.from(b64, 'base64');
  const out = new Float32Array(b.length / 4);
  new Uint8Array(out.buffer).set(b);
  return out;
}
