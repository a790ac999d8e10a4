import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SYNTH_PRESETS, expectedTensors, type ModelConfig } from '@ie/format';
import { REPO_ROOT } from '@ie/testing';
import { describe, expect, it } from 'vitest';
import { ManifestError } from '../errors.js';
import { modelTensors } from '../export/prepare.js';
import { diffAgainstManifest } from './diff.js';
import { globToRegExp } from './glob.js';
import { parseManifest } from './parse.js';
import { plansFromExpanded, resolvePolicy } from './resolve.js';
import { MANIFEST_SCHEMA, type ExpandedManifest, type Policy } from './schema.js';

const tiny = SYNTH_PRESETS.tiny.config; // dim 64, 2 layers, ffn 176, 4 heads / 2 KV heads
const tensorsOf = (c: ModelConfig) =>
  modelTensors(
    c,
    expectedTensors(c).map((t) => ({ ...t, dtype: t.shape.length === 2 ? ('f32' as const) : ('f32' as const), quant: null })),
  );

function policy(rules: Policy['rules'], extra: Partial<Policy> = {}): Policy {
  return { kind: 'policy', version: 1, rules, ...extra };
}

/** The problems a ManifestError carries, as "field: message" lines. */
function problemsOf(f: () => unknown): string[] {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ManifestError);
    return (e as ManifestError).problems.map((p) => `${p.field}: ${p.message}`);
  }
  throw new Error('expected a ManifestError');
}

describe('the published schema', () => {
  it('quant/q4_manifest.schema.json is MANIFEST_SCHEMA (regenerate with pnpm --filter @ie/quant run schema)', () => {
    const file = readFileSync(join(REPO_ROOT, 'quant/q4_manifest.schema.json'), 'utf8');
    expect(file).toBe(`${JSON.stringify(MANIFEST_SCHEMA, null, 2)}\n`);
  });

  it('quant/gpt-oss_q4_manifest.json quantizes the four attention projections of every gpt-oss layer and keeps the MXFP4 experts, router and the rest', () => {
    const f = 'quant/gpt-oss_q4_manifest.json';
    const m = parseManifest(readFileSync(join(REPO_ROOT, f), 'utf8'), f);
    for (const preset of Object.values(SYNTH_PRESETS).filter((p) => p.config.architecture === 'gpt-oss')) {
      const plans = resolvePolicy(m as Policy, tensorsOf(preset.config), f);
      const quantized = plans.filter((p) => p.quant);
      expect(quantized.length).toBe(4 * preset.config.n_layers);
      expect(quantized.every((p) => /attn_(q|k|v|output)\.weight$/.test(p.name))).toBe(true);
    }
  });

  it.each(['quant/q4_manifest.json', 'quant/q8_manifest.json'])(
    '%s is a valid policy that applies to llama models of every preset',
    (f) => {
      const m = parseManifest(readFileSync(join(REPO_ROOT, f), 'utf8'), f);
      expect(m.kind).toBe('policy');
      for (const preset of Object.values(SYNTH_PRESETS).filter((p) => p.config.architecture === 'llama')) {
        const plans = resolvePolicy(m as Policy, tensorsOf(preset.config), f);
        const quantized = plans.filter((p) => p.quant);
        // Projections only: embeddings, norms and the classifier stay as they are.
        expect(quantized.length).toBe(7 * preset.config.n_layers);
        expect(quantized.every((p) => p.role === 'projection')).toBe(true);
      }
    },
  );
});

