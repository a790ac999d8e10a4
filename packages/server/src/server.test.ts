/**
 * The server end to end, driven by the official `openai` client (and raw fetch where a client would
 * never send such a request), against models the tests write themselves.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportIebin, openLlama2c } from '@ie/format';
import { Engine, type Piece } from '@ie/runtime';

/** A message both the engine and OpenAI's client take. */
type PlainMessage = { role: 'system' | 'user' | 'assistant'; content: string };
import { HAS_STORIES, STORIES_DIR, STORIES_REASON } from '@ie/testing';
import OpenAI from 'openai';
import { type Socket, connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { gptOssModel, noTemplateModel, slowModel, tinyModel } from '../test/models.js';
import { parsePrometheus } from './metrics.js';
import { BatchingScheduler } from './scheduler.js';
import { startServer, type IeServer, type ServeOptions } from './server.js';

const servers: IeServer[] = [];
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

async function serve(dir: string, options: Partial<ServeOptions> = {}): Promise<IeServer> {
  const s = await startServer({ load: () => Engine.load(dir, { threads: 1 }), modelId: 'm', port: 0, ...options });
  servers.push(s);
  await s.ready;
  return s;
}

const client = (s: IeServer, apiKey = 'none') => new OpenAI({ baseURL: `${s.url}/v1`, apiKey, maxRetries: 0 });

async function metrics(s: IeServer): Promise<Map<string, number>> {
  return parsePrometheus(await (await fetch(`${s.url}/metrics`)).text());
}

/** Polls /metrics until `ok` holds (the server counts a response when its socket closes). */
async function until(s: IeServer, ok: (m: Map<string, number>) => boolean, ms = 5000): Promise<Map<string, number>> {
  const end = performance.now() + ms;
  for (;;) {
    const m = await metrics(s);
    if (ok(m) || performance.now() > end) return m;
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function post(s: IeServer, path: string, body: string, headers: Record<string, string> = {}) {
  const r = await fetch(`${s.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
  return {
    status: r.status,
    headers: r.headers,
    json: (await r.json()) as { error: { message: string; type: string; param: string | null; code: string | null } },
  };
}

const PROMPT = 'Once upon a time';

describe('completions through the openai client (tiny llama model)', () => {
  let s: IeServer;
  let api: OpenAI;
  beforeAll(async () => {
    s = await serve(await tinyModel());
    api = client(s);
  });

  it("non-streamed and streamed give engine.complete's greedy text, usage and finish_reason", async () => {
    const engine = s.engine as Engine;
    const want = await engine.complete(PROMPT, { maxTokens: 12, temperature: 0 });
    expect(want.text.length).toBeGreaterThan(0);
    const r = await api.completions.create({ model: 'm', prompt: PROMPT, max_tokens: 12, temperature: 0 });
    expect(r.object).toBe('text_completion');
    expect(r.id).toMatch(/^cmpl-[0-9a-f]{24}$/);
    expect(r.model).toBe('m');
    expect(r.choices).toHaveLength(1);
    expect(r.choices[0].text).toBe(want.text);
    expect(r.choices[0].finish_reason).toBe(want.stopReason === 'length' ? 'length' : 'stop');
    expect(r.usage).toEqual({
      prompt_tokens: want.metrics.promptTokens,
      completion_tokens: want.tokens.length,
      total_tokens: want.metrics.promptTokens + want.tokens.length,
      prompt_tokens_details: { cached_tokens: 0 },
    });

    const stream = await api.completions.create({
      model: 'm',
      prompt: PROMPT,
      max_tokens: 12,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks: OpenAI.Completions.Completion[] = [];
    for await (const c of stream) chunks.push(c);
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
    expect(chunks.every((c) => c.object === 'text_completion')).toBe(true);
    const last = chunks[chunks.length - 1];
    expect(last.choices).toEqual([]);
    expect(last.usage).toEqual(r.usage);
    const withChoice = chunks.filter((c) => c.choices.length === 1);
    expect(withChoice.map((c) => c.choices[0].text).join('')).toBe(want.text);
    expect(withChoice.slice(0, -1).every((c) => c.choices[0].finish_reason === null && c.usage === null)).toBe(true);
    expect(withChoice[withChoice.length - 1].choices[0].finish_reason).toBe(r.choices[0].finish_reason);

    // A prompt of token ids is used as given.
    const ids = engine.tokenize(PROMPT, { bos: true });
    const byIds = await api.completions.create({ model: 'm', prompt: ids, max_tokens: 12, temperature: 0 });
    expect(byIds.choices[0].text).toBe(want.text);
  });

  it('stop strings end the text before them (finish_reason stop); a seed makes sampling reproducible, as in the engine', async () => {
    const engine = s.engine as Engine;
    const want = await engine.complete(PROMPT, { maxTokens: 12, temperature: 0 });
    const stop = want.text.slice(5, 7);
    const cut = await api.completions.create({ model: 'm', prompt: PROMPT, max_tokens: 12, temperature: 0, stop: [stop, '\u0000never'] });
    expect(cut.choices[0].text).toBe(want.text.slice(0, want.text.indexOf(stop)));
    expect(cut.choices[0].finish_reason).toBe('stop');

    const sampled = await engine.complete(PROMPT, { maxTokens: 12, temperature: 1, topP: 0.9, topK: 0, minP: 0, seed: 11 });
    for (const stream of [false, true]) {
      const body = { model: 'm', prompt: PROMPT, max_tokens: 12, temperature: 1, top_p: 0.9, seed: 11 };
      let got = '';
      if (stream) for await (const c of await api.completions.create({ ...body, stream: true })) got += c.choices[0]?.text ?? '';
      else got = (await api.completions.create(body)).choices[0].text;
      expect(got).toBe(sampled.text);
    }
  });

  it("presence_penalty, frequency_penalty and logit_bias sample as the engine's presencePenalty, frequencyPenalty and logitBias", async () => {
    const engine = s.engine as Engine;
    const opts = { maxTokens: 16, temperature: 0, topK: 0, minP: 0 };
    const plain = await engine.complete(PROMPT, opts);
    for (const [body, engineOptions] of [
      [{ frequency_penalty: 1.5 }, { frequencyPenalty: 1.5 }],
      [
        { presence_penalty: 2, frequency_penalty: -0.5 },
        { presencePenalty: 2, frequencyPenalty: -0.5 },
      ],
      [{ logit_bias: { [plain.tokens[0]]: -100, 300: 3 } }, { logitBias: { [plain.tokens[0]]: -100, 300: 3 } }],
    ] as const) {
      const want = await engine.complete(PROMPT, { ...opts, ...engineOptions });
      const r = await api.completions.create({ model: 'm', prompt: PROMPT, max_tokens: 16, temperature: 0, ...body });
      expect(r.choices[0].text, JSON.stringify(body)).toBe(want.text);
    }
    expect((await engine.complete(PROMPT, { ...opts, frequencyPenalty: 1.5 })).text).not.toBe(plain.text);
    // +100 on one token: every generated token is it.
    const forced = await api.completions.create({ model: 'm', prompt: PROMPT, max_tokens: 4, temperature: 0, logit_bias: { 300: 100 } });
    const want = await engine.complete(PROMPT, { ...opts, maxTokens: 4, logitBias: { 300: 100 } });
    expect(want.tokens).toEqual([300, 300, 300, 300]);
    expect(forced.choices[0].text).toBe(want.text);
    // Out of range or not a token id: 400 naming the field.
    for (const [bias, message] of [
      [{ x: 1 }, /^logit_bias: the keys are token ids, got "x"/],
      [{ 5: 101 }, /^logit_bias\[5\]: must be a number in -100\.\.100, got 101/],
      [{ 5: '1' }, /^logit_bias\[5\]: must be a number/],
      // Out of the vocabulary (found by the engine): named by the API's field, not the engine's logitBias.
      [{ 99999999: 1 }, /^logit_bias\[99999999\]: token id 99999999 is outside 0\.\./],
    ] as const) {
      const r = await post(s, '/v1/completions', JSON.stringify({ model: 'm', prompt: PROMPT, max_tokens: 2, logit_bias: bias }));
      expect([r.status, r.json.error.param, r.json.error.type], JSON.stringify(bias)).toEqual([400, 'logit_bias', 'invalid_request_error']);
      expect(r.json.error.message).toMatch(message);
    }
    const far = await post(s, '/v1/completions', JSON.stringify({ model: 'm', prompt: PROMPT, max_tokens: 2, presence_penalty: 2.5 }));
    expect([far.status, far.json.error.param]).toEqual([400, 'presence_penalty']);
  });

  it("logprobs N gives each token's log-probability and its step's N likeliest, as the engine's pieces, streamed or not", async () => {
    const engine = s.engine as Engine;
    const pieces: Piece[] = [];
    for await (const p of engine.generate(PROMPT, { maxTokens: 6, temperature: 0, logprobs: true, topLogprobs: 3, ignoreEos: true }))
      if (p.token >= 0) pieces.push(p);
    const body = { model: 'm', prompt: PROMPT, max_tokens: 6, temperature: 0, logprobs: 3 };
    const r = await api.completions.create(body);
    const lp = r.choices[0].logprobs;
    expect(lp?.token_logprobs).toEqual(pieces.map((p) => p.logprob));
    expect(lp?.tokens?.join('')).toBe(r.choices[0].text);
    // text_offset: where each token's text starts in the completion.
    expect(lp?.text_offset).toEqual(lp?.tokens?.map((_, i) => (lp.tokens ?? []).slice(0, i).join('').length));
    expect(lp?.top_logprobs?.map((m) => Object.values(m ?? {}))).toEqual(pieces.map((p) => p.topLogprobs?.map((t) => t.logprob)));
    // Greedy: the token is its step's likeliest.
    expect(lp?.top_logprobs?.map((m, i) => m?.[lp.tokens?.[i] ?? ''])).toEqual(lp?.token_logprobs);
    const streamed: OpenAI.Completions.Completion[] = [];
    for await (const c of await api.completions.create({ ...body, stream: true })) streamed.push(c);
    const withTokens = streamed.filter((c) => c.choices[0]?.logprobs);
    expect(withTokens.flatMap((c) => c.choices[0].logprobs?.token_logprobs)).toEqual(lp?.token_logprobs);
    expect(withTokens.flatMap((c) => c.choices[0].logprobs?.text_offset)).toEqual(lp?.text_offset);
    // Without logprobs, none; out of range, 400.
    expect((await api.completions.create({ ...body, logprobs: undefined })).choices[0].logprobs).toBeNull();
    const far = await post(s, '/v1/completions', JSON.stringify({ ...body, logprobs: 6 }));
    expect([far.status, far.json.error.param]).toEqual([400, 'logprobs']);
  });

  it("llama.cpp's server's top_k, min_p, repeat_penalty, repeat_last_n and grammar sample as the engine's options", async () => {
    const engine = s.engine as Engine;
    const greedy = await engine.complete(PROMPT, { maxTokens: 10, temperature: 0 });
    const topK1 = await api.completions.create({
      model: 'm',
      prompt: PROMPT,
      max_tokens: 10,
      temperature: 1.5,
      seed: 3,
      ...({ top_k: 1 } as object),
    });
    expect(topK1.choices[0].text).toBe(greedy.text);
    const o = { maxTokens: 10, temperature: 0.9, topP: 1, seed: 8, topK: 5, minP: 0.1, repetitionPenalty: 1.7, repeatLastN: 8 };
    const want = await engine.complete(PROMPT, o);
    const extra = { top_k: 5, min_p: 0.1, repeat_penalty: 1.7, repeat_last_n: 8 };
    const got = await api.completions.create({
      model: 'm',
      prompt: PROMPT,
      max_tokens: 10,
      temperature: 0.9,
      top_p: 1,
      seed: 8,
      ...(extra as object),
    });
    expect(got.choices[0].text).toBe(want.text);
    // A GBNF grammar: the text is one of its sentences.
    const grammar = 'root ::= ("yes" | "no") " please"';
    const g = await api.completions.create({
      model: 'm',
      prompt: PROMPT,
      max_tokens: 20,
      temperature: 1,
      seed: 2,
      ...({ grammar } as object),
    });
    expect(['yes please', 'no please']).toContain(g.choices[0].text);
    for (const [body, message] of [
      [{ grammar: 'root ::= missing' }, /^grammar: .*\[IE_GRAMMAR_/],
      [{ grammar, response_format: { type: 'json_object' } }, /^grammar: give either grammar or a JSON response_format/],
      [{ top_k: -1 }, /top_k/],
    ] as const) {
      const r = await post(s, '/v1/completions', JSON.stringify({ model: 'm', prompt: PROMPT, max_tokens: 2, ...body }));
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.json.error.message).toMatch(message);
      expect(r.json.error.param).toBe(Object.keys(body)[0]);
    }
  });

  it('n choices: each a generation seeded seed + i, streamed or not, usage counting the prompt once', async () => {
    const engine = s.engine as Engine;
    const sampling = { maxTokens: 8, temperature: 1, topP: 0.9, topK: 0, minP: 0 };
    const want = await Promise.all([0, 1, 2].map(async (i) => engine.complete(PROMPT, { ...sampling, seed: 40 + i })));
    expect(new Set(want.map((w) => w.text)).size).toBeGreaterThan(1);
    const body = { model: 'm', prompt: PROMPT, max_tokens: 8, temperature: 1, top_p: 0.9, seed: 40, n: 3 };
    const r = await api.completions.create(body);
    expect(r.choices.map((c) => [c.index, c.text])).toEqual(want.map((w, i) => [i, w.text]));
    expect(r.usage?.prompt_tokens).toBe(want[0].metrics.promptTokens);
    expect(r.usage?.completion_tokens).toBe(want.reduce((a, w) => a + w.tokens.length, 0));
    const texts = ['', '', ''];
    const finished: number[] = [];
    for await (const c of await api.completions.create({ ...body, stream: true })) {
      const ch = c.choices[0];
      texts[ch.index] += ch.text;
      if (ch.finish_reason) finished.push(ch.index);
    }
    expect(texts).toEqual(want.map((w) => w.text));
    expect(finished.sort()).toEqual([0, 1, 2]);
    const far = await post(s, '/v1/completions', JSON.stringify({ ...body, n: 17 }));
    expect([far.status, far.json.error.param, far.json.error.code]).toEqual([400, 'n', 'unsupported_parameter']);
  });

  it('best_of: that many candidates (seed + i), the n with the highest mean token log-probability returned, best first', async () => {
    const engine = s.engine as Engine;
    const sampling = { maxTokens: 8, temperature: 1, topP: 1, topK: 0, minP: 0, logprobs: true };
    const candidates = await Promise.all(
      [0, 1, 2, 3].map(async (i) => {
        const g = engine.generate(PROMPT, { ...sampling, seed: 60 + i });
        const lp: number[] = [];
        for await (const p of g) if (p.token >= 0 && p.logprob !== undefined) lp.push(p.logprob);
        return { i, text: g.text, tokens: g.tokens.length, score: lp.reduce((a, x) => a + x, 0) / lp.length };
      }),
    );
    const want = [...candidates].sort((a, b) => b.score - a.score).slice(0, 2);
    const body = { model: 'm', prompt: PROMPT, max_tokens: 8, temperature: 1, top_p: 1, seed: 60, n: 2, best_of: 4 };
    const r = await api.completions.create(body);
    expect(r.choices.map((c) => [c.index, c.text])).toEqual(want.map((w, k) => [k, w.text]));
    expect(r.choices.every((c) => c.logprobs === null)).toBe(true);
    // Every candidate was generated: usage counts them all.
    expect(r.usage?.completion_tokens).toBe(candidates.reduce((a, c) => a + c.tokens, 0));
    const shown = await api.completions.create({ ...body, logprobs: 1 });
    expect(shown.choices[0].logprobs?.token_logprobs?.length).toBe(want[0].tokens);
    for (const [b, param] of [
      [{ ...body, best_of: 1 }, 'best_of'],
      [{ ...body, stream: true }, 'best_of'],
      [{ ...body, best_of: 17 }, 'best_of'],
    ] as const) {
      const e = await post(s, '/v1/completions', JSON.stringify(b));
      expect([e.status, e.json.error.param], JSON.stringify(b)).toEqual([400, param]);
    }
  });

  it('echo: the prompt text before the completion, streamed or not, for text and token-id prompts', async () => {
    const want = await (s.engine as Engine).complete(PROMPT, { maxTokens: 6, temperature: 0 });
    const body = { model: 'm', prompt: PROMPT, max_tokens: 6, temperature: 0, echo: true };
    expect((await api.completions.create(body)).choices[0].text).toBe(PROMPT + want.text);
    let streamed = '';
    for await (const c of await api.completions.create({ ...body, stream: true })) streamed += c.choices[0]?.text ?? '';
    expect(streamed).toBe(PROMPT + want.text);
    const ids = (s.engine as Engine).tokenize(PROMPT, { bos: true });
    expect((await api.completions.create({ ...body, prompt: ids })).choices[0].text).toBe(PROMPT + want.text);
  });

  it("echo with logprobs scores the prompt: each prompt token's log-probability (the first null) before the completion's, streamed or not", async () => {
    const engine = s.engine as Engine;
    const ids = engine.tokenize(PROMPT, { bos: true });
    const g = engine.generate(PROMPT, { maxTokens: 5, temperature: 0, logprobs: true, topLogprobs: 2, promptLogprobs: true });
    const generated: number[] = [];
    for await (const p of g) if (p.logprob !== undefined) generated.push(p.logprob);
    const want = { text: g.text, tokens: g.tokens };
    const scores = g.promptLogprobs ?? [];
    expect(scores.length).toBe(ids.length);
    const body = { model: 'm', prompt: PROMPT, max_tokens: 5, temperature: 0, echo: true, logprobs: 2 };
    const r = await api.completions.create(body);
    const lp = r.choices[0].logprobs as NonNullable<(typeof r.choices)[0]['logprobs']>;
    expect(r.choices[0].text).toBe(PROMPT + want.text);
    expect(lp.token_logprobs).toEqual([...scores.map((t) => t.logprob), ...generated]);
    expect(lp.token_logprobs?.[0]).toBeNull();
    expect(lp.tokens?.length).toBe(ids.length + want.tokens.length);
    expect(lp.top_logprobs?.[0]).toBeNull();
    for (let i = 1; i < ids.length; i++) {
      const top = Object.values(lp.top_logprobs?.[i] ?? {});
      expect(top).toEqual((scores[i].topLogprobs ?? []).map((t) => t.logprob));
    }
    // Offsets count from the echoed prompt's start: each prompt token's is where the text of the
    // tokens before it ends; the generated tokens' start after the prompt.
    for (let i = 0; i < ids.length; i++) expect(PROMPT.slice(0, lp.text_offset?.[i])).toBe(engine.detokenize(ids.slice(0, i)));
    expect(lp.text_offset?.[ids.length]).toBe(PROMPT.length);
    // Streamed: the echo's chunk carries the prompt's scores, then each token its own.
    const chunks = [];
    for await (const c of await api.completions.create({ ...body, stream: true })) if (c.choices[0]) chunks.push(c.choices[0]);
    expect(chunks[0].text).toBe(PROMPT);
    expect(chunks[0].logprobs?.token_logprobs).toEqual(scores.map((t) => t.logprob));
    expect(chunks.flatMap((c) => c.logprobs?.token_logprobs ?? [])).toEqual(lp.token_logprobs);
    // max_tokens 0 scores the prompt alone.
    const none = await api.completions.create({ ...body, max_tokens: 0 });
    expect([none.choices[0].text, none.choices[0].finish_reason, none.usage?.completion_tokens]).toEqual([PROMPT, 'length', 0]);
    expect(none.choices[0].logprobs?.token_logprobs).toEqual(scores.map((t) => t.logprob));
  });

  it('lm-evaluation-harness loglikelihood requests: a batch of token-id prompts, max_tokens 1, echo and logprobs 1, a choice per prompt', async () => {
    const engine = s.engine as Engine;
    const a = engine.tokenize('Once upon a time there was', { bos: true });
    const b = engine.tokenize('The cat sat', { bos: true });
    const r = await api.completions.create({ model: 'm', prompt: [a, b], max_tokens: 1, temperature: 0, echo: true, logprobs: 1 });
    expect(r.choices.map((c) => c.index)).toEqual([0, 1]);
    for (const [i, ids] of [a, b].entries()) {
      const want = await engine.complete(ids, { maxTokens: 1, temperature: 0, promptLogprobs: true, logprobs: true, topLogprobs: 1 });
      const lp = r.choices[i].logprobs;
      expect(r.choices[i].text).toBe(engine.detokenize(ids) + want.text);
      expect(lp?.token_logprobs?.slice(0, -1)).toEqual((want.promptLogprobs ?? []).map((t) => t.logprob));
      expect(lp?.token_logprobs?.length).toBe(ids.length + 1);
      // The harness's is_greedy: a token is the likeliest when its logprob equals its step's top one.
      for (let t = 1; t < ids.length; t++) {
        const top = lp?.top_logprobs?.[t] ?? {};
        expect(Math.max(...Object.values(top)) >= (lp?.token_logprobs?.[t] as number)).toBe(true);
      }
    }
    expect(r.usage?.prompt_tokens).toBe(a.length + b.length);
    // A token id outside the vocabulary in any prompt of a batch is a 400 naming that prompt, streamed or not.
    for (const stream of [false, true]) {
      const bad = await post(
        s,
        '/v1/completions',
        JSON.stringify({ model: 'm', prompt: [a, [1, engine.config.vocab_size]], max_tokens: 1, echo: true, logprobs: 1, stream }),
      );
      expect([bad.status, bad.json.error.param, bad.json.error.message]).toEqual([
        400,
        'prompt[1]',
        `prompt[1]: token id ${engine.config.vocab_size} is outside 0..${engine.config.vocab_size - 1}`,
      ]);
    }
    // Two text prompts with n 2: four choices, prompt i's j-th at index 2i + j.
    const two = await api.completions.create({ model: 'm', prompt: ['Once', 'The'], max_tokens: 3, temperature: 0, n: 2, echo: true });
    expect(two.choices.map((c) => [c.index, c.text.startsWith('Once'), c.text.startsWith('The')])).toEqual([
      [0, true, false],
      [1, true, false],
      [2, false, true],
      [3, false, true],
    ]);
  });

  it("/tokenize and /detokenize, as llama.cpp's server: the engine's ids and text, ids outside the vocabulary a 400", async () => {
    const engine = s.engine as Engine;
    const t = await post(s, '/tokenize', JSON.stringify({ content: PROMPT }));
    expect([t.status, (t.json as unknown as { tokens: number[] }).tokens]).toEqual([200, engine.tokenize(PROMPT, { bos: false })]);
    const withBos = await post(s, '/tokenize', JSON.stringify({ content: PROMPT, add_special: true }));
    expect((withBos.json as unknown as { tokens: number[] }).tokens).toEqual(engine.tokenize(PROMPT, { bos: true }));
    const ids = engine.tokenize(PROMPT, { bos: false });
    const d = await post(s, '/detokenize', JSON.stringify({ tokens: ids }));
    expect([d.status, (d.json as unknown as { content: string }).content]).toEqual([200, engine.detokenize(ids)]);
    const bad = await post(s, '/detokenize', JSON.stringify({ tokens: [1, engine.config.vocab_size] }));
    expect([bad.status, bad.json.error.param, bad.json.error.message]).toEqual([
      400,
      'tokens',
      `tokens[1]: token id ${engine.config.vocab_size} is outside 0..${engine.config.vocab_size - 1}`,
    ]);
    expect((await post(s, '/detokenize', JSON.stringify({ tokens: [-1] }))).status).toBe(400);
    const none = await post(s, '/tokenize', JSON.stringify({ text: PROMPT }));
    expect([none.status, none.json.error.type]).toEqual([400, 'invalid_request_error']);
  });

  it('/tokenize refuses text surely longer than the context without tokenizing it, as prompts are refused', async () => {
    const engine = s.engine as Engine;
    const tokenize = vi.spyOn(engine, 'tokenize');
    try {
      const long = 'a'.repeat(900_000);
      const r = await post(s, '/tokenize', JSON.stringify({ content: long, add_special: true }));
      const least = Math.ceil(long.length / (engine.tokenizer.maxCharsPerToken as number));
      expect([r.status, r.json.error.type, r.json.error.code, r.json.error.param, r.json.error.message]).toEqual([
        400,
        'invalid_request_error',
        'context_length_exceeded',
        'content',
        `the content is 900000 characters, at least ${least} tokens; the model's context holds 512`,
      ]);
      expect(tokenize).not.toHaveBeenCalled();
      // Text within the bound is tokenized, even when its tokens are more than the context holds.
      const over = 'a b '.repeat(400);
      const t = await post(s, '/tokenize', JSON.stringify({ content: over }));
      const tokens = (t.json as unknown as { tokens: number[] }).tokens;
      expect([t.status, tokens]).toEqual([200, engine.tokenize(over, { bos: false })]);
      expect(tokens.length).toBeGreaterThan(512);
    } finally {
      tokenize.mockRestore();
    }
  });

  it('/v1/models and /health', async () => {
    const models = await api.models.list();
    expect(models.data.map((m) => [m.id, m.object, m.owned_by])).toEqual([['m', 'model', 'ie']]);
    expect((await api.models.retrieve('m')).id).toBe('m');
    const other = await fetch(`${s.url}/v1/models/gpt-4o`);
    expect([other.status, await other.json()]).toEqual([
      404,
      {
        error: {
          message: 'the model "gpt-4o" is not served here; this server serves "m"',
          type: 'invalid_request_error',
          param: 'model',
          code: 'model_not_found',
        },
      },
    ]);
    const h = await fetch(`${s.url}/health`);
    expect([h.status, await h.json()]).toEqual([200, { status: 'ok' }]);
  });

  it("every bad request gets OpenAI's error object and its status", async () => {
    const shape = (j: { error: object }) => expect(Object.keys(j.error).sort()).toEqual(['code', 'message', 'param', 'type']);
    const bad = await post(s, '/v1/completions', '{"model": "m", "prompt": ');
    expect(bad.status).toBe(400);
    shape(bad.json);
    expect(bad.json.error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_json' });

    const cases: Array<[object, string | null, string | null]> = [
      [{ model: 'm', prompt: PROMPT, max_tokens: '5' }, 'max_tokens', null],
      [{ model: 'm', prompt: PROMPT, temperature: 3 }, 'temperature', null],
      [{ model: 'm', prompt: PROMPT, stop: 7 }, 'stop', null],
      [{ model: 'm', prompt: PROMPT, stream: 'yes' }, 'stream', null],
      [{ model: 'm' }, 'prompt', null],
      [{ model: 'm', prompt: { text: PROMPT } }, 'prompt', null],
      [{ model: 'm', prompt: PROMPT, n: 17 }, 'n', 'unsupported_parameter'],
      [{ model: 'm', prompt: Array(17).fill(PROMPT) }, 'prompt', 'unsupported_parameter'],
      [{ model: 'm', prompt: [PROMPT, PROMPT], n: 9 }, 'prompt', 'unsupported_parameter'],
      [{ model: 'm', prompt: [PROMPT, PROMPT], best_of: 2 }, 'best_of', 'unsupported_parameter'],
      [{ model: 'm', prompt: [[1, 2], []] }, 'prompt', null],
      [{ model: 'm', prompt: PROMPT, suffix: 'end' }, 'suffix', 'unsupported_parameter'],
    ];
    for (const [body, param, code] of cases) {
      const r = await post(s, '/v1/completions', JSON.stringify(body));
      expect([r.status, r.json.error.param, r.json.error.code, r.json.error.type], JSON.stringify(body)).toEqual([
        400,
        param,
        code,
        'invalid_request_error',
      ]);
      shape(r.json);
    }
    // A field of several forms that fits none: every form's complaint, the null form left out.
    const messages: Array<[object, string]> = [
      [{ model: 'm', prompt: PROMPT, stop: Array(17).fill('x') }, 'stop must be string, or stop must NOT have more than 16 items'],
      [{ model: 'm', prompt: PROMPT, max_tokens: -1 }, 'max_tokens must be >= 0'],
      [
        { model: 'm', prompt: [-1] },
        'prompt must be string, or prompt[0] must be string, or prompt[0] must be >= 0, or prompt[0] must be array',
      ],
    ];
    for (const [body, message] of messages) {
      const r = await post(s, '/v1/completions', JSON.stringify(body));
      expect([r.status, r.json.error.message], JSON.stringify(body)).toEqual([400, message]);
    }
    const chatTypes = await post(s, '/v1/chat/completions', JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 5 }] }));
    expect([chatTypes.status, chatTypes.json.error.param]).toEqual([400, 'messages[0].content']);
    const role = await post(s, '/v1/chat/completions', JSON.stringify({ model: 'm', messages: [{ role: 'function', content: 'x' }] }));
    expect([role.status, role.json.error.param]).toEqual([400, 'messages[0].role']);
    // A tool message answers a call by its id; a user message needs its content.
    const orphan = await post(s, '/v1/chat/completions', JSON.stringify({ model: 'm', messages: [{ role: 'tool', content: 'x' }] }));
    expect([orphan.status, orphan.json.error.param]).toEqual([400, 'messages[0].tool_call_id']);
    const empty = await post(s, '/v1/chat/completions', JSON.stringify({ model: 'm', messages: [{ role: 'user', content: null }] }));
    expect([empty.status, empty.json.error.param]).toEqual([400, 'messages[0].content']);

    // Through the client: the SDK's typed errors carry status, code and param.
    const caught = async (p: Promise<unknown>) =>
      p.then(
        () => undefined,
        (e: unknown) => e as InstanceType<typeof OpenAI.APIError>,
      );
    const n2 = await caught(api.completions.create({ model: 'm', prompt: PROMPT, n: 17 }));
    expect(n2).toBeInstanceOf(OpenAI.BadRequestError);
    expect([n2?.status, n2?.code, n2?.param]).toEqual([400, 'unsupported_parameter', 'n']);
    const long = await caught(api.completions.create({ model: 'm', prompt: 'a b '.repeat(400), max_tokens: 1 }));
    expect([long?.status, long?.code, long?.param]).toEqual([400, 'context_length_exceeded', 'prompt']);
    expect(long?.message).toMatch(/context holds 512/);
    // Text surely over the context (its characters over the most one token stands for) is refused
    // without being tokenized, by the same code: the message gives the lower bound.
    for (const [path, body, param] of [
      ['/v1/completions', { model: 'm', prompt: 'a'.repeat(900_000) }, 'prompt'],
      ['/v1/chat/completions', { model: 'm', messages: [{ role: 'user', content: 'a'.repeat(900_000) }] }, 'messages'],
      ['/v1/embeddings', { model: 'm', input: ['hi', 'a'.repeat(900_000)] }, 'input'],
      ['/tokenize', { content: 'a'.repeat(900_000) }, 'content'],
    ] as const) {
      const r = await post(s, path, JSON.stringify(body));
      expect([r.status, r.json.error.code, r.json.error.param], path).toEqual([400, 'context_length_exceeded', param]);
      expect(r.json.error.message, path).toMatch(/is 900000 characters, at least \d+ tokens; the model's context holds 512/);
    }
    const badId = await caught(api.completions.create({ model: 'm', prompt: [1, 2, 100000], max_tokens: 1 }));
    expect([badId?.status, badId?.type, badId?.param]).toEqual([400, 'invalid_request_error', 'prompt']);
    const model = await caught(api.completions.create({ model: 'gpt-4o', prompt: PROMPT }));
    expect(model).toBeInstanceOf(OpenAI.NotFoundError);
    expect([model?.status, model?.code, model?.param]).toEqual([404, 'model_not_found', 'model']);

    const route = await fetch(`${s.url}/v1/images/generations`, {
      method: 'POST',
      body: '{}',
      headers: { 'content-type': 'application/json' },
    });
    expect(route.status).toBe(404);
    expect(((await route.json()) as { error: { code: string } }).error.code).toBe('not_found');
    const media = await fetch(`${s.url}/v1/completions`, { method: 'POST', body: 'hello', headers: { 'content-type': 'text/plain' } });
    expect(media.status).toBe(415);
    expect(((await media.json()) as { error: { code: string } }).error.code).toBe('unsupported_media_type');
  });
});

