/**
 * Stage 3: activation-aware scales (AWQ). For each capture site whose consumers ask for `awq`,
 * input channels are scaled by s = mean|x|^α (α from a grid, the one minimizing the consumers'
 * summed relative output error under RTN), and 1/s is folded into what produces the site's
 * input: a norm, ffn_up's rows, or attn_v's rows (one scale per KV channel under GQA).
 */
import { isFloatDtype, type IebinReader, type ModelConfig, type TensorEntry } from '@ie/format';
import type { KernelContext, WeightMatrix } from '@ie/kernels';
import { activationScales, applyTransforms, encodePlanned, type ClipSearchPool, type EntryTransform, type TensorPlan } from '@ie/quant';
import type { SiteData } from './capture.js';
import { divideColumns, outputsOf, relativeError, subsample, valuesOf, withMatrix } from './linear.js';
import { isQuantized } from './plan.js';
import type { ProgressFn } from './types.js';

/** Exponents the activation-aware search tries (0 = no scaling, so it never does worse than clip alone on its objective). */
export const AWQ_ALPHAS: readonly number[] = Array.from({ length: 11 }, (_, i) => i / 10);
/** Rows the activation-aware search evaluates (a subsample of the gate rows). */
export const SEARCH_ROWS = 128;

/** The scales chosen, the rewrites they imply per tensor (in the order applied) and the α recorded per consumer. */
export interface ScaleSearch {
  scales: Map<string, Float32Array>;
  transforms: Map<string, EntryTransform[]>;
  alphas: Map<string, number>;
}

export interface ScaleSearchInput {
  ctx: KernelContext;
  reader: IebinReader;
  planOf: ReadonlyMap<string, TensorPlan>;
  /** The FP model's matrices: the reference outputs. */
  fp: ReadonlyMap<string, WeightMatrix>;
  sites: readonly SiteData[];
  /** Gate rows per site. */
  gateN: number;
  /** The clip search's worker threads (RTN here does not use them; encodePlanned takes them). */
  pool?: ClipSearchPool;
  progress: ProgressFn;
}

/** A rewrite by 1/s of what produces a site's input; `kv`: by the KV-length copy of the scales (attn_v under GQA). */
export interface Fold {
  name: string;
  op: 'divide' | 'divide_rows';
  kv: boolean;
}

/** Where a site's 1/s is folded (none for the classifier's input, which is never scaled). */
export function foldsOf(s: Pick<SiteData, 'site' | 'layer'>, c: ModelConfig): Fold[] {
  const p = `blk.${s.layer}.`;
  switch (s.site) {
    case 'attn_in':
      return [{ name: `${p}attn_norm.weight`, op: 'divide', kv: false }];
    case 'ffn_in':
      return [{ name: `${p}ffn_norm.weight`, op: 'divide', kv: false }];
    case 'ffn_down_in':
      // SwiGLU is linear in up.
      return [{ name: `${p}ffn_up.weight`, op: 'divide_rows', kv: false }];
    case 'attn_out_in':
      return [
        { name: `${p}attn_v.weight`, op: 'divide_rows', kv: true },
        ...(c.attn_qkv_bias ? [{ name: `${p}attn_v.bias`, op: 'divide', kv: true } as const] : []),
      ];
    case 'classifier_in':
      return [];
  }
}

/** Sites the search scales: a consumer asks for awq, and every matrix the scaling rewrites is float in the source (quantized ones are copied, never rewritten). */
export function awqSites(sites: readonly SiteData[], planOf: ReadonlyMap<string, TensorPlan>, reader: IebinReader): SiteData[] {
  const c = reader.config;
  const dtype = new Map(reader.tensors.map((t) => [t.name, t.dtype]));
  const isFloat = (name: string) => isFloatDtype(dtype.get(name) as TensorEntry['dtype']);
  return sites.filter((s) => {
    const rewritten = [...s.consumers, ...foldsOf(s, c).flatMap((f) => (f.op === 'divide_rows' ? [f.name] : []))];
    return (
      s.site !== 'classifier_in' &&
      s.consumers.some((n) => planOf.get(n)?.method === 'awq' && isQuantized(planOf.get(n))) &&
      rewritten.every(isFloat)
    );
  });
}

