import { Engine } from '@ie/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { slowModel } from '../test/models.js';
import { ServerError } from './errors.js';
import { BatchingScheduler, SerialScheduler, type Delta, type Ticket } from './scheduler.js';

async function text(t: Ticket): Promise<string> {
  let s = '';
  for await (const d of t as AsyncIterable<Delta>) s += d.text;
  return s;
}

const greedy = (maxTokens: number) => ({ maxTokens, temperature: 0, topP: 1 });

describe('SerialScheduler over one engine', () => {
  let engine: Engine;
  let prompt: number[];
  beforeAll(async () => {
    engine = await Engine.load(await slowModel(), { threads: 1 });
    prompt = engine.tokenize('Once upon a time', { bos: true });
  });
  afterAll(() => engine.dispose());

  it("streams engine.complete's text; admits parallel + queue requests and refuses the next with a retry hint", async () => {
    const want = await engine.complete(prompt, { maxTokens: 6, temperature: 0 });
    const s = new SerialScheduler(engine, { parallel: 1, queue: 1 });
    const a = s.submit({ kind: 'completion', prompt, options: greedy(6) });
    const b = s.submit({ kind: 'completion', prompt, options: greedy(6) });
    expect(s.stats()).toEqual({ active: 1, queued: 1, parallel: 1, queueLimit: 1 });
    expect(b.state).toBe('queued');
    let refused: unknown;
    try {
      s.submit({ kind: 'completion', prompt, options: greedy(6) });
    } catch (e) {
      refused = e;
    }
    expect(refused).toBeInstanceOf(ServerError);
    expect((refused as ServerError).code).toBe('IE_SERVER_QUEUE_FULL');
    expect((refused as ServerError).retryAfter).toBeGreaterThanOrEqual(1);
    expect(await text(a)).toBe(want.text);
    expect(await text(b)).toBe(want.text);
    const o = await b.done;
    expect(o).toMatchObject({ stopReason: want.stopReason, promptTokens: prompt.length, completionTokens: want.tokens.length });
    expect(o.queuedMs).toBeGreaterThan(0);
    expect(o.ttftMs).toBeGreaterThanOrEqual(o.queuedMs);
    expect(s.stats()).toMatchObject({ active: 0, queued: 0 });
  });

  it('cancelling frees the place at once: a queued request leaves the queue, a running one its slot (the next starts)', async () => {
    const s = new SerialScheduler(engine, { parallel: 1, queue: 2 });
    const long = s.submit({ kind: 'completion', prompt, options: greedy(900) });
    const queued = s.submit({ kind: 'completion', prompt, options: greedy(900) });
    const next = s.submit({ kind: 'completion', prompt, options: greedy(3) });
    queued.cancel('changed my mind');
    expect(s.stats()).toMatchObject({ active: 1, queued: 1 });
    await expect(queued.done).rejects.toMatchObject({ code: 'IE_ABORTED' });
    // Wait for the long one's first token, then cancel it mid-generation.
    const it = long[Symbol.asyncIterator]();
    await it.next();
    long.cancel('client left');
    expect(long.state).toBe('ended');
    expect(next.state).toBe('running');
    expect(s.stats()).toMatchObject({ active: 1, queued: 0 });
    await expect(it.next()).rejects.toMatchObject({ code: 'IE_ABORTED' });
    const t0 = performance.now();
    const o = await next.done;
    expect(o.completionTokens).toBe(3);
    // The long one would have run ~900 steps; it was dropped at its next one.
    expect(performance.now() - t0).toBeLessThan(1500);
  });

  it('close() fails queued requests, lets running ones finish, refuses new ones', async () => {
    const s = new SerialScheduler(engine, { parallel: 1, queue: 4 });
    const running = s.submit({ kind: 'completion', prompt, options: greedy(8) });
    const queued = s.submit({ kind: 'completion', prompt, options: greedy(8) });
    await s.close(60_000);
    await expect(queued.done).rejects.toMatchObject({ code: 'IE_SERVER_SHUTTING_DOWN' });
    expect((await running.done).completionTokens).toBe(8);
    expect(() => s.submit({ kind: 'completion', prompt, options: greedy(1) })).toThrow(/shutting down/);
  });

  it('close() past its grace period cancels what still runs', async () => {
    const s = new SerialScheduler(engine, { parallel: 1, queue: 0 });
    const running = s.submit({ kind: 'completion', prompt, options: greedy(900) });
    const t0 = performance.now();
    await s.close(50);
    expect(performance.now() - t0).toBeLessThan(1000);
    await expect(running.done).rejects.toMatchObject({ code: 'IE_ABORTED' });
  });
});