/** Checks what the tests' schemas say (the server's output must parse and satisfy them). */
const PERSON = {
  type: 'object',
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 8 },
    age: { type: 'integer' },
    pets: { type: 'array', items: { enum: ['cat', 'dog'] }, maxItems: 2 },
  },
  required: ['name', 'age', 'pets'],
};
function isPerson(v: unknown): boolean {
  const o = v as { name: unknown; age: unknown; pets: unknown };
  return (
    typeof o === 'object' &&
    o !== null &&
    Object.keys(o).join() === 'name,age,pets' &&
    typeof o.name === 'string' &&
    [...o.name].length >= 1 &&
    [...o.name].length <= 8 &&
    Number.isInteger(o.age) &&
    Array.isArray(o.pets) &&
    o.pets.length <= 2 &&
    o.pets.every((p) => p === 'cat' || p === 'dog')
  );
}
const POINT = { type: 'object', properties: { x: { type: 'number' }, ok: { type: 'boolean' } }, required: ['x', 'ok'] };
const isPoint = (v: unknown) =>
  typeof v === 'object' &&
  v !== null &&
  Object.keys(v).join() === 'x,ok' &&
  typeof (v as { x: unknown }).x === 'number' &&
  typeof (v as { ok: unknown }).ok === 'boolean';

