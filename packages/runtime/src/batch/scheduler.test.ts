import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportIebin, synthModel, SYNTH_PRESETS, type ModelConfig } from '@ie/format';
import { BatchScheduler, Engine, GenerationAbortedError, Model, type Generation } from '../index.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'ie-batch-'));

async function iebin(config: ModelConfig, seed: number): Promise<string> {
  const d = tmp();
  await exportIebin(synthModel(config, { seed }), d, { converter: 'test' });
  return d;
}

/** Seeded token ids (never BOS/EOS, so greedy runs go on) of a given length. */
function prompt(n: number, seed: number, vocab: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return 3 + (s % (vocab - 3));
  });
}

/** Pulls a generation's pieces into `tokens` as they come; resolves at its end. */
async function drain(g: Generation, onPiece?: (n: number) => void): Promise<number[]> {
  const tokens: number[] = [];
  for await (const p of g)
    if (p.token >= 0) {
      tokens.push(p.token);
      onPiece?.(tokens.length);
    }
  return tokens;
}

const SHAPES: Array<[string, ModelConfig]> = [
  ['GQA 4/2', SYNTH_PRESETS.tiny.config],
  [
    'Mistral sliding window 8, Qwen2 biases',
    { ...SYNTH_PRESETS.tiny.config, architecture: 'mistral', sliding_window: 8, attn_qkv_bias: true },
  ],
  ['gpt-oss-tiny: MoE rows grouped by expert, attention sinks, sliding layers', SYNTH_PRESETS['gpt-oss-tiny'].config],
];

