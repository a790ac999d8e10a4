/**
 * The byte layouts of IEBIN v1, defined once. docs/iebin.md is the prose of this
 * file; @ie/quant's packers write these bytes, @ie/kernels reads them as-is, and a
 * test holds the TypeScript and C++ constants together.
 *
 * All arithmetic on sizes uses BigInt so that hostile shapes cannot overflow.
 */

/** Every tensor starts at a multiple of this many bytes in model.ie.bin; planes inside a tensor too. */
export const IEBIN_ALIGNMENT = 64;
export const IEBIN_FORMAT_NAME = 'iebin';
export const IEBIN_VERSION = 1;
export const IEBIN_JSON_FILE = 'model.ie.json';
export const IEBIN_BIN_FILE = 'model.ie.bin';

import { BLOCK_DTYPES, BLOCK_FORMATS, isBlockDtype } from './blocks.js';

export const DTYPES = ['f32', 'f16', 'bf16', 'i8', 'q4', ...BLOCK_DTYPES] as const;
export type Dtype = (typeof DTYPES)[number];
export const FLOAT_DTYPES = ['f32', 'f16', 'bf16'] as const;
export type FloatDtype = (typeof FLOAT_DTYPES)[number];
export const SCALE_DTYPES = ['f16', 'bf16', 'f32'] as const;
export type ScaleDtype = (typeof SCALE_DTYPES)[number];

/** Group sizes a q4 tensor, or an i8 tensor with per-group scales, may use. */
export const GROUP_SIZES = [32, 64, 128] as const;
/** The implicit zero point of symmetric q4: a nibble q means (q - 8) * scale. */
export const Q4_SYMMETRIC_ZERO = 8;
/** Largest rank a tensor may have. */
export const MAX_RANK = 4;

export type TensorOrder = 'row_major' | 'pretransposed';
export interface TensorLayout {
  /** `row_major`: element (n, k) of an [N, K] tensor follows (n, k-1). `pretransposed`: stored as the [K, N] transpose (float 2-D tensors only). */
  order: TensorOrder;
  /** 0: not blocked. Otherwise the K dimension is cut into panels of `block_k` columns stored one after another (2-D only, multiple of 64 and of the group size). */
  block_k: number;
}
export const ROW_MAJOR: TensorLayout = Object.freeze({ order: 'row_major', block_k: 0 });

export type QuantScheme = 'symmetric' | 'affine';
export type QuantGranularity = 'per_group' | 'per_row';
export interface QuantSpec {
  /** `symmetric`: value = (q - zero) * scale with the dtype's fixed zero (q4: 8, i8: 0). `affine`: per-group zero points (q4 only). */
  scheme: QuantScheme;
  granularity: QuantGranularity;
  /** Elements per group along K; for `per_row` it equals K. */
  group_size: number;
  scale_dtype: ScaleDtype;
  /** Byte offset of the scales plane from the tensor's start: align64(quant plane bytes). */
  scales_offset: number;
  /** Byte offset of the zero-point plane from the tensor's start, or null when symmetric. */
  zeros_offset: number | null;
}

export function dtypeElementBytes(dtype: FloatDtype | ScaleDtype): number {
  return dtype === 'f32' ? 4 : 2;
}

export function alignUp(n: bigint, a: bigint = BigInt(IEBIN_ALIGNMENT)): bigint {
  return ((n + a - 1n) / a) * a;
}

export function isFloatDtype(d: Dtype): d is FloatDtype {
  return d === 'f32' || d === 'f16' || d === 'bf16';
}

/** The geometry of a quantized [rows, cols] tensor: its planes and their byte sizes. */
export interface QuantGeometry {
  rows: number;
  cols: number;
  groupSize: number;
  groupsPerRow: number;
  /** Bytes of one row of the quant plane (whole groups; the last may be padded). */
  quantRowBytes: number;
  quantBytes: bigint;
  scalesOffset: bigint;
  scaleBytes: bigint;
  zerosOffset: bigint | null;
  zeroBytes: bigint;
  totalBytes: bigint;
}

/**
 * Planes of a quantized tensor, in order, each starting at a 64-byte boundary
 * relative to the tensor's start:
 *
 * 1. quant plane: rows x groupsPerRow groups. q4: G/2 bytes per group, byte j holds
 *    element j in its low nibble and element j + G/2 in its high nibble (llama.cpp's
 *    Q4_0 order, generalised to G). i8 per_group: G signed bytes per group. i8
 *    per_row: K signed bytes per row (no padding). A last group that runs past K is
 *    padded with the code for 0 (q4 symmetric: 8; affine: the group's zero; i8: 0).
 * 2. scales plane: rows x groupsPerRow scales of `scale_dtype`, row-major.
 * 3. zeros plane (q4 affine only): rows x groupsPerRow bytes, each a zero point 0..15.
 */
