/**
 * Binding a mapped IEBIN model to the kernels: every matrix zero-copy over the read-only map,
 * norms and biases as f32 vectors. When the requested precision differs from the file's, the
 * affected matrices are converted once here with @ie/quant's RTN packers (fp -> lower only).
 */
import { decodeTensor, encodeFloat, expectedTensors, floatElements, isFloatDtype, quantGeometry, type IebinReader, type QuantParams, type TensorEntry } from '@ie/format';
import type { KernelContext, MappedFile, MatrixSpec, WeightMatrix } from '@ie/kernels';
import { quantizeMatrix } from '@ie/quant';
import { IeRuntimeError } from './errors.js';
import { PRECISION_DTYPE, PRECISION_RANK, filePrecision, type Precision } from './precision.js';

export interface ModelWeights {
  matrices: Map<string, WeightMatrix>;
  vectors: Map<string, Float32Array>;
  /** The precision the engine runs at, and the file's own. */
  precision: Precision;
  filePrecision: Precision | 'mixed';
  /** Bytes of weights one decoded token streams: every matrix once plus one embedding row. */
  bytesPerToken: number;
  notices: string[];
}

/** Tensors that replace the file's (a quantization candidate being judged): row-major encodings, and f32 vectors. */
export interface WeightOverrides {
  matrices: ReadonlyMap<string, { spec: MatrixSpec; data: Uint8Array }>;
  vectors: ReadonlyMap<string, Float32Array>;
}

export function bindWeights(ctx: KernelContext, reader: IebinReader, mapping: MappedFile, requested: Precision | undefined, overrides?: WeightOverrides): ModelWeights {
  const c = reader.config;
  const roles = new Map(expectedTensors(c).map((e) => [e.name, e.role]));
  const projections = reader.tensors.filter((t) => roles.get(t.name) === 'projection');
  const own = filePrecision(projections);
  const notices: string[] = [];
  const precision: Precision = requested ?? (own === 'mixed' ? 'fp32' : own);
  if (requested && own !== requested) {
    if (own !== 'mixed' && PRECISION_RANK[requested] > PRECISION_RANK[own]) {
      throw new IeRuntimeError('IE_PRECISION_UNSUPPORTED', `the model's weights are ${own}; converting up to ${requested} would not restore what quantization dropped. Load it at ${own}, or export the ${requested} model from its original weights (ie convert)`);
    }
    notices.push(`weights converted from ${own} to ${requested} at load with round-to-nearest; an offline export with a quantization manifest (ie convert --q4-map) is the accurate way and loads without conversion`);
  }
  const target = PRECISION_DTYPE[precision];
  const matrices = new Map<string, WeightMatrix>();
  const vectors = new Map<string, Float32Array>();
  let bytesPerToken = 0;
  for (const t of reader.tensors) {
    const role = roles.get(t.name);
    const view = reader.view(t.name).bytes;
    if (t.shape.length === 1) {
      vectors.set(t.name, overrides?.vectors.get(t.name) ?? (t.dtype === 'f32' ? (floatElements(t, view) as Float32Array) : decodeTensor(t, view)));
      bytesPerToken += t.bytes;
      continue;
    }
    const replaced = overrides?.matrices.get(t.name);
    if (replaced) {
      matrices.set(t.name, ctx.matrix(replaced.spec, replaced.data));
      bytesPerToken += role === 'embedding' && !c.tied_classifier ? replaced.data.length / t.shape[0] : replaced.data.length;
      continue;
    }
    const convert = shouldConvert(t, role, target, c.tied_classifier);
    let m: WeightMatrix;
    let bytes = t.bytes;
    if (convert) {
      if (!isFloatDtype(t.dtype) && PRECISION_RANK[precision] > 0) {
        throw new IeRuntimeError('IE_PRECISION_UNSUPPORTED', `${t.name} is ${t.dtype}; it cannot be converted up to ${precision}`);
      }
      const { spec, data } = convertMatrix(t, view, target);
      m = ctx.matrix(spec, data);
      bytes = data.length;
    } else {
      m = ctx.matrix(t as MatrixSpec, view, mapping);
    }
    matrices.set(t.name, m);
    bytesPerToken += role === 'embedding' && !c.tied_classifier ? bytes / t.shape[0] : bytes;
  }
  return { matrices, vectors, precision, filePrecision: own, bytesPerToken: Math.round(bytesPerToken), notices };
}

/**
 * Which matrices a precision change touches: projections always; for float precisions also the
 * classifier (and the embedding when it is the classifier). Quantized precisions quantize
 * projections only — embeddings and the classifier stay as stored, as the default policy says.
 */
function shouldConvert(t: TensorEntry, role: string | undefined, target: string, tied: boolean): boolean {
  if (t.dtype === target) return false;
  if (role === 'projection') return true;
  const floatTarget = target === 'f32' || target === 'f16' || target === 'bf16';
  if (!floatTarget || !isFloatDtype(t.dtype)) return false;
  return role === 'classifier' || (role === 'embedding' && tied);
}

/** The kernels' spec of a row-major matrix in `dtype` (with its plane offsets when quantized). */
export function matrixSpec(dtype: TensorEntry['dtype'], shape: readonly number[], quant: QuantParams | null): MatrixSpec {
  const [rows, cols] = shape;
  if (!quant) return { dtype, shape: [rows, cols] };
  const g = quantGeometry(dtype as 'q4' | 'i8', rows, cols, quant);
  return { dtype, shape: [rows, cols], quant: { ...quant, scales_offset: Number(g.scalesOffset), zeros_offset: g.zerosOffset === null ? null : Number(g.zerosOffset) } };
}

/** One matrix re-encoded: float -> float via the codecs, float -> i8 (per row) / q4 (g64 symmetric) by RTN. */
function convertMatrix(t: TensorEntry, view: Uint8Array, target: string): { spec: MatrixSpec; data: Uint8Array } {
  const [rows, cols] = t.shape;
  const values = decodeTensor(t, view);
  if (target === 'f32' || target === 'f16' || target === 'bf16') {
    const enc = encodeFloat(values, target);
    const data = new Uint8Array(enc.length);
    data.set(enc);
    return { spec: matrixSpec(target, t.shape, null), data };
  }
  const quant: QuantParams = target === 'i8' ? { scheme: 'symmetric', granularity: 'per_row', group_size: cols, scale_dtype: 'f16' } : { scheme: 'symmetric', granularity: 'per_group', group_size: 64, scale_dtype: 'f16' };
  const packed = quantizeMatrix(values, rows, cols, { dtype: target as 'i8' | 'q4', quant }, 'rtn');
  return { spec: matrixSpec(target as 'i8' | 'q4', t.shape, packed.quant), data: packed.bytes };
}
