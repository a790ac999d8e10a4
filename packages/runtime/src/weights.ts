/**
 * Binding a mapped IEBIN model to the kernels: every matrix zero-copy over the read-only map, in
 * the dtype the file holds (a mixed-precision export runs as exported), norms and biases as f32
 * vectors. A requested precision converts, once, with @ie/quant's RTN packers, only the matrices
 * above it (never upwards): an int8w + int4w model at int4w converts its int8w matrices and
 * keeps the rest.
 */
import {
  decodeTensor,
  encodeFloat,
  expectedTensors,
  floatElements,
  isFloatDtype,
  quantGeometry,
  type Dtype,
  type IebinReader,
  type ModelConfig,
  type QuantParams,
  type TensorEntry,
  type TensorRole,
} from '@ie/format';
import {
  type KernelContext,
  type MappedFile,
  type MatrixSpec,
  type WeightMatrix,
  alignedBytes,
  blockedKUnfit,
  matrixByteSize,
  preferredBlockK,
  rows16Unfit,
} from '@ie/kernels';
import { quantizeMatrix } from '@ie/quant';
import { IeRuntimeError } from './errors.js';
import type { BlockKMode } from './options.js';
import { DTYPE_KIND, KIND_RANK, PRECISION_DTYPE, filePrecision, type Precision, type PrecisionMix, type WeightKind } from './precision.js';

export interface ModelWeights {
  matrices: Map<string, WeightMatrix>;
  /** Mixture-of-experts tensors [E, N, K]: one matrix per expert, each over its slice of the map. */
  experts: Map<string, WeightMatrix[]>;
  vectors: Map<string, Float32Array>;
  /** The precision the projections run at (`mixed` when they differ), and the file's own. */
  precision: WeightKind | 'mixed';
  filePrecision: WeightKind | 'mixed';
  /** Projection matrices per precision, as bound. */
  precisionMix: PrecisionMix;
  /** Bytes of weights one decoded token streams: every matrix once plus one embedding row. */
  bytesPerToken: number;
  notices: string[];
}

/** Tensors that replace the file's (a quantization candidate being judged): row-major encodings, and f32 vectors. */
export interface WeightOverrides {
  matrices: ReadonlyMap<string, { spec: MatrixSpec; data: Uint8Array }>;
  vectors: ReadonlyMap<string, Float32Array>;
}

/**
 * What a requested precision means for this file's projections: a refusal when none is above it
 * (converting up would not restore what quantization dropped), else a notice per group that converts
 * or stays.
 */
function precisionNotices(projections: readonly TensorEntry[], own: WeightKind | 'mixed', requested: Precision): string[] {
  const notices: string[] = [];
  const above = projections.filter((t) => KIND_RANK[DTYPE_KIND[t.dtype]] >= KIND_RANK[requested] && t.dtype !== PRECISION_DTYPE[requested]);
  const below = projections.filter((t) => KIND_RANK[DTYPE_KIND[t.dtype]] < KIND_RANK[requested]);
  if (below.length === projections.length) {
    throw new IeRuntimeError(
      'IE_PRECISION_UNSUPPORTED',
      `the model's weights are ${own}; converting up to ${requested} would not restore what quantization dropped. Load it at ${own}, or export the ${requested} model from its original weights`,
    );
  }
  if (above.length > 0)
    notices.push(
      `${above.length} matrices converted from ${own} to ${requested} at load with round-to-nearest; an offline export with a quantization manifest (ie convert --q4-map) is the accurate way and loads without conversion`,
    );
  if (below.length > 0)
    notices.push(
      `${below.length} matrices stay as stored (${[...new Set(below.map((t) => DTYPE_KIND[t.dtype]))].join(', ')}, below ${requested}): precision only converts downwards`,
    );
  return notices;
}

/** Binds one tensor at a time by its role, keeping the maps, the precision mix and the bytes a token streams. */
class WeightBinder {
  readonly matrices = new Map<string, WeightMatrix>();
  readonly experts = new Map<string, WeightMatrix[]>();
  readonly vectors = new Map<string, Float32Array>();
  readonly mix: PrecisionMix = {};
  bytesPerToken = 0;

  constructor(
    private readonly ctx: KernelContext,
    private readonly config: ModelConfig,
    private readonly mapping: MappedFile,
    /** The dtype projections convert to, when a precision was requested. */
    private readonly target: Dtype | undefined,
    private readonly overrides: WeightOverrides | undefined,
  ) {}