describe.each(SHAPES)('continuous batching, fp32 (%s)', (_name, config) => {
  let dir: string;
  let model: Model;
  let alone: Engine;
  beforeAll(async () => {
    dir = await iebin(config, 41);
    model = await Model.open(dir, { sequences: 4, threads: 2, maxBatch: 16, contextLength: 96 });
    alone = await Engine.load(dir, { threads: 2, maxBatch: 16, contextLength: 96 });
  });
  afterAll(async () => {
    await model.dispose();
    await alone.dispose();
  });

  it('gives every sequence the tokens it gets decoded alone: different prompt lengths, joining at different steps', async () => {
    const prompts = [
      prompt(3, 1, config.vocab_size),
      prompt(23, 2, config.vocab_size),
      prompt(9, 3, config.vocab_size),
      prompt(40, 4, config.vocab_size),
      prompt(1, 5, config.vocab_size),
    ];
    const opts = { temperature: 0, maxTokens: 24, ignoreEos: true };
    const want: number[][] = [];
    for (const p of prompts) want.push((await alone.complete(p, opts)).tokens);
    const sched = new BatchScheduler(model, { prefillChunk: 8 });
    // The first starts alone; the others join while it (and then they) decode; the fifth waits for a free slot.
    const runs: Array<Promise<number[]>> = [];
    const start = (i: number) =>
      runs.push(drain(sched.generate(prompts[i], opts), (n) => n === 2 + i && i + 1 < prompts.length && start(i + 1)));
    start(0);
    // Each starts the next at its (2 + i)-th piece: wait for the chain to reach the last one.
    for (let i = 0; i < 6000 && runs.length < prompts.length; i++) await new Promise((r) => setTimeout(r, 5));
    const got = await Promise.all(runs);
    expect(got).toEqual(want);
    const st = sched.stats();
    // Batching happened: fewer steps than tokens computed.
    expect(st.rows).toBeGreaterThan(st.steps * 1.5);
    await sched.close();
  });

  it('requests sharing a prompt prefix copy it from the first one’s cache: the tokens each gets alone, the shared part prefilled once', async () => {
    const shared = prompt(40, 21, config.vocab_size);
    const prompts = [0, 1, 2].map((i) => [...shared, ...prompt(5, 30 + i, config.vocab_size)]);
    const opts = { temperature: 0, maxTokens: 6, ignoreEos: true, reusePrefix: true };
    const want: number[][] = [];
    for (const p of prompts) want.push((await alone.complete(p, { ...opts, reusePrefix: false })).tokens);
    const sched = new BatchScheduler(model, { slots: 3 });
    const before = sched.stats().rows;
    const got = await Promise.all(prompts.map((p) => sched.generate(p, opts).complete()));
    expect(got.map((r) => r.tokens)).toEqual(want);
    // The first prefills all 45; the other two take the 40 shared positions from its slot.
    expect(got.map((r) => r.metrics.cachedTokens).sort()).toEqual([0, 40, 40]);
    expect(sched.stats().rows - before).toBe(45 + 5 + 5 + 3 * 5);
    // The same prompt three times (n choices): each follower copies all but the last token.
    const same = await Promise.all([0, 1, 2].map(() => sched.generate(prompts[0], opts).complete()));
    expect(same.map((r) => r.tokens)).toEqual([want[0], want[0], want[0]]);
    // A leader that ends at its first token (maxTokens 1) still lends its slot to the others.
    const fresh = prompt(45, 77, config.vocab_size);
    const wantOne = (await alone.complete(fresh, { ...opts, maxTokens: 1, reusePrefix: false })).tokens;
    const one = await Promise.all([0, 1, 2].map(() => sched.generate(fresh, { ...opts, maxTokens: 1 }).complete()));
    expect(one.map((r) => r.tokens)).toEqual([wantOne, wantOne, wantOne]);
    expect(one.map((r) => r.metrics.cachedTokens).sort()).toEqual([0, 44, 44]);
    await sched.close();
  });

  it('Sequence.copyFrom: the copy decodes as the prefill would; a ring that moved past the prefix gives 0', async () => {
    const ids = prompt(60, 22, config.vocab_size);
    const [a, b] = [model.sequence(), model.sequence()];
    try {
      await a.prefill(ids);
      const n = ids.length - 5;
      expect(await b.copyFrom(a, n)).toBe(n);
      expect(b.tokens).toEqual(ids.slice(0, n));
      await b.prefill(ids, { reusePrefix: true });
      const want = await alone.evaluate(ids);
      let worst = 0;
      for (let i = 0; i < want[0].length; i++) worst = Math.max(worst, Math.abs(b.logits[i] - want[ids.length - 1][i]));
      expect(worst).toBeLessThan(1e-4);
      // 50 positions back: a sliding layer's ring (window + maxBatch - 1 rows) no longer holds what the prefix needs.
      expect(await b.copyFrom(a, 10)).toBe(model.forward.ringSlack < 50 ? 0 : 10);
      await expect(b.copyFrom(a, 61)).rejects.toMatchObject({ code: 'IE_INVALID_OPTION' });
      // Copied rows are the source's, 60 positions along: cut back to 43, a ring has lost position
      // 36 (row 36 % 23 is position 59's in the source), so nothing is kept; the logits stay right.
      expect(await b.copyFrom(a, 45)).toBe(45);
      b.truncate(43);
      expect(b.length).toBe(model.forward.ringSlack < 60 ? 0 : 43);
      await b.prefill(ids.slice(0, 50), { reusePrefix: true });
      const at49 = want[49];
      let off = 0;
      for (let i = 0; i < at49.length; i++) off = Math.max(off, Math.abs(b.logits[i] - at49[i]));
      expect(off).toBeLessThan(1e-4);
    } finally {
      a.dispose();
      b.dispose();
    }
  });

  it("applies each request's own sampling, stop strings and maxTokens", async () => {
    const sched = new BatchScheduler(model);
    const a = prompt(5, 7, config.vocab_size);
    const b = prompt(11, 8, config.vocab_size);
    const wantA = await alone.complete(a, { temperature: 0.8, topP: 0.9, seed: 3, maxTokens: 17, ignoreEos: true });
    const wantB = await alone.complete(b, { temperature: 0, maxTokens: 5, ignoreEos: true });
    const [gotA, gotB] = await Promise.all([
      sched.generate(a, { temperature: 0.8, topP: 0.9, seed: 3, maxTokens: 17, ignoreEos: true }).complete(),
      sched.generate(b, { temperature: 0, maxTokens: 5, ignoreEos: true }).complete(),
    ]);
    expect(gotA.tokens).toEqual(wantA.tokens);
    expect(gotA.text).toBe(wantA.text);
    expect(gotB.tokens).toEqual(wantB.tokens);
    expect([gotA.stopReason, gotB.stopReason]).toEqual(['length', 'length']);
    expect(gotB.metrics.generatedTokens).toBe(5);
    // A stop string taken from the text the request would produce ends it there, as alone.
    const stop = wantA.text.slice(6, 9);
    if (stop.length === 3) {
      const stopped = await sched
        .generate(a, { temperature: 0.8, topP: 0.9, seed: 3, maxTokens: 17, ignoreEos: true, stop: [stop] })
        .complete();
      const ref = await alone.complete(a, { temperature: 0.8, topP: 0.9, seed: 3, maxTokens: 17, ignoreEos: true, stop: [stop] });
      expect(stopped.text).toBe(ref.text);
      expect(stopped.stopReason).toBe('stop');
    }
    await sched.close();
  });
});