describe('BatchingScheduler over a model with several KV slots', () => {
  let engine: Engine;
  let prompts: number[][];
  beforeAll(async () => {
    engine = await Engine.load(await slowModel(), { threads: 1, sequences: 3, contextLength: 256 });
    prompts = ['Once upon a time', 'The cat', 'A long time ago, in a land far away'].map((p) => engine.tokenize(p, { bos: true }));
  });
  afterAll(() => engine.dispose());

  it('decodes the running requests together, each the text it gets alone; queues the rest, refuses past the queue', async () => {
    const alone = await Engine.load(engine.path, { threads: 1, contextLength: 256 });
    const want = [];
    for (const p of prompts) want.push((await alone.complete(p, { maxTokens: 12, temperature: 0 })).text);
    await alone.dispose();
    const s = new BatchingScheduler(engine.model, { parallel: 2, queue: 1 });
    const tickets = prompts.map((p) => s.submit({ kind: 'completion', prompt: p, options: greedy(12) }));
    expect(s.stats()).toEqual({ active: 2, queued: 1, parallel: 2, queueLimit: 1 });
    expect(() => s.submit({ kind: 'completion', prompt: prompts[0], options: greedy(1) })).toThrow(
      expect.objectContaining({ code: 'IE_SERVER_QUEUE_FULL' }),
    );
    expect(await Promise.all(tickets.map(text))).toEqual(want);
    const outcomes = await Promise.all(tickets.map((t) => t.done));
    expect(outcomes.map((o) => o.completionTokens)).toEqual([12, 12, 12]);
    await s.close(1000);
  });

  it('a cancelled request frees its slot for the next queued one while the others keep decoding', async () => {
    const s = new BatchingScheduler(engine.model, { parallel: 2, queue: 2 });
    const long = s.submit({ kind: 'completion', prompt: prompts[0], options: greedy(200) });
    const other = s.submit({ kind: 'completion', prompt: prompts[1], options: greedy(20) });
    const next = s.submit({ kind: 'completion', prompt: prompts[2], options: greedy(3) });
    const it = long[Symbol.asyncIterator]();
    await it.next();
    long.cancel('client left');
    expect(next.state).toBe('running');
    await expect(it.next()).rejects.toMatchObject({ code: 'IE_ABORTED' });
    expect((await next.done).completionTokens).toBe(3);
    expect((await other.done).completionTokens).toBe(20);
    await s.close(1000);
    expect(engine.model.freeSlots).toBe(3);
  });

  it('answers chat requests through the model chat template', async () => {
    const s = new BatchingScheduler(engine.model, { parallel: 2 });
    const messages = [{ role: 'user' as const, content: 'Hi' }];
    const t = s.submit({ kind: 'chat', conversation: messages, options: greedy(5) });
    const want = await engine.chat(messages, { maxTokens: 5, temperature: 0 });
    expect(await text(t)).toBe(want.final);
    // Or the prompt already rendered for them (what the chat route passes): the same answer.
    const rendered = s.submit({ kind: 'chat', conversation: engine.chatPrompt(messages), options: greedy(5) });
    expect(await text(rendered)).toBe(want.final);
    await s.close(1000);
  });
});
