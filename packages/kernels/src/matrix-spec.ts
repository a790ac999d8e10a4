/**
 * What the kernels need to know about a weight matrix. The fields are named as in an IEBIN
 * tensor entry (@ie/format's TensorEntry), so a runtime hands entries over as they are; the
 * kernels package itself knows nothing about files.
 */
import { KERNEL_CONSTANTS, type BlockWeightDtype, type ScaleDtype, type WeightDtype } from './constants.js';
import { KernelError } from './errors.js';

export interface MatrixSpec {
  dtype: WeightDtype;
  /** `[rows, cols]`: rows outputs, cols inputs (K). */
  shape: readonly number[];
  layout?: { order: 'row_major' | 'pretransposed'; block_k: number };
  quant?: {
    scheme: 'symmetric' | 'affine';
    granularity: 'per_group' | 'per_row';
    group_size: number;
    scale_dtype: ScaleDtype;
    scales_offset: number;
    zeros_offset: number | null;
  } | null;
}

const align64 = (n: bigint) => ((n + 63n) / 64n) * 64n;

/**
 * The planes of an i8 / q4 matrix (docs/iebin.md): the quant plane from 0, the scales plane at
 * align64(quant plane), the zero points (affine only; else 0) at align64(end of scales). The one
 * place the TypeScript side computes them; native/matmul/matmul.h's quant_planes is the C++ one.
 */
export function quantPlanes(
  dtype: 'i8' | 'q4',
  N: bigint,
  K: bigint,
  group: number | null,
  scale: ScaleDtype,
  affine: boolean,
): { scalesOffset: bigint; zerosOffset: bigint; bytes: bigint } {
  const G = group === null ? K : BigInt(group);
  const gpr = group === null ? 1n : (K + G - 1n) / G;
  const qbytes = dtype === 'q4' ? N * gpr * (G / 2n) : group === null ? N * K : N * gpr * G;
  const scalesOffset = align64(qbytes);
  const scalesEnd = scalesOffset + N * gpr * (scale === 'f32' ? 4n : 2n);
  const zerosOffset = affine ? align64(scalesEnd) : 0n;
  return { scalesOffset, zerosOffset, bytes: affine ? zerosOffset + N * gpr : scalesEnd };
}

function bad(message: string): never {
  throw new KernelError('KERNELS_BAD_MATRIX', message);
}

/** The byte size of a matrix's storage (BigInt arithmetic); throws KERNELS_BAD_MATRIX for impossible specs. */
export function matrixByteSize(spec: MatrixSpec): number {
  return Number(matrixGeometry(spec).bytes);
}

export interface MatrixGeometry {
  rows: number;
  cols: number;
  bytes: bigint;
  scalesOffset: bigint;
  zerosOffset: bigint;
}

/**
 * The spec as plain data, each field read once: a getter that answers differently on a second read
 * (row_major to validation, pretransposed to the native descriptor) cannot make the native matrix
 * differ from the one validated. Throws KERNELS_BAD_MATRIX where reading the spec throws.
 */
export function snapshotMatrixSpec(spec: MatrixSpec): MatrixSpec {
  try {
    if (!isObject(spec)) return spec;
    const { dtype, shape, layout, quant } = spec;
    return {
      dtype,
      shape: Array.isArray(shape) ? [...shape] : shape,
      ...(layout === undefined ? {} : { layout: isObject(layout) ? { order: layout.order, block_k: layout.block_k } : layout }),
      ...(quant === undefined
        ? {}
        : {
            quant: isObject(quant)
              ? {
                  scheme: quant.scheme,
                  granularity: quant.granularity,
                  group_size: quant.group_size,
                  scale_dtype: quant.scale_dtype,
                  scales_offset: quant.scales_offset,
                  zeros_offset: quant.zeros_offset,
                }
              : quant,
          }),
    } as MatrixSpec;
  } catch (e) {
    bad(`the matrix spec is malformed (${e instanceof Error ? e.message : String(e)})`);
  }
}

export function matrixGeometry(spec: MatrixSpec): MatrixGeometry {
  try {
    return geometry(spec);
  } catch (e) {
    // Whatever else a malformed spec throws (a getter, a BigInt of a fraction) is the same error.
    if (e instanceof KernelError) throw e;
    bad(`the matrix spec is malformed (${e instanceof Error ? e.message : String(e)})`);
  }
}

const own = (o: object, k: unknown): boolean => typeof k === 'string' && Object.hasOwn(o, k);
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;