describe('continuous batching: slots, aborts and bad steps', () => {
  const config = SYNTH_PRESETS.tiny.config;
  let model: Model;
  beforeAll(async () => {
    model = await Model.open(await iebin(config, 43), { sequences: 2, threads: 2, contextLength: 64 });
  });
  afterAll(async () => {
    await model?.dispose();
  });

  it('prefills a burst of requests made in one turn of the event loop in one step', async () => {
    const sched = new BatchScheduler(model);
    const opts = { temperature: 0, maxTokens: 1, ignoreEos: true };
    const [a, b] = await Promise.all([
      sched.generate(prompt(5, 21, config.vocab_size), opts).complete(),
      sched.generate(prompt(3, 22, config.vocab_size), opts).complete(),
    ]);
    expect([a.tokens.length, b.tokens.length]).toEqual([1, 1]);
    // Both prompts (5 + 3 rows) went into the first step, whose logits gave both tokens.
    expect(sched.stats()).toMatchObject({ steps: 1, rows: 8 });
    // A request made a turn later, while that step runs, joins the next one.
    const first = sched.generate(prompt(4, 23, config.vocab_size), { ...opts, maxTokens: 3 }).complete();
    await new Promise((r) => setImmediate(r));
    const late = await sched.generate(prompt(4, 24, config.vocab_size), opts).complete();
    expect((await first).tokens.length).toBe(3);
    expect(late.tokens.length).toBe(1);
    expect(sched.stats().steps).toBe(4);
    await sched.close();
  });

  it('frees an aborted request’s slot within one step, and a waiting request takes it', async () => {
    const sched = new BatchScheduler(model);
    const opts = { temperature: 0, maxTokens: 40, ignoreEos: true };
    const ac = new AbortController();
    let stepsAtAbort = -1;
    const aborted = drain(sched.generate(prompt(4, 9, config.vocab_size), { ...opts, signal: ac.signal }), (n) => {
      if (n === 3) {
        stepsAtAbort = sched.stats().steps;
        ac.abort(new Error('client went away'));
      }
    });
    const other = drain(sched.generate(prompt(6, 10, config.vocab_size), opts));
    const third = drain(sched.generate(prompt(5, 11, config.vocab_size), { ...opts, maxTokens: 4 }));
    await expect(aborted).rejects.toBeInstanceOf(GenerationAbortedError);
    await expect(aborted).rejects.toMatchObject({ code: 'IE_ABORTED', message: /client went away/ });
    // The consumer sees the abort at once; the slot is free when the step in flight (if any) ends:
    // the waiting request is admitted by the step after it.
    let admittedAt = -1;
    while (admittedAt < 0) {
      const st = sched.stats();
      if (st.waiting === 0) admittedAt = st.steps;
      else await new Promise((r) => setImmediate(r));
    }
    expect(admittedAt - stepsAtAbort).toBeLessThanOrEqual(1);
    expect((await third).length).toBe(4);
    expect((await other).length).toBe(40);
    expect(sched.stats()).toMatchObject({ active: 0, waiting: 0 });
    await sched.close();
  });

  it('frees the slot of a consumer that stops reading, and refuses a signal already aborted', async () => {
    const sched = new BatchScheduler(model, { slots: 1 });
    const g = sched.generate(prompt(4, 12, config.vocab_size), { temperature: 0, maxTokens: 30, ignoreEos: true });
    for await (const p of g) if (p.token >= 0 && g.tokens.length === 2) break;
    const leftAt = sched.stats().steps;
    while (sched.stats().active > 0) await new Promise((r) => setImmediate(r));
    expect(sched.stats().steps - leftAt).toBeLessThanOrEqual(1);
    const ac = new AbortController();
    ac.abort();
    await expect(sched.generate([1, 2], { signal: ac.signal }).complete()).rejects.toMatchObject({ code: 'IE_ABORTED' });
    const after = await sched.generate(prompt(4, 12, config.vocab_size), { temperature: 0, maxTokens: 3, ignoreEos: true }).complete();
    expect(after.tokens.length).toBe(3);
    await sched.close();
    expect(model.freeSlots).toBe(2);
  });

  it('reuses a finished sequence’s cache for a request extending it', async () => {
    const sched = new BatchScheduler(model);
    const p = prompt(20, 13, config.vocab_size);
    const first = await sched.generate(p, { temperature: 0, maxTokens: 6, ignoreEos: true, reusePrefix: true }).complete();
    const next = [...p, ...first.tokens, ...prompt(5, 14, config.vocab_size)];
    const second = await sched.generate(next, { temperature: 0, maxTokens: 6, ignoreEos: true, reusePrefix: true }).complete();
    expect(second.metrics.cachedTokens).toBe(p.length + first.tokens.length - 1);
    const fresh = await sched.generate(next, { temperature: 0, maxTokens: 6, ignoreEos: true }).complete();
    expect(fresh.metrics.cachedTokens).toBe(0);
    expect(second.tokens).toEqual(fresh.tokens);
    await sched.close();
  });

  it('refuses bad slots, positions and row counts with typed errors before the kernels, and the kernels refuse them too', async () => {
    const T = model.contextLength;
    await expect(model.step([{ slot: 2, pos: 0, tokens: [1], logits: true }])).rejects.toMatchObject({
      name: 'StepError',
      code: 'IE_BAD_SLOT',
    });
    await expect(model.step([{ slot: -1, pos: 0, tokens: [1], logits: true }])).rejects.toMatchObject({ code: 'IE_BAD_SLOT' });
    await expect(model.step([{ slot: 0, pos: T, tokens: [1], logits: true }])).rejects.toMatchObject({ code: 'IE_BAD_POSITION' });
    await expect(model.step([{ slot: 0, pos: T - 1, tokens: [1, 2], logits: true }])).rejects.toMatchObject({ code: 'IE_BAD_POSITION' });
    await expect(
      model.step([
        { slot: 0, pos: 0, tokens: [1], logits: true },
        { slot: 0, pos: 1, tokens: [1], logits: true },
      ]),
    ).rejects.toMatchObject({ code: 'IE_BAD_STEP' });
    await expect(
      model.step([
        { slot: 0, pos: 0, tokens: new Array(T - 10).fill(1), logits: true },
        { slot: 1, pos: 0, tokens: new Array(11).fill(1), logits: true },
      ]),
    ).rejects.toMatchObject({ code: 'IE_BAD_STEP', message: /more than 64 rows/ });
    await expect(model.step([{ slot: 0, pos: 0, tokens: [config.vocab_size], logits: true }])).rejects.toMatchObject({
      code: 'IE_BAD_STEP',
    });
    await expect(model.step([])).rejects.toMatchObject({ code: 'IE_BAD_STEP' });
    // Past the TypeScript checks, the program checks each row's slot and position itself.
    const f = model.forward;
    await model.step([{ slot: 1, pos: 0, tokens: [1, 2], logits: true }]);
    const seqAt = f.params.length - 2 * f.logitRows - 2 * f.maxRows;
    f.params[seqAt + 2] = 5;
    expect(() => f.program.run()).toThrow(
      expect.objectContaining({ code: 'KERNELS_BAD_ARGUMENT', message: expect.stringMatching(/kv slot 5 is outside 0\.\.1/) }),
    );
    f.params[seqAt + 2] = 1;
    f.params[seqAt + 3] = T;
    expect(() => f.program.run()).toThrow(
      expect.objectContaining({ message: expect.stringMatching(new RegExp(`position ${T} is outside`)) }),
    );
  });

  it('lends sequences until its slots are taken', () => {
    const a = model.sequence();
    const b = model.sequence();
    expect(() => model.sequence()).toThrow(expect.objectContaining({ code: 'IE_NO_FREE_SLOT' }));
    expect(() => new BatchScheduler(model)).toThrow(expect.objectContaining({ code: 'IE_INVALID_OPTION' }));
    a.dispose();
    b.dispose();
    expect(model.freeSlots).toBe(2);
  });

  it('a Sequence prefills and steps as the engine evaluates', async () => {
    const seq = model.sequence();
    const ids = prompt(12, 15, config.vocab_size);
    await seq.prefill(ids.slice(0, 8));
    const logits: Float32Array[] = [];
    for (const id of ids.slice(8)) {
      await seq.step(id);
      logits.push(seq.logits.slice());
    }
    expect(seq.tokens).toEqual(ids);
    expect(seq.commonPrefix([...ids.slice(0, 5), 0])).toBe(5);
    seq.truncate(4);
    expect(seq.length).toBe(4);
    const stepped = model.sequence();
    const each: Float32Array[] = [];
    for (const id of ids) {
      await stepped.step(id);
      each.push(stepped.logits.slice());
    }
    for (let i = 0; i < 4; i++) {
      const want = each[8 + i];
      let worst = 0;
      for (let k = 0; k < want.length; k++) worst = Math.max(worst, Math.abs(logits[i][k] - want[k]));
      expect(worst).toBeLessThan(1e-4);
    }
    seq.dispose();
    stepped.dispose();
  });
});