export function quantGeometry(
  dtype: 'i8' | 'q4',
  rows: number,
  cols: number,
  quant: Pick<QuantSpec, 'scheme' | 'granularity' | 'group_size' | 'scale_dtype'>,
): QuantGeometry {
  const perRow = quant.granularity === 'per_row';
  const groupSize = perRow ? cols : quant.group_size;
  const groupsPerRow = perRow ? 1 : Math.ceil(cols / groupSize);
  const quantRowBytes = dtype === 'q4' ? groupsPerRow * (groupSize / 2) : perRow ? cols : groupsPerRow * groupSize;
  const R = BigInt(rows);
  const quantBytes = R * BigInt(quantRowBytes);
  const scalesOffset = alignUp(quantBytes);
  const scaleBytes = R * BigInt(groupsPerRow) * BigInt(dtypeElementBytes(quant.scale_dtype));
  let zerosOffset: bigint | null = null;
  let zeroBytes = 0n;
  let totalBytes = scalesOffset + scaleBytes;
  if (quant.scheme === 'affine') {
    zerosOffset = alignUp(totalBytes);
    zeroBytes = R * BigInt(groupsPerRow);
    totalBytes = zerosOffset + zeroBytes;
  }
  return { rows, cols, groupSize, groupsPerRow, quantRowBytes, quantBytes, scalesOffset, scaleBytes, zerosOffset, zeroBytes, totalBytes };
}

/** Product of dims as BigInt. */
export function elementCount(shape: readonly number[]): bigint {
  let n = 1n;
  for (const d of shape) n *= BigInt(d);
  return n;
}

/** rows x cols view of a tensor: cols is the last dim (K), rows the product of the others. */
export function matrixDims(shape: readonly number[]): { rows: number; cols: number } {
  const cols = shape[shape.length - 1];
  let rows = 1;
  for (let i = 0; i < shape.length - 1; i++) rows *= shape[i];
  return { rows, cols };
}

/** Exact byte size of a tensor of this dtype and shape (layout never changes the size). */
export function tensorByteSize(
  dtype: Dtype,
  shape: readonly number[],
  quant: Pick<QuantSpec, 'scheme' | 'granularity' | 'group_size' | 'scale_dtype'> | null,
): bigint {
  if (isFloatDtype(dtype)) return elementCount(shape) * BigInt(dtypeElementBytes(dtype));
  if (isBlockDtype(dtype)) {
    const f = BLOCK_FORMATS[dtype];
    const { rows, cols } = matrixDims(shape);
    if (cols % f.elems !== 0)
      throw new RangeError(`a ${dtype} row is a whole number of ${f.elems}-element blocks; ${cols} columns are not`);
    return BigInt(rows) * BigInt(cols / f.elems) * BigInt(f.bytes);
  }
  if (!quant) throw new RangeError(`${dtype} tensors need quantization metadata`);
  const { rows, cols } = matrixDims(shape);
  return quantGeometry(dtype, rows, cols, quant).totalBytes;
}

/** One plane of a 2-D tensor as a grid of storage units: `rows` x `unitsPerRow`, each unit `unitBytes` wide and covering `unitCols` columns of K. */
export interface PlaneGrid {
  rows: number;
  unitsPerRow: number;
  unitBytes: number;
  unitCols: number;
}

/**
 * Blocked-K: the K axis is cut into panels of `blockK` columns; panel p holds, for
 * every row in order, that row's units for columns [p*blockK, min(K, (p+1)*blockK)).
 * Returns the byte offset of unit (row, u) in the blocked plane. Since blockK is a
 * multiple of every group size, a group never straddles two panels.
 */
export function blockedUnitOffset(grid: PlaneGrid, blockK: number, row: number, unit: number): number {
  const unitsPerPanel = blockK / grid.unitCols;
  const panel = Math.floor(unit / unitsPerPanel);
  const inPanel = unit - panel * unitsPerPanel;
  const panelUnits = Math.min(unitsPerPanel, grid.unitsPerRow - panel * unitsPerPanel);
  const panelStart = panel * unitsPerPanel * grid.rows;
  return (panelStart + row * panelUnits + inPanel) * grid.unitBytes;
}

