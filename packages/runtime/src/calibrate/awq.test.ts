import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { activationScales, type TensorPlan } from '@ie/quant';
import { seededFloats } from '@ie/testing';
import type { TensorEntry } from '@ie/format';
import type { WeightMatrix } from '@ie/kernels';
import type { MappedModel } from '../load.js';
import { AWQ_ALPHAS, awqSites, foldsOf, kvRowScales, searchAlpha, searchScales, siteStatistics } from './awq.js';
import { calibrationModel } from './bind.js';
import { captureActivations, type Captured } from './capture.js';
import { outputsOf, valuesOf } from './linear.js';
import { planModel, policyOf } from './plan.js';
import { loadedPolicy, openSynth, tinyConfig } from './test-model.js';

// tiny: 4 heads of 16, 2 KV heads (groups of 2).
const c = tinyConfig();

describe('awq: activation-aware scales', () => {
  it('folds 1/s into what produces each site’s input', () => {
    expect(foldsOf({ site: 'attn_in', layer: 1 }, c)).toEqual([{ name: 'blk.1.attn_norm.weight', op: 'divide', kv: false }]);
    expect(foldsOf({ site: 'ffn_in', layer: 0 }, c)).toEqual([{ name: 'blk.0.ffn_norm.weight', op: 'divide', kv: false }]);
    expect(foldsOf({ site: 'ffn_down_in', layer: 0 }, c)).toEqual([{ name: 'blk.0.ffn_up.weight', op: 'divide_rows', kv: false }]);
    expect(foldsOf({ site: 'attn_out_in', layer: 0 }, c)).toEqual([{ name: 'blk.0.attn_v.weight', op: 'divide_rows', kv: true }]);
    expect(foldsOf({ site: 'attn_out_in', layer: 0 }, { ...c, attn_qkv_bias: true })).toEqual([
      { name: 'blk.0.attn_v.weight', op: 'divide_rows', kv: true },
      { name: 'blk.0.attn_v.bias', op: 'divide', kv: true },
    ]);
    expect(foldsOf({ site: 'classifier_in', layer: -1 }, c)).toEqual([]);
  });

  it('shares one statistic per KV channel across the heads of a group for o’s input, and copies it per v row', () => {
    const meanAbs = Float64Array.from(seededFloats(64, 7), Math.abs);
    expect(siteStatistics({ site: 'ffn_in', width: 64, meanAbs }, c)).toBe(meanAbs);
    const s = siteStatistics({ site: 'attn_out_in', width: 64, meanAbs }, c);
    // Head 1 is in group 0 with head 0; head 3 in group 1 with head 2.
    for (const d of [0, 5, 15]) {
      expect(s[d]).toBeCloseTo((meanAbs[d] + meanAbs[16 + d]) / 2, 12);
      expect(s[16 + d]).toBe(s[d]);
      expect(s[48 + d]).toBeCloseTo((meanAbs[32 + d] + meanAbs[48 + d]) / 2, 12);
    }
    const scale = Float32Array.from(seededFloats(64, 8), (v) => 1 + Math.abs(v));
    const v = kvRowScales(scale, c);
    expect(v).toHaveLength(32);
    expect([...v]).toEqual([...scale.subarray(0, 16), ...scale.subarray(32, 48)]);
  });

  describe('on a model', () => {
    let mapped: MappedModel;
    let captured: Captured;
    beforeAll(async () => {
      mapped = await openSynth();
      const fp = calibrationModel(mapped, 12, { capture: true }).forward;
      const seqs = [0, 1, 2].map((i) => [1, ...Array.from({ length: 11 }, (_, k) => (i * 131 + k * 37 + 5) % 512)]);
      captured = captureActivations(fp, seqs, { gateRows: 512, keepLogits: false, progress: () => {} });
    });
    afterAll(() => mapped.close());
    const plansFor = (edit: Parameters<typeof loadedPolicy>[0]) =>
      planModel(policyOf(loadedPolicy(edit)), mapped.reader, 'policy.json').planOf;

    it('scales the block sites whose consumers ask for awq, never the classifier’s', () => {
      const all = plansFor((p) => (p.defaults = { ...p.defaults, method: 'awq' }));
      expect(awqSites(captured.sites, all, mapped.reader).map((s) => `${s.layer}:${s.site}`)).toEqual(
        [0, 1].flatMap((l) => ['attn_in', 'attn_out_in', 'ffn_in', 'ffn_down_in'].map((s) => `${l}:${s}`)),
      );
      expect(
        awqSites(
          captured.sites,
          plansFor(() => {}),
          mapped.reader,
        ),
      ).toEqual([]);
      const downOnly = plansFor((p) => (p.rules[1] = { ...p.rules[1], match: 'blk.*.ffn_down.weight', method: 'awq' }));
      expect(awqSites(captured.sites, downOnly, mapped.reader).map((s) => `${s.layer}:${s.site}`)).toEqual([
        '0:ffn_down_in',
        '1:ffn_down_in',
      ]);
    });

    it('picks the grid’s α of least summed error (the first on ties)', async () => {
      const planOf = plansFor((p) => (p.defaults = { ...p.defaults, method: 'awq' }));
      const site = captured.sites.find((s) => s.site === 'ffn_in' && s.layer === 0);
      if (!site) throw new Error('no ffn_in site');
      const fp = calibrationModel(mapped, 12, { capture: false }).weights;
      const n = captured.gateN;
      const consumers = site.consumers.map((name) => {
        const t = mapped.reader.tensors.find((x) => x.name === name) as TensorEntry;
        const values = valuesOf(mapped.reader, t);
        return {
          plan: planOf.get(name) as TensorPlan,
          values,
          ref: outputsOf(mapped.ctx, fp.matrices.get(name) as WeightMatrix, site.rows, n),
        };
      });
      const stats = siteStatistics(site, c);
      const errs = await Promise.all(
        AWQ_ALPHAS.map(async (a) => (await searchAlpha(mapped.ctx, consumers, site.rows, n, stats, undefined, [a])).err),
      );
      const best = await searchAlpha(mapped.ctx, consumers, site.rows, n, stats);
      const min = Math.min(...errs);
      expect(best.err).toBe(min);
      expect(best.alpha).toBe(AWQ_ALPHAS[errs.indexOf(min)]);
      expect([...best.scale]).toEqual([...activationScales(stats, best.alpha)]);
      expect(errs[0]).toBeGreaterThan(0);
    });

    it('records each searched site’s scales, its consumers’ column scaling and the folds', async () => {
      const planOf = plansFor((p) => (p.defaults = { ...p.defaults, method: 'awq' }));
      const fp = calibrationModel(mapped, 12, { capture: false }).weights;
      const events: string[] = [];
      const r = await searchScales({
        ctx: mapped.ctx,
        reader: mapped.reader,
        planOf,
        fp: fp.matrices,
        sites: captured.sites,
        gateN: captured.gateN,
        progress: (p) => events.push(`${p.done}/${p.total} ${p.detail}`),
      });
      expect(events).toHaveLength(8);
      expect(events[7]).toBe('8/8 blk.1.ffn_down_in');
      const scaled = captured.sites.filter((s) => (r.alphas.get(s.consumers[0]) ?? 0) > 0);
      expect(scaled.length).toBeGreaterThan(0);
      for (const s of scaled) {
        const key = `blk.${s.layer}.${s.site}`;
        const alpha = r.alphas.get(s.consumers[0]) as number;
        expect([...(r.scales.get(key) as Float32Array)]).toEqual([...activationScales(siteStatistics(s, c), alpha)]);
        for (const name of s.consumers) expect(r.transforms.get(name)).toContainEqual({ op: 'scale_columns', by: key });
        for (const f of foldsOf(s, c))
          expect(r.transforms.get(f.name)).toContainEqual({ op: f.op, by: f.kv ? `blk.${s.layer}.attn_v_rows` : key });
      }
      // Every consumer of a searched site records its α, scaled or not.
      for (const s of captured.sites.filter((x) => x.site !== 'classifier_in'))
        for (const name of s.consumers) expect(AWQ_ALPHAS).toContain(r.alphas.get(name));
    });
  });
});