function geometry(spec: MatrixSpec): MatrixGeometry {
  if (!isObject(spec)) bad('a matrix spec must be an object');
  if (!own(KERNEL_CONSTANTS.weightTypes, spec.dtype))
    bad(`dtype must be one of ${Object.keys(KERNEL_CONSTANTS.weightTypes).join(', ')}, got ${JSON.stringify(spec.dtype)}`);
  if (!Array.isArray(spec.shape) || spec.shape.length !== 2) bad(`shape must be [rows, cols], got ${JSON.stringify(spec.shape)}`);
  const [rows, cols] = spec.shape;
  for (const d of [rows, cols])
    if (!Number.isSafeInteger(d) || d < 1 || d > 2 ** 31) bad(`shape dims must be integers in 1..2^31, got ${JSON.stringify(spec.shape)}`);
  const N = BigInt(rows);
  const K = BigInt(cols);
  const layout = spec.layout ?? { order: 'row_major', block_k: 0 };
  if (!isObject(layout)) bad('layout must be an object');
  if (layout.order !== 'row_major' && layout.order !== 'pretransposed') bad(`layout.order must be row_major or pretransposed`);
  if (!Number.isSafeInteger(layout.block_k) || layout.block_k < 0 || layout.block_k % 64 !== 0)
    bad(`layout.block_k must be 0 or a multiple of 64, got ${layout.block_k}`);
  if (own(KERNEL_CONSTANTS.blockFormats, spec.dtype)) {
    const f = KERNEL_CONSTANTS.blockFormats[spec.dtype as BlockWeightDtype];
    if (spec.quant) bad(`${spec.dtype} matrices carry their scales in their blocks: no quant block`);
    if (layout.order !== 'row_major' || layout.block_k) bad(`${spec.dtype} matrices are row-major and not K-blocked`);
    if (cols % f.elems !== 0) bad(`a ${spec.dtype} row is whole ${f.elems}-element blocks, got ${cols} columns`);
    return { rows, cols, bytes: N * (K / BigInt(f.elems)) * BigInt(f.bytes), scalesOffset: 0n, zerosOffset: 0n };
  }
  if (spec.dtype === 'f32' || spec.dtype === 'f16' || spec.dtype === 'bf16') {
    if (spec.quant) bad(`${spec.dtype} matrices take no quant block`);
    if (layout.order === 'pretransposed' && layout.block_k) bad('a pretransposed matrix cannot be blocked');
    return { rows, cols, bytes: N * K * (spec.dtype === 'f32' ? 4n : 2n), scalesOffset: 0n, zerosOffset: 0n };
  }
  const q = spec.quant;
  if (!isObject(q)) bad(`${spec.dtype} matrices need a quant block`);
  if (layout.order !== 'row_major') bad('quantized matrices must be row-major');
  if (!own(KERNEL_CONSTANTS.scaleTypes, q.scale_dtype)) bad(`quant.scale_dtype must be f16, bf16 or f32`);
  const perRow = q.granularity === 'per_row';
  if (perRow && spec.dtype !== 'i8') bad('per-row scales are for i8 only');
  if (!perRow && (q.granularity !== 'per_group' || !(KERNEL_CONSTANTS.groupSizes as readonly number[]).includes(q.group_size)))
    bad(`quant.group_size must be 32, 64 or 128, got ${q.group_size}`);
  if (perRow && q.group_size !== cols) bad(`per-row group_size must equal cols (${cols})`);
  if (q.scheme === 'affine' && spec.dtype !== 'q4') bad('only q4 has an affine scheme');
  if (q.scheme !== 'affine' && q.scheme !== 'symmetric') bad(`quant.scheme must be symmetric or affine`);
  if (layout.block_k && !perRow && layout.block_k % q.group_size !== 0) bad('layout.block_k must be a multiple of the group size');
  const { scalesOffset, zerosOffset, bytes } = quantPlanes(
    spec.dtype === 'q4' ? 'q4' : 'i8',
    N,
    K,
    perRow ? null : q.group_size,
    q.scale_dtype,
    q.scheme === 'affine',
  );
  if (!Number.isSafeInteger(q.scales_offset) || BigInt(q.scales_offset) !== scalesOffset)
    bad(`quant.scales_offset must be ${scalesOffset}, got ${q.scales_offset}`);
  if (q.scheme === 'affine' && (!Number.isSafeInteger(q.zeros_offset) || BigInt(q.zeros_offset as number) !== zerosOffset))
    bad(`quant.zeros_offset must be ${zerosOffset}, got ${q.zeros_offset}`);
  return { rows, cols, bytes, scalesOffset, zerosOffset };
}

/** The descriptor the native side takes. */
export function nativeDescriptor(spec: MatrixSpec, g: MatrixGeometry): Record<string, number> {
  const q = spec.quant;
  return {
    type: KERNEL_CONSTANTS.weightTypes[spec.dtype],
    rows: g.rows,
    cols: g.cols,
    group: q && q.granularity === 'per_group' ? q.group_size : 0,
    affine: q?.scheme === 'affine' ? 1 : 0,
    scaleType: q ? KERNEL_CONSTANTS.scaleTypes[q.scale_dtype] : 0,
    blockK: spec.layout?.block_k ?? 0,
    pretransposed: spec.layout?.order === 'pretransposed' ? 1 : 0,
    scalesOffset: Number(g.scalesOffset),
    zerosOffset: Number(g.zerosOffset),
    bytes: Number(g.bytes),
  };
}