describe('parseManifest lists every schema problem', () => {
  it('a malformed policy gives each field', () => {
    const text = JSON.stringify({
      kind: 'policy',
      version: 1,
      rules: [
        { match: 'blk.*.attn_q.weight', scheme: 'int4w', group_size: 48 },
        { match: 'blk.*.ffn_up.weight', scheme: 'int5w' },
        { regex: '(', scheme: 'int8w', granularity: 'per_row' },
        { match: 'x', regex: 'y', scheme: 'f16' },
        { match: 'token_embd.weight', scheme: 'f16', group_size: 32 },
        { match: 'a{b', scheme: 'keep' },
        { match: 'blk.*.ffn_down.weight', scheme: 'int8w', granularity: 'per_group' },
      ],
      gate: { min_cosine: 2, colour: 'blue' },
    });
    const lines = problemsOf(() => parseManifest(text, 'bad.json'));
    expect(lines).toEqual(
      expect.arrayContaining([
        'rules[0].group_size: must be one of 32, 64, 128',
        'rules[1].scheme: must be one of "int4w", "int8w", "f32", "f16", "bf16", "keep"',
        expect.stringMatching(/^gate\.colour: is not a manifest field/),
        'gate.min_cosine: must be <= 1',
      ]),
    );
    // Semantic problems are reported once the document follows the schema.
    const fixed = JSON.parse(text);
    fixed.rules[0].group_size = 64;
    fixed.rules[1].scheme = 'int4w';
    fixed.gate = { min_cosine: 0.9 };
    const more = problemsOf(() => parseManifest(JSON.stringify(fixed), 'bad.json'));
    expect(more).toEqual([
      'rules[1].group_size: is required for int4w (32, 64 or 128)',
      expect.stringMatching(/^rules\[2\]\.regex: is not a supported pattern: has an unclosed "\("/),
      'rules[3]: needs exactly one of "match" (a glob) or "regex"',
      'rules[4].group_size: does not apply to scheme f16',
      'rules[5].match: is not a supported glob: has an unclosed "{"',
      'rules[6].group_size: is required for per_group int8w',
    ]);
  });

  it('rejects non-JSON, an unknown kind and a wrong version, with the file named', () => {
    expect(() => parseManifest('{', 'm.json')).toThrow(/m\.json: 1 problem\n {2}\(root\): is not JSON/);
    expect(problemsOf(() => parseManifest('{"kind":"recipe"}'))).toEqual(['kind: must be one of "policy", "expanded"']);
    expect(problemsOf(() => parseManifest('{"kind":"policy","version":2,"rules":[{"match":"a","scheme":"keep"}]}'))).toEqual([
      'version: must be 1',
    ]);
  });
});

describe('globs', () => {
  it.each([
    ['blk.*.attn_q.weight', 'blk.12.attn_q.weight', true],
    ['blk.*.attn_q.weight', 'blk.1.2.attn_q.weight', false],
    ['blk.**.weight', 'blk.1.attn_q.weight', true],
    ['blk.?.ffn_{gate,up}.weight', 'blk.3.ffn_up.weight', true],
    ['blk.?.ffn_{gate,up}.weight', 'blk.13.ffn_up.weight', false],
    ['blk.?.ffn_{gate,up}.weight', 'blk.3.ffn_down.weight', false],
    ['token_embd.weight', 'token_embdXweight', false],
  ])('%s vs %s: %s', (g, name, want) => {
    expect(globToRegExp(g).test(name)).toBe(want);
  });
});

