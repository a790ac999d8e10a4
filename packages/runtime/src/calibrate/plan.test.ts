import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeTensor } from '@ie/format';
import { QuantError, modelFingerprint, type LoadedManifest } from '@ie/quant';
import type { MappedModel } from '../load.js';
import { isQuantized, planModel, policyOf } from './plan.js';
import { loadedPolicy, openSynth } from './test-model.js';

describe('plan: the policy against the model, and the weights identity', () => {
  let mapped: MappedModel;
  beforeAll(async () => {
    mapped = await openSynth();
  });
  afterAll(() => mapped.close());

  it('refuses an expanded manifest and passes a policy through', () => {
    const policy = loadedPolicy();
    expect(policyOf(policy)).toBe(policy.manifest);
    const expanded = { ...policy, file: 'x.json', manifest: { ...policy.manifest, kind: 'expanded' } } as unknown as LoadedManifest;
    expect(() => policyOf(expanded)).toThrow(QuantError);
    expect(() => policyOf(expanded)).toThrow(/x\.json is an expanded manifest/);
  });

  it('plans every tensor in file order; projections are quantized here, norms and the embedding are not', () => {
    const r = mapped.reader;
    const m = planModel(policyOf(loadedPolicy()), r, 'policy.json');
    expect(m.plans.map((p) => p.name)).toEqual(r.tensors.map((t) => t.name));
    expect(m.planOf.get('blk.1.ffn_down.weight')).toMatchObject({ scheme: 'int4w', method: 'clip', passthrough: false });
    expect(isQuantized(m.planOf.get('blk.1.ffn_down.weight'))).toBe(true);
    expect(isQuantized(m.planOf.get('blk.0.attn_norm.weight'))).toBe(false);
    expect(isQuantized(m.planOf.get('token_embd.weight'))).toBe(false);
    expect(isQuantized(undefined)).toBe(false);
    expect(
      isQuantized({ ...(m.planOf.get('blk.0.attn_q.weight') as NonNullable<ReturnType<typeof m.planOf.get>>), passthrough: true }),
    ).toBe(false);
  });

  it("digests are the sha256 of each tensor's f32 values, and the fingerprint covers them", async () => {
    const r = mapped.reader;
    const m = planModel(policyOf(loadedPolicy()), r, 'policy.json');
    r.tensors.forEach((t, i) => {
      const v = decodeTensor(t, r.view(t.name).bytes);
      const want = createHash('sha256')
        .update(new Uint8Array(v.buffer, v.byteOffset, v.byteLength))
        .digest('hex');
      expect(m.digests[i]).toEqual({ name: t.name, shape: t.shape, sha256: want });
    });
    expect(m.fingerprint).toBe(modelFingerprint(r.config, m.digests));
    // Other weights of the same shape: another fingerprint.
    const other = await openSynth(undefined, 10);
    try {
      expect(planModel(policyOf(loadedPolicy()), other.reader, 'policy.json').fingerprint).not.toBe(m.fingerprint);
    } finally {
      await other.close();
    }
  });
});
