import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTokenizer } from '../tokenizer/index.js';
import type { MappedModel } from '../load.js';
import { policyOf } from './plan.js';
import { calibrationSequences, sequenceLength, splitSequences } from './sequences.js';
import { CALIB_TEXT, loadedPolicy, openSynth } from './test-model.js';

describe('sequences: the calibration text cut into BOS-prefixed sequences', () => {
  it('splits ids into pieces of seqLen - 1 after BOS, the last one short, at most max', () => {
    const ids = Array.from({ length: 20 }, (_, i) => 100 + i * 3);
    expect(splitSequences(ids, 1, 8, 9)).toEqual([
      [1, ...ids.slice(0, 7)],
      [1, ...ids.slice(7, 14)],
      [1, ...ids.slice(14)],
    ]);
    expect(splitSequences(ids, 1, 8, 2)).toEqual([
      [1, ...ids.slice(0, 7)],
      [1, ...ids.slice(7, 14)],
    ]);
    expect(splitSequences([], 1, 8, 2)).toEqual([]);
  });

  it("caps the sequence length at the model's context and refuses a context without room for BOS and a token", () => {
    expect(sequenceLength(128, 512)).toBe(128);
    expect(sequenceLength(128, 48)).toBe(48);
    expect(() => sequenceLength(128, 1)).toThrow(expect.objectContaining({ code: 'QUANT_CALIBRATION' }));
  });

  describe('on a model', () => {
    let mapped: MappedModel;
    beforeAll(async () => {
      mapped = await openSynth();
    });
    afterAll(() => mapped.close());

    it('tokenizes without BOS and takes the policy settings', async () => {
      const r = mapped.reader;
      const ids = (await createTokenizer(r.header, r.directory)).encode(CALIB_TEXT, { bos: false });
      const policy = policyOf(loadedPolicy((p) => (p.calibration = { sequence_length: 40, max_sequences: 3 })));
      const s = await calibrationSequences(r, policy, { text: CALIB_TEXT, file: 'default.txt' });
      expect(s.seqLen).toBe(40);
      expect(s.seqs).toEqual([0, 1, 2].map((i) => [r.config.bos_id, ...ids.slice(i * 39, (i + 1) * 39)]));
      expect(s.tokens).toBe(120);
    });

    it('refuses a text of fewer than 8 tokens, naming the file', async () => {
      await expect(calibrationSequences(mapped.reader, policyOf(loadedPolicy()), { text: 'Hi', file: 'short.txt' })).rejects.toMatchObject({
        code: 'QUANT_CALIBRATION',
        message: expect.stringMatching(/^short\.txt gives \d tokens/),
      });
    });
  });
});