/** Rewrites a row-major plane into blocked-K order (or back, with `inverse`). */
export function reorderBlockedK(src: Uint8Array, grid: PlaneGrid, blockK: number, inverse = false): Uint8Array {
  const dst = new Uint8Array(src.length);
  const unitsPerPanel = blockK / grid.unitCols;
  const b = grid.unitBytes;
  for (let panel = 0; panel * unitsPerPanel < grid.unitsPerRow; panel++) {
    const u0 = panel * unitsPerPanel;
    const width = Math.min(unitsPerPanel, grid.unitsPerRow - u0) * b;
    for (let r = 0; r < grid.rows; r++) {
      const rm = (r * grid.unitsPerRow + u0) * b;
      const bk = blockedUnitOffset(grid, blockK, r, u0);
      if (inverse) dst.set(src.subarray(bk, bk + width), rm);
      else dst.set(src.subarray(rm, rm + width), bk);
    }
  }
  return dst;
}

/** Transposes a [rows, cols] matrix of `elemBytes`-wide elements into [cols, rows]. */
export function transposeBytes(src: Uint8Array, rows: number, cols: number, elemBytes: number): Uint8Array {
  const dst = new Uint8Array(src.length);
  if (elemBytes === 4) {
    const s = new Uint32Array(src.buffer, src.byteOffset, rows * cols);
    const d = new Uint32Array(dst.buffer);
    transposeTyped(s, d, rows, cols);
  } else if (elemBytes === 2) {
    const s = new Uint16Array(src.buffer, src.byteOffset, rows * cols);
    const d = new Uint16Array(dst.buffer);
    transposeTyped(s, d, rows, cols);
  } else {
    transposeTyped(src, dst, rows, cols);
  }
  return dst;
}

function transposeTyped<T extends Uint8Array | Uint16Array | Uint32Array>(s: T, d: T, rows: number, cols: number): void {
  // Tiled so both sides stay in cache.
  const T = 64;
  for (let r0 = 0; r0 < rows; r0 += T) {
    const r1 = Math.min(rows, r0 + T);
    for (let c0 = 0; c0 < cols; c0 += T) {
      const c1 = Math.min(cols, c0 + T);
      for (let r = r0; r < r1; r++) for (let c = c0; c < c1; c++) d[c * rows + r] = s[r * cols + c];
    }
  }
}

/** The planes of a 2-D tensor as unit grids, in storage order, with their offsets inside the tensor. */
export interface TensorPlane {
  offset: bigint;
  bytes: bigint;
  grid: PlaneGrid;
  /** Whether blocked-K reorders this plane (per-row scales have one unit per row and do not move). */
  blockable: boolean;
}

export function tensorPlanes(
  dtype: Dtype,
  rows: number,
  cols: number,
  quant: Pick<QuantSpec, 'scheme' | 'granularity' | 'group_size' | 'scale_dtype'> | null,
): TensorPlane[] {
  if (isFloatDtype(dtype)) {
    const eb = dtypeElementBytes(dtype);
    return [
      {
        offset: 0n,
        bytes: BigInt(rows) * BigInt(cols) * BigInt(eb),
        grid: { rows, unitsPerRow: cols, unitBytes: eb, unitCols: 1 },
        blockable: true,
      },
    ];
  }
  if (isBlockDtype(dtype)) {
    const f = BLOCK_FORMATS[dtype];
    return [
      {
        offset: 0n,
        bytes: BigInt(rows) * BigInt(cols / f.elems) * BigInt(f.bytes),
        grid: { rows, unitsPerRow: cols / f.elems, unitBytes: f.bytes, unitCols: f.elems },
        blockable: false,
      },
    ];
  }
  if (!quant) throw new RangeError(`${dtype} tensors need quantization metadata`);
  const g = quantGeometry(dtype, rows, cols, quant);
  const perRow = quant.granularity === 'per_row';
  const quantGrid: PlaneGrid = perRow
    ? { rows, unitsPerRow: cols, unitBytes: 1, unitCols: 1 }
    : { rows, unitsPerRow: g.groupsPerRow, unitBytes: dtype === 'q4' ? g.groupSize / 2 : g.groupSize, unitCols: g.groupSize };
  const planes: TensorPlane[] = [{ offset: 0n, bytes: g.quantBytes, grid: quantGrid, blockable: true }];
  const sb = dtypeElementBytes(quant.scale_dtype);
  planes.push({
    offset: g.scalesOffset,
    bytes: g.scaleBytes,
    grid: { rows, unitsPerRow: g.groupsPerRow, unitBytes: sb, unitCols: g.groupSize },
    blockable: !perRow,
  });
  if (g.zerosOffset !== null)
    planes.push({
      offset: g.zerosOffset,
      bytes: g.zeroBytes,
      grid: { rows, unitsPerRow: g.groupsPerRow, unitBytes: 1, unitCols: g.groupSize },
      blockable: true,
    });
  return planes;
}
