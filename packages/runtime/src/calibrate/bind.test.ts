import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WeightMatrix } from '@ie/kernels';
import { classifierName } from '../forward.js';
import type { MappedModel } from '../load.js';
import { calibrationModel } from './bind.js';
import { outputsOf } from './linear.js';
import { openSynth } from './test-model.js';

describe('bind: the model as calibration runs it', () => {
  let mapped: MappedModel;
  beforeAll(async () => {
    mapped = await openSynth();
  });
  afterAll(() => mapped.close());
  const seq = [1, 7, 300, 42, 511, 3, 90, 128, 5];

  it('gives logits for every row, each the classifier applied to its captured input', () => {
    const c = mapped.reader.config;
    const { forward, weights } = calibrationModel(mapped, 16, { capture: true });
    forward.runSync(seq, 0);
    const cap = forward.captures.find((x) => x.site === 'classifier_in');
    expect(cap?.width).toBe(c.dim);
    const classifier = weights.matrices.get(classifierName(c)) as WeightMatrix;
    const want = outputsOf(mapped.ctx, classifier, cap?.data.subarray(0, seq.length * c.dim) as Float32Array, seq.length);
    const got = forward.logits.subarray(0, seq.length * c.vocab_size);
    for (let i = 0; i < want.length; i++) expect(got[i]).toBeCloseTo(want[i], 4);
    // The rows differ (every position's logits, not one row repeated).
    expect([...got.subarray(0, 8)]).not.toEqual([...got.subarray(c.vocab_size, c.vocab_size + 8)]);
  });

  it('without capture keeps nothing and computes the same logits', () => {
    const a = calibrationModel(mapped, 16, { capture: true }).forward;
    const b = calibrationModel(mapped, 16, { capture: false }).forward;
    expect(b.captures).toEqual([]);
    a.runSync(seq, 0);
    b.runSync(seq, 0);
    expect(b.logits).toEqual(a.logits);
  });

  it('binds overrides in place of the file’s tensors', () => {
    const c = mapped.reader.config;
    const base = calibrationModel(mapped, 16, { capture: true });
    const doubled = Float32Array.from(base.weights.vectors.get('output_norm.weight') as Float32Array, (v) => v * 2);
    const over = calibrationModel(mapped, 16, {
      capture: true,
      overrides: { matrices: new Map(), vectors: new Map([['output_norm.weight', doubled]]) },
    });
    base.forward.runSync(seq, 0);
    over.forward.runSync(seq, 0);
    const at = (f: typeof base.forward) => {
      const cap = f.captures.find((x) => x.site === 'classifier_in');
      if (!cap) throw new Error('no classifier_in capture');
      return cap.data.subarray(0, seq.length * c.dim);
    };
    // The final norm's weight doubled: its output (the classifier's input) doubles exactly.
    expect(at(over.forward)).toEqual(Float32Array.from(at(base.forward), (v) => v * 2));
  });
});
