/**
 * A manifest against a model: every tensor gets its final dtype, quantization parameters,
 * method and layout — a TensorPlan. Everything that cannot work (a rule that matches nothing,
 * a literal name the model lacks, a group size that does not divide K, a block size that is not
 * a multiple of the group, a quantized vector, requantizing already-quantized weights, an
 * expanded manifest made for other tensors) is collected and thrown together, before any
 * byte is written.
 */
import {
  exportLayout,
  isBlockDtype,
  type BlockDtype,
  type Dtype,
  type ModelConfig,
  type QuantParams,
  type TensorLayout,
  type TensorRole,
} from '@ie/format';
import { ManifestError, type ManifestProblem } from '../errors.js';
import { canonicalJson, identityConfig } from './fingerprint.js';
import { compileGlob, compileRegex, isLiteralGlob, type NamePattern } from './glob.js';
import type { EntryTransform, ExpandedManifest, ManifestEntry, Policy, PolicyRule, QuantMethod } from './schema.js';

/** What resolution needs to know about one of the model's tensors. */
export interface ModelTensor {
  name: string;
  shape: readonly number[];
  dtype: Dtype;
  quant: QuantParams | null;
  role: TensorRole;
}

/** What a tensor ends up as. The ggml block dtypes (q4_k, …) come only from a source that holds them, kept as they are. */
export type FinalScheme = 'int4w' | 'int8w' | 'f32' | 'f16' | 'bf16' | BlockDtype;

export interface TensorPlan {
  name: string;
  shape: readonly number[];
  role: TensorRole;
  source: { dtype: Dtype; quant: QuantParams | null };
  scheme: FinalScheme;
  dtype: Dtype;
  /** Quantization parameters of the stored tensor (null for floats). */
  quant: QuantParams | null;
  /** How the scales are chosen; null when nothing is quantized here. */
  method: QuantMethod | null;
  /** The source bytes are already exactly this encoding (e.g. a GGUF Q4_0 tensor): copied, not requantized. */
  passthrough: boolean;
  layout: TensorLayout;
  /** Index of the deciding rule, -1 when no rule matched. */
  rule: number;
  /** Float rewrites before packing (activation-aware scaling); from an expanded manifest. */
  transforms: EntryTransform[];
}

export interface LayoutOptions {
  pretranspose?: boolean;
  blockK?: number;
}

export const SCHEME_DTYPE: Record<FinalScheme, Dtype> = {
  int4w: 'q4',
  int8w: 'i8',
  f32: 'f32',
  f16: 'f16',
  bf16: 'bf16',
  q4_k: 'q4_k',
  q5_k: 'q5_k',
  q6_k: 'q6_k',
  iq4_nl: 'iq4_nl',
  mxfp4: 'mxfp4',
};

/** The scheme a stored tensor has (the inverse of the packing). */
export function schemeOf(dtype: Dtype): FinalScheme {
  return dtype === 'q4' ? 'int4w' : dtype === 'i8' ? 'int8w' : dtype;
}

function sameQuant(a: QuantParams | null, b: QuantParams | null): boolean {
  if (!a || !b) return a === b;
  return a.scheme === b.scheme && a.granularity === b.granularity && a.group_size === b.group_size && a.scale_dtype === b.scale_dtype;
}

export function describeQuant(dtype: Dtype, q: QuantParams | null): string {
  if (!q) return dtype;
  const g = q.granularity === 'per_row' ? 'per-row' : `g${q.group_size}`;
  return `${schemeOf(dtype)} ${q.scheme} ${g} ${q.scale_dtype} scales`;
}

function list(names: string[], max = 4): string {
  return names.length <= max ? names.join(', ') : `${names.slice(0, max).join(', ')} and ${names.length - max} more`;
}

/**
 * The target of a tensor, checked against what the model and layout allow. Returns the plan
 * fields, or the reason the combination is impossible.
 */
