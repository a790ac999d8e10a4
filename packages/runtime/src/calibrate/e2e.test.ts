import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EndToEndMeter } from '@ie/quant';
import type { MappedModel } from '../load.js';
import { calibrationModel } from './bind.js';
import { measureEndToEnd } from './e2e.js';
import { CALIB_SEQUENCES, openSynth } from './test-model.js';

describe('e2e: the quantized model beside the FP one', () => {
  let mapped: MappedModel;
  beforeAll(async () => {
    mapped = await openSynth();
  });
  afterAll(() => mapped.close());
  const seqs = CALIB_SEQUENCES;
  const V = () => mapped.reader.config.vocab_size;
  const perturbed = () => {
    const base = calibrationModel(mapped, 8, { capture: false }).weights.vectors.get('output_norm.weight') as Float32Array;
    const vectors = new Map([['output_norm.weight', Float32Array.from(base, (v, i) => v * (1 + 0.3 * Math.sin(i)))]]);
    return calibrationModel(mapped, 8, { capture: false, overrides: { matrices: new Map(), vectors } }).forward;
  };
  /** Every position's logits of `seqs` from `f`. */
  const logitsOf = (f: ReturnType<typeof perturbed>) =>
    seqs.flatMap((s) => {
      f.runSync(s, 0);
      return s.map((_, r) => f.logits.slice(r * V(), (r + 1) * V()));
    });

  it('measures KL and top-1 over every position, the same from kept logits as from a second FP run', () => {
    const fp = calibrationModel(mapped, 8, { capture: false }).forward;
    const q = perturbed();
    const meter = new EndToEndMeter();
    const [a, b] = [logitsOf(fp), logitsOf(q)];
    for (let i = 0; i < a.length; i++) meter.add(a[i], b[i]);
    const want = meter.result();
    expect(want.kl_mean).toBeGreaterThan(0);
    const events: unknown[] = [];
    const kept = measureEndToEnd(fp, q, seqs, a, (p) => events.push(p));
    expect(kept).toEqual(want);
    expect(events).toEqual([
      { stage: 'judging', done: 1, total: 2 },
      { stage: 'judging', done: 2, total: 2 },
    ]);
    expect(measureEndToEnd(fp, q, seqs, null, () => {})).toEqual(want);
  });

  it('finds nothing between a model and itself', () => {
    const fp = calibrationModel(mapped, 8, { capture: false }).forward;
    const same = calibrationModel(mapped, 8, { capture: false }).forward;
    expect(measureEndToEnd(fp, same, seqs, null, () => {})).toMatchObject({ kl_mean: 0, kl_max: 0, top1: 1, positions: 12 });
  });
});