  bind(t: TensorEntry, role: TensorRole | undefined, view: Uint8Array): void {
    if (role === 'experts') this.bindExperts(t, view);
    else if (t.shape.length === 1 || role === 'expert_bias') this.bindVector(t, role, view);
    else this.bindMatrix(t, role, view);
  }

  /** Stored as they are (precision does not convert experts); a token reads its top-k experts only. */
  private bindExperts(t: TensorEntry, view: Uint8Array): void {
    const [E, N, K] = t.shape;
    const per = view.length / E;
    this.experts.set(
      t.name,
      Array.from({ length: E }, (_, e) =>
        this.ctx.matrix({ dtype: t.dtype, shape: [N, K] } as MatrixSpec, view.subarray(e * per, (e + 1) * per), this.mapping),
      ),
    );
    this.count(DTYPE_KIND[t.dtype]);
    this.bytesPerToken += (t.bytes * (this.config.moe?.experts_per_token ?? E)) / E;
  }

  private bindVector(t: TensorEntry, role: TensorRole | undefined, view: Uint8Array): void {
    const c = this.config;
    this.vectors.set(
      t.name,
      this.overrides?.vectors.get(t.name) ??
        // Zero-copy only where the stored order is the logical one: a pretransposed or blocked-K
        // expert bias ([E, N]) is laid out like any 2-D tensor and goes through the decoder.
        (t.dtype === 'f32' && t.layout.order === 'row_major' && t.layout.block_k === 0
          ? (floatElements(t, view) as Float32Array)
          : decodeTensor(t, view)),
    );
    // An expert's bias row is read only when the expert is chosen.
    this.bytesPerToken += role === 'expert_bias' && c.moe ? (t.bytes * c.moe.experts_per_token) / c.moe.n_experts : t.bytes;
  }

  /** A matrix: an override, a conversion to the requested precision, or zero-copy over the map as stored. */
  private bindMatrix(t: TensorEntry, role: TensorRole | undefined, view: Uint8Array): void {
    const replaced = this.overrides?.matrices.get(t.name);
    if (replaced) {
      this.matrices.set(t.name, this.ctx.matrix(replaced.spec, onCacheLines(replaced.data)));
      this.countBytes(t, role, replaced.data.length);
      return;
    }
    const target = this.target;
    const convert =
      target !== undefined &&
      shouldConvert(t, role, target, this.config.tied_classifier) &&
      KIND_RANK[DTYPE_KIND[t.dtype]] >= KIND_RANK[DTYPE_KIND[target]];
    if (convert) {
      const { spec, data } = convertMatrix(t, view, target);
      this.matrices.set(t.name, this.ctx.matrix(spec, onCacheLines(data)));
      if (role === 'projection') this.count(DTYPE_KIND[target]);
      this.countBytes(t, role, data.length);
    } else {
      this.matrices.set(t.name, this.ctx.matrix(t as MatrixSpec, view, this.mapping));
      if (role === 'projection') this.count(DTYPE_KIND[t.dtype]);
      this.countBytes(t, role, t.bytes);
    }
  }

  private count(kind: WeightKind): void {
    this.mix[kind] = (this.mix[kind] ?? 0) + 1;
  }

  /** An untied embedding is a table: a token reads one row of it. */
  private countBytes(t: TensorEntry, role: TensorRole | undefined, bytes: number): void {
    this.bytesPerToken += role === 'embedding' && !this.config.tied_classifier ? bytes / t.shape[0] : bytes;
  }
}

export function bindWeights(
  ctx: KernelContext,
  reader: IebinReader,
  mapping: MappedFile,
  requested: Precision | undefined,
  overrides?: WeightOverrides,
): ModelWeights {
  const c = reader.config;
  const roles = new Map(expectedTensors(c).map((e) => [e.name, e.role]));
  const projections = reader.tensors.filter((t) => roles.get(t.name) === 'projection');
  const own = filePrecision(projections);
  const notices = requested ? precisionNotices(projections, own, requested) : [];
  const binder = new WeightBinder(ctx, c, mapping, requested ? PRECISION_DTYPE[requested] : undefined, overrides);
  for (const t of reader.tensors) binder.bind(t, roles.get(t.name), reader.view(t.name).bytes);
  const kinds = Object.keys(binder.mix) as WeightKind[];
  return {
    matrices: binder.matrices,
    experts: binder.experts,
    vectors: binder.vectors,
    precision: kinds.length === 1 ? kinds[0] : 'mixed',
    filePrecision: own,
    precisionMix: binder.mix,
    bytesPerToken: Math.round(binder.bytesPerToken),
    notices,
  };
}

