import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TensorEntry } from '@ie/format';
import { decodeScales, manifestSha256, parseManifest, type OutputQuality, type Policy, type TensorPlan } from '@ie/quant';
import { REPO_ROOT, seededFloats } from '@ie/testing';
import type { MappedModel } from '../load.js';
import { buildManifest, manifestEntry, round } from './manifest.js';
import { planModel, policyOf, type ModelPlan } from './plan.js';
import { CALIB_TEXT, loadedPolicy, openSynth } from './test-model.js';

const THRESHOLDS = { min_cosine: 0.98, min_snr_db: 15, max_kl: 0.15, min_top1: 0.8 };

describe('manifest: the verdict and the expanded manifest', () => {
  let mapped: MappedModel;
  let model: ModelPlan;
  beforeAll(async () => {
    mapped = await openSynth();
    model = planModel(policyOf(loadedPolicy()), mapped.reader, 'policy.json');
  });
  afterAll(() => mapped.close());
  const tensor = (name: string) => mapped.reader.tensors.find((t) => t.name === name) as TensorEntry;
  const plan = (name: string) => model.planOf.get(name) as TensorPlan;

  it('rounds to significant digits, infinities to ±999', () => {
    expect(round(0.99934561234, 7)).toBe(0.9993456);
    expect(round(28.62912, 5)).toBe(28.629);
    expect(round(Number.POSITIVE_INFINITY, 5)).toBe(999);
    expect(round(Number.NEGATIVE_INFINITY, 5)).toBe(-999);
  });

  it('writes an int4w entry with its parameters, method, α, transforms, quality and verdict', () => {
    const name = 'blk.0.attn_q.weight';
    const p: TensorPlan = { ...plan(name), transforms: [{ op: 'scale_columns', by: 'blk.0.attn_in' }] };
    const q: OutputQuality = { cosine: 0.99345678912, snr_db: 22.123456 };
    expect(manifestEntry(tensor(name), 'ab12', p, q, 0.3, THRESHOLDS)).toEqual({
      name,
      shape: [64, 64],
      source: { dtype: 'f32', sha256: 'ab12' },
      scheme: 'int4w',
      layout: p.layout,
      verdict: 'pass',
      group_size: 64,
      mode: 'symmetric',
      scale_dtype: 'f16',
      method: 'clip',
      alpha: 0.3,
      rule: 0,
      transforms: p.transforms,
      quality: { cosine: 0.9934568, snr_db: 22.123 },
    });
    expect(manifestEntry(tensor(name), 'ab12', p, { cosine: 0.97, snr_db: 30 }, undefined, THRESHOLDS)).toMatchObject({ verdict: 'fail' });
    // Copied from the source in this encoding: no method.
    expect(manifestEntry(tensor(name), 'ab12', { ...p, passthrough: true }, undefined, undefined, THRESHOLDS).method).toBeUndefined();
  });

  it('writes int8w granularity, and a float tensor without quantization fields', () => {
    const q8 = readFileSync(join(REPO_ROOT, 'quant/q8_manifest.json'), 'utf8');
    const p8 = planModel(parseManifest(q8, 'q8.json') as Policy, mapped.reader, 'q8.json').planOf.get('blk.1.ffn_up.weight') as TensorPlan;
    expect(manifestEntry(tensor('blk.1.ffn_up.weight'), 'cd', p8, undefined, undefined, THRESHOLDS)).toMatchObject({
      scheme: 'int8w',
      granularity: 'per_row',
      scale_dtype: 'f16',
      method: 'rtn',
      verdict: 'not_measured',
      quality: null,
    });
    const norm = manifestEntry(tensor('blk.0.ffn_norm.weight'), 'ef', plan('blk.0.ffn_norm.weight'), undefined, 0.5, THRESHOLDS);
    expect(Object.keys(norm).sort()).toEqual(['layout', 'name', 'quality', 'rule', 'scheme', 'shape', 'source', 'verdict']);
    expect(norm).toMatchObject({ rule: -1, verdict: 'not_measured' });
  });

  it('builds the manifest: the gate’s failures decide the status, and only the scales a transform names are kept', () => {
    const used = Float32Array.from(seededFloats(176, 41), (v) => 1 + Math.abs(v));
    const quality = new Map<string, OutputQuality>(
      model.plans.filter((p) => p.scheme === 'int4w').map((p, i) => [p.name, { cosine: 0.999 - i * 0.001, snr_db: 25 }]),
    );
    const planOf = new Map(model.planOf);
    planOf.set('blk.0.ffn_down.weight', {
      ...plan('blk.0.ffn_down.weight'),
      transforms: [{ op: 'scale_columns', by: 'blk.0.ffn_down_in' }],
    });
    const loaded = loadedPolicy();
    const out = buildManifest({
      policy: { loaded, manifest: policyOf(loaded) },
      config: mapped.reader.config,
      tensors: mapped.reader.tensors,
      model,
      planOf,
      quality,
      alphas: new Map(),
      scales: new Map([
        ['blk.0.ffn_in', Float32Array.from(seededFloats(64, 42), (v) => 1 + Math.abs(v))],
        ['blk.0.ffn_down_in', used],
      ]),
      endToEnd: { kl_mean: 0.1234567891, kl_max: 2.5, top1: 0.75, positions: 96 },
      calibration: { text: CALIB_TEXT, file: '/somewhere/default.txt', sequences: 2, tokens: 96 },
    });
    // Every tensor passes (cosines 0.999 down to 0.986); top-1 0.75 fails.
    expect(out.failures).toEqual(['end to end: top-1 agreement 0.7500 < min_top1 0.8']);
    expect(out.manifest.status).toBe('rejected');
    expect(Object.keys(out.manifest.scales)).toEqual(['blk.0.ffn_down_in']);
    expect([...decodeScales(out.manifest.scales['blk.0.ffn_down_in'])]).toEqual([...used]);
    expect(out.manifest.gate.end_to_end).toEqual({ kl_mean: 0.123457, kl_max: 2.5, top1: 0.75, positions: 96 });
    expect(out.manifest.calibration).toEqual({
      text: 'default.txt',
      sha256: createHash('sha256').update(CALIB_TEXT, 'utf8').digest('hex'),
      sequences: 2,
      tokens: 96,
    });
    expect(out.manifest.policy).toEqual({ name: 'int4w-default', file: 'policy.json', sha256: loaded.sha256 });
    expect(out.manifest.model.fingerprint).toBe(model.fingerprint);
    expect(out.manifest.tensors.map((t) => t.name)).toEqual(mapped.reader.tensors.map((t) => t.name));
    expect(out.json).toBe(`${JSON.stringify(out.manifest, null, 2)}\n`);
    expect(manifestSha256(out.json)).toHaveLength(64);
    expect(parseManifest(out.json).kind).toBe('expanded');
  });
});
