/**
 * Model source → IEBIN. Tensors are read, optionally re-encoded (float dtype) and laid out
 * (pretranspose, blocked-K) one at a time, so memory stays bounded by the largest tensor.
 * Quantization is not done here: @ie/quant supplies a `transform` that packs per its manifest.
 */
import { basename } from 'node:path';
import { stat } from 'node:fs/promises';
import { decodeBf16, decodeF16 } from './dtype.js';
import { IebinError } from './errors.js';
import { sha256File } from './file.js';
import type { IebinHeader, SourceFile } from './header.js';
import { BLOCK_FORMATS, isBlockDtype } from './blocks.js';
import { isFloatDtype, type FloatDtype, type TensorLayout } from './layout.js';
import { expectedTensors, type TensorRole } from './llama.js';
import { readChunks, readStreams, type ModelSource, type SourceTensor } from './source.js';
import { applyLayout, encodeFloat } from './tensor.js';
import { IebinWriter, type QuantParams } from './writer.js';

export interface ConvertedTensor {
  dtype: SourceTensor['dtype'];
  quant: QuantParams | null;
  /** Row-major bytes in `dtype`. */
  bytes: Uint8Array;
}

/** Per-tensor hook to re-encode a tensor (e.g. quantize it); return null to keep it as it is. */
export type TensorTransform = (
  tensor: SourceTensor,
  role: TensorRole,
  rowMajor: Uint8Array,
) => ConvertedTensor | null | Promise<ConvertedTensor | null>;

export interface ConvertOptions {
  /** Store float matrices (2-D, and float 3-D experts) in this dtype (norms, biases, sinks and expert biases are f32). Default: as the source has them. */
  dtype?: FloatDtype;
  /** Store projection and classifier matrices transposed ([K, N]); float dtypes only. */
  pretranspose?: boolean;
  /** Store projection and classifier matrices blocked along K with this block size (multiple of 64). */
  blockK?: number;
  transform?: TensorTransform;
  /** Per-tensor layouts that replace the one pretranspose/blockK would give (a quantization manifest's). */
  layouts?: ReadonlyMap<string, TensorLayout>;
  /** Program name and version recorded in the provenance. */
  converter: string;
  quantization?: Record<string, unknown> | null;
  /** Called after each tensor is written. */
  onProgress?: (p: { tensor: string; index: number; count: number; bytesDone: number; bytesTotal: number }) => void;
  /** Lets the caller abort from a signal handler (it calls writer.abortSync()). */
  onWriter?: (w: IebinWriter) => void;
}

/** f32 values of a float source tensor. */
export function floatValues(t: Pick<SourceTensor, 'dtype'>, bytes: Uint8Array): Float32Array {
  const b = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
  if (t.dtype === 'f32') return new Float32Array(b.buffer, b.byteOffset, b.length / 4);
  const u16 = new Uint16Array(b.buffer, b.byteOffset, b.length / 2);
  if (t.dtype === 'f16') return decodeF16(u16);
  if (t.dtype === 'bf16') return decodeBf16(u16);
  throw new RangeError(`${t.dtype} is not a float dtype`);
}

/**
 * The layout exportIebin stores a tensor in: projection and classifier matrices are
 * pretransposed (float dtypes only) or blocked along K (when the block is a multiple of the
 * group size); everything else stays row-major.
 */
export function exportLayout(
  role: TensorRole,
  shape: readonly number[],
  dtype: SourceTensor['dtype'],
  quant: QuantParams | null,
  options: Pick<ConvertOptions, 'pretranspose' | 'blockK'>,
): TensorLayout {
  const matrix = shape.length === 2 && (role === 'projection' || role === 'classifier');
  if (matrix && options.pretranspose && isFloatDtype(dtype)) return { order: 'pretransposed', block_k: 0 };
  // ggml block dtypes stay as whole blocks, row-major.
  if (
    matrix &&
    options.blockK &&
    !isBlockDtype(dtype) &&
    (!quant || quant.granularity === 'per_row' || options.blockK % quant.group_size === 0)
  )
    return { order: 'row_major', block_k: options.blockK };
  return { order: 'row_major', block_k: 0 };
}