/**
 * Reorders the matrices of one type (symmetric q4, iq4_nl, q4_k, q5_k, q6_k or i8) that the matmuls read into 16-row records
 * in place (WeightMatrix.interleaveRows16), and returns how many. An untied embedding stays in rows:
 * it is a table read one row per token.
 */
export function interleaveRecords(
  weights: ModelWeights,
  config: ModelConfig,
  dtype: 'q4' | 'i8' | 'iq4_nl' | 'q4_k' | 'q5_k' | 'q6_k',
): number {
  const roles = new Map(expectedTensors(config).map((e) => [e.name, e.role]));
  let count = 0;
  for (const [name, m] of weights.matrices) {
    if (
      m.spec.dtype !== dtype ||
      (roles.get(name) === 'embedding' && !config.tied_classifier) ||
      m.layout === 'rows16' ||
      rows16Unfit(m.spec) !== undefined
    )
      continue;
    m.interleaveRows16();
    count++;
  }
  return count;
}

/**
 * The largest matrix reordered into K-panels at load: the reorder copies the matrix once, and a
 * load should not need much more memory than the weights (gpt-oss's 1.16 GB classifier stays in
 * rows).
 */
export const REORDER_COPY_LIMIT = 256 * 2 ** 20;

/**
 * Reorders the projections and the classifier the matmuls read into K-panels in place
 * (WeightMatrix.reorderBlockedK; EngineOptions.blockK says how wide; `int8Kernels`: the int8-activation
 * kernels the quantized matrices run, absent in the FP32 mode), and returns how many. The
 * token embedding stays in rows: it is a table read one row per token. Matrices already K-blocked,
 * pretransposed, in 16-row records, of a block type or larger than REORDER_COPY_LIMIT stay as they are.
 */
export function reorderLongRows(weights: ModelWeights, config: ModelConfig, mode: BlockKMode, int8Kernels: string | undefined): number {
  if (mode === 0) return 0;
  const roles = new Map(expectedTensors(config).map((e) => [e.name, e.role]));
  let count = 0;
  for (const [name, m] of weights.matrices) {
    const role = roles.get(name);
    if ((role !== 'projection' && role !== 'classifier') || m.layout === 'rows16' || matrixByteSize(m.spec) > REORDER_COPY_LIMIT) continue;
    const B = mode === 'auto' ? preferredBlockK(m.spec, int8Kernels) : m.cols > mode ? mode : 0;
    if (B === 0 || blockedKUnfit(m.spec, B) !== undefined) continue;
    m.reorderBlockedK(B);
    count++;
  }
  return count;
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
  return {
    dtype,
    shape: [rows, cols],
    quant: { ...quant, scales_offset: Number(g.scalesOffset), zeros_offset: g.zerosOffset === null ? null : Number(g.zerosOffset) },
  };
}

/**
 * Weights made in memory, copied onto a 64-byte boundary as a mapped file's tensors are: a
 * JavaScript buffer starts mid-line, and the GEMVs' full-vector loads then split cache lines
 * (f32 streams about a fifth slower).
 */
function onCacheLines(data: Uint8Array): Uint8Array {
  const a = alignedBytes(data.length);
  a.set(data);
  return a;
}

/** One matrix re-encoded: float -> float via the codecs, float -> i8 (per row) / q4 (g64 symmetric) by RTN. */
function convertMatrix(t: TensorEntry, view: Uint8Array, target: string): { spec: MatrixSpec; data: Uint8Array } {
  const [rows, cols] = t.shape;
  const values = decodeTensor(t, view);
  if (target === 'f32' || target === 'f16' || target === 'bf16') {
    return { spec: matrixSpec(target, t.shape, null), data: encodeFloat(values, target) };
  }
  const quant: QuantParams =
    target === 'i8'
      ? { scheme: 'symmetric', granularity: 'per_row', group_size: cols, scale_dtype: 'f16' }
      : { scheme: 'symmetric', granularity: 'per_group', group_size: 64, scale_dtype: 'f16' };
  const packed = quantizeMatrix(values, rows, cols, { dtype: target as 'i8' | 'q4', quant }, 'rtn');
  return { spec: matrixSpec(target as 'i8' | 'q4', t.shape, packed.quant), data: packed.bytes };
}
