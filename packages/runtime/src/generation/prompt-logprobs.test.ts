/** promptLogprobs: a prompt scored in chunks of logit rows, against a float64 forward pass and the decode path. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportIebin, synthModel, SYNTH_PRESETS, type ModelConfig } from '@ie/format';
import { ReferenceModel, logSoftmax } from '../../test/reference.js';
import { BatchScheduler, Engine, Model, type PromptLogprob } from '../index.js';

// Odd sizes (dim 72, vocab 301), a sliding window shorter than the prompt.
const config: ModelConfig = {
  ...SYNTH_PRESETS.tiny.config,
  dim: 72,
  n_heads: 6,
  n_kv_heads: 2,
  head_dim: 12,
  ffn_dim: 100,
  vocab_size: 301,
  architecture: 'mistral',
  sliding_window: 16,
};

/** Seeded token ids (never BOS/EOS) of a given length. */
function prompt(n: number, seed: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return 3 + (s % (config.vocab_size - 3));
  });
}

/**
 * Checks scores against per-position logits `want` (position p predicts token p + 1): the first
 * token has none, each other is its own token's log-probability, and the top alternatives are the
 * `top` largest, in order, within `tol`.
 */
function expectScores(got: PromptLogprob[] | undefined, ids: number[], want: ArrayLike<number>[], top: number, tol: number): void {
  expect(got?.length).toBe(ids.length);
  const scores = got as PromptLogprob[];
  expect(scores[0]).toEqual({ token: ids[0], logprob: null });
  let worst = 0;
  for (let i = 1; i < ids.length; i++) {
    const ls = logSoftmax(want[i - 1]);
    expect(scores[i].token).toBe(ids[i]);
    worst = Math.max(worst, Math.abs((scores[i].logprob as number) - ls[ids[i]]));
    const tops = scores[i].topLogprobs ?? [];
    expect(tops.length).toBe(top);
    const best = [...ls].sort((a, b) => b - a);
    for (let k = 0; k < top; k++) {
      worst = Math.max(worst, Math.abs(tops[k].logprob - best[k]));
      expect(Math.abs(ls[tops[k].token] - tops[k].logprob)).toBeLessThan(tol);
    }
  }
  expect(worst).toBeLessThan(tol);
}

let dir = '';
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ie-score-'));
  await exportIebin(synthModel(config, { seed: 21 }), dir, { converter: 'test' });
});

describe('promptLogprobs on one sequence (Engine)', () => {
  it('scores a 37-token prompt in chunks of 5 rows as the float64 forward pass does, and generates what it would unscored', async () => {
    const ids = prompt(37, 4);
    const ref = await ReferenceModel.load(dir);
    const want = ids.map((t, p) => ref.forward(t, p));
    for (const threads of [1, 2]) {
      await using e = await Engine.load(dir, { threads, maxBatch: 5, contextLength: 64 });
      const g = e.generate(ids, { temperature: 0, maxTokens: 6, ignoreEos: true, promptLogprobs: true, topLogprobs: 3 });
      const r = await g.complete();
      expectScores(r.promptLogprobs, ids, want, 3, 1e-4);
      expect(g.promptLogprobs).toBe(r.promptLogprobs);
      const plain = await e.complete(ids, { temperature: 0, maxTokens: 6, ignoreEos: true });
      expect(r.tokens).toEqual(plain.tokens);
      // And the decode path's own logits (one step per position) agree as closely.
      expectScores(r.promptLogprobs, ids, await e.evaluate(ids), 3, 1e-4);
    }
  });

  it('maxTokens 0 scores the prompt and generates nothing; a cached prefix is not reused for a scored prompt', async () => {
    const ids = prompt(20, 9);
    await using e = await Engine.load(dir, { contextLength: 64 });
    const first = await e.complete(ids, { maxTokens: 0, promptLogprobs: true });
    expect(first.tokens).toEqual([]);
    expect(first.stopReason).toBe('length');
    expect(first.promptLogprobs?.length).toBe(20);
    expect(first.promptLogprobs?.[1].topLogprobs).toBeUndefined();
    const again = await e.complete(ids, { maxTokens: 0, promptLogprobs: true, reusePrefix: true });
    expect(again.metrics.cachedTokens).toBe(0);
    expect(again.promptLogprobs).toEqual(first.promptLogprobs);
    // Without promptLogprobs nothing is scored.
    expect((await e.complete(ids, { maxTokens: 1 })).promptLogprobs).toBeUndefined();
  });

  it('refuses malformed options with IE_INVALID_OPTION naming them', async () => {
    await using e = await Engine.load(dir, { contextLength: 64 });
    const bad = (o: object, option: string) =>
      expect(() => e.generate([1, 5], o as never)).toThrow(expect.objectContaining({ code: 'IE_INVALID_OPTION', option }));
    bad({ promptLogprobs: 'yes' }, 'promptLogprobs');
    bad({ topLogprobs: 2 }, 'topLogprobs');
    bad({ promptLogprobs: true, topLogprobs: 21 }, 'topLogprobs');
  });
});

describe('promptLogprobs under continuous batching', () => {
  let model: Model;
  let alone: Engine;
  afterAll(async () => {
    await model?.dispose();
    await alone?.dispose();
  });

  it("scores a prompt with the logit rows the decoding requests leave, each request's tokens as alone", async () => {
    // Four rows a step: two decoding requests leave the scored prompt two logit rows.
    model = await Model.open(dir, { sequences: 3, maxBatch: 4, contextLength: 64, threads: 2 });
    expect(model.forward.logitRows).toBe(4);
    alone = await Engine.load(dir, { contextLength: 64, threads: 2 });
    const a = prompt(3, 1);
    const b = prompt(5, 2);
    const scored = prompt(29, 3);
    const opts = { temperature: 0, maxTokens: 24, ignoreEos: true };
    const wantA = (await alone.complete(a, opts)).tokens;
    const wantB = (await alone.complete(b, opts)).tokens;
    const wantScored = await alone.complete(scored, { ...opts, maxTokens: 4, promptLogprobs: true, topLogprobs: 2 });
    const sched = new BatchScheduler(model, { prefillChunk: 8 });
    const [gotA, gotB, gotScored] = await Promise.all([
      sched.generate(a, opts).complete(),
      sched.generate(b, opts).complete(),
      sched.generate(scored, { ...opts, maxTokens: 4, promptLogprobs: true, topLogprobs: 2 }).complete(),
    ]);
    expect(gotA.tokens).toEqual(wantA);
    expect(gotB.tokens).toEqual(wantB);
    expect(gotScored.tokens).toEqual(wantScored.tokens);
    // Against the one-sequence run (chunks of its own rows): the same products, summed in other tiles.
    const got = gotScored.promptLogprobs as PromptLogprob[];
    const want = wantScored.promptLogprobs as PromptLogprob[];
    expect(got.map((s) => s.token)).toEqual(scored);
    expect(got[0].logprob).toBeNull();
    for (let i = 1; i < scored.length; i++) {
      expect(Math.abs((got[i].logprob as number) - (want[i].logprob as number))).toBeLessThan(1e-4);
      const [g, w] = [got[i].topLogprobs ?? [], want[i].topLogprobs ?? []];
      expect(g.length).toBe(2);
      for (let k = 0; k < 2; k++) expect(Math.abs(g[k].logprob - w[k].logprob)).toBeLessThan(1e-4);
    }
    const st = sched.stats();
    expect(st.rows).toBeGreaterThan(st.steps);
    await sched.close();
  });
});
