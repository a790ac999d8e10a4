/**
 * Reading tensor bytes as values: typed views over a tensor's planes, the layout
 * transforms (pretranspose, blocked-K) and the reference decoder to f32. The decoder is
 * the executable form of docs/iebin.md; kernels and packers are tested against it.
 */
import { decodeBf16, decodeF16, encodeBf16, encodeF16, f16BitsToF32, bf16BitsToF32 } from './dtype.js';
import { decodeBlocks, isBlockDtype } from './blocks.js';
import type { TensorEntry } from './header.js';
import {
  Q4_SYMMETRIC_ZERO,
  dtypeElementBytes,
  isFloatDtype,
  matrixDims,
  quantGeometry,
  reorderBlockedK,
  tensorPlanes,
  transposeBytes,
  type Dtype,
  type FloatDtype,
  type QuantSpec,
  type TensorLayout,
} from './layout.js';

/** What a tensor is, without where it is: enough to size, lay out and decode its bytes. */
export type TensorDescriptor = Pick<TensorEntry, 'dtype' | 'shape' | 'layout' | 'quant'>;

export interface QuantPlanes {
  /** q4: packed nibbles (Uint8Array); i8: signed codes (Int8Array). */
  quants: Uint8Array | Int8Array;
  /** One scale per group (per row for per_row), raw f16/bf16 bits or f32. */
  scales: Uint16Array | Float32Array;
  /** q4 affine: one zero point (0..15) per group. */
  zeros: Uint8Array | null;
}

function typedAt<T>(
  C: new (b: ArrayBufferLike, o: number, n: number) => T,
  bytes: Uint8Array,
  offset: number,
  count: number,
  elem: number,
): T {
  const at = bytes.byteOffset + offset;
  if (at % elem !== 0) throw new RangeError(`tensor data at byte ${at} is not aligned to ${elem}; pass a 64-byte-aligned buffer`);
  return new C(bytes.buffer, at, count);
}

/** Zero-copy typed view of a float tensor's elements (f16/bf16 as raw bits). */
export function floatElements(t: TensorDescriptor, bytes: Uint8Array): Float32Array | Uint16Array {
  const n = bytes.length / dtypeElementBytes(t.dtype as FloatDtype);
  return t.dtype === 'f32' ? typedAt(Float32Array, bytes, 0, n, 4) : typedAt(Uint16Array, bytes, 0, n, 2);
}

/** Zero-copy views of a quantized tensor's planes. */
export function quantPlanes(t: TensorDescriptor, bytes: Uint8Array): QuantPlanes {
  const q = t.quant as QuantSpec;
  const { rows, cols } = matrixDims(t.shape);
  const g = quantGeometry(t.dtype as 'i8' | 'q4', rows, cols, q);
  const nScales = rows * g.groupsPerRow;
  const qb = Number(g.quantBytes);
  const quants = t.dtype === 'q4' ? bytes.subarray(0, qb) : typedAt(Int8Array, bytes, 0, qb, 1);
  const so = Number(g.scalesOffset);
  const scales = q.scale_dtype === 'f32' ? typedAt(Float32Array, bytes, so, nScales, 4) : typedAt(Uint16Array, bytes, so, nScales, 2);
  const zeros = g.zerosOffset === null ? null : bytes.subarray(Number(g.zerosOffset), Number(g.zerosOffset) + nScales);
  return { quants, scales, zeros };
}

/** Applies a layout to row-major tensor bytes (the form packers and importers produce). */
export function applyLayout(t: TensorDescriptor, rowMajor: Uint8Array): Uint8Array {
  return transformLayout(t, rowMajor, false);
}

/** Undoes {@link applyLayout}: returns the row-major bytes. */
export function removeLayout(t: TensorDescriptor, stored: Uint8Array): Uint8Array {
  return transformLayout(t, stored, true);
}

