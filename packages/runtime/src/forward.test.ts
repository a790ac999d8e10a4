import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WeightMatrix } from '@ie/kernels';
import { calibrationModel } from './calibrate/bind.js';
import { outputsOf } from './calibrate/linear.js';
import { openSynth, tinyConfig } from './calibrate/test-model.js';
import { CAPTURE_CONSUMERS, captureConsumers, classifierName } from './forward.js';
import type { MappedModel } from './load.js';

describe('forward: the capture-site → consumer table', () => {
  it('names the matrices that read each site', () => {
    const c = tinyConfig();
    expect(captureConsumers(c, 'attn_in', 1)).toEqual(['blk.1.attn_q.weight', 'blk.1.attn_k.weight', 'blk.1.attn_v.weight']);
    expect(captureConsumers(c, 'attn_out_in', 0)).toEqual(['blk.0.attn_output.weight']);
    expect(captureConsumers(c, 'ffn_in', 0)).toEqual(['blk.0.ffn_gate.weight', 'blk.0.ffn_up.weight']);
    expect(captureConsumers(c, 'ffn_down_in', 1)).toEqual(['blk.1.ffn_down.weight']);
    expect(captureConsumers(c, 'classifier_in', -1)).toEqual([classifierName(c)]);
    expect(classifierName({ ...c, tied_classifier: true })).toBe('token_embd.weight');
    expect(classifierName({ ...c, tied_classifier: false })).toBe('output.weight');
    expect(Object.keys(CAPTURE_CONSUMERS)).toEqual(['attn_in', 'attn_out_in', 'ffn_in', 'ffn_down_in']);
  });

  describe('in a calibration forward pass', () => {
    let mapped: MappedModel;
    beforeAll(async () => {
      mapped = await openSynth();
    });
    afterAll(() => mapped.close());

    it('captures every site in program order, each as wide as its consumers’ input', () => {
      const c = mapped.reader.config;
      const { forward, weights } = calibrationModel(mapped, 16, { capture: true });
      const block = ['attn_in', 'attn_out_in', 'ffn_in', 'ffn_down_in'];
      expect(forward.captures.map((x) => `${x.layer}:${x.site}`)).toEqual([
        ...Array.from({ length: c.n_layers }, (_, l) => block.map((s) => `${l}:${s}`)).flat(),
        '-1:classifier_in',
      ]);
      for (const cap of forward.captures)
        for (const name of captureConsumers(c, cap.site, cap.layer)) expect(weights.matrices.get(name)?.cols, name).toBe(cap.width);
    });

    it('the ffn_down_in rows are SwiGLU of the ffn_in rows through the table’s gate and up', () => {
      const c = mapped.reader.config;
      const { forward, weights } = calibrationModel(mapped, 16, { capture: true });
      const seq = [1, 17, 250, 3, 99, 400];
      forward.runSync(seq, 0);
      const n = seq.length;
      const site = (s: string) =>
        forward.captures
          .find((x) => x.layer === 1 && x.site === s)
          ?.data.subarray(0, n * (s === 'ffn_in' ? c.dim : c.ffn_dim)) as Float32Array;
      const [gate, up] = captureConsumers(c, 'ffn_in', 1).map((name) =>
        outputsOf(mapped.ctx, weights.matrices.get(name) as WeightMatrix, site('ffn_in'), n),
      );
      const act = site('ffn_down_in');
      for (let i = 0; i < act.length; i++) expect(act[i]).toBeCloseTo((gate[i] / (1 + Math.exp(-gate[i]))) * up[i], 4);
    });
  });
});
