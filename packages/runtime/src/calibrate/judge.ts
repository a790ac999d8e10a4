/**
 * Stage 4: every tensor the plan changes is rewritten (the search's transforms), packed, and —
 * when it reads a capture site — judged: cosine and SNR of its outputs over the gate rows against
 * the FP matrix's. A column-scaled matrix sees X/s and a row-divided one has its outputs
 * multiplied back, so each is judged against the function the FP model computes.
 */
import type { IebinReader, TensorEntry } from '@ie/format';
import type { KernelContext, MatrixSpec, WeightMatrix } from '@ie/kernels';
import { applyTransforms, encodePlanned, outputQuality, type ClipSearchPool, type OutputQuality, type TensorPlan } from '@ie/quant';
import { matrixSpec } from '../weights.js';
import type { ScaleSearch } from './awq.js';
import type { SiteData } from './capture.js';
import { divideColumns, outputsOf, valuesOf, withMatrix } from './linear.js';
import type { ProgressFn } from './types.js';

export interface JudgeInput {
  ctx: KernelContext;
  reader: IebinReader;
  /** The policy's plans, in file order. */
  plans: readonly TensorPlan[];
  search: ScaleSearch;
  /** The FP model's matrices: the reference outputs. */
  fp: ReadonlyMap<string, WeightMatrix>;
  sites: readonly SiteData[];
  /** Gate rows per site. */
  gateN: number;
  /** The clip search's worker threads; without them it runs on this thread (the same bytes). */
  pool?: ClipSearchPool;
  progress: ProgressFn;
}

export interface Judged {
  /** The changed tensors, as the quantized model binds them (row-major encodings and f32 vectors). */
  overrides: {
    matrices: Map<string, { spec: MatrixSpec; data: Uint8Array }>;
    vectors: Map<string, Float32Array>;
  };
  /** Cosine and SNR of each judged matrix. */
  quality: Map<string, OutputQuality>;
  /** Every tensor's final plan (the changed ones with their transforms and the method they were packed with). */
  planOf: Map<string, TensorPlan>;
}

/** A plan as packed: its transforms from the search, and `awq` asked where no site was searched becomes `clip`. */
export function finalPlan(plan: TensorPlan, search: Pick<ScaleSearch, 'transforms' | 'alphas'>): TensorPlan {
  return {
    ...plan,
    transforms: search.transforms.get(plan.name) ?? [],
    method: plan.method === 'awq' && !search.alphas.has(plan.name) ? 'clip' : plan.method,
  };
}

/** Cosine and SNR of `m`'s outputs (the packed form of `plan`) over the site's gate rows against `ref`, the FP outputs. */
export function judgeMatrix(
  ctx: KernelContext,
  m: WeightMatrix,
  plan: TensorPlan,
  site: Pick<SiteData, 'rows'>,
  gateN: number,
  scales: ReadonlyMap<string, Float32Array>,
  ref: Float32Array,
): OutputQuality {
  const colScale = plan.transforms.find((t) => t.op === 'scale_columns');
  const X = colScale ? divideColumns(site.rows, gateN, scales.get(colScale.by) as Float32Array) : site.rows;
  const Y = outputsOf(ctx, m, X, gateN);
  const rowScale = plan.transforms.find((t) => t.op === 'divide_rows');
  if (rowScale) {
    const sr = scales.get(rowScale.by) as Float32Array;
    for (let r = 0; r < gateN; r++) for (let j = 0; j < m.rows; j++) Y[r * m.rows + j] *= sr[j];
  }
  return outputQuality(ref, Y);
}

/** Packs every changed tensor and judges each one that has captured inputs; see the file comment. */
export async function packAndJudge(i: JudgeInput): Promise<Judged> {
  const entries = new Map(i.reader.tensors.map((t) => [t.name, t]));
  const siteOf = new Map<string, SiteData>();
  for (const s of i.sites) for (const name of s.consumers) siteOf.set(name, s);
  const out: Judged = {
    overrides: { matrices: new Map(), vectors: new Map() },
    quality: new Map(),
    planOf: new Map(i.plans.map((p) => [p.name, p])),
  };
  const changed = i.plans.filter((p) => !p.passthrough || (i.search.transforms.get(p.name)?.length ?? 0) > 0);
  let packed = 0;
  for (const plan0 of changed) {
    const plan = finalPlan(plan0, i.search);
    const values = valuesOf(i.reader, entries.get(plan.name) as TensorEntry);
    applyTransforms(values, plan.shape, plan.transforms, i.search.scales);
    if (plan.shape.length === 1) {
      out.overrides.vectors.set(plan.name, values);
    } else {
      const enc = await encodePlanned(plan, values, i.pool);
      out.overrides.matrices.set(plan.name, { spec: matrixSpec(plan.dtype, plan.shape, enc.quant), data: enc.bytes });
      const site = siteOf.get(plan.name);
      if (site) {
        const ref = outputsOf(i.ctx, i.fp.get(plan.name) as WeightMatrix, site.rows, i.gateN);
        const q = withMatrix(i.ctx, plan, enc, (m) => judgeMatrix(i.ctx, m, plan, site, i.gateN, i.search.scales, ref));
        out.quality.set(plan.name, q);
      }
    }
    out.planOf.set(plan.name, plan);
    i.progress({ stage: 'packing', done: ++packed, total: changed.length, detail: plan.name });
  }
  return out;
}