describe('structured output: response_format through the openai client (tiny llama, random weights)', () => {
  let s: IeServer;
  let api: OpenAI;
  let dir = '';
  beforeAll(async () => {
    dir = await tinyModel();
    // Continuous batching, two slots: concurrent requests with different schemas share each step.
    s = await serve(dir, {
      parallel: 2,
      load: () => Engine.load(dir, { threads: 1, sequences: 2 }),
      scheduler: (e, o) => new BatchingScheduler(e.model, o),
    });
    api = client(s);
  });

  it('json_schema on chat, sampled at temperature 1 for several seeds, streamed and not: the content parses and validates', async () => {
    const response_format = { type: 'json_schema' as const, json_schema: { name: 'person', schema: PERSON, strict: true } };
    for (const seed of [1, 2, 3]) {
      const r = await api.chat.completions.create({
        model: 'm',
        messages: [{ role: 'user', content: 'Describe a person as JSON.' }],
        response_format,
        seed,
        max_tokens: 400,
      });
      const content = r.choices[0].message.content as string;
      expect(r.choices[0].finish_reason).toBe('stop');
      expect(isPerson(JSON.parse(content)), content).toBe(true);
      const stream = await api.chat.completions.create({
        model: 'm',
        messages: [{ role: 'user', content: 'Describe a person as JSON.' }],
        response_format,
        seed,
        max_tokens: 400,
        stream: true,
      });
      let streamed = '';
      for await (const c of stream) streamed += c.choices[0]?.delta?.content ?? '';
      expect(streamed).toBe(content);
    }
  });

  it("cache_prompt (llama.cpp's): n choices of one prompt copy its prefill from the first, each the text it gets alone", async () => {
    const prompt = 'Once upon a time there was a little dog who lived in a big house by the sea and';
    const body = { model: 'm', prompt, max_tokens: 6, temperature: 0 };
    const alone = await api.completions.create(body);
    const shared = await api.completions.create({ ...body, n: 2, ...({ cache_prompt: true } as object) });
    expect(shared.choices.map((c) => c.text)).toEqual([alone.choices[0].text, alone.choices[0].text]);
    const bad = await post(s, '/v1/completions', JSON.stringify({ ...body, cache_prompt: 'yes' }));
    expect([bad.status, bad.json.error.param]).toEqual([400, 'cache_prompt']);
  });

  it('echo with logprobs under continuous batching: two prompts scored beside a running generation, as one engine scores them alone', async () => {
    await using alone = await Engine.load(dir, { threads: 1 });
    const prompts = ['Once upon a time there was a little', 'The dog ran to the'];
    const running = api.completions.create({ model: 'm', prompt: PROMPT, max_tokens: 40, temperature: 0 });
    const r = await api.completions.create({ model: 'm', prompt: prompts, max_tokens: 2, temperature: 0, echo: true, logprobs: 1 });
    await running;
    for (const [i, p] of prompts.entries()) {
      const g = alone.generate(p, { maxTokens: 2, temperature: 0, promptLogprobs: true, logprobs: true, topLogprobs: 1 });
      await g.complete();
      const want = (g.promptLogprobs ?? []).map((t) => t.logprob);
      const got = r.choices[i].logprobs?.token_logprobs ?? [];
      expect(got.length).toBe(want.length + g.tokens.length);
      expect(got[0]).toBeNull();
      // A batched step sums the same products in other tiles than one sequence's: within rounding.
      for (let t = 1; t < want.length; t++) expect(Math.abs((got[t] as number) - (want[t] as number))).toBeLessThan(1e-4);
      expect(r.choices[i].text).toBe(p + g.text);
    }
  });

  it('json_schema on completions and json_object on chat; two concurrent requests with different schemas', async () => {
    const [a, b] = await Promise.all([
      api.completions.create({
        model: 'm',
        prompt: PROMPT,
        max_tokens: 400,
        seed: 5,
        // Not in the client's types for completions (llama.cpp's server takes it too).
        ...({ response_format: { type: 'json_schema', json_schema: { name: 'person', schema: PERSON } } } as object),
      }),
      api.chat.completions.create({
        model: 'm',
        messages: [{ role: 'user', content: 'A point.' }],
        response_format: { type: 'json_schema', json_schema: { name: 'point', schema: POINT } },
        seed: 6,
        max_tokens: 400,
      }),
    ]);
    expect(isPerson(JSON.parse(a.choices[0].text)), a.choices[0].text).toBe(true);
    expect(isPoint(JSON.parse(b.choices[0].message.content as string)), b.choices[0].message.content as string).toBe(true);
    // json_object: any object, whose strings are unbounded: a random model may still be inside a string at max_tokens (finish_reason length).
    let objects = 0;
    for (const seed of [1, 2, 3, 4, 5]) {
      const o = await api.chat.completions.create({
        model: 'm',
        messages: [{ role: 'user', content: 'Anything, as a JSON object.' }],
        response_format: { type: 'json_object' },
        seed,
        max_tokens: 300,
      });
      if (o.choices[0].finish_reason === 'length') continue;
      const v = JSON.parse(o.choices[0].message.content as string);
      expect(typeof v === 'object' && v !== null && !Array.isArray(v)).toBe(true);
      objects++;
    }
    expect(objects).toBeGreaterThan(0);
    // type text is free text, as before.
    const t = await api.chat.completions.create({
      model: 'm',
      messages: [{ role: 'user', content: 'Hi' }],
      response_format: { type: 'text' },
      max_tokens: 4,
    });
    expect(t.choices[0].message.content).toBeTypeOf('string');
  });

  it('an unsupported or malformed schema is a 400 invalid_request_error with param response_format, streamed or not, before the request queues', async () => {
    const caught = async (p: Promise<unknown>) =>
      p.then(
        () => undefined,
        (e: unknown) => e as InstanceType<typeof OpenAI.APIError>,
      );
    const ask = (json_schema: object, stream = false) =>
      caught(
        api.chat.completions.create({
          model: 'm',
          messages: [{ role: 'user', content: 'x' }],
          response_format: { type: 'json_schema', json_schema } as never,
          stream,
        }) as Promise<unknown>,
      );
    const before = (await metrics(s)).get('ie_prompt_tokens_total');
    const min = await ask({ name: 'n', schema: { type: 'integer', minimum: 3 } });
    expect(min).toBeInstanceOf(OpenAI.BadRequestError);
    expect([min?.status, min?.type, min?.param, min?.code]).toEqual([400, 'invalid_request_error', 'response_format', null]);
    expect(min?.message).toMatch(/minimum.*\[IE_SCHEMA_UNSUPPORTED\]/);
    const streamed = await ask({ name: 'n', schema: { type: 'array', minItems: 3, maxItems: 1 } }, true);
    expect([streamed?.status, streamed?.param]).toEqual([400, 'response_format']);
    expect(streamed?.message).toMatch(/\[IE_SCHEMA_INVALID\]/);
    const ref = await ask({ name: 'n', schema: { $ref: 'https://example.com/s.json' } });
    expect(ref?.message).toMatch(/\[IE_SCHEMA_BAD_REF\]/);
    const noName = await ask({ schema: PERSON });
    expect([noName?.status, noName?.param]).toEqual([400, 'response_format']);
    const raw = await post(s, '/v1/completions', JSON.stringify({ model: 'm', prompt: PROMPT, response_format: { type: 'json_schema' } }));
    expect([raw.status, raw.json.error.param, raw.json.error.type]).toEqual([400, 'response_format', 'invalid_request_error']);
    const other = await post(
      s,
      '/v1/chat/completions',
      JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'x' }], response_format: { type: 'xml' } }),
    );
    expect([other.status, other.json.error.param, other.json.error.code]).toEqual([400, 'response_format', 'unsupported_parameter']);
    // Nested 3000 deep, or a length the grammar cannot hold: refused by their codes, not a 500.
    let deep: object = { type: 'integer' };
    for (let i = 0; i < 3000; i++) deep = { type: 'array', items: deep };
    const tooDeep = await ask({ name: 'n', schema: deep });
    expect([tooDeep?.status, tooDeep?.param]).toEqual([400, 'response_format']);
    expect(tooDeep?.message).toMatch(/nested more than 128 deep.*\[IE_SCHEMA_UNSUPPORTED\]/);
    const huge = await ask({ name: 'n', schema: { type: 'string', minLength: 1_000_000 } });
    expect([huge?.status, huge?.param]).toEqual([400, 'response_format']);
    expect(huge?.message).toMatch(/\[IE_GRAMMAR_TOO_LARGE\]/);
    // None of them reached the engine: no prompt token was counted.
    expect((await metrics(s)).get('ie_prompt_tokens_total')).toBe(before);
    // A pattern whose parse stacks multiply fails its generation within moments (400), and the server goes on.
    const t0 = performance.now();
    const nested = await post(
      s,
      '/v1/completions',
      JSON.stringify({
        model: 'm',
        prompt: PROMPT,
        max_tokens: 20,
        temperature: 0,
        response_format: {
          type: 'json_schema',
          json_schema: { name: 'n', schema: { type: 'string', pattern: '^(((a{0,20}){0,20}){0,20}){0,20}$' } },
        },
      }),
    );
    expect([nested.status, nested.json.error.param]).toEqual([400, 'response_format']);
    expect(nested.json.error.message).toMatch(/\[IE_GRAMMAR_TOO_COMPLEX\]/);
    expect(performance.now() - t0).toBeLessThan(10_000);
    expect((await fetch(`${s.url}/health`)).status).toBe(200);
  });

  it("gpt-oss's harmony chat answers in the response_format after its reasoning; its completions take it too", async () => {
    const g = await serve(await gptOssModel());
    const [end] = (g.engine as Engine).tokenize('<|end|>', { bos: false });
    for (const stream of [false, true]) {
      // A random model: <|end|> made likelier so that its reasoning ends early, as a trained one's does.
      const body = {
        model: 'm',
        messages: [{ role: 'user' as const, content: 'x' }],
        max_tokens: 300,
        seed: 4,
        logit_bias: { [end]: 6 },
        response_format: { type: 'json_schema' as const, json_schema: { name: 'point', schema: POINT } },
      };
      let content = '';
      let reasoning = '';
      if (stream)
        for await (const c of await client(g).chat.completions.create({ ...body, stream: true })) {
          content += c.choices[0]?.delta.content ?? '';
          reasoning += (c.choices[0]?.delta as { reasoning_content?: string } | undefined)?.reasoning_content ?? '';
        }
      else {
        const r = await client(g).chat.completions.create(body);
        content = r.choices[0].message.content ?? '';
        reasoning = (r.choices[0].message as { reasoning_content?: string }).reasoning_content ?? '';
        expect(r.choices[0].finish_reason).toBe('stop');
      }
      expect(isPoint(JSON.parse(content)), content).toBe(true);
      expect(typeof reasoning).toBe('string');
    }
    const c = await client(g).completions.create({
      model: 'm',
      prompt: 'x',
      max_tokens: 200,
      temperature: 0,
      ...({ response_format: { type: 'json_schema', json_schema: { name: 'point', schema: POINT } } } as object),
    });
    expect(isPoint(JSON.parse(c.choices[0].text)), c.choices[0].text).toBe(true);
  });
});