/**
 * Why a matrix of this spec cannot be interleaved into 16-row records (WeightMatrix.interleaveRows16),
 * or undefined when it can: symmetric q4 in groups, iq4_nl, q4_k, q5_k, q6_k, or i8 (one scale per row, or groups
 * of a multiple of 32 that divide the row) with rows a multiple of 32 columns; a multiple of 16 rows,
 * row-major, not K-blocked.
 */
export function rows16Unfit(spec: MatrixSpec): string | undefined {
  const q = spec.quant;
  const [rows, cols] = spec.shape;
  if (spec.dtype === 'i8' && q) {
    if (cols % 32 !== 0) return 'i8 rows must be a whole number of 32-column blocks';
    if (q.granularity === 'per_group' && (q.group_size % 32 !== 0 || cols % q.group_size !== 0))
      return 'i8 groups must be multiples of 32 that divide the row';
  } else if (
    spec.dtype !== 'iq4_nl' &&
    spec.dtype !== 'q4_k' &&
    spec.dtype !== 'q5_k' &&
    spec.dtype !== 'q6_k' &&
    (spec.dtype !== 'q4' || !q || q.scheme !== 'symmetric' || q.granularity !== 'per_group')
  ) {
    return 'only symmetric q4 with groups, i8, iq4_nl, q4_k, q5_k and q6_k';
  }
  if (rows % 16 !== 0) return 'rows must be a multiple of 16';
  if ((spec.layout?.order ?? 'row_major') !== 'row_major' || (spec.layout?.block_k ?? 0) !== 0)
    return 'the matrix must be row-major and not K-blocked';
  return undefined;
}

/**
 * Why a matrix of this spec cannot be reordered into K-panels (WeightMatrix.reorderBlockedK), or
 * undefined when it can: a row-major f32/f16/bf16/i8/q4 matrix, not K-blocked, and `blockK` a
 * positive multiple of 64 and of the group size.
 */
export function blockedKUnfit(spec: MatrixSpec, blockK: number): string | undefined {
  if (spec.dtype !== 'f32' && spec.dtype !== 'f16' && spec.dtype !== 'bf16' && spec.dtype !== 'i8' && spec.dtype !== 'q4')
    return `${spec.dtype} matrices are stored as whole blocks, never K-blocked`;
  if ((spec.layout?.order ?? 'row_major') !== 'row_major') return 'the matrix is pretransposed';
  if ((spec.layout?.block_k ?? 0) !== 0) return 'the matrix is K-blocked already';
  if (!Number.isSafeInteger(blockK) || blockK <= 0 || blockK % 64 !== 0)
    return `the panel width must be a positive multiple of 64, got ${blockK}`;
  const q = spec.quant;
  if (q && q.granularity === 'per_group' && blockK % q.group_size !== 0)
    return `the panel width must be a multiple of the group size ${q.group_size}`;
  return undefined;
}

/** The widest K-panel the GEMVs read at full speed: its FP32 activations (8 KiB) stay in L1 while the panel streams. */
export const PANEL_COLUMNS = 2048;

/**
 * The panel width that matrix's GEMVs run fastest in, or 0 where rows are short enough to stream
 * as they are (K <= PANEL_COLUMNS), where panels do not pay, or where the matrix cannot be K-blocked.
 * Longer rows are cut into the fewest panels of at most about PANEL_COLUMNS columns, of near-equal
 * widths (a multiple of 64 and of the group size). Zen 5, 2048 x 5632 from DRAM, rows as stored
 * against these panels, one core: int8w 17 -> 27 GB/s, bf16 21 -> 26, Q8_0 with int8 activations
 * 16 -> 22; two cores: int8w 28 -> 33, Q8_0 28 -> 31 (docs/performance.md, *K-panels*). q4 keeps its
 * rows: with FP32 activations its GEMV is compute-bound, and with int8 activations two cores read
 * panels a quarter slower than rows (its int8 mode takes 16-row records on AVX-512 VNNI anyway).
 * `int8Kernels` names the int8-activation kernels an i8 matrix will run (KernelContext.info()
 * .int8Activations), absent for FP32 activations: panels pay there with AVX-512 VNNI only (the AVX2
 * ones read Q8_0 rows of any length at full speed and its panels a tenth slower, on one core).
 */
export function preferredBlockK(spec: MatrixSpec, int8Kernels?: string): number {
  const K = spec.shape[1];
  if (K <= PANEL_COLUMNS || spec.dtype === 'q4') return 0;
  if (spec.dtype === 'i8' && int8Kernels !== undefined && int8Kernels !== 'avx512vnni') return 0;
  const q = spec.quant;
  const unit = q && q.granularity === 'per_group' ? Math.max(64, q.group_size) : 64;
  const panels = Math.ceil(K / PANEL_COLUMNS);
  const B = Math.ceil(Math.ceil(K / panels) / unit) * unit;
  return B < K && blockedKUnfit(spec, B) === undefined ? B : 0;
}
