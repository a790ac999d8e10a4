/** POST /v1/embeddings through the official `openai` client, and the schedulers' embed. */
import { Engine } from '@ie/runtime';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tinyModel } from '../test/models.js';
import { BatchingScheduler } from './scheduler.js';
import { startServer, type IeServer } from './server.js';

let s: IeServer;
let api: OpenAI;
let engine: Engine;
let dir: string;
beforeAll(async () => {
  dir = await tinyModel();
  s = await startServer({ load: () => Engine.load(dir, { threads: 1 }), modelId: 'm', port: 0 });
  await s.ready;
  engine = s.engine as Engine;
  api = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'none', maxRetries: 0 });
});
afterAll(async () => s?.close());

async function post(body: unknown) {
  const r = await fetch(`${s.url}/v1/embeddings`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: r.status, json: (await r.json()) as Record<string, unknown> & { error: { param: string | null; code: string | null } } };
}

describe('POST /v1/embeddings', () => {
  it("gives engine.embed's vectors through client.embeddings.create (base64 by default, and float)", async () => {
    const texts = ['hello world', 'the cat sat'];
    const want = await engine.embed(texts);
    const r = await api.embeddings.create({ model: 'm', input: texts });
    expect(r.object).toBe('list');
    expect(r.model).toBe('m');
    expect(r.data.map((d) => [d.object, d.index])).toEqual([
      ['embedding', 0],
      ['embedding', 1],
    ]);
    // The client asks for base64 and decodes it to float32: exactly the engine's values.
    expect(r.data[0].embedding).toEqual(Array.from(want[0]));
    expect(r.data[1].embedding).toEqual(Array.from(want[1]));
    const tokens = texts.reduce((a, t) => a + engine.tokenize(t, { bos: true }).length, 0);
    expect(r.usage).toEqual({ prompt_tokens: tokens, total_tokens: tokens });

    const f = await api.embeddings.create({ model: 'm', input: 'hello world', encoding_format: 'float' });
    expect(f.data).toHaveLength(1);
    expect(f.data[0].embedding).toHaveLength(engine.config.dim);
    f.data[0].embedding.forEach((v, i) => expect(v).toBeCloseTo(want[0][i], 6));
    const norm = Math.sqrt(f.data[0].embedding.reduce((a, v) => a + v * v, 0));
    expect(norm).toBeCloseTo(1, 5);
  });

  it('dimensions gives the first N components, normalized after the cut (engine.embed with dimensions)', async () => {
    const [want] = await engine.embed('hello world', { dimensions: 7 });
    const r = await api.embeddings.create({ model: 'm', input: 'hello world', dimensions: 7 });
    expect(r.data[0].embedding).toEqual(Array.from(want));
    expect(r.data[0].embedding).toHaveLength(7);
    const full = await api.embeddings.create({ model: 'm', input: 'hello world', dimensions: engine.config.dim });
    expect(full.data[0].embedding).toEqual(Array.from((await engine.embed('hello world'))[0]));
  });

  it('takes token ids, one array or several', async () => {
    const ids = engine.tokenize('hello world', { bos: true });
    const [want] = await engine.embed('hello world');
    const one = await api.embeddings.create({ model: 'm', input: ids, encoding_format: 'float' });
    const two = await api.embeddings.create({ model: 'm', input: [ids, ids.slice(0, 2)], encoding_format: 'float' });
    expect(one.data[0].embedding).toEqual(Array.from(want));
    expect(two.data[0].embedding).toEqual(Array.from(want));
    expect(two.data).toHaveLength(2);
    expect(one.usage.prompt_tokens).toBe(ids.length);
  });

  it('runs between generations without changing them', async () => {
    const want = (await api.completions.create({ model: 'm', prompt: 'Once upon a time', max_tokens: 8, temperature: 0 })).choices[0].text;
    const [gen, emb] = await Promise.all([
      api.completions.create({ model: 'm', prompt: 'Once upon a time', max_tokens: 8, temperature: 0 }),
      api.embeddings.create({ model: 'm', input: 'something else' }),
    ]);
    expect(gen.choices[0].text).toBe(want);
    expect(emb.data[0].embedding).toHaveLength(engine.config.dim);
  });

  it("refuses bad input with OpenAI's error object", async () => {
    const err = await api.embeddings.create({ model: 'm', input: '' }).catch((e: InstanceType<typeof OpenAI.APIError>) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as InstanceType<typeof OpenAI.APIError>).param).toBe('input');
    const model = await api.embeddings.create({ model: 'other', input: 'x' }).catch((e) => e);
    expect(model).toBeInstanceOf(OpenAI.NotFoundError);
    const long = await post({ model: 'm', input: [Array.from({ length: engine.contextLength + 1 }, () => 5)] });
    expect([long.status, long.json.error.code, long.json.error.param]).toEqual([400, 'context_length_exceeded', 'input']);
    const vocab = await post({ model: 'm', input: [[engine.config.vocab_size]] });
    expect([vocab.status, vocab.json.error.param]).toEqual([400, 'input']);
    for (const bad of [
      { model: 'm' },
      { model: 'm', input: [] },
      { model: 'm', input: 3 },
      { model: 'm', input: 'x', encoding_format: 'int8' },
    ]) {
      const r = await post(bad);
      expect(r.status).toBe(400);
    }
    for (const dimensions of [engine.config.dim + 1, 0, 2.5]) {
      const dims = await post({ model: 'm', input: 'x', dimensions });
      expect([dims.status, dims.json.error.param]).toEqual([400, 'dimensions']);
    }
  });
});

describe('BatchingScheduler.embed', () => {
  it('runs on a slot the batcher does not hold, one request at a time, and says so when there is none', async () => {
    const e = await Engine.load(dir, { threads: 1, sequences: 2 });
    try {
      const full = new BatchingScheduler(e.model, { parallel: 2 });
      await expect(full.embed('hello world')).rejects.toMatchObject({ code: 'IE_SERVER_UNSUPPORTED' });
      await full.close(100);
    } finally {
      await e.dispose();
    }
    const e2 = await Engine.load(dir, { threads: 1, sequences: 2 });
    try {
      const b = new BatchingScheduler(e2.model, { parallel: 1 });
      const [got] = await b.embed('hello world');
      const want = Array.from((await engine.embed('hello world'))[0]);
      expect(Array.from(got)).toEqual(want);
      // Concurrent requests take turns on that one slot, in arrival order.
      const all = await Promise.all(['hello world', 'a b c', 'hello world'].map((t) => b.embed(t)));
      expect(Array.from(all[0][0])).toEqual(want);
      expect(Array.from(all[2][0])).toEqual(want);
      expect(Array.from(all[1][0])).toEqual(Array.from((await engine.embed('a b c'))[0]));
      await b.close(100);
      // With no queue, one runs and a second at the same time is told to retry (429), as generations are.
      const strict = new BatchingScheduler(e2.model, { parallel: 1, queue: 0 });
      const first = strict.embed('hello world');
      await expect(strict.embed('hello world')).rejects.toMatchObject({ code: 'IE_SERVER_QUEUE_FULL', status: 429 });
      expect(Array.from((await first)[0])).toEqual(want);
      expect(Array.from((await strict.embed('a b c'))[0]).length).toBe(want.length);
      await strict.close(100);
    } finally {
      await e2.dispose();
    }
  });
});
