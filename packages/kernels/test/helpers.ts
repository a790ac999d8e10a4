/** Building test matrices in every IEBIN layout, and float64 references. */
import { applyLayout, decodeBlocks, decodeTensor, encodeFloat, quantGeometry, quantizeMxfp4, type QuantSpec } from '@ie/format';
import { packInt4Groupwise, packInt8 } from '@ie/quant';
import { quantizeIQ4_NL, quantizeQ4_K, quantizeQ5_K, quantizeQ6_K, seededFloats } from '@ie/testing';
import { afterAll } from 'vitest';
import { type ContextOptions, type Isa, KernelContext, type MatrixSpec } from '../src/index.js';

/** The ISAs this CPU runs, lowest first: a kernel test runs each in turn. */
export function supportedIsas(): Isa[] {
  const probe = KernelContext.create({ threads: 1 });
  try {
    return probe.info().supportedIsas as Isa[];
  } finally {
    probe.close();
  }
}

/** A maker of kernel contexts that closes every one it made after the test file's tests. */
export function contextMaker(): (options: ContextOptions) => KernelContext {
  const made: KernelContext[] = [];
  afterAll(() => {
    for (const c of made) c.close();
  });
  return (options) => {
    const c = KernelContext.create(options);
    made.push(c);
    return c;
  };
}

export interface TestMatrix {
  spec: MatrixSpec;
  /** Stored bytes (layout applied), 64-byte aligned. */
  bytes: Uint8Array;
  /** The logical values the bytes decode to, row-major [rows, cols]. */
  values: Float32Array;
}

export type Variant =
  | { dtype: 'f32' | 'f16' | 'bf16'; layout?: 'row_major' | 'pretransposed' | number }
  | { dtype: 'i8'; group: number | 'row'; scale?: 'f16' | 'bf16' | 'f32'; blockK?: number }
  | { dtype: 'q4'; group: number; affine?: boolean; scale?: 'f16' | 'bf16' | 'f32'; blockK?: number };

export function variantName(v: Variant): string {
  if (v.dtype === 'q4') return `q4 g${v.group}${v.affine ? ' affine' : ''} ${v.scale ?? 'f16'}${v.blockK ? ` bk${v.blockK}` : ''}`;
  if (v.dtype === 'i8') return `i8 ${v.group === 'row' ? 'per-row' : `g${v.group}`} ${v.scale ?? 'f16'}${v.blockK ? ` bk${v.blockK}` : ''}`;
  return `${v.dtype} ${v.layout ?? 'row_major'}`;
}

/** Copies into a fresh 64-byte-aligned buffer (an ArrayBuffer's start is always aligned). */
export function aligned(b: Uint8Array): Uint8Array {
  const out = new Uint8Array(b.length);
  out.set(b);
  return out;
}

export function makeMatrix(v: Variant, rows: number, cols: number, seed: number): TestMatrix {
  const w = seededFloats(rows * cols, seed, 0.5);
  const dtype: MatrixSpec['dtype'] = v.dtype;
  let quant: QuantSpec | null = null;
  let rowMajor: Uint8Array;
  let layout: { order: 'row_major' | 'pretransposed'; block_k: number } = { order: 'row_major', block_k: 0 };
  if (v.dtype === 'q4' || v.dtype === 'i8') {
    const p =
      v.dtype === 'q4'
        ? packInt4Groupwise(w, rows, cols, { scheme: v.affine ? 'affine' : 'symmetric', groupSize: v.group, scaleDtype: v.scale ?? 'f16' })
        : packInt8(
            w,
            rows,
            cols,
            v.group === 'row'
              ? { granularity: 'per_row', scaleDtype: v.scale ?? 'f16' }
              : { granularity: 'per_group', groupSize: v.group, scaleDtype: v.scale ?? 'f16' },
          );
    const g = quantGeometry(v.dtype, rows, cols, p.quant);
    quant = { ...p.quant, scales_offset: Number(g.scalesOffset), zeros_offset: g.zerosOffset === null ? null : Number(g.zerosOffset) };
    rowMajor = p.bytes;
    if (v.blockK) layout = { order: 'row_major', block_k: v.blockK };
  } else {
    rowMajor = encodeFloat(w, v.dtype).slice();
    if (v.layout === 'pretransposed') layout = { order: 'pretransposed', block_k: 0 };
    else if (typeof v.layout === 'number') layout = { order: 'row_major', block_k: v.layout };
  }
  const desc = { dtype, shape: [rows, cols], layout, quant };
  const stored = aligned(applyLayout(desc, rowMajor));
  return { spec: desc as MatrixSpec, bytes: stored, values: decodeTensor(desc, stored) };
}