function sourceBytes(t: SourceTensor): number {
  const n = t.shape.reduce((a, b) => a * b, 1);
  if (isBlockDtype(t.dtype)) return (n / BLOCK_FORMATS[t.dtype].elems) * BLOCK_FORMATS[t.dtype].bytes;
  return n * (t.dtype === 'f32' ? 4 : t.dtype === 'q4' ? 0.5625 : t.dtype === 'i8' ? 1.0625 : 2);
}

/** Writes `source` as an IEBIN model into `outDir` (atomically) and returns its header. */
export async function exportIebin(source: ModelSource, outDir: string, options: ConvertOptions): Promise<IebinHeader> {
  if (options.blockK !== undefined && options.blockK !== 0 && (options.blockK % 64 !== 0 || options.blockK < 64)) {
    throw new IebinError('IEBIN_BAD_LAYOUT', `block_k must be a positive multiple of 64, got ${options.blockK}`, { field: 'block_k' });
  }
  if (options.pretranspose && options.blockK)
    throw new IebinError('IEBIN_BAD_LAYOUT', 'pretranspose and blocked-K cannot be combined', { field: 'layout' });
  const sources: SourceFile[] = [];
  for (const f of source.files) sources.push({ file: basename(f), bytes: (await stat(f)).size, sha256: await sha256File(f) });
  const roles = new Map(expectedTensors(source.config).map((e) => [e.name, e.role]));
  const writer = await IebinWriter.create(outDir, {
    config: source.config,
    tokenizer: source.tokenizer,
    provenance: {
      converter: options.converter,
      source_format: source.format,
      sources,
      ...(source.synth ? { synth: source.synth } : {}),
      notes: source.notes,
    },
    quantization: options.quantization ?? null,
    chat: source.chat ?? null,
  });
  options.onWriter?.(writer);
  const bytesTotal = source.tensors.reduce((a, t) => a + sourceBytes(t), 0);
  let bytesDone = 0;
  try {
    for (let i = 0; i < source.tensors.length; i++) {
      const t = source.tensors[i];
      const role = roles.get(t.name) ?? 'projection';
      // A tensor that streams and is stored as it is (no transform, re-encoding or layout) goes to disk piece by piece.
      const vector = t.shape.length === 1 || role === 'expert_bias';
      const storedAs = isFloatDtype(t.dtype) ? (vector ? 'f32' : (options.dtype ?? t.dtype)) : t.dtype;
      const plain = options.layouts?.get(t.name) ?? exportLayout(role, t.shape, t.dtype, t.quant, options);
      if (!options.transform && !t.quant && readStreams(t) && storedAs === t.dtype && plain.order === 'row_major' && plain.block_k === 0) {
        await writer.addTensor({ name: t.name, dtype: t.dtype, shape: t.shape, layout: plain, quant: null }, readChunks(t));
        bytesDone += sourceBytes(t);
        options.onProgress?.({ tensor: t.name, index: i, count: source.tensors.length, bytesDone, bytesTotal });
        continue;
      }
      let bytes = await t.read();
      let dtype = t.dtype;
      let quant = t.quant;
      const converted = options.transform ? await options.transform(t, role, bytes) : null;
      if (converted) {
        ({ dtype, quant, bytes } = converted);
      } else if (isFloatDtype(t.dtype)) {
        // Vectors (norms, biases, sinks, stacked expert biases) are stored f32.
        const want = storedAs as FloatDtype;
        if (want !== t.dtype) {
          bytes = encodeFloat(floatValues(t, bytes), want);
          dtype = want;
        }
      }
      const layout = options.layouts?.get(t.name) ?? exportLayout(role, t.shape, dtype, quant, options);
      const desc = { dtype, shape: t.shape, layout, quant: quant ? { ...quant, scales_offset: 0, zeros_offset: null } : null };
      await writer.addTensor({ name: t.name, dtype, shape: t.shape, layout, quant }, applyLayout(desc, bytes));
      bytesDone += sourceBytes(t);
      options.onProgress?.({ tensor: t.name, index: i, count: source.tensors.length, bytesDone, bytesTotal });
    }
    return await writer.finish();
  } catch (e) {
    await writer.abort();
    throw e;
  }
}