describe('resolvePolicy against a model', () => {
  const T = tensorsOf(tiny);

  it('first match wins; unmatched tensors are kept; group size, scale dtype and method resolve from defaults', () => {
    const plans = resolvePolicy(
      policy(
        [
          { match: 'blk.0.attn_q.weight', scheme: 'int8w', granularity: 'per_row' },
          { match: 'blk.*.attn_{q,k}.weight', scheme: 'int4w', group_size: 32, mode: 'affine' },
          { regex: 'blk\\.\\d+\\.ffn_(gate|up)\\.weight', scheme: 'int4w', group_size: 64, method: 'rtn' },
          { match: 'token_embd.weight', scheme: 'f16' },
        ],
        { defaults: { method: 'clip', scale_dtype: 'bf16' } },
      ),
      T,
    );
    const by = new Map(plans.map((p) => [p.name, p]));
    expect(by.get('blk.0.attn_q.weight')).toMatchObject({
      dtype: 'i8',
      quant: { granularity: 'per_row', group_size: 64, scale_dtype: 'bf16' },
      method: 'clip',
      rule: 0,
    });
    expect(by.get('blk.1.attn_q.weight')).toMatchObject({ dtype: 'q4', quant: { scheme: 'affine', group_size: 32 }, rule: 1 });
    expect(by.get('blk.1.ffn_up.weight')).toMatchObject({
      dtype: 'q4',
      quant: { scheme: 'symmetric', group_size: 64 },
      method: 'rtn',
      rule: 2,
    });
    expect(by.get('token_embd.weight')).toMatchObject({ dtype: 'f16', quant: null, method: null, rule: 3 });
    expect(by.get('blk.0.ffn_down.weight')).toMatchObject({ dtype: 'f32', passthrough: true, rule: -1 });
    expect(plans.map((p) => p.name)).toEqual(T.map((t) => t.name));
  });

  it('lists every impossible entry at once', () => {
    const lines = problemsOf(() =>
      resolvePolicy(
        policy([
          { match: 'blk.*.ffn_down.weight', scheme: 'int4w', group_size: 64 },
          { match: 'blk.*.attn_norm.weight', scheme: 'int8w', granularity: 'per_row' },
          { match: 'output.bias', scheme: 'keep' },
          { match: 'blk.*.attn_qq.weight', scheme: 'keep' },
          { match: 'blk.0.ffn_down.weight', scheme: 'int8w', granularity: 'per_row' },
          { match: 'output_norm.weight', scheme: 'bf16' },
          { match: 'blk.*.attn_q.weight', scheme: 'int4w', group_size: 128 },
        ]),
        T,
        'p.json',
      ),
    );
    expect(lines).toEqual([
      'rules[0]: int4w is impossible for blk.0.ffn_down.weight, blk.1.ffn_down.weight: each has K = 176, which group size 64 does not divide (set "allow_padding": true to zero-pad each row\'s last group, or pick a group size that divides 176)',
      'rules[1]: int8w is impossible for blk.0.attn_norm.weight, blk.1.attn_norm.weight: each is a 1-D tensor; only matrices can be int8w',
      'rules[2].match: names output.bias, which this model does not have (`ie inspect MODEL` lists its tensors)',
      expect.stringMatching(/^rules\[3\]\.match: "blk\.\*\.attn_qq\.weight" matches no tensor of this model/),
      'rules[4].match: "blk.0.ffn_down.weight" only matches tensors that earlier rules already decide (blk.0.ffn_down.weight): it has no effect',
      'rules[5]: bf16 is impossible for output_norm.weight: is a vector (norm or bias); vectors are stored f32',
      'rules[6]: int4w is impossible for blk.0.attn_q.weight, blk.1.attn_q.weight: each has K = 64, which group size 128 does not divide (set "allow_padding": true to zero-pad each row\'s last group, or pick a group size that divides 64)',
    ]);
  });

  it('allow_padding accepts a group that does not divide K; block_k must be a multiple of the group', () => {
    const ok = resolvePolicy(policy([{ match: 'blk.*.ffn_down.weight', scheme: 'int4w', group_size: 64, allow_padding: true }]), T);
    expect(ok.find((p) => p.name === 'blk.0.ffn_down.weight')?.quant?.group_size).toBe(64);
    const lines = problemsOf(() =>
      resolvePolicy(
        policy([{ match: 'blk.*.attn_q.weight', scheme: 'int4w', group_size: 128, allow_padding: true }], { layout: { block_k: 64 } }),
        T,
      ),
    );
    expect(lines[0]).toMatch(/cannot be blocked by block_k 64: the block must be a multiple of group size 128/);
    // The layout a tensor is packed in is part of its plan.
    const blocked = resolvePolicy(
      policy([{ match: 'blk.*.attn_q.weight', scheme: 'int4w', group_size: 64 }], { layout: { block_k: 64 } }),
      T,
    );
    expect(blocked.find((p) => p.name === 'blk.0.attn_q.weight')?.layout).toEqual({ order: 'row_major', block_k: 64 });
    expect(blocked.find((p) => p.name === 'blk.0.attn_norm.weight')?.layout).toEqual({ order: 'row_major', block_k: 0 });
  });

  it('maps already-quantized source tensors without requantizing, and refuses to requantize them', () => {
    const q4 = { scheme: 'symmetric' as const, granularity: 'per_group' as const, group_size: 32, scale_dtype: 'f16' as const };
    const src = T.map((t) => (t.name.endsWith('attn_q.weight') ? { ...t, dtype: 'q4' as const, quant: q4 } : t));
    const same = resolvePolicy(
      policy([{ match: 'blk.*.attn_q.weight', scheme: 'int4w', group_size: 32, mode: 'symmetric', scale_dtype: 'f16' }]),
      src,
    );
    expect(same.find((p) => p.name === 'blk.0.attn_q.weight')).toMatchObject({ dtype: 'q4', passthrough: true, method: null });
    const lines = problemsOf(() => resolvePolicy(policy([{ match: 'blk.*.attn_q.weight', scheme: 'int4w', group_size: 64 }]), src));
    expect(lines[0]).toMatch(
      /is already int4w symmetric g32 f16 scales in the source; requantizing it to int4w symmetric g64 f16 scales would compound rounding error/,
    );
  });
});