/** float64 y = W x, and the magnitude sum |W||x| each y[r] is judged against. */
export function refGemv(values: Float32Array, rows: number, cols: number, x: Float32Array): { y: Float64Array; mag: Float64Array } {
  const y = new Float64Array(rows);
  const mag = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    let m = 0;
    for (let k = 0; k < cols; k++) {
      const p = values[r * cols + k] * x[k];
      s += p;
      m += Math.abs(p);
    }
    y[r] = s;
    mag[r] = m;
  }
  return { y, mag };
}

/** Largest |got - want| / |W||x| over the outputs (the dot product's natural relative error). */
export function worstRelError(got: ArrayLike<number>, want: Float64Array, mag: Float64Array): number {
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]) / Math.max(mag[i], 1e-30));
  return worst;
}

export const ALL_VARIANTS: Variant[] = [
  { dtype: 'f32' },
  { dtype: 'f16' },
  { dtype: 'bf16' },
  { dtype: 'f32', layout: 'pretransposed' },
  { dtype: 'f16', layout: 'pretransposed' },
  { dtype: 'bf16', layout: 'pretransposed' },
  { dtype: 'f32', layout: 64 },
  { dtype: 'f16', layout: 128 },
  { dtype: 'i8', group: 'row' },
  { dtype: 'i8', group: 'row', scale: 'f32', blockK: 64 },
  { dtype: 'i8', group: 32 },
  { dtype: 'i8', group: 64, scale: 'bf16' },
  { dtype: 'i8', group: 128, blockK: 128 },
  { dtype: 'q4', group: 32 },
  { dtype: 'q4', group: 64 },
  { dtype: 'q4', group: 128 },
  { dtype: 'q4', group: 64, affine: true },
  { dtype: 'q4', group: 32, affine: true, scale: 'f32' },
  { dtype: 'q4', group: 128, scale: 'bf16' },
  { dtype: 'q4', group: 64, blockK: 128 },
  { dtype: 'q4', group: 32, affine: true, blockK: 64 },
];

/** float64 of W * dequant(quantize_q8(x)): the exact product the int8 mode approximates in float. */
/**
 * x as the int8-activation mode sees it: quantized in blocks of `block` elements (32; the group of
 * q4 weights with groups of 64 and 128; a K-quant's 256-element superblock: xBlock), one scale each.
 */
export function quantizedX(x: Float32Array, block = 32): Float32Array {
  const out = new Float32Array(x.length);
  for (let b = 0; b < x.length; b += block) {
    const end = Math.min(x.length, b + block);
    let amax = 0;
    for (let j = b; j < end; j++) amax = Math.max(amax, Math.abs(x[j]));
    const d = Math.fround(amax / 127);
    const id = d ? Math.fround(1 / d) : 0;
    for (let j = b; j < end; j++) {
      const v = Math.fround(x[j] * id);
      // round half to even
      const r = Math.round(v);
      const q = Math.abs(v % 1) === 0.5 ? 2 * Math.round(v / 2) : r;
      out[j] = Math.max(-127, Math.min(127, q)) * d;
    }
  }
  return out;
}

/** The block the int8-activation mode quantizes x in for a matrix of this variant (kernel_table.h's q8_x_block). */
export function xBlock(v: Variant | BlockVariant): number {
  if (typeof v === 'string') return v === 'q4_k' || v === 'q5_k' || v === 'q6_k' ? 256 : 32;
  return v.dtype === 'q4' && (v.group === 64 || v.group === 128) ? v.group : 32;
}

export type BlockVariant = 'q4_k' | 'q5_k' | 'q6_k' | 'iq4_nl' | 'mxfp4';
export const BLOCK_VARIANTS: BlockVariant[] = ['q4_k', 'q5_k', 'q6_k', 'iq4_nl', 'mxfp4'];
const BLOCK_QUANTIZERS = { q4_k: quantizeQ4_K, q5_k: quantizeQ5_K, q6_k: quantizeQ6_K, iq4_nl: quantizeIQ4_NL, mxfp4: quantizeMxfp4 };

/** A [rows, cols] matrix of llama.cpp blocks written by @ie/testing's quantizers; values decoded by @ie/format. */
export function makeBlockMatrix(dtype: BlockVariant, rows: number, cols: number, seed: number): TestMatrix {
  const w = seededFloats(rows * cols, seed, 0.5);
  const bytes = aligned(BLOCK_QUANTIZERS[dtype](w));
  return { spec: { dtype, shape: [rows, cols] }, bytes, values: decodeBlocks(dtype, bytes, rows, cols) };
}