function target(
  t: ModelTensor,
  scheme: PolicyRule['scheme'] | FinalScheme,
  params: Pick<PolicyRule, 'group_size' | 'mode' | 'granularity' | 'scale_dtype' | 'allow_padding'>,
  method: QuantMethod | null,
  layoutOpts: LayoutOptions,
): Omit<TensorPlan, 'rule' | 'transforms' | 'name' | 'shape' | 'role' | 'source'> | string {
  const src = t.dtype;
  const srcQuantized = src === 'q4' || src === 'i8' || isBlockDtype(src);
  if (scheme === 'keep' || scheme === src) {
    const layout = exportLayout(t.role, t.shape, src, t.quant, layoutOpts);
    return { scheme: schemeOf(src), dtype: src, quant: t.quant, method: null, passthrough: true, layout };
  }
  if (scheme === 'f32' || scheme === 'f16' || scheme === 'bf16') {
    if (t.shape.length === 1 && scheme !== 'f32') return 'is a vector (norm or bias); vectors are stored f32';
    if (srcQuantized)
      return `is ${describeQuant(src, t.quant)} in the source; converting it to ${scheme} would not restore what quantization dropped (use scheme "keep", or convert from the float original)`;
    const layout = exportLayout(t.role, t.shape, scheme, null, layoutOpts);
    return { scheme, dtype: scheme, quant: null, method: null, passthrough: src === scheme, layout };
  }
  if (isBlockDtype(scheme))
    return `cannot be made ${scheme}: ggml block dtypes are imported from GGUF files and kept, not produced (use "keep")`;
  if (isBlockDtype(src)) return `is ${src} (ggml blocks) in the source; requantizing it would compound rounding error (use scheme "keep")`;
  if (t.shape.length !== 2) return `is a ${t.shape.length}-D tensor; only matrices can be ${scheme}`;
  const K = t.shape[1];
  const quant = quantParamsOf(scheme, params, K);
  const perRow = quant.granularity === 'per_row';
  const G = quant.group_size;
  if (!perRow && K % G !== 0 && !params.allow_padding)
    return `has K = ${K}, which group size ${G} does not divide (set "allow_padding": true to zero-pad each row's last group, or pick a group size that divides ${K})`;
  const dtype = SCHEME_DTYPE[scheme];
  if (srcQuantized) {
    if (src === dtype && sameQuant(t.quant, quant))
      return { scheme, dtype, quant, method: null, passthrough: true, layout: exportLayout(t.role, t.shape, dtype, quant, layoutOpts) };
    return `is already ${describeQuant(src, t.quant)} in the source; requantizing it to ${describeQuant(dtype, quant)} would compound rounding error (match the source's encoding, use "keep", or convert from the float original)`;
  }
  if (layoutOpts.blockK && !perRow && layoutOpts.blockK % G !== 0)
    return `cannot be blocked by block_k ${layoutOpts.blockK}: the block must be a multiple of group size ${G}`;
  return {
    scheme,
    dtype,
    quant,
    method: method ?? 'rtn',
    passthrough: false,
    layout: exportLayout(t.role, t.shape, dtype, quant, layoutOpts),
  };
}

function layoutOf(p: Policy): LayoutOptions {
  return { pretranspose: p.layout?.pretranspose ?? false, blockK: p.layout?.block_k ?? 0 };
}

/** What a rule matches: its glob, or its regex against the whole name, both matched in linear time (glob.ts). */
export function rulePattern(r: Pick<PolicyRule, 'match' | 'regex'>): NamePattern {
  return r.regex !== undefined ? compileRegex(r.regex) : compileGlob(r.match as string);
}