describe('expanded manifests', () => {
  const T = tensorsOf(tiny);
  const sha = 'a'.repeat(64);
  const base = (): ExpandedManifest => ({
    kind: 'expanded',
    version: 1,
    status: 'accepted',
    policy: { sha256: sha },
    model: { fingerprint: sha, config: { ...tiny } },
    gate: { thresholds: { min_cosine: 0.9, min_snr_db: 10, max_kl: 0.1, min_top1: 0.8 }, end_to_end: null },
    scales: { s: Buffer.from(new Float32Array(64).fill(1).buffer).toString('base64') },
    tensors: T.map((t) => ({
      name: t.name,
      shape: [...t.shape],
      source: { dtype: 'f32' as const, sha256: sha },
      scheme: 'f32' as const,
      layout: { order: 'row_major' as const, block_k: 0 },
      verdict: 'not_measured' as const,
    })),
  });

  it('round-trips through the schema and resolves to the same tensors', () => {
    const m = base();
    m.tensors[2] = {
      ...m.tensors[2],
      scheme: 'int4w',
      group_size: 64,
      mode: 'symmetric',
      scale_dtype: 'f16',
      method: 'clip',
      transforms: [{ op: 'scale_columns', by: 's' }],
    };
    const parsed = parseManifest(JSON.stringify(m)) as ExpandedManifest;
    const plans = plansFromExpanded(parsed, T, tiny);
    expect(plans[2]).toMatchObject({
      name: 'blk.0.attn_q.weight',
      dtype: 'q4',
      method: 'clip',
      transforms: [{ op: 'scale_columns', by: 's' }],
    });
  });

  it('checks transforms against the scales it carries', () => {
    const m = base();
    m.tensors[2] = {
      ...m.tensors[2],
      transforms: [
        { op: 'divide_rows', by: 's' },
        { op: 'scale_columns', by: 'nope' },
      ],
    };
    expect(problemsOf(() => parseManifest(JSON.stringify(m)))).toEqual([
      'tensors[2].transforms[1].by: names scales "nope", which the manifest does not have',
    ]);
    m.tensors[1] = { ...m.tensors[1], transforms: [{ op: 'divide', by: 's' }] };
    m.tensors[3] = { ...m.tensors[3], transforms: [{ op: 'divide_rows', by: 's' }] }; // attn_k has 32 rows, s has 64
    expect(problemsOf(() => parseManifest(JSON.stringify(m)))).toContain(
      'tensors[3].transforms[0]: divide_rows by s needs 32 scales, it has 64',
    );
  });

  it('refuses bad scales, misapplied transforms and impossible layouts before export', () => {
    const m = base();
    m.scales.z = Buffer.from(new Float32Array([1, 0, 2]).buffer).toString('base64');
    m.scales.n = Buffer.from(new Float32Array([Number.NaN]).buffer).toString('base64');
    m.tensors[1] = { ...m.tensors[1], transforms: [{ op: 'divide_rows', by: 's' }] }; // attn_norm is a vector
    m.tensors[2] = { ...m.tensors[2], transforms: [{ op: 'divide', by: 's' }], layout: { order: 'row_major', block_k: 96 } };
    m.tensors[3] = {
      ...m.tensors[3],
      source: { dtype: 'q4', sha256: sha },
      scheme: 'int4w',
      group_size: 32,
      mode: 'symmetric',
      scale_dtype: 'f16',
      transforms: [{ op: 'scale_columns', by: 's' }],
    };
    expect(problemsOf(() => parseManifest(JSON.stringify(m)))).toEqual([
      'scales.z: value 1 is 0; scales must be finite and positive',
      'scales.n: value 0 is NaN; scales must be finite and positive',
      'tensors[1].transforms[0].op: divide_rows applies to matrices; blk.0.attn_norm.weight is 1-D',
      'tensors[2].layout.block_k: must be a multiple of 64 (or 0), got 96',
      'tensors[2].transforms[0].op: divide applies to vectors; blk.0.attn_q.weight is 2-D',
      'tensors[3].transforms: blk.0.attn_k.weight is q4 in the source; only float tensors can be rewritten',
    ]);
  });

  it('float sources of the same weights agree in any dtype; quantized sources must keep their encoding', () => {
    // A bf16 checkpoint (norms included) against a manifest measured on its f32 conversion: the stored dtypes follow the manifest.
    const bf16 = T.map((t) => ({ ...t, dtype: 'bf16' as const }));
    const plans = plansFromExpanded(base(), bf16, tiny);
    expect(plans.every((p) => p.dtype === 'f32' && !p.passthrough)).toBe(true);
    const q4 = { scheme: 'symmetric' as const, granularity: 'per_group' as const, group_size: 32, scale_dtype: 'f16' as const };
    const src = T.map((t) => (t.name === 'blk.0.attn_q.weight' ? { ...t, dtype: 'q4' as const, quant: q4 } : t));
    const m = base();
    m.tensors[2] = {
      ...m.tensors[2],
      source: { dtype: 'q4', sha256: sha },
      scheme: 'int4w',
      group_size: 64,
      mode: 'symmetric',
      scale_dtype: 'f16',
    };
    expect(problemsOf(() => plansFromExpanded(m, src, tiny))).toEqual([
      'tensors[2].scheme: blk.0.attn_q.weight is int4w symmetric g32 f16 scales in the source and cannot become int4w symmetric g64 f16 scales without requantizing',
    ]);
    m.tensors[2].group_size = 32;
    expect(plansFromExpanded(m, src, tiny)[2]).toMatchObject({ dtype: 'q4', passthrough: true, method: null });
  });

  it('a manifest for another model is refused with every difference', () => {
    const other = { ...tiny, dim: 128 };
    const lines = problemsOf(() => plansFromExpanded(base(), tensorsOf(other), other, 'm.json'));
    expect(lines[0]).toBe("model.config.dim: is 64; this model's is 128");
    expect(lines.some((l) => /blk\.0\.attn_q\.weight is \[64,64\] in the manifest, \[64,128\] in this model/.test(l))).toBe(true);
    const fewer = base();
    fewer.tensors.pop();
    expect(problemsOf(() => plansFromExpanded(fewer, T, tiny))).toEqual(['tensors: has no entry for output.weight of this model']);
  });

  it('lists every entry that does not fit: a source of another kind, a layout the tensor cannot have, a tensor the model lacks', () => {
    const m = base();
    m.tensors[1] = { ...m.tensors[1], layout: { order: 'pretransposed', block_k: 0 } }; // attn_norm is a vector
    m.tensors[2] = { ...m.tensors[2], source: { dtype: 'i8', sha256: sha } }; // f32 in this model
    m.tensors.push({ ...m.tensors[0], name: 'extra.weight' });
    expect(problemsOf(() => plansFromExpanded(m, T, tiny))).toEqual([
      'tensors[1].layout: blk.0.attn_norm.weight cannot be stored {"order":"pretransposed","block_k":0}',
      'tensors[2].source.dtype: blk.0.attn_q.weight was i8 when quantized; this model has it as f32',
      'tensors: lists extra.weight, which this model does not have',
    ]);
  });

  it('diffAgainstManifest reports each tensor whose encoding differs', () => {
    const m = base();
    m.tensors[2] = { ...m.tensors[2], scheme: 'int4w', group_size: 64, mode: 'symmetric', scale_dtype: 'f16', method: 'clip' };
    const stored = T.map((t) => ({ ...t, layout: { order: 'row_major' as const, block_k: 0 } }));
    expect(diffAgainstManifest(m, stored)).toEqual([
      { tensor: 'blk.0.attn_q.weight', expected: 'int4w symmetric g64 f16 scales', actual: 'f32' },
    ]);
    const p = policy([{ match: 'blk.*.ffn_gate.weight', scheme: 'int8w', granularity: 'per_row' }]);
    expect(diffAgainstManifest(p, stored).map((d) => d.tensor)).toEqual(['blk.0.ffn_gate.weight', 'blk.1.ffn_gate.weight']);
  });
});
