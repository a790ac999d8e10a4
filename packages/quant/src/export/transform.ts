/**
 * Export per manifest: the TensorTransform @ie/format's exportIebin calls for each tensor as
 * it streams (one tensor in memory at a time), and the audit record that lands in
 * model.ie.json's `quantization` field.
 */
import { basename } from 'node:path';
import {
  encodeFloat,
  floatValues,
  isBlockDtype,
  isFloatDtype,
  type ConvertedTensor,
  type SourceTensor,
  type TensorTransform,
} from '@ie/format';
import { ManifestError, QuantError } from '../errors.js';
import { tensorSha256 } from '../manifest/fingerprint.js';
import type { TensorPlan } from '../manifest/resolve.js';
import type { ExpandedManifest, Manifest } from '../manifest/schema.js';
import type { ClipSearchPool } from '../ptq/pool.js';
import { applyTransforms, decodeScales, quantizeMatrixAsync } from '../ptq/quantize.js';

/** A plan's tensor from (already transformed) f32 values: packed (clip searches on `pool`'s threads when given), or encoded as its float dtype. */
export async function encodePlanned(plan: TensorPlan, values: Float32Array, pool?: ClipSearchPool): Promise<ConvertedTensor> {
  if (plan.dtype === 'q4' || plan.dtype === 'i8') {
    const [rows, cols] = plan.shape;
    const packed = await quantizeMatrixAsync(
      values,
      rows,
      cols,
      { dtype: plan.dtype, quant: plan.quant as NonNullable<TensorPlan['quant']> },
      plan.method ?? 'rtn',
      pool,
    );
    return { dtype: plan.dtype, quant: packed.quant, bytes: packed.bytes };
  }
  if (isBlockDtype(plan.dtype))
    throw new QuantError(
      'QUANT_BAD_PARAMS',
      `${plan.name}: ${plan.dtype} (ggml blocks) can be kept as the source has it, not produced by quantization`,
    );
  const bytes =
    plan.dtype === 'f32' ? new Uint8Array(values.buffer, values.byteOffset, values.byteLength) : encodeFloat(values, plan.dtype);
  return { dtype: plan.dtype, quant: null, bytes };
}

/** Scales of an expanded manifest, decoded. */
export function manifestScales(m: Manifest): Map<string, Float32Array> {
  return new Map(m.kind === 'expanded' ? Object.entries(m.scales).map(([k, v]) => [k, decodeScales(v)]) : []);
}

export interface TransformOptions {
  plans: readonly TensorPlan[];
  scales: ReadonlyMap<string, Float32Array>;
  /** Expanded manifests: each tensor's source digest, checked as it is read. */
  expectedSha256?: ReadonlyMap<string, string>;
  file: string;
  /** Worker threads for the clip search (the caller closes it after the export). */
  pool?: ClipSearchPool;
}

/** The per-tensor hook for exportIebin. Throws QUANT_MANIFEST_MISMATCH (and the export is abandoned) when a tensor's weights are not the ones the manifest measured. */
export function manifestTransform(o: TransformOptions): TensorTransform {
  const byName = new Map(o.plans.map((p) => [p.name, p]));
  return (t: SourceTensor, _role, rowMajor) => {
    const plan = byName.get(t.name);
    if (!plan) throw new ManifestError('QUANT_MANIFEST_MISMATCH', o.file, [{ field: 'tensors', message: `has no entry for ${t.name}` }]);
    const want = o.expectedSha256?.get(t.name);
    if (want !== undefined) {
      const got = tensorSha256(t.dtype, t.quant, rowMajor);
      if (got !== want)
        throw new ManifestError(
          'QUANT_MANIFEST_MISMATCH',
          o.file,
          [
            {
              field: `tensors(${t.name}).source.sha256`,
              message: `the manifest measured other weights (${want.slice(0, 12)}…, this source has ${got.slice(0, 12)}…)`,
            },
          ],
          `${o.file} was made for another model: its weights differ`,
        );
    }
    if (plan.passthrough && plan.transforms.length === 0) return null;
    if (!isFloatDtype(t.dtype)) return null;
    // floatValues may alias the source bytes; transforms write in place, so copy first.
    const values = Float32Array.from(floatValues(t, rowMajor));
    applyTransforms(values, t.shape, plan.transforms, o.scales);
    return encodePlanned(plan, values, o.pool);
  };
}

export interface QuantizationRecord extends Record<string, unknown> {
  manifest: { kind: Manifest['kind']; file: string; sha256: string; status: string | null; policy_sha256: string | null };
  /** The gate the manifest passed; `{ status: 'skipped' }` for an export told not to measure (ie convert --no-gate). */
  gate: ExpandedManifest['gate'] | { status: 'skipped'; reason: string } | null;
  calibration: ExpandedManifest['calibration'] | null;
  tensors: Record<string, Record<string, unknown>>;
}

/** What model.ie.json records about how its tensors were packed. */
export function quantizationRecord(m: Manifest, file: string, sha256: string, plans: readonly TensorPlan[]): QuantizationRecord {
  const entries = new Map(m.kind === 'expanded' ? m.tensors.map((e) => [e.name, e]) : []);
  const tensors: QuantizationRecord['tensors'] = {};
  for (const p of plans) {
    if (!p.quant && p.transforms.length === 0 && p.dtype === p.source.dtype) continue;
    const e = entries.get(p.name);
    tensors[p.name] = {
      scheme: p.scheme,
      ...(p.quant
        ? { mode: p.quant.scheme, granularity: p.quant.granularity, group_size: p.quant.group_size, scale_dtype: p.quant.scale_dtype }
        : {}),
      method: p.passthrough ? 'source' : p.method,
      ...(p.transforms.length ? { transforms: p.transforms } : {}),
      ...(e?.quality ? { cosine: e.quality.cosine, snr_db: e.quality.snr_db, verdict: e.verdict } : {}),
    };
  }
  return {
    manifest: {
      kind: m.kind,
      file: basename(file),
      sha256,
      status: m.kind === 'expanded' ? m.status : null,
      policy_sha256: m.kind === 'expanded' ? m.policy.sha256 : sha256,
    },
    gate: m.kind === 'expanded' ? m.gate : null,
    calibration: m.kind === 'expanded' ? (m.calibration ?? null) : null,
    tensors,
  };
}