/** Resolves a policy for a model's tensors (in the model's order). Throws ManifestError listing every problem. */
export function resolvePolicy(policy: Policy, tensors: readonly ModelTensor[], file = '<policy>'): TensorPlan[] {
  const rules = policy.rules.map((r) => ({ rule: r, re: rulePattern(r) }));
  const layoutOpts = layoutOf(policy);
  const problems: ManifestProblem[] = [];
  const matched = rules.map(() => [] as string[]);
  const decided = rules.map(() => [] as string[]);
  const impossible = rules.map(() => new Map<string, string[]>());
  const plans: TensorPlan[] = [];
  for (const t of tensors) {
    let first = -1;
    rules.forEach((r, i) => {
      if (r.re.test(t.name)) {
        matched[i].push(t.name);
        if (first < 0) first = i;
      }
    });
    const r = first >= 0 ? rules[first].rule : undefined;
    if (first >= 0) decided[first].push(t.name);
    const method = r && (r.scheme === 'int4w' || r.scheme === 'int8w') ? (r.method ?? policy.defaults?.method ?? 'rtn') : null;
    const params = r
      ? {
          ...r,
          scale_dtype: r.scale_dtype ?? policy.defaults?.scale_dtype,
          allow_padding: r.allow_padding ?? policy.defaults?.allow_padding,
        }
      : {};
    const got = target(t, r?.scheme ?? 'keep', params, method, layoutOpts);
    if (typeof got === 'string') {
      const m = impossible[first];
      m.set(got, [...(m.get(got) ?? []), t.name]);
      continue;
    }
    plans.push({
      name: t.name,
      shape: t.shape,
      role: t.role,
      source: { dtype: t.dtype, quant: t.quant },
      ...got,
      rule: first,
      transforms: [],
    });
  }
  rules.forEach((r, i) => {
    const at = `rules[${i}].${r.rule.regex !== undefined ? 'regex' : 'match'}`;
    const pattern = (r.rule.regex ?? r.rule.match) as string;
    if (matched[i].length === 0) {
      problems.push({
        field: at,
        message:
          r.rule.match !== undefined && isLiteralGlob(pattern)
            ? `names ${pattern}, which this model does not have (\`ie inspect MODEL\` lists its tensors)`
            : `${JSON.stringify(pattern)} matches no tensor of this model (names look like blk.0.attn_q.weight; \`ie inspect MODEL\` lists them)`,
      });
    } else if (decided[i].length === 0) {
      problems.push({
        field: at,
        message: `${JSON.stringify(pattern)} only matches tensors that earlier rules already decide (${list(matched[i])}): it has no effect`,
      });
    }
    for (const [why, names] of impossible[i])
      problems.push({
        field: `rules[${i}]`,
        message: `${r.rule.scheme} is impossible for ${list(names)}: ${names.length > 1 ? 'each ' : ''}${why}`,
      });
  });
  if (problems.length)
    throw new ManifestError(
      'QUANT_MANIFEST_INVALID',
      file,
      problems,
      `${file}: the policy cannot be applied to this model (${problems.length} problem${problems.length === 1 ? '' : 's'})`,
    );
  return plans;
}

/** The IEBIN quantization parameters a rule's or an entry's int4w / int8w fields mean for rows of length K. */
export function quantParamsOf(
  scheme: 'int4w' | 'int8w',
  f: Pick<PolicyRule, 'group_size' | 'mode' | 'granularity' | 'scale_dtype'>,
  K: number,
): QuantParams {
  const perRow = scheme === 'int8w' && f.granularity === 'per_row';
  return {
    scheme: scheme === 'int4w' ? (f.mode ?? 'symmetric') : 'symmetric',
    granularity: perRow ? 'per_row' : 'per_group',
    group_size: perRow ? K : (f.group_size as number),
    scale_dtype: f.scale_dtype ?? 'f16',
  };
}

/** An expanded entry's parameters (null for float schemes). */
export function entryQuant(e: ManifestEntry): QuantParams | null {
  return e.scheme === 'int4w' || e.scheme === 'int8w' ? quantParamsOf(e.scheme, e, e.shape[1]) : null;
}

/** Where the manifest's model config differs from this model's, field by field (the fields that identify a model). */
function configDifferences(m: ExpandedManifest, config: ModelConfig): ManifestProblem[] {
  const problems: ManifestProblem[] = [];
  const mc = identityConfig(m.model.config as Record<string, unknown>);
  const cc = identityConfig(config);
  for (const k of [...new Set([...Object.keys(mc), ...Object.keys(cc)])]) {
    if (canonicalJson(mc[k]) !== canonicalJson(cc[k]))
      problems.push({ field: `model.config.${k}`, message: `is ${JSON.stringify(mc[k])}; this model's is ${JSON.stringify(cc[k])}` });
  }
  return problems;
}

