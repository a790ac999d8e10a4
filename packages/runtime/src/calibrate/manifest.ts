/**
 * Stage 6: the verdict and the expanded manifest: every tensor's final scheme, parameters,
 * transforms and measured quality, the scales the transforms name, the calibration text's
 * identity and the gate's figures. Figures are rounded (7 significant digits for cosine, 5 for
 * SNR, 6 end to end) so the same inputs give a byte-identical manifest.
 */
import { basename } from 'node:path';
import { sha256Bytes, type ModelConfig, type TensorEntry } from '@ie/format';
import {
  MANIFEST_VERSION,
  encodeScales,
  gateFailures,
  gateThresholds,
  tensorPasses,
  type EndToEnd,
  type ExpandedManifest,
  type GateThresholds,
  type LoadedManifest,
  type ManifestEntry,
  type OutputQuality,
  type Policy,
  type TensorPlan,
} from '@ie/quant';
import type { ModelPlan } from './plan.js';

/** `digits` significant digits; ±999 in place of an infinity (a lossless tensor's SNR). */
export const round = (x: number, digits: number) => (Number.isFinite(x) ? Number(x.toPrecision(digits)) : x > 0 ? 999 : -999);

export interface ManifestInput {
  policy: { loaded: LoadedManifest; manifest: Policy };
  config: ModelConfig;
  /** The stored tensors, in file order. */
  tensors: readonly TensorEntry[];
  model: Pick<ModelPlan, 'plans' | 'digests' | 'fingerprint'>;
  /** Every tensor's final plan (after packing). */
  planOf: ReadonlyMap<string, TensorPlan>;
  quality: ReadonlyMap<string, OutputQuality>;
  alphas: ReadonlyMap<string, number>;
  scales: ReadonlyMap<string, Float32Array>;
  endToEnd: EndToEnd;
  calibration: { text: string; file: string; sequences: number; tokens: number };
}

/** One tensor's manifest entry. */
export function manifestEntry(
  t: TensorEntry,
  sha256: string,
  p: TensorPlan,
  qm: OutputQuality | undefined,
  alpha: number | undefined,
  thresholds: GateThresholds,
): ManifestEntry {
  const e: ManifestEntry = {
    name: t.name,
    shape: [...t.shape],
    source: { dtype: t.dtype, sha256 },
    scheme: p.scheme,
    layout: { ...p.layout },
    verdict: qm ? (tensorPasses(qm, thresholds) ? 'pass' : 'fail') : 'not_measured',
  };
  if (p.quant) {
    if (p.scheme === 'int4w') Object.assign(e, { group_size: p.quant.group_size, mode: p.quant.scheme });
    else
      Object.assign(e, {
        granularity: p.quant.granularity,
        ...(p.quant.granularity === 'per_group' ? { group_size: p.quant.group_size } : {}),
      });
    e.scale_dtype = p.quant.scale_dtype;
    // A tensor the source already had in this encoding is copied, not quantized here.
    if (!p.passthrough) e.method = p.method ?? 'rtn';
    if (alpha !== undefined) e.alpha = alpha;
  }
  e.rule = p.rule;
  if (p.transforms.length) e.transforms = p.transforms;
  e.quality = qm ? { cosine: round(qm.cosine, 7), snr_db: round(qm.snr_db, 5) } : null;
  return e;
}

/** The gate's failures and the manifest (`rejected` when there are any), and its canonical JSON. */
export function buildManifest(i: ManifestInput): { manifest: ExpandedManifest; json: string; failures: string[] } {
  const thresholds = gateThresholds(i.policy.manifest);
  const e2e = i.endToEnd;
  const failures = gateFailures(
    i.model.plans.map((p) => ({ name: p.name, quality: i.quality.get(p.name) ?? null })),
    e2e,
    thresholds,
  );
  const tensors = i.tensors.map((t, k) =>
    manifestEntry(
      t,
      i.model.digests[k].sha256,
      i.planOf.get(t.name) as TensorPlan,
      i.quality.get(t.name),
      i.alphas.get(t.name),
      thresholds,
    ),
  );
  // Only the scales some transform names (a site searched to α = 0 has none).
  const used = new Set(tensors.flatMap((t) => (t.transforms ?? []).map((x) => x.by)));
  const { loaded, manifest: policy } = i.policy;
  const manifest: ExpandedManifest = {
    $schema: './q4_manifest.schema.json',
    kind: 'expanded',
    version: MANIFEST_VERSION,
    status: failures.length ? 'rejected' : 'accepted',
    policy: { ...(policy.name ? { name: policy.name } : {}), file: basename(loaded.file), sha256: loaded.sha256 },
    model: { fingerprint: i.model.fingerprint, config: { ...i.config } },
    calibration: {
      text: basename(i.calibration.file),
      sha256: sha256Bytes(Buffer.from(i.calibration.text, 'utf8')),
      sequences: i.calibration.sequences,
      tokens: i.calibration.tokens,
    },
    gate: {
      thresholds,
      end_to_end: { kl_mean: round(e2e.kl_mean, 6), kl_max: round(e2e.kl_max, 6), top1: round(e2e.top1, 6), positions: e2e.positions },
      failures,
    },
    scales: Object.fromEntries([...i.scales].filter(([k]) => used.has(k)).map(([k, v]) => [k, encodeScales(v)])),
    tensors,
  };
  return { manifest, json: `${JSON.stringify(manifest, null, 2)}\n`, failures };
}