describe('chat through the openai client', () => {
  it("gpt-oss (harmony): streamed and non-streamed chat give the engine's answer for the same seed, with usage", async () => {
    const s = await serve(await gptOssModel());
    const api = client(s);
    const engine = s.engine as Engine;
    const messages: PlainMessage[] = [
      { role: 'system', content: 'Answer briefly.' },
      { role: 'user', content: 'hi' },
    ];
    // A random model rarely writes a whole harmony header: take the first seed whose answer has text.
    const sampling = { maxTokens: 48, temperature: 1, topP: 1, topK: 0, minP: 0 };
    let seed = 0;
    let want = await engine.chat(messages, { ...sampling, seed });
    while (!want.messages.some((m) => m.content) && seed < 200) want = await engine.chat(messages, { ...sampling, seed: ++seed });
    const content = want.messages
      .filter((m) => m.channel !== 'analysis' && m.channel !== 'commentary')
      .map((m) => m.content)
      .join('');
    expect(content.length).toBeGreaterThan(0);
    const body = { model: 'm', messages, max_tokens: 48, temperature: 1, top_p: 1, seed };

    const r = await api.chat.completions.create(body);
    expect(r.object).toBe('chat.completion');
    expect(r.id).toMatch(/^chatcmpl-/);
    expect(r.choices[0].message.role).toBe('assistant');
    expect(r.choices[0].message.content).toBe(content);
    expect(r.choices[0].finish_reason).toBe(want.stopReason === 'length' || want.stopReason === 'context' ? 'length' : 'stop');
    expect(r.usage).toMatchObject({
      prompt_tokens: want.metrics.promptTokens,
      completion_tokens: want.metrics.generatedTokens,
      total_tokens: want.metrics.promptTokens + want.metrics.generatedTokens,
    });

    const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
    for await (const c of await api.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } }))
      chunks.push(c);
    expect(chunks[0].choices[0].delta).toEqual({ role: 'assistant', content: '' });
    expect(chunks.every((c) => c.object === 'chat.completion.chunk' && c.id === chunks[0].id)).toBe(true);
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe(content);
    const end = chunks[chunks.length - 2];
    expect([end.choices[0].delta, end.choices[0].finish_reason]).toEqual([{}, r.choices[0].finish_reason]);
    // The same conversation again: the server is stateless, the KV cache still holds its prefix.
    const again = chunks[chunks.length - 1];
    expect(again).toMatchObject({ choices: [], usage: { prompt_tokens: r.usage?.prompt_tokens, total_tokens: r.usage?.total_tokens } });
    expect(again.usage?.prompt_tokens_details?.cached_tokens).toBeGreaterThanOrEqual((r.usage?.prompt_tokens ?? 0) - 1);

    // reasoning_effort reaches the harmony system message: the engine's answer with that effort.
    for (const effort of ['low', 'high'] as const) {
      const lean = await engine.chat(messages, { ...sampling, seed, reasoningEffort: effort });
      const got = await api.chat.completions.create({ ...body, reasoning_effort: effort });
      expect(got.usage?.completion_tokens).toBe(lean.metrics.generatedTokens);
      expect(got.choices[0].message.content).toBe(
        lean.messages
          .filter((m) => m.channel !== 'analysis' && m.channel !== 'commentary')
          .map((m) => m.content)
          .join(''),
      );
    }
    expect(engine.chatPrompt(messages, { reasoningEffort: 'low' }).text).toContain('Reasoning: low');
    const effort = await api.chat.completions
      .create({ ...body, reasoning_effort: 'extreme' as 'high' })
      .catch((e: InstanceType<typeof OpenAI.APIError>) => e);
    expect((effort as InstanceType<typeof OpenAI.APIError>).status).toBe(400);

    // A conversation longer than the context is the client's problem.
    const long = await api.chat.completions
      .create({ model: 'm', messages: [{ role: 'user', content: 'word '.repeat(5000) }], max_tokens: 1 })
      .catch((e: InstanceType<typeof OpenAI.APIError>) => e);
    expect([(long as InstanceType<typeof OpenAI.APIError>).status, (long as InstanceType<typeof OpenAI.APIError>).code]).toEqual([
      400,
      'context_length_exceeded',
    ]);
  });

  it('a llama model answers through its chat template, streamed or not, as engine.chat does', async () => {
    const s = await serve(await tinyModel());
    const api = client(s);
    const messages: PlainMessage[] = [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: 'hello' },
    ];
    const want = await (s.engine as Engine).chat(messages, { maxTokens: 10, temperature: 0 });
    expect(want.final.length).toBeGreaterThan(0);
    const body = { model: 'm', messages, max_tokens: 10, temperature: 0 };
    const r = await api.chat.completions.create(body);
    expect(r.choices[0].message.content).toBe(want.final);
    expect(r.choices[0].finish_reason).toBe(want.stopReason === 'eos' || want.stopReason === 'stop' ? 'stop' : 'length');
    expect(r.usage?.prompt_tokens).toBe(want.metrics.promptTokens);
    let streamed = '';
    for await (const c of await api.chat.completions.create({ ...body, stream: true })) streamed += c.choices[0]?.delta.content ?? '';
    expect(streamed).toBe(want.final);
    // Two choices, seeded 5 and 6: engine.chat's answers for those seeds, in order; each streamed under its index.
    const sampling = { maxTokens: 6, temperature: 1.2, topP: 1, topK: 0, minP: 0 };
    const two = [
      await (s.engine as Engine).chat(messages, { ...sampling, seed: 5 }),
      await (s.engine as Engine).chat(messages, { ...sampling, seed: 6 }),
    ];
    const nBody = { model: 'm', messages, max_tokens: 6, temperature: 1.2, top_p: 1, seed: 5, n: 2 };
    const both = await api.chat.completions.create(nBody);
    expect(both.choices.map((c) => [c.index, c.message.content])).toEqual(two.map((w, i) => [i, w.final]));
    const parts = ['', ''];
    for await (const c of await api.chat.completions.create({ ...nBody, stream: true }))
      parts[c.choices[0].index] += c.choices[0].delta.content ?? '';
    expect(parts).toEqual(two.map((w) => w.final));
    // The route renders and encodes the conversation once (to refuse it early), and the scheduler
    // runs that prompt: a request encodes what one chatPrompt() does, not twice that.
    const tok = (s.engine as Engine).tokenizer;
    const encode = tok.encode.bind(tok);
    let calls = 0;
    tok.encode = (...a: Parameters<typeof encode>) => {
      calls++;
      return encode(...a);
    };
    (s.engine as Engine).chatPrompt(messages);
    const once = calls;
    expect(once).toBeGreaterThan(0);
    calls = 0;
    expect((await api.chat.completions.create(body)).choices[0].message.content).toBe(want.final);
    tok.encode = encode;
    expect(calls).toBe(once);
    // Its template has no tool-call format ie reads: tools are the client's to leave out.
    const tools = await post(
      s,
      '/v1/chat/completions',
      JSON.stringify({ ...body, tools: [{ type: 'function', function: { name: 'f' } }] }),
    );
    expect([tools.status, tools.json.error.code, tools.json.error.param]).toEqual([400, 'chat_unsupported', 'tools']);
    // The runtime names the model by its path on the server's disk; the client reads its id.
    expect(tools.json.error.message).toMatch(/^m: the model's chat template has no tool-call format ie reads/);
    expect(tools.json.error.message).not.toContain((s.engine as Engine).path);
  });

  it("chat logprobs with top_logprobs give the answer's tokens as engine.chat's pieces, streamed or not; harmony's are its answer's (final channel) tokens", async () => {
    const s = await serve(await tinyModel());
    const api = client(s);
    const messages: PlainMessage[] = [{ role: 'user', content: 'hello' }];
    const pieces: Piece[] = [];
    const want = await (s.engine as Engine).chat(messages, {
      maxTokens: 6,
      temperature: 0,
      logprobs: true,
      topLogprobs: 2,
      onText: (_t, _c, p) => {
        if (p && p.token >= 0) pieces.push(p);
      },
    });
    const body = { model: 'm', messages, max_tokens: 6, temperature: 0, logprobs: true, top_logprobs: 2 };
    const r = await api.chat.completions.create(body);
    expect(r.choices[0].message.content).toBe(want.final);
    const content = r.choices[0].logprobs?.content ?? [];
    // The server's request finds the engine's prompt in the KV cache and runs its last token by a
    // decode step, where engine.chat prefilled it: the same values to float rounding.
    expect(content).toHaveLength(pieces.length);
    for (const [i, e] of content.entries()) {
      expect(e.logprob).toBeCloseTo(pieces[i].logprob as number, 5);
      expect(e.top_logprobs).toHaveLength(2);
      for (const [j, t] of e.top_logprobs.entries()) expect(t.logprob).toBeCloseTo(pieces[i].topLogprobs?.[j].logprob as number, 5);
    }
    for (const e of content) {
      expect(Buffer.from(e.bytes ?? []).toString('utf8')).toBe(e.token);
      expect(e.top_logprobs[0]).toEqual({ token: e.token, logprob: e.logprob, bytes: e.bytes });
    }
    const streamed: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
    for await (const c of await api.chat.completions.create({ ...body, stream: true })) streamed.push(c);
    expect(streamed.flatMap((c) => c.choices[0]?.logprobs?.content ?? []).map((e) => e.logprob)).toEqual(content.map((e) => e.logprob));
    const noLogprobs = await post(s, '/v1/chat/completions', JSON.stringify({ ...body, logprobs: false }));
    expect([noLogprobs.status, noLogprobs.json.error.param]).toEqual([400, 'top_logprobs']);
    // Harmony (gpt-oss): the answer's (final channel's) tokens, their bytes the content's.
    // A random model seldom opens a message: <|message|> made likelier, and the first seed whose answer has text.
    const g = await serve(await gptOssModel());
    const [msg] = (g.engine as Engine).tokenize('<|message|>', { bos: false });
    let answered = 0;
    for (let seed = 0; seed < 100 && !answered; seed++) {
      const h = await client(g).chat.completions.create({
        model: 'm',
        messages,
        max_tokens: 40,
        logprobs: true,
        top_logprobs: 1,
        seed,
        logit_bias: { [msg]: 3 },
      });
      const entries = h.choices[0].logprobs?.content ?? [];
      expect(Buffer.concat(entries.map((x) => Buffer.from(x.bytes ?? []))).toString('utf8')).toBe(h.choices[0].message.content);
      answered = entries.length;
    }
    expect(answered).toBeGreaterThan(0);
  });

  it('gpt-oss tool calls: a forced call is tool_calls (finish_reason tool_calls), streamed or not; its result goes back in the next turn', async () => {
    const s = await serve(await gptOssModel());
    const api = client(s);
    const parameters = { type: 'object', properties: { city: { type: 'string', maxLength: 10 } }, required: ['city'] };
    const tools: OpenAI.Chat.Completions.ChatCompletionTool[] = [
      { type: 'function', function: { name: 'get_weather', description: 'The weather in a city.', parameters } },
      { type: 'function', function: { name: 'get_time' } },
    ];
    const messages: OpenAI.Chat.Completions.ChatCompletionMessageParam[] = [{ role: 'user', content: 'Weather in Oslo?' }];
    const body = {
      model: 'm',
      messages,
      tools,
      tool_choice: { type: 'function' as const, function: { name: 'get_weather' } },
      max_tokens: 200,
      seed: 3,
    };
    const want = await (s.engine as Engine).chat([{ role: 'user', content: 'Weather in Oslo?' }], {
      tools: [{ name: 'get_weather', description: 'The weather in a city.', parameters }, { name: 'get_time' }],
      toolChoice: { name: 'get_weather' },
      maxTokens: 200,
      seed: 3,
      temperature: 1,
      topP: 1,
      topK: 0,
      minP: 0,
    });
    expect(want.toolCalls).toHaveLength(1);
    const r = await api.chat.completions.create(body);
    const [call] = r.choices[0].message.tool_calls ?? [];
    expect(r.choices[0].finish_reason).toBe('tool_calls');
    expect(r.choices[0].message.content).toBeNull();
    expect(call).toMatchObject({ type: 'function', function: { name: 'get_weather', arguments: want.toolCalls[0].arguments } });
    expect(call.id).toMatch(/^call_[0-9a-f]{24}$/);
    expect(JSON.parse((call as { function: { arguments: string } }).function.arguments)).toHaveProperty('city');
    // Streamed: the call in one tool_calls delta (index 0), then the finish reason.
    const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
    for await (const c of await api.chat.completions.create({ ...body, stream: true })) chunks.push(c);
    const deltas = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []);
    expect(deltas).toHaveLength(1);
    expect(deltas[0]).toMatchObject({
      index: 0,
      type: 'function',
      function: { name: 'get_weather', arguments: want.toolCalls[0].arguments },
    });
    expect(chunks.at(-1)?.choices[0].finish_reason).toBe('tool_calls');
    // The next turn: the assistant's call and the tool's result, answered by the id of the call.
    const next = await api.chat.completions.create({
      model: 'm',
      tools,
      max_tokens: 4,
      messages: [
        ...messages,
        {
          role: 'assistant',
          content: null,
          tool_calls: [{ id: call.id, type: 'function', function: { name: 'get_weather', arguments: '{"city":"Oslo"}' } }],
          // The call's reasoning, as this server returned it (harmony writes it back before the call).
          ...({ reasoning_content: 'Need the weather.' } as object),
        },
        { role: 'tool', tool_call_id: call.id, content: '{"rain":true}' },
      ],
    });
    expect(next.choices[0].message.role).toBe('assistant');
    expect(next.usage?.prompt_tokens).toBe(
      (s.engine as Engine).chatPrompt(
        [
          { role: 'user', content: 'Weather in Oslo?' },
          {
            role: 'assistant',
            content: '',
            reasoning: 'Need the weather.',
            toolCalls: [{ name: 'get_weather', arguments: '{"city":"Oslo"}' }],
          },
          { role: 'tool', name: 'get_weather', content: '{"rain":true}' },
        ],
        { tools: [{ name: 'get_weather', description: 'The weather in a city.', parameters }, { name: 'get_time' }] },
      ).ids.length,
    );
    const bad = await post(
      s,
      '/v1/chat/completions',
      JSON.stringify({ model: 'm', tools, messages: [...messages, { role: 'tool', tool_call_id: 'call_none', content: 'x' }] }),
    );
    expect([bad.status, bad.json.error.param]).toEqual([400, 'messages[1].tool_call_id']);
    expect(bad.json.error.message).toMatch(/answers no earlier assistant tool call/);
    const unknown = await post(
      s,
      '/v1/chat/completions',
      JSON.stringify({ ...body, tool_choice: { type: 'function', function: { name: 'nope' } } }),
    );
    expect([unknown.status, unknown.json.error.param]).toEqual([400, 'tool_choice']);
    const bounded = {
      type: 'function',
      function: { name: 'f', parameters: { type: 'object', properties: { n: { type: 'integer', minimum: 1 } } } },
    };
    const unenforceable = await post(
      s,
      '/v1/chat/completions',
      JSON.stringify({ model: 'm', messages, tools: [bounded], tool_choice: 'required' }),
    );
    expect([unenforceable.status, unenforceable.json.error.param]).toEqual([400, 'tools']);
    expect(unenforceable.json.error.message).toMatch(/tools\[0\]\.parameters.*minimum/);
    // A parameters schema nested beyond reason is a 400, not a stack overflow while it is rendered
    // (the body written as text: JSON.stringify itself would overflow on it).
    const nested = `${'{"type":"array","items":'.repeat(5000)}{"type":"string"}${'}'.repeat(5000)}`;
    const deepBody = `{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"a":${nested}}}}}]}`;
    const deep = await post(s, '/v1/chat/completions', deepBody);
    expect([deep.status, deep.json.error.param]).toEqual([400, 'tools']);
    const noTools = await post(s, '/v1/chat/completions', JSON.stringify({ model: 'm', messages, tool_choice: 'required' }));
    expect([noTools.status, noTools.json.error.param]).toEqual([400, 'tool_choice']);
  });

  it('a model without a chat template: chat is a 400 the client can read, naming the model by its id (not its path), streamed or not; completions still work', async () => {
    const s = await serve(await noTemplateModel(), { modelId: 'chatless' });
    const api = client(s);
    const path = (s.engine as Engine).path;
    await expect((s.engine as Engine).chat([{ role: 'user', content: 'hello' }])).rejects.toMatchObject({
      code: 'IE_CHAT_NO_TEMPLATE',
      message: expect.stringContaining(path),
    });
    for (const stream of [false, true]) {
      const raw = await post(
        s,
        '/v1/chat/completions',
        JSON.stringify({ model: 'chatless', messages: [{ role: 'user', content: 'hello' }], max_tokens: 4, stream }),
      );
      expect([raw.status, raw.json.error.code, raw.json.error.param]).toEqual([400, 'chat_unsupported', 'messages']);
      expect(raw.json.error.message).toMatch(
        /^chatless: the model has no chat template \(model\.ie\.json has no chat member\), so chat\(\) cannot/,
      );
      expect(raw.json.error.message).not.toContain(path);
      const err = await api.chat.completions
        .create({ model: 'chatless', messages: [{ role: 'user', content: 'hello' }], max_tokens: 4, stream })
        .then(
          () => undefined,
          (e: InstanceType<typeof OpenAI.APIError>) => e,
        );
      expect(err).toBeInstanceOf(OpenAI.BadRequestError);
      expect([err?.status, err?.code, err?.param]).toEqual([400, 'chat_unsupported', 'messages']);
      expect(err?.message).toMatch(/no chat template/);
    }
    // Greedy: sampled at OpenAI's default temperature, an end-of-text token now and then ended it early.
    const r = await api.completions.create({ model: 'chatless', prompt: PROMPT, max_tokens: 3, temperature: 0 });
    expect(r.usage?.completion_tokens).toBe(3);
  });
});

