import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MappedModel } from '../load.js';
import { calibrationModel } from './bind.js';
import { captureActivations, gateRowPicks, logitsFit } from './capture.js';
import type { QuantizeProgress } from './types.js';
import { CALIB_SEQUENCES, openSynth } from './test-model.js';

describe('capture: the FP calibration run', () => {
  it('picks gate rows evenly spaced over all positions', () => {
    // 12 positions, 5 wanted: stride 2.4, positions 0, 2, 4, 7, 9.
    expect(gateRowPicks([3, 4, 5], 5)).toEqual([
      [0, 0],
      [0, 2],
      [1, 1],
      [2, 0],
      [2, 2],
    ]);
    expect(gateRowPicks([2, 1], 10)).toEqual([
      [0, 0],
      [0, 1],
      [1, 0],
    ]);
  });

  it('keeps FP logits only within the budget', () => {
    expect(logitsFit(1024, 32000, 256 * 2 ** 20)).toBe(true);
    expect(logitsFit(1024, 32000, 131_072_000 - 1)).toBe(false);
    expect(logitsFit(1, 1, 0)).toBe(false);
  });

  describe('on a model', () => {
    let mapped: MappedModel;
    beforeAll(async () => {
      mapped = await openSynth();
    });
    afterAll(() => mapped.close());
    const seqs = CALIB_SEQUENCES;

    it('keeps each site’s gate rows, mean |x| over every position, and every position’s logits', () => {
      const c = mapped.reader.config;
      const events: QuantizeProgress[] = [];
      const got = captureActivations(calibrationModel(mapped, 8, { capture: true }).forward, seqs, {
        gateRows: 5,
        keepLogits: true,
        progress: (p) => events.push(p),
      });
      expect(events).toEqual([
        { stage: 'calibrating', done: 1, total: 2 },
        { stage: 'calibrating', done: 2, total: 2 },
      ]);
      // The same run, by hand, on a second forward pass.
      const ref = calibrationModel(mapped, 8, { capture: true }).forward;
      const picks = gateRowPicks([7, 5], 5);
      expect(got.gateN).toBe(5);
      const logits: Float32Array[] = [];
      const sums = ref.captures.map((cap) => new Float64Array(cap.width));
      const rows = ref.captures.map(() => [] as number[]);
      seqs.forEach((seq, i) => {
        ref.runSync(seq, 0);
        for (let r = 0; r < seq.length; r++) logits.push(ref.logits.slice(r * c.vocab_size, (r + 1) * c.vocab_size));
        ref.captures.forEach((cap, j) => {
          for (let k = 0; k < seq.length * cap.width; k++) sums[j][k % cap.width] += Math.abs(cap.data[k]);
          for (const [s, r] of picks) if (s === i) rows[j].push(...cap.data.subarray(r * cap.width, (r + 1) * cap.width));
        });
      });
      expect(got.fpLogits).toEqual(logits);
      got.sites.forEach((s, j) => {
        expect(s.site).toBe(ref.captures[j].site);
        expect([...s.rows]).toEqual(rows[j]);
        expect([...s.meanAbs]).toEqual([...sums[j]].map((v) => v / 12));
        expect(s.meanAbs.every((v) => v > 0)).toBe(true);
      });
      expect(got.sites.find((s) => s.site === 'ffn_in' && s.layer === 1)?.consumers).toEqual([
        'blk.1.ffn_gate.weight',
        'blk.1.ffn_up.weight',
      ]);
    });

    it('keeps no logits past the budget', () => {
      const got = captureActivations(calibrationModel(mapped, 8, { capture: true }).forward, seqs, {
        gateRows: 512,
        keepLogits: false,
        progress: () => {},
      });
      expect(got.fpLogits).toBeNull();
      expect(got.gateN).toBe(12);
    });
  });
});
