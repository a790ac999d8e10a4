/**
 * `ie quantize`: a policy becomes an expanded manifest, measured on the real model. The FP
 * model (as stored) runs over the calibration text while every projection's input is
 * captured; activation-aware scales are searched per input site; each tensor is packed per
 * its plan and judged (cosine and SNR of W·x); then the whole quantized model runs over the
 * same text and its next-token distributions are compared with the FP model's (KL, top-1).
 * The arithmetic lives in @ie/quant; this file drives it because it needs the engine.
 * Deterministic: the same model, policy, text, ISA give byte-identical manifests.
 */
import { basename } from 'node:path';
import { type IebinReader, decodeTensor, isFloatDtype, removeLayout, sha256Bytes, type ModelConfig, type TensorEntry } from '@ie/format';
import type { ContextOptions, MatrixSpec, WeightMatrix } from '@ie/kernels';
import {
  ClipSearchPool,
  DEFAULT_CALIBRATION,
  EndToEndMeter,
  MANIFEST_VERSION,
  QuantError,
  activationScales,
  applyTransforms,
  encodePlanned,
  encodeScales,
  gateFailures,
  gateThresholds,
  modelFingerprint,
  modelTensors,
  outputQuality,
  resolvePolicy,
  tensorPasses,
  tensorSha256,
  type EndToEnd,
  type EntryTransform,
  type ExpandedManifest,
  type LoadedManifest,
  type ManifestEntry,
  type OutputQuality,
  type Policy,
  type TensorPlan,
} from '@ie/quant';
import { Forward, type Capture, type CaptureSite } from './forward.js';
import { openMapped } from './load.js';
import { createTokenizer } from './tokenizer/index.js';
import { bindWeights, matrixSpec, type WeightOverrides } from './weights.js';

/** Exponents the activation-aware search tries (0 = no scaling, so it never does worse than clip alone on its objective). */
export const AWQ_ALPHAS: readonly number[] = Array.from({ length: 11 }, (_, i) => i / 10);
/** Calibration rows kept for the per-tensor gate (evenly spaced over all positions). */
export const GATE_ROWS = 512;
/** Rows the activation-aware search evaluates (a subsample of the gate rows). */
export const SEARCH_ROWS = 128;
/** FP logits of the calibration run are kept up to this size; past it the FP model runs again during judging. */
export const LOGITS_BUDGET_BYTES = 256 * 2 ** 20;

export interface QuantizeModelOptions {
  policy: LoadedManifest;
  /** The calibration text and the name to record for it. */
  calibration: { text: string; file: string };
  context?: ContextOptions;
  /** Keep the FP logits for the end-to-end comparison up to this many bytes (default 256 MiB); past it the FP model runs a second time instead. */
  logitsBudgetBytes?: number;
  onProgress?: (p: { stage: 'calibrating' | 'searching' | 'packing' | 'judging'; done: number; total: number; detail?: string }) => void;
}

export interface QuantizeResult {
  manifest: ExpandedManifest;
  /** The manifest as written: canonical JSON, two-space indent, trailing newline. */
  json: string;
  accepted: boolean;
  failures: string[];
  endToEnd: EndToEnd;
  /** Bytes of weights a decoded token streams, FP model vs quantized. */
  bytesPerToken: { before: number; after: number };
  calibrationTokens: number;
}

interface SiteData {
  layer: number;
  site: CaptureSite;
  width: number;
  /** Gate rows x width. */
  rows: Float32Array;
  /** Mean |x| per channel over all calibration positions. */
  meanAbs: Float64Array;
}

const round = (x: number, digits: number) => (Number.isFinite(x) ? Number(x.toPrecision(digits)) : x > 0 ? 999 : -999);

/** Calibration sequences: BOS + up to seqLen-1 tokens of the text each. */
function sequences(ids: number[], bos: number, seqLen: number, max: number): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < ids.length && out.length < max; i += seqLen - 1) {
    const chunk = ids.slice(i, i + seqLen - 1);
    if (chunk.length >= 1) out.push([bos, ...chunk]);
  }
  return out;
}

function consumers(site: CaptureSite, layer: number, c: ModelConfig): string[] {
  const p = `blk.${layer}.`;
  switch (site) {
    case 'attn_in':
      return [`${p}attn_q.weight`, `${p}attn_k.weight`, `${p}attn_v.weight`];
    case 'attn_out_in':
      return [`${p}attn_output.weight`];
    case 'ffn_in':
      return [`${p}ffn_gate.weight`, `${p}ffn_up.weight`];
    case 'ffn_down_in':
      return [`${p}ffn_down.weight`];
    case 'classifier_in':
      return [c.tied_classifier ? 'token_embd.weight' : 'output.weight'];
  }
}