describe('serving under load, aborts, limits and shutdown (a slower model)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await slowModel();
  });

  it('a client that disconnects mid-stream frees its slot at once: the next request runs', async () => {
    const s = await serve(dir, { parallel: 1, queue: 0 });
    const api = client(s);
    const stream = await api.completions.create({ model: 'm', prompt: PROMPT, max_tokens: 900, temperature: 0, stream: true });
    let seen = 0;
    for await (const c of stream) {
      if (c.choices[0]?.text) seen++;
      if (seen === 3) break; // leaving the loop aborts the request
    }
    const t0 = performance.now();
    const m = await until(s, (m) => m.get('ie_active_sequences') === 0);
    expect(m.get('ie_active_sequences')).toBe(0);
    expect(m.get('ie_requests_cancelled_total')).toBe(1);
    // 900 tokens take ~2 s; the slot was freed long before.
    expect(performance.now() - t0).toBeLessThan(1000);
    const next = await api.completions.create({ model: 'm', prompt: PROMPT, max_tokens: 4, temperature: 0 });
    expect(next.usage?.completion_tokens).toBe(4);
    // The aborted generation was never counted as finished.
    expect((await metrics(s)).get('ie_generation_tokens_total')).toBe(4);
  });

  it('concurrent requests queue up to --queue; beyond, 429 with Retry-After; queued ones then run', async () => {
    const s = await serve(dir, { parallel: 1, queue: 1 });
    const api = client(s);
    const running = await api.completions.create({ model: 'm', prompt: PROMPT, max_tokens: 900, temperature: 0, stream: true });
    const it = running[Symbol.asyncIterator]();
    await it.next(); // it holds the slot now
    const queued = api.completions.create({ model: 'm', prompt: PROMPT, max_tokens: 5, temperature: 0 });
    const m = await until(s, (m) => m.get('ie_queue_depth') === 1);
    expect([m.get('ie_active_sequences'), m.get('ie_queue_depth')]).toEqual([1, 1]);
    const refused = await api.completions
      .create({ model: 'm', prompt: PROMPT, max_tokens: 5 })
      .withResponse()
      .catch((e: InstanceType<typeof OpenAI.APIError>) => e);
    expect(refused).toBeInstanceOf(OpenAI.RateLimitError);
    const err = refused as InstanceType<typeof OpenAI.APIError>;
    expect([err.status, err.code, err.type]).toEqual([429, 'queue_full', 'rate_limit_error']);
    expect(Number(err.headers?.get('retry-after'))).toBeGreaterThanOrEqual(1);
    // The running stream stops (its client leaves); the queued request takes the slot.
    await it.return?.();
    expect((await queued).usage?.completion_tokens).toBe(5);
    const after = await until(s, (m) => m.get('ie_requests_total{endpoint="/v1/completions",status="200"}') === 2);
    expect(after.get('ie_requests_total{endpoint="/v1/completions",status="429"}')).toBe(1);
    expect(after.get('ie_requests_total{endpoint="/v1/completions",status="200"}')).toBe(2);
    expect(after.get('ie_requests_cancelled_total')).toBe(1);
  });

  it('a request of more generations than the server ever holds (n, best_of, a batch of prompts) is 400 unsupported_parameter, not 429; one that fits but finds it busy is 429', async () => {
    // The reviewer's case: --queue 0, one slot, n = 2 on an idle server.
    const none = await serve(dir, { parallel: 1, queue: 0 });
    const repro = await post(none, '/v1/completions', JSON.stringify({ model: 'm', prompt: 'x', max_tokens: 3, n: 2 }));
    expect([repro.status, repro.headers.get('retry-after'), repro.json.error]).toEqual([
      400,
      null,
      {
        message:
          'n: the request needs 2 generations at once (n = 2), and this server holds at most 1 (--parallel 1 running + --queue 0 waiting): ask for at most 1 per request, or restart ie serve with a larger --queue or --parallel',
        type: 'invalid_request_error',
        param: 'n',
        code: 'unsupported_parameter',
      },
    ]);

    const s = await serve(dir, { parallel: 1, queue: 1 });
    const api = client(s);
    const cases: Array<[object, string, string]> = [
      [{ n: 3 }, 'n', 'needs 3 generations at once (n = 3), and this server holds at most 2 (--parallel 1 running + --queue 1 waiting)'],
      [{ best_of: 3 }, 'best_of', 'needs 3 generations at once (best_of = 3)'],
      [{ n: 2, best_of: 4 }, 'best_of', 'needs 4 generations at once (best_of = 4)'],
      [{ prompt: [PROMPT, PROMPT, PROMPT] }, 'prompt', 'needs 3 generations at once (3 prompts)'],
      [{ prompt: [[1, 2], [3], [4]] }, 'prompt', 'needs 3 generations at once (3 prompts)'],
      // Two prompts fit; two choices each do not: n is the one to lower.
      [{ prompt: [PROMPT, PROMPT], n: 2 }, 'n', 'needs 4 generations at once (2 prompts x n = 2)'],
      [{ prompt: [PROMPT, PROMPT, PROMPT], n: 2 }, 'prompt', 'needs 6 generations at once (3 prompts x n = 2)'],
    ];
    for (const [fields, param, says] of cases) {
      for (const stream of 'best_of' in fields ? [false] : [false, true]) {
        const r = await post(s, '/v1/completions', JSON.stringify({ model: 'm', prompt: PROMPT, max_tokens: 3, ...fields, stream }));
        expect([r.status, r.json.error.type, r.json.error.code, r.json.error.param], JSON.stringify(fields)).toEqual([
          400,
          'invalid_request_error',
          'unsupported_parameter',
          param,
        ]);
        expect(r.json.error.message).toContain(says);
        expect(r.headers.get('retry-after')).toBeNull();
      }
    }
    // Chat's n, through the client: a BadRequestError, which the openai SDK does not retry.
    const chat = await api.chat.completions
      .create({ model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 3, n: 3 })
      .catch((e: InstanceType<typeof OpenAI.APIError>) => e);
    expect(chat).toBeInstanceOf(OpenAI.BadRequestError);
    const chatErr = chat as InstanceType<typeof OpenAI.APIError>;
    expect([chatErr.status, chatErr.code, chatErr.param]).toEqual([400, 'unsupported_parameter', 'n']);
    expect(chatErr.message).toMatch(/needs 3 generations at once \(n = 3\), and this server holds at most 2/);
    // Nothing was queued or run for them.
    expect((await metrics(s)).get('ie_generation_tokens_total') ?? 0).toBe(0);

    // n = 2 fits an idle server (one running, one waiting) ...
    const two = await api.completions.create({ model: 'm', prompt: PROMPT, max_tokens: 3, temperature: 0, n: 2 });
    expect(two.choices.map((c) => c.index)).toEqual([0, 1]);
    // ... and finding it busy it is 429 queue_full with Retry-After, as before.
    const running = await api.completions.create({ model: 'm', prompt: PROMPT, max_tokens: 900, temperature: 0, stream: true });
    const it = running[Symbol.asyncIterator]();
    await it.next();
    const busy = await post(s, '/v1/completions', JSON.stringify({ model: 'm', prompt: PROMPT, max_tokens: 3, n: 2 }));
    expect([busy.status, busy.json.error.code, busy.json.error.type]).toEqual([429, 'queue_full', 'rate_limit_error']);
    expect(Number(busy.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    await it.return?.();
  });

  it('/health is 503 while the model loads (the server already listens), 200 after; generation waits with 503 + Retry-After', async () => {
    let release = () => {};
    const gate = new Promise<void>((r) => (release = r));
    const s = await startServer({
      load: async () => {
        await gate;
        return Engine.load(dir, { threads: 1 });
      },
      modelId: 'm',
      port: 0,
    });
    servers.push(s);
    const h = await fetch(`${s.url}/health`);
    expect([h.status, await h.json()]).toEqual([503, { status: 'loading' }]);
    const r = await post(s, '/v1/completions', JSON.stringify({ model: 'm', prompt: PROMPT }));
    expect([r.status, r.json.error.code, r.headers.get('retry-after')]).toEqual([503, 'model_loading', '5']);
    expect((await metrics(s)).get('ie_model_loaded')).toBe(0);
    release();
    await s.ready;
    const ok = await fetch(`${s.url}/health`);
    expect([ok.status, await ok.json()]).toEqual([200, { status: 'ok' }]);
    expect((await metrics(s)).get('ie_model_loaded')).toBe(1);
  });

  it('a failed load is reported by /health and the generation routes', async () => {
    const s = await startServer({ load: () => Engine.load(`${dir}-missing`), modelId: 'm', port: 0 });
    servers.push(s);
    const why = ((await s.ready.catch((e: unknown) => e)) as Error).message;
    expect(why.length).toBeGreaterThan(0);
    const h = await fetch(`${s.url}/health`);
    expect([h.status, await h.json()]).toEqual([503, { status: 'error', message: why }]);
    const r = await post(s, '/v1/completions', JSON.stringify({ model: 'm', prompt: PROMPT }));
    expect([r.status, r.json.error.code, r.json.error.message]).toEqual([503, 'model_load_failed', `the model failed to load: ${why}`]);
  });

  it("a failed load's messages name the model by its id, never by the path it was asked to load", async () => {
    const missing = `${dir}-missing`;
    const s = await startServer({ load: () => Engine.load(missing), modelId: 'tl', modelPath: missing, port: 0 });
    servers.push(s);
    const why = ((await s.ready.catch((e: unknown) => e)) as Error).message;
    expect(why).toContain(missing);
    const h = await fetch(`${s.url}/health`);
    const body = (await h.json()) as { status: string; message: string };
    expect([h.status, body.status, body.message]).toEqual([503, 'error', why.split(missing).join('tl')]);
    expect(body.message).not.toContain(missing);
    const r = await post(s, '/v1/completions', JSON.stringify({ model: 'tl', prompt: PROMPT }));
    expect([r.status, r.json.error.code]).toEqual([503, 'model_load_failed']);
    expect(r.json.error.message).toBe(`the model failed to load: ${why.split(missing).join('tl')}`);
  });

  it('a server closed while its model loads disposes the engine when it arrives and never serves it', async () => {
    let release = () => {};
    const gate = new Promise<void>((r) => (release = r));
    let loaded: Engine | undefined;
    const s = await startServer({
      load: async () => {
        await gate;
        loaded = await Engine.load(dir, { threads: 1 });
        return loaded;
      },
      modelId: 'm',
      port: 0,
    });
    servers.push(s);
    const closed = s.close();
    expect(s.state).toBe('closing');
    release();
    await closed;
    await s.ready;
    expect([s.state, s.engine]).toEqual(['closed', undefined]);
    expect(() => (loaded as Engine).info()).toThrow(/disposed/);
  });

  it('bearer-key auth: 401 without or with a wrong key, /health open', async () => {
    const s = await serve(dir, { apiKey: 'sekret-key' });
    const wrong = await client(s, 'nope')
      .models.list()
      .catch((e: InstanceType<typeof OpenAI.APIError>) => e);
    expect(wrong).toBeInstanceOf(OpenAI.AuthenticationError);
    expect([(wrong as InstanceType<typeof OpenAI.APIError>).status, (wrong as InstanceType<typeof OpenAI.APIError>).code]).toEqual([
      401,
      'invalid_api_key',
    ]);
    const missing = await post(s, '/v1/completions', JSON.stringify({ model: 'm', prompt: PROMPT }));
    expect([missing.status, missing.headers.get('www-authenticate'), missing.json.error.code]).toEqual([401, 'Bearer', 'invalid_api_key']);
    expect(missing.json.error.message).toBe('an API key is required: Authorization: Bearer <key>');
    const bad = await post(s, '/v1/completions', JSON.stringify({ model: 'm', prompt: PROMPT }), { authorization: 'bearer  wrong-key ' });
    expect([bad.status, bad.json.error.message]).toEqual([401, 'the API key is not valid']);
    const spaced = await post(s, '/v1/completions', JSON.stringify({ model: 'm', prompt: PROMPT, max_tokens: 1 }), {
      authorization: 'BEARER  sekret-key ',
    });
    expect(spaced.status).toBe(200);
    const metricsDenied = await fetch(`${s.url}/metrics`);
    expect(metricsDenied.status).toBe(401);
    expect((await post(s, '/tokenize', JSON.stringify({ content: 'a' }))).status).toBe(401);
    expect((await fetch(`${s.url}/health`)).status).toBe(200);
    const r = await client(s, 'sekret-key').completions.create({ model: 'm', prompt: PROMPT, max_tokens: 2, temperature: 0 });
    expect(r.usage?.completion_tokens).toBe(2);
    // A URL that does not decode fails before routing: still the key first, then OpenAI's 400.
    const badUrl = await fetch(`${s.url}/v1/models/%zz`);
    expect([badUrl.status, ((await badUrl.json()) as { error: { code: string } }).error.code]).toEqual([401, 'invalid_api_key']);
    const badUrlKeyed = await fetch(`${s.url}/v1/models/%zz`, { headers: { authorization: 'Bearer sekret-key' } });
    const badUrlBody = (await badUrlKeyed.json()) as { error: { type: string; message: string } };
    expect([badUrlKeyed.status, badUrlBody.error.type]).toEqual([400, 'invalid_request_error']);
    expect(badUrlBody.error.message).toContain('%zz');
  });

  it("a request Node's HTTP parser refuses still gets OpenAI's error object (400, connection closed)", async () => {
    const s = await serve(dir);
    const { port } = new URL(s.url);
    for (const raw of ['GARBAGE\r\n\r\n', 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}']) {
      const reply = await new Promise<string>((resolve, reject) => {
        const sock = connect(Number(port), '127.0.0.1', () => sock.write(raw));
        let got = '';
        sock.on('data', (d) => (got += d.toString()));
        sock.on('end', () => resolve(got));
        sock.on('error', reject);
      });
      expect(reply.startsWith('HTTP/1.1 400 '), raw).toBe(true);
      const body = JSON.parse(reply.slice(reply.indexOf('\r\n\r\n') + 4)) as { error: { type: string; message: string } };
      expect(body.error.type).toBe('invalid_request_error');
      expect(body.error.message).toMatch(/^the HTTP request is malformed/);
    }
    // The server goes on serving.
    expect((await fetch(`${s.url}/health`)).status).toBe(200);
  });

  it('a body over the limit is 413', async () => {
    const s = await serve(dir, { bodyLimit: 4096 });
    const r = await post(s, '/v1/completions', JSON.stringify({ model: 'm', prompt: 'x'.repeat(10_000) }));
    expect([r.status, r.json.error.code, r.json.error.type]).toEqual([413, 'request_too_large', 'invalid_request_error']);
  });

  it('/metrics counts requests, tokens, time to first token and step times exactly', async () => {
    const s = await serve(dir);
    const api = client(s);
    const a = await api.completions.create({ model: 'm', prompt: PROMPT, max_tokens: 5, temperature: 0 });
    let b = 0;
    for await (const c of await api.completions.create({
      model: 'm',
      prompt: 'The dog',
      max_tokens: 7,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    }))
      if (c.usage) b = c.usage.prompt_tokens;
    await fetch(`${s.url}/nowhere`);
    const res = await fetch(`${s.url}/metrics`);
    expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const text = await res.text();
    for (const name of [
      'ie_requests_total',
      'ie_prompt_tokens_total',
      'ie_generation_tokens_total',
      'ie_queue_depth',
      'ie_active_sequences',
      'ie_time_to_first_token_seconds',
      'ie_time_per_output_token_seconds',
      'ie_event_loop_lag_seconds',
    ])
      expect(text).toMatch(new RegExp(`^# TYPE ${name} (counter|gauge|histogram)$`, 'm'));
    const m = await until(s, (m) => m.get('ie_requests_total{endpoint="unmatched",status="404"}') === 1);
    expect(m.get('ie_requests_total{endpoint="/v1/completions",status="200"}')).toBe(2);
    expect(m.get('ie_requests_total{endpoint="unmatched",status="404"}')).toBe(1);
    expect(m.get('ie_prompt_tokens_total')).toBe((a.usage?.prompt_tokens ?? 0) + b);
    expect(m.get('ie_generation_tokens_total')).toBe(12);
    expect(m.get('ie_time_to_first_token_seconds_count')).toBe(2);
    // One observation per decode step: the first token of each comes from the prefill.
    expect(m.get('ie_time_per_output_token_seconds_count')).toBe(4 + 6);
    expect(m.get('ie_request_duration_seconds_count')).toBe(2);
    expect(m.get('ie_event_loop_lag_seconds_count')).toBeGreaterThan(0);
    expect(m.get('ie_queue_depth')).toBe(0);
  });

  it('shutdown lets a running stream finish, refuses new connections and disposes the engine', async () => {
    const s = await serve(dir);
    const api = client(s);
    const stream = await api.completions.create({ model: 'm', prompt: PROMPT, max_tokens: 60, temperature: 0, stream: true });
    const it = stream[Symbol.asyncIterator]();
    let text = (await it.next()).value?.choices[0]?.text ?? '';
    const closed = s.close();
    let finish: string | null = null;
    for (let r = await it.next(); !r.done; r = await it.next()) {
      text += r.value.choices[0]?.text ?? '';
      finish = r.value.choices[0]?.finish_reason ?? finish;
    }
    await closed;
    expect(finish).toBe('length');
    expect(text.length).toBeGreaterThan(0);
    expect(s.state).toBe('closed');
    expect(() => (s.engine as Engine).info()).toThrow(/disposed/);
    await expect(fetch(`${s.url}/health`)).rejects.toThrow();
  });

  it('during shutdown /health is 503 {"status": "shutting_down"}, as it says loading; other routes keep OpenAI\'s error object', async () => {
    const s = await serve(dir);
    const api = client(s);
    const { port } = new URL(s.url);
    // Connections whose request has begun when the shutdown starts (the listener is closed then).
    const begun = await Promise.all(
      ['/health', '/v1/models'].map(
        (path) =>
          new Promise<{ sock: Socket; reply: Promise<string> }>((ready, reject) => {
            const sock = connect(Number(port), '127.0.0.1', () =>
              sock.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n`, () => ready({ sock, reply })),
            );
            let got = '';
            sock.on('data', (d) => (got += d.toString()));
            const reply = new Promise<string>((resolve) => sock.on('close', () => resolve(got)));
            sock.on('error', reject);
          }),
      ),
    );
    // A round trip on another connection: the partial requests above have reached the server.
    expect((await fetch(`${s.url}/health`)).status).toBe(200);
    // A running stream keeps the server in its grace period while the requests end.
    const stream = await api.completions.create({ model: 'm', prompt: PROMPT, max_tokens: 200, temperature: 0, stream: true });
    const it = stream[Symbol.asyncIterator]();
    await it.next();
    const closed = s.close();
    for (const { sock } of begun) sock.write('\r\n');
    const [health, models] = await Promise.all(begun.map((b) => b.reply));
    const parse = (raw: string) => [Number(raw.split(' ')[1]), JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4))];
    expect(parse(health)).toEqual([503, { status: 'shutting_down' }]);
    expect(health.toLowerCase()).toContain('connection: close');
    expect(parse(models)).toEqual([
      503,
      { error: { message: 'the server is shutting down', type: 'server_error', param: null, code: 'shutting_down' } },
    ]);
    for (let r = await it.next(); !r.done; r = await it.next()) {
      /* the stream finishes */
    }
    await closed;
    expect(s.state).toBe('closed');
  });

  it('shutdown past the grace period cuts a stream with an error event the client raises', async () => {
    const s = await serve(dir, { shutdownGraceMs: 50 });
    const api = client(s);
    const stream = await api.completions.create({ model: 'm', prompt: PROMPT, max_tokens: 900, temperature: 0, stream: true });
    const it = stream[Symbol.asyncIterator]();
    await it.next();
    const closed = s.close();
    const err = await (async () => {
      for (let r = await it.next(); !r.done; r = await it.next()) {
        /* drain */
      }
    })().catch((e: unknown) => e);
    await closed;
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect((err as InstanceType<typeof OpenAI.APIError>).code).toBe('shutting_down');
    expect((err as InstanceType<typeof OpenAI.APIError>).message).toMatch(/shutting down/);
  });
});

describe.skipIf(!HAS_STORIES)(`the real stories260K model through the server${STORIES_REASON}`, () => {
  it("greedy 'Once upon a time' through /v1/completions, streamed or not, is run.c's story byte for byte", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ie-server-stories-'));
    const src = await openLlama2c(join(STORIES_DIR, 'stories260K.bin'), join(STORIES_DIR, 'tok512.bin'));
    await exportIebin(src, dir, { converter: 'test' });
    await src.close();
    const stdout = readFileSync(join(STORIES_DIR, 'expected', 'greedy_once-upon-a-time_n256.stdout'), 'utf8');
    const s = await startServer({ load: () => Engine.load(dir, { precision: 'fp32', threads: 1 }), modelId: 'stories260K', port: 0 });
    servers.push(s);
    await s.ready;
    const engine = s.engine as Engine;
    const prompt = engine.tokenize(PROMPT, { bos: true });
    expect(prompt).toEqual([1, 403, 407, 261, 378]);
    const api = client(s);
    // run.c forwards 256 positions and prints the token sampled at each: 256 - 5 + 1 tokens.
    const body = { model: 'stories260K', prompt: PROMPT, max_tokens: 252, temperature: 0 };
    const r = await api.completions.create(body);
    expect(`${engine.detokenize(prompt)}${r.choices[0].text}\n`).toBe(stdout);
    expect([r.choices[0].finish_reason, r.usage?.completion_tokens]).toEqual(['length', 252]);
    let streamed = '';
    for await (const c of await api.completions.create({ ...body, stream: true })) streamed += c.choices[0]?.text ?? '';
    expect(streamed).toBe(r.choices[0].text);
  });
});