/** The per-channel statistic scales are drawn from: mean |x|, except that o's input channel (h, d) comes from v's row (h / group, d), so the heads of a KV group share one value (their mean). */
export function siteStatistics(s: Pick<SiteData, 'site' | 'width' | 'meanAbs'>, c: ModelConfig): Float64Array {
  if (s.site !== 'attn_out_in') return s.meanAbs;
  const group = c.n_heads / c.n_kv_heads;
  const kv = new Float64Array(c.n_kv_heads * c.head_dim);
  for (let h = 0; h < c.n_heads; h++)
    for (let d = 0; d < c.head_dim; d++) kv[Math.floor(h / group) * c.head_dim + d] += s.meanAbs[h * c.head_dim + d] / group;
  const stats = new Float64Array(s.width);
  for (let h = 0; h < c.n_heads; h++)
    for (let d = 0; d < c.head_dim; d++) stats[h * c.head_dim + d] = kv[Math.floor(h / group) * c.head_dim + d];
  return stats;
}

/** The KV-length copy of o's input scales (one per v row): the first head of each KV group's. */
export function kvRowScales(scale: Float32Array, c: ModelConfig): Float32Array {
  const group = c.n_heads / c.n_kv_heads;
  const kvw = c.n_kv_heads * c.head_dim;
  const v = new Float32Array(kvw);
  for (let j = 0; j < kvw; j++) v[j] = scale[Math.floor(j / c.head_dim) * group * c.head_dim + (j % c.head_dim)];
  return v;
}

/** One consumer as the search sees it: its plan, FP values and FP outputs over the search rows. */
interface SearchConsumer {
  plan: TensorPlan;
  values: Float32Array;
  ref: Float32Array;
}

/** The α (first of the grid on ties) whose scaling minimizes the consumers' summed relative output error, RTN-quantized. */
export async function searchAlpha(
  ctx: KernelContext,
  consumers: readonly SearchConsumer[],
  X: Float32Array,
  n: number,
  stats: Float64Array,
  pool?: ClipSearchPool,
  alphas: readonly number[] = AWQ_ALPHAS,
): Promise<{ alpha: number; err: number; scale: Float32Array }> {
  let best = { alpha: 0, err: Number.POSITIVE_INFINITY, scale: activationScales(stats, 0) };
  for (const alpha of alphas) {
    const scale = activationScales(stats, alpha);
    const Xs = divideColumns(X, n, scale);
    let err = 0;
    for (const { plan, values, ref } of consumers) {
      const scaled = Float32Array.from(values);
      applyTransforms(scaled, plan.shape, [{ op: 'scale_columns', by: 's' }], new Map([['s', scale]]));
      const rtn = { ...plan, method: 'rtn' as const };
      const enc = await encodePlanned(rtn, scaled, pool);
      err += relativeError(
        ref,
        withMatrix(ctx, rtn, enc, (m) => outputsOf(ctx, m, Xs, n)),
      );
    }
    if (err < best.err) best = { alpha, err, scale };
  }
  return best;
}

/** Records a site's chosen scaling: its consumers' columns scaled by s, 1/s folded per `foldsOf`. */
function recordScaling(out: ScaleSearch, s: SiteData, scale: Float32Array, c: ModelConfig): void {
  const key = `blk.${s.layer}.${s.site}`;
  const add = (name: string, t: EntryTransform) => out.transforms.set(name, [...(out.transforms.get(name) ?? []), t]);
  out.scales.set(key, scale);
  for (const name of s.consumers) add(name, { op: 'scale_columns', by: key });
  for (const f of foldsOf(s, c)) {
    const by = f.kv ? `blk.${s.layer}.attn_v_rows` : key;
    if (f.kv && !out.scales.has(by)) out.scales.set(by, kvRowScales(scale, c));
    add(f.name, { op: f.op, by });
  }
}

/** Searches every site that asks for activation-aware scaling; see the file comment. */
export async function searchScales(i: ScaleSearchInput): Promise<ScaleSearch> {
  const c = i.reader.config;
  const entries = new Map(i.reader.tensors.map((t) => [t.name, t]));
  const out: ScaleSearch = { scales: new Map(), transforms: new Map(), alphas: new Map() };
  const sites = awqSites(i.sites, i.planOf, i.reader);
  let searched = 0;
  for (const s of sites) {
    const { X, n } = subsample(s.rows, i.gateN, s.width, SEARCH_ROWS);
    const consumers = s.consumers
      .filter((name) => isQuantized(i.planOf.get(name)))
      .map((name) => ({
        plan: i.planOf.get(name) as TensorPlan,
        values: valuesOf(i.reader, entries.get(name) as TensorEntry),
        ref: outputsOf(i.ctx, i.fp.get(name) as WeightMatrix, X, n),
      }));
    const best = await searchAlpha(i.ctx, consumers, X, n, siteStatistics(s, c), i.pool);
    for (const name of s.consumers) out.alphas.set(name, best.alpha);
    if (best.alpha > 0) recordScaling(out, s, best.scale, c);
    i.progress({ stage: 'searching', done: ++searched, total: sites.length, detail: `blk.${s.layer}.${s.site}` });
  }
  return out;
}