/**
 * One entry (at `at`, e.g. `tensors[3]`) against the model's tensor of its name: its plan, or the
 * problem that stops it. A layout the tensor cannot have is a problem that still yields the plan,
 * so the other entries' problems are listed too.
 */
function entryPlan(e: ManifestEntry, at: string, t: ModelTensor): { plan?: TensorPlan; problem?: ManifestProblem } {
  if (e.shape.length !== t.shape.length || e.shape.some((d, j) => d !== t.shape[j]))
    return {
      problem: {
        field: `${at}.shape`,
        message: `${e.name} is ${JSON.stringify(e.shape)} in the manifest, ${JSON.stringify(t.shape)} in this model`,
      },
    };
  // Float sources of the same values agree whatever their dtype (the sha256 compares f32 values); quantized ones must match exactly.
  const srcQuantized = t.dtype === 'q4' || t.dtype === 'i8';
  if (srcQuantized !== (e.source.dtype === 'q4' || e.source.dtype === 'i8') || (srcQuantized && e.source.dtype !== t.dtype))
    return {
      problem: { field: `${at}.source.dtype`, message: `${e.name} was ${e.source.dtype} when quantized; this model has it as ${t.dtype}` },
    };
  const quant = entryQuant(e);
  const dtype = SCHEME_DTYPE[e.scheme];
  if (srcQuantized && (dtype !== t.dtype || !sameQuant(quant, t.quant)))
    return {
      problem: {
        field: `${at}.scheme`,
        message: `${e.name} is ${describeQuant(t.dtype, t.quant)} in the source and cannot become ${describeQuant(dtype, quant)} without requantizing`,
      },
    };
  const passthrough = srcQuantized || dtype === t.dtype;
  const layout = exportLayout(t.role, t.shape, dtype, quant, {
    pretranspose: e.layout.order === 'pretransposed',
    blockK: e.layout.block_k,
  });
  const plan: TensorPlan = {
    name: t.name,
    shape: t.shape,
    role: t.role,
    source: { dtype: t.dtype, quant: t.quant },
    scheme: e.scheme,
    dtype,
    quant,
    method: quant && !passthrough ? (e.method ?? 'rtn') : null,
    passthrough,
    layout,
    rule: e.rule ?? -1,
    transforms: e.transforms ?? [],
  };
  if (layout.order !== e.layout.order || layout.block_k !== e.layout.block_k)
    return { plan, problem: { field: `${at}.layout`, message: `${e.name} cannot be stored ${JSON.stringify(e.layout)}` } };
  return { plan };
}

/**
 * The plans an expanded manifest states, checked against the model: the same tensor names,
 * shapes and source dtypes (the weights themselves are checked by sha256 as they are read).
 */
export function plansFromExpanded(
  m: ExpandedManifest,
  tensors: readonly ModelTensor[],
  config: ModelConfig,
  file = '<manifest>',
): TensorPlan[] {
  const problems = configDifferences(m, config);
  const byName = new Map(m.tensors.map((e, i) => [e.name, { e, i }]));
  const plans: TensorPlan[] = [];
  const missing: string[] = [];
  for (const t of tensors) {
    const hit = byName.get(t.name);
    if (!hit) {
      missing.push(t.name);
      continue;
    }
    byName.delete(t.name);
    const { plan, problem } = entryPlan(hit.e, `tensors[${hit.i}]`, t);
    if (problem) problems.push(problem);
    if (plan) plans.push(plan);
  }
  if (missing.length) problems.push({ field: 'tensors', message: `has no entry for ${list(missing)} of this model` });
  if (byName.size) problems.push({ field: 'tensors', message: `lists ${list([...byName.keys()])}, which this model does not have` });
  if (problems.length)
    throw new ManifestError(
      'QUANT_MANIFEST_MISMATCH',
      file,
      problems,
      `${file} was made for another model (${problems.length} difference${problems.length === 1 ? '' : 's'})`,
    );
  return plans;
}