function transformLayout(t: TensorDescriptor, src: Uint8Array, inverse: boolean): Uint8Array {
  const { order, block_k } = t.layout;
  if (order === 'row_major' && block_k === 0) return src;
  const [rows, cols] = t.shape;
  if (order === 'pretransposed') {
    const eb = dtypeElementBytes(t.dtype as FloatDtype);
    return inverse ? transposeBytes(src, cols, rows, eb) : transposeBytes(src, rows, cols, eb);
  }
  const out = new Uint8Array(src.length);
  out.set(src);
  for (const p of tensorPlanes(t.dtype, rows, cols, t.quant)) {
    if (!p.blockable) continue;
    const lo = Number(p.offset);
    const hi = lo + Number(p.bytes);
    out.set(reorderBlockedK(src.subarray(lo, hi), p.grid, block_k, inverse), lo);
  }
  return out;
}

/** Encodes f32 values as a float dtype (row-major bytes). */
export function encodeFloat(values: Float32Array, dtype: FloatDtype): Uint8Array {
  if (dtype === 'f32') return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const bits = dtype === 'f16' ? encodeF16(values) : encodeBf16(values);
  return new Uint8Array(bits.buffer);
}

/** Decodes raw f16/bf16/f32 scale storage to f32. */
export function scalesToF32(scales: Uint16Array | Float32Array, dtype: QuantSpec['scale_dtype']): Float32Array {
  if (dtype === 'f32') return scales as Float32Array;
  return dtype === 'f16' ? decodeF16(scales as Uint16Array) : decodeBf16(scales as Uint16Array);
}

/**
 * The reference decoder: any IEBIN tensor's stored bytes to its logical values,
 * f32, row-major over `shape`. Slow and simple by design.
 */
export function decodeTensor(t: TensorDescriptor, stored: Uint8Array): Float32Array {
  const bytes = removeLayout(t, stored);
  if (isFloatDtype(t.dtype)) {
    const copy = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
    const el = floatElements(t, copy);
    if (t.dtype === 'f32') return new Float32Array(el as Float32Array);
    return t.dtype === 'f16' ? decodeF16(el as Uint16Array) : decodeBf16(el as Uint16Array);
  }
  if (isBlockDtype(t.dtype)) {
    const { rows, cols } = matrixDims(t.shape);
    return decodeBlocks(t.dtype, bytes, rows, cols);
  }
  return dequantize(t.dtype as 'i8' | 'q4', t.shape, t.quant as QuantSpec, bytes.byteOffset % 4 === 0 ? bytes : bytes.slice());
}

function dequantize(dtype: 'i8' | 'q4', shape: readonly number[], q: QuantSpec, bytes: Uint8Array): Float32Array {
  const { rows, cols } = matrixDims(shape);
  const g = quantGeometry(dtype, rows, cols, q);
  const planes = quantPlanes({ dtype, shape: [...shape], layout: { order: 'row_major', block_k: 0 }, quant: q }, bytes);
  const scale =
    q.scale_dtype === 'f32'
      ? (i: number) => planes.scales[i]
      : q.scale_dtype === 'f16'
        ? (i: number) => f16BitsToF32(planes.scales[i])
        : (i: number) => bf16BitsToF32(planes.scales[i]);
  const out = new Float32Array(rows * cols);
  const G = g.groupSize;
  for (let r = 0; r < rows; r++) {
    for (let gi = 0; gi < g.groupsPerRow; gi++) {
      const si = r * g.groupsPerRow + gi;
      const s = scale(si);
      const k0 = gi * G;
      const kn = Math.min(G, cols - k0);
      if (dtype === 'q4') {
        const z = planes.zeros ? planes.zeros[si] : Q4_SYMMETRIC_ZERO;
        const base = r * g.quantRowBytes + gi * (G / 2);
        for (let j = 0; j < kn; j++) {
          const byte = planes.quants[base + (j % (G / 2))];
          const nib = j < G / 2 ? byte & 0x0f : byte >>> 4;
          out[r * cols + k0 + j] = (nib - z) * s;
        }
      } else {
        const base = r * g.quantRowBytes + gi * G;
        for (let j = 0; j < kn; j++) out[r * cols + k0 + j] = planes.quants[base + j] * s;
      }
    }
  }
  return out;
}

/** Layout descriptor helper. */
export function layoutOf(order: TensorLayout['order'] = 'row_major', block_k = 0): TensorLayout {
  return { order, block_k };
}

export type { Dtype };