/** Row-major f32 values of a stored tensor. */
function valuesOf(reader: IebinReader, t: TensorEntry): Float32Array {
  return decodeTensor(t, reader.view(t.name).bytes);
}

/** Every `step`-th row of X (rows x width). */
function subsample(X: Float32Array, rows: number, width: number, want: number): { X: Float32Array; n: number } {
  if (rows <= want) return { X, n: rows };
  const step = rows / want;
  const out = new Float32Array(want * width);
  for (let i = 0; i < want; i++) out.set(X.subarray(Math.floor(i * step) * width, (Math.floor(i * step) + 1) * width), i * width);
  return { X: out, n: want };
}

function divideColumns(X: Float32Array, n: number, s: Float32Array): Float32Array {
  const w = s.length;
  const out = new Float32Array(n * w);
  for (let r = 0; r < n; r++) for (let k = 0; k < w; k++) out[r * w + k] = Math.fround(X[r * w + k] / s[k]);
  return out;
}

function relativeError(ref: Float32Array, got: Float32Array): number {
  let e = 0;
  let s = 0;
  for (let i = 0; i < ref.length; i++) {
    e += (ref[i] - got[i]) ** 2;
    s += ref[i] ** 2;
  }
  return s > 0 ? e / s : e;
}

/** Quantizes a model per policy and judges it; see the file comment. */
export async function quantizeModel(modelDir: string, o: QuantizeModelOptions): Promise<QuantizeResult> {
  if (o.policy.manifest.kind !== 'policy')
    throw new QuantError('QUANT_MANIFEST_INVALID', `${o.policy.file} is an expanded manifest; ie quantize takes a policy (kind "policy")`);
  const policy = o.policy.manifest as Policy;
  const mapped = await openMapped(modelDir, { context: o.context });
  const { reader, ctx, mapping } = mapped;
  const c = reader.config;
  const owned: WeightMatrix[] = [];
  const pool = new ClipSearchPool({ threads: o.context?.threads });
  const progress = o.onProgress ?? (() => {});
  try {
    const entries = new Map(reader.tensors.map((t) => [t.name, t]));
    const plans = resolvePolicy(policy, modelTensors(c, reader.tensors), o.policy.file);
    const planOf = new Map(plans.map((p) => [p.name, p]));
    const quantized = (name: string) => {
      const p = planOf.get(name);
      return !!p && !p.passthrough && p.quant !== null;
    };

    // Identity of the weights the manifest is measured on.
    const digests = reader.tensors.map((t) => {
      const rowMajor = removeLayout(t, reader.view(t.name).bytes);
      return { name: t.name, shape: t.shape, sha256: tensorSha256(t.dtype, t.quant, rowMajor) };
    });
    const fingerprint = modelFingerprint(c, digests);

    // Calibration sequences.
    const settings = { ...DEFAULT_CALIBRATION, ...(policy.calibration ?? {}) };
    const seqLen = Math.min(settings.sequence_length, c.context_length);
    if (seqLen < 2)
      throw new QuantError(
        'QUANT_CALIBRATION',
        `the model's context holds ${c.context_length} position(s); calibration sequences need at least 2 (BOS and a token)`,
      );
    const tokenizer = await createTokenizer(reader.header, reader.directory);
    const seqs = sequences(tokenizer.encode(o.calibration.text, { bos: false }), c.bos_id, seqLen, settings.max_sequences);
    const total = seqs.reduce((a, s) => a + s.length, 0);
    const textTokens = total - seqs.length;
    if (textTokens < 8)
      throw new QuantError(
        'QUANT_CALIBRATION',
        `${o.calibration.file} gives ${textTokens} tokens; calibration needs a text of at least a few sentences (a few hundred tokens or more is better)`,
      );

    // FP pass: logits at every position, and every projection input.
    const fp = bindWeights(ctx, reader, mapping, undefined);
    const fpForward = new Forward(ctx, c, fp, {
      contextLength: seqLen,
      kvCache: 'f32',
      maxBatch: seqLen,
      activations: 'f32',
      calibration: { capture: true },
    });
    const stride = Math.max(1, total / GATE_ROWS);
    const keep: Array<[number, number]> = []; // (sequence, row) of each gate row
    for (let i = 0, pos = 0; i < seqs.length; i++)
      for (let r = 0; r < seqs[i].length; r++, pos++) if (Math.floor(keep.length * stride) === pos) keep.push([i, r]);
    const sites: SiteData[] = fpForward.captures.map((cap: Capture) => ({
      layer: cap.layer,
      site: cap.site,
      width: cap.width,
      rows: new Float32Array(keep.length * cap.width),
      meanAbs: new Float64Array(cap.width),
    }));
    // The FP logits are kept for the end-to-end comparison when they fit a budget; otherwise the FP model runs again beside the quantized one.
    const keepLogits = total * c.vocab_size * 4 <= (o.logitsBudgetBytes ?? LOGITS_BUDGET_BYTES);
    const fpLogits: Float32Array[] = [];
    let kept = 0;
    for (let i = 0; i < seqs.length; i++) {
      fpForward.runSync(seqs[i], 0);
      const n = seqs[i].length;
      if (keepLogits) for (let r = 0; r < n; r++) fpLogits.push(fpForward.logits.slice(r * c.vocab_size, (r + 1) * c.vocab_size));
      fpForward.captures.forEach((cap, j) => {
        const s = sites[j];
        for (let k = 0; k < n * cap.width; k++) s.meanAbs[k % cap.width] += Math.abs(cap.data[k]);
      });
      for (; kept < keep.length && keep[kept][0] === i; kept++) {
        const r = keep[kept][1];
        fpForward.captures.forEach((cap, j) => sites[j].rows.set(cap.data.subarray(r * cap.width, (r + 1) * cap.width), kept * cap.width));
      }
      progress({ stage: 'calibrating', done: i + 1, total: seqs.length });
    }
    for (const s of sites) for (let k = 0; k < s.width; k++) s.meanAbs[k] /= total;
    const gateN = keep.length;

    const fpMatrix = (name: string) => fp.matrices.get(name) as WeightMatrix;
    const reference = (name: string, X: Float32Array, n: number): Float32Array => {
      const m = fpMatrix(name);
      const Y = new Float32Array(n * m.rows);
      ctx.gemm(m, X, n, Y);
      return Y;
    };
    const packedMatrix = async (plan: TensorPlan, values: Float32Array) => {
      const enc = await encodePlanned(plan, values, pool);
      const m = ctx.matrix(matrixSpec(plan.dtype, plan.shape, enc.quant), enc.bytes);
      owned.push(m);
      return { m, enc };
    };

    // Activation-aware scales, per input site whose consumers ask for them.
    const scales = new Map<string, Float32Array>();
    const transforms = new Map<string, EntryTransform[]>();
    const alphas = new Map<string, number>();
    const addTransform = (name: string, t: EntryTransform) => transforms.set(name, [...(transforms.get(name) ?? []), t]);
    const group = c.n_heads / c.n_kv_heads;
    // A site is scaled when a consumer asks for awq and every tensor the scaling rewrites is float in the source (quantized ones are copied, never rewritten).
    const rewritten = (s: SiteData) => [
      ...consumers(s.site, s.layer, c),
      ...(s.site === 'attn_out_in' ? [`blk.${s.layer}.attn_v.weight`] : s.site === 'ffn_down_in' ? [`blk.${s.layer}.ffn_up.weight`] : []),
    ];
    const isFloat = (name: string) => isFloatDtype((entries.get(name) as TensorEntry).dtype);
    const awqSites = sites.filter(
      (s) =>
        s.site !== 'classifier_in' &&
        consumers(s.site, s.layer, c).some((n) => planOf.get(n)?.method === 'awq' && quantized(n)) &&
        rewritten(s).every(isFloat),
    );
    let searched = 0;
    for (const s of awqSites) {
      const names = consumers(s.site, s.layer, c);
      const { X, n } = subsample(s.rows, gateN, s.width, SEARCH_ROWS);
      const refs = names.map((name) => (quantized(name) ? reference(name, X, n) : null));
      const originals = names.map((name) => (quantized(name) ? valuesOf(reader, entries.get(name) as TensorEntry) : null));
      let stats: Float64Array = s.meanAbs;
      if (s.site === 'attn_out_in') {
        // o's input channel (h, d) comes from v's row (h / group, d): one scale per kv channel, shared by the heads of a group.
        const kvw = c.n_kv_heads * c.head_dim;
        const kv = new Float64Array(kvw);
        for (let h = 0; h < c.n_heads; h++)
          for (let d = 0; d < c.head_dim; d++) kv[Math.floor(h / group) * c.head_dim + d] += s.meanAbs[h * c.head_dim + d] / group;
        stats = new Float64Array(s.width);
        for (let h = 0; h < c.n_heads; h++)
          for (let d = 0; d < c.head_dim; d++) stats[h * c.head_dim + d] = kv[Math.floor(h / group) * c.head_dim + d];
      }
      let best = { alpha: 0, err: Number.POSITIVE_INFINITY, scale: activationScales(stats, 0) };
      for (const alpha of AWQ_ALPHAS) {
        const scale = activationScales(stats, alpha);
        const Xs = divideColumns(X, n, scale);
        let err = 0;
        for (let j = 0; j < names.length; j++) {
          const w = originals[j];
          if (!w) continue;
          const plan = planOf.get(names[j]) as TensorPlan;
          const scaled = Float32Array.from(w);
          applyTransforms(scaled, plan.shape, [{ op: 'scale_columns', by: 's' }], new Map([['s', scale]]));
          const { m } = await packedMatrix({ ...plan, method: 'rtn' }, scaled);
          const Y = new Float32Array(n * m.rows);
          ctx.gemm(m, Xs, n, Y);
          m.dispose();
          owned.pop();
          err += relativeError(refs[j] as Float32Array, Y);
        }
        if (err < best.err) best = { alpha, err, scale };
      }
      const key = `blk.${s.layer}.${s.site}`;
      for (const name of names) alphas.set(name, best.alpha);
      if (best.alpha > 0) {
        scales.set(key, best.scale);
        for (const name of names) addTransform(name, { op: 'scale_columns', by: key });
        const p = `blk.${s.layer}.`;
        if (s.site === 'attn_in') addTransform(`${p}attn_norm.weight`, { op: 'divide', by: key });
        else if (s.site === 'ffn_in') addTransform(`${p}ffn_norm.weight`, { op: 'divide', by: key });
        else if (s.site === 'ffn_down_in') addTransform(`${p}ffn_up.weight`, { op: 'divide_rows', by: key });
        else {
          const vkey = `${p}attn_v_rows`;
          const kvw = c.n_kv_heads * c.head_dim;
          const v = new Float32Array(kvw);
          for (let j = 0; j < kvw; j++) v[j] = best.scale[Math.floor(j / c.head_dim) * group * c.head_dim + (j % c.head_dim)];
          scales.set(vkey, v);
          addTransform(`${p}attn_v.weight`, { op: 'divide_rows', by: vkey });
          if (c.attn_qkv_bias) addTransform(`${p}attn_v.bias`, { op: 'divide', by: vkey });
        }
      }
      progress({ stage: 'searching', done: ++searched, total: awqSites.length, detail: key });
    }

    // Pack every changed tensor; judge each one that has captured inputs.
    const siteOf = new Map<string, SiteData>();
    for (const s of sites) for (const name of consumers(s.site, s.layer, c)) siteOf.set(name, s);
    const overrides = {
      matrices: new Map<string, { spec: MatrixSpec; data: Uint8Array }>(),
      vectors: new Map<string, Float32Array>(),
    } satisfies WeightOverrides;
    const quality = new Map<string, OutputQuality>();
    const changed = plans.filter((p) => !p.passthrough || (transforms.get(p.name)?.length ?? 0) > 0);
    let packed = 0;
    for (const plan0 of changed) {
      const plan: TensorPlan = {
        ...plan0,
        transforms: transforms.get(plan0.name) ?? [],
        method: plan0.method === 'awq' && !alphas.has(plan0.name) ? 'clip' : plan0.method,
      };
      const entry = entries.get(plan.name) as TensorEntry;
      const values = valuesOf(reader, entry);
      applyTransforms(values, plan.shape, plan.transforms, scales);
      if (plan.shape.length === 1) {
        overrides.vectors.set(plan.name, values);
      } else {
        const enc = await encodePlanned(plan, values, pool);
        overrides.matrices.set(plan.name, { spec: matrixSpec(plan.dtype, plan.shape, enc.quant), data: enc.bytes });
        const site = siteOf.get(plan.name);
        if (site) {
          const m = ctx.matrix(matrixSpec(plan.dtype, plan.shape, enc.quant), enc.bytes);
          owned.push(m);
          const ref = reference(plan.name, site.rows, gateN);
          const colScale = plan.transforms.find((t) => t.op === 'scale_columns');
          const X = colScale ? divideColumns(site.rows, gateN, scales.get(colScale.by) as Float32Array) : site.rows;
          const Y = new Float32Array(gateN * m.rows);
          ctx.gemm(m, X, gateN, Y);
          const rowScale = plan.transforms.find((t) => t.op === 'divide_rows');
          if (rowScale) {
            const sr = scales.get(rowScale.by) as Float32Array;
            for (let r = 0; r < gateN; r++) for (let j = 0; j < m.rows; j++) Y[r * m.rows + j] *= sr[j];
          }
          quality.set(plan.name, outputQuality(ref, Y));
        }
      }
      planOf.set(plan.name, plan);
      progress({ stage: 'packing', done: ++packed, total: changed.length, detail: plan.name });
    }

    // End to end: the quantized model over the same sequences.
    const q = bindWeights(ctx, reader, mapping, undefined, overrides);
    const qForward = new Forward(ctx, c, q, {
      contextLength: seqLen,
      kvCache: 'f32',
      maxBatch: seqLen,
      activations: 'f32',
      calibration: { capture: false },
    });
    const meter = new EndToEndMeter();
    let at = 0;
    const row = (l: Float32Array, r: number) => l.subarray(r * c.vocab_size, (r + 1) * c.vocab_size);
    for (let i = 0; i < seqs.length; i++) {
      if (!keepLogits) fpForward.runSync(seqs[i], 0);
      qForward.runSync(seqs[i], 0);
      for (let r = 0; r < seqs[i].length; r++) meter.add(keepLogits ? fpLogits[at++] : row(fpForward.logits, r), row(qForward.logits, r));
      progress({ stage: 'judging', done: i + 1, total: seqs.length });
    }
    const e2e = meter.result();
    const bytesPerToken = { before: fp.bytesPerToken, after: q.bytesPerToken };
    for (const m of q.matrices.values()) m.dispose();

    // The verdict and the manifest.
    const thresholds = gateThresholds(policy);
    const failures = gateFailures(
      plans.map((p) => ({ name: p.name, quality: quality.get(p.name) ?? null })),
      e2e,
      thresholds,
    );
    const tensors: ManifestEntry[] = reader.tensors.map((t, i) => {
      const p = planOf.get(t.name) as TensorPlan;
      const qm = quality.get(t.name);
      const e: ManifestEntry = {
        name: t.name,
        shape: [...t.shape],
        source: { dtype: t.dtype, sha256: digests[i].sha256 },
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
        if (alphas.has(t.name)) e.alpha = alphas.get(t.name);
      }
      e.rule = p.rule;
      if (p.transforms.length) e.transforms = p.transforms;
      e.quality = qm ? { cosine: round(qm.cosine, 7), snr_db: round(qm.snr_db, 5) } : null;
      return e;
    });
    const usedScales = new Set(tensors.flatMap((t) => (t.transforms ?? []).map((x) => x.by)));
    const manifest: ExpandedManifest = {
      $schema: './q4_manifest.schema.json',
      kind: 'expanded',
      version: MANIFEST_VERSION,
      status: failures.length ? 'rejected' : 'accepted',
      policy: { ...(policy.name ? { name: policy.name } : {}), file: basename(o.policy.file), sha256: o.policy.sha256 },
      model: { fingerprint, config: { ...c } },
      calibration: {
        text: basename(o.calibration.file),
        sha256: sha256Bytes(Buffer.from(o.calibration.text, 'utf8')),
        sequences: seqs.length,
        tokens: total,
      },
      gate: {
        thresholds,
        end_to_end: { kl_mean: round(e2e.kl_mean, 6), kl_max: round(e2e.kl_max, 6), top1: round(e2e.top1, 6), positions: e2e.positions },
        failures,
      },
      scales: Object.fromEntries([...scales].filter(([k]) => usedScales.has(k)).map(([k, v]) => [k, encodeScales(v)])),
      tensors,
    };
    return {
      manifest,
      json: `${JSON.stringify(manifest, null, 2)}\n`,
      accepted: failures.length === 0,
      failures,
      endToEnd: e2e,
      bytesPerToken,
      calibrationTokens: total,
    };
  } finally {
    await pool.close();
    for (const m of owned) m.dispose();
    await mapped.close();
  }
}
