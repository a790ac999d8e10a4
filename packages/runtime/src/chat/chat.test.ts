/**
 * engine.chat() for models with a chat template, chat sessions, and the KV cache's common-prefix
 * reuse under them: the same tokens and logits as a fresh engine running the whole prompt.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { SYNTH_PRESETS, exportIebin, openHfDir, openLlama2c, synthModel, writeHfDir } from '@ie/format';
import { HAS_STORIES, STORIES_DIR, STORIES_REASON } from '@ie/testing';
import { Engine, type GenerateOptions, type Piece } from '../index.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'ie-chat-'));
const config = SYNTH_PRESETS.tiny.config;
const dirs = { chat: '', plain: '', hf: '' };

beforeAll(async () => {
  dirs.chat = tmp();
  await exportIebin(synthModel(config, { seed: 21 }), dirs.chat, { converter: 'test' });
  const plain = synthModel(config, { seed: 21 });
  delete plain.chat;
  dirs.plain = tmp();
  await exportIebin(plain, dirs.plain, { converter: 'test' });
  // The same model through a Hugging Face directory: tokenizer.json and tokenizer_config.json.
  const hf = tmp();
  await writeHfDir(synthModel(config, { seed: 21 }), hf);
  const src = await openHfDir(hf);
  dirs.hf = tmp();
  await exportIebin(src, dirs.hf, { converter: 'test' });
  await src.close();
});

interface RunCall {
  rows: number;
  pos: number;
  logits: Float32Array;
}

/** Records every forward run of `e` (rows, position, the logits after it): what was prefilled and decoded. */
function spy(e: Engine): RunCall[] {
  const f = (e as unknown as { forward: { run(t: readonly number[], p: number): Promise<void>; logits: Float32Array } }).forward;
  const calls: RunCall[] = [];
  const run = f.run.bind(f);
  f.run = async (tokens, pos) => {
    await run(tokens, pos);
    calls.push({ rows: tokens.length, pos, logits: f.logits.slice() });
  };
  return calls;
}

async function pieces(e: Engine, ids: readonly number[], options: GenerateOptions) {
  const g = e.generate(ids, { temperature: 0, logprobs: true, ...options });
  const out: Piece[] = [];
  for await (const p of g) out.push(p);
  return { g, pieces: out };
}

/** Tokens of a prompt in a [0, 512) vocabulary, past the specials and byte pieces. */
const ids = (n: number, seed: number) => [1, ...Array.from({ length: n - 1 }, (_, i) => 260 + ((i * 37 + seed * 11) % 250))];

describe('engine.chat() with the model’s chat template', () => {
  it('renders the template, prefills it with one BOS, streams the answer as final and returns what generate() gives', async () => {
    await using e = await Engine.load(dirs.chat);
    const messages = [{ role: 'user' as const, content: 'hello there' }];
    const p = e.chatPrompt(messages);
    expect(p.format).toBe('template');
    expect(p.text).toBe('<|user|>\nhello there</s>\n<|assistant|>\n');
    expect(p.ids[0]).toBe(1);
    expect(p.ids.filter((t) => t === 1)).toEqual([1]);
    expect(p.ids.filter((t) => t === 2)).toEqual([2]);
    // The EOS text ends the answer (here it is EOS itself).
    expect(p.stopTokens).toEqual([2]);
    let streamed = '';
    const r = await e.chat(messages, {
      temperature: 0,
      maxTokens: 12,
      onText: (text, channel) => {
        expect(channel).toBe('final');
        streamed += text;
      },
    });
    expect(streamed).toBe(r.final);
    expect(r.analysis).toBe('');
    expect(r.messages).toEqual([{ channel: 'final', content: r.final }]);
    expect(r.ended).toBe(r.stopReason === 'eos' ? 'return' : undefined);
    expect(r.metrics.promptTokens).toBe(p.ids.length);
    expect(r.metrics.cachedTokens).toBe(0);
    await using fresh = await Engine.load(dirs.chat);
    const c = await fresh.complete(p.ids, { temperature: 0, maxTokens: 12 });
    expect(r.tokens).toEqual(c.tokens);
    expect(r.tokens.length).toBeGreaterThan(0);
    expect(r.final).toBe(c.text);
    expect(r.stopReason).toBe(c.stopReason);
  });

  it('passes maxTokens, temperature, topP, seed, stop and signal through', async () => {
    await using e = await Engine.load(dirs.chat);
    const messages = [{ role: 'user' as const, content: 'tell me' }];
    const a = await e.chat(messages, { temperature: 1.5, topP: 0.95, seed: 7, maxTokens: 5, ignoreEos: true });
    const b = await e.chat(messages, { temperature: 1.5, topP: 0.95, seed: 7, maxTokens: 5, ignoreEos: true });
    expect(a.tokens.length).toBe(5);
    expect(a.stopReason).toBe('length');
    expect(a.ended).toBeUndefined();
    expect(b.tokens).toEqual(a.tokens);
    // The second call found the first's prompt in the cache: only its last token was run again.
    expect(b.metrics.cachedTokens).toBe(b.metrics.promptTokens - 1);
    const c = await e.chat(messages, { temperature: 1.5, topP: 0.95, seed: 8, maxTokens: 5, ignoreEos: true });
    expect(c.tokens).not.toEqual(a.tokens);
    // A stop string cuts the answer where it starts.
    const cut = a.final.slice(2, 4);
    if (cut.length === 2 && a.final.indexOf(cut) === 2) {
      const s = await e.chat(messages, { temperature: 1.5, topP: 0.95, seed: 7, maxTokens: 5, ignoreEos: true, stop: [cut] });
      expect(s.stopReason).toBe('stop');
      expect(s.final).toBe(a.final.slice(0, 2));
    }
    const ac = new AbortController();
    ac.abort(new Error('client went away'));
    await expect(e.chat(messages, { signal: ac.signal })).rejects.toMatchObject({ code: 'IE_ABORTED' });
  });

  it('takes the ChatPrompt chatPrompt() returned in place of the messages, without rendering or encoding it again', async () => {
    await using e = await Engine.load(dirs.chat);
    const messages = [
      { role: 'system' as const, content: 'Be brief.' },
      { role: 'user' as const, content: 'what now' },
    ];
    const want = await e.chat(messages, { temperature: 0, maxTokens: 6, reusePrefix: false });
    const prompt = e.chatPrompt(messages);
    const encode = e.tokenizer.encode.bind(e.tokenizer);
    let calls = 0;
    e.tokenizer.encode = (...a: Parameters<typeof encode>) => {
      calls++;
      return encode(...a);
    };
    const got = await e.chat(prompt, { temperature: 0, maxTokens: 6, reusePrefix: false });
    e.tokenizer.encode = encode;
    expect(calls).toBe(0);
    expect(got.tokens).toEqual(want.tokens);
    expect(got.final).toBe(want.final);
    expect(got.metrics.promptTokens).toBe(prompt.ids.length);
    // Not a ChatPrompt of this model's format, or not one at all: IE_INVALID_OPTION naming the field.
    const bad = (p: unknown) => e.chat(p as typeof prompt, { maxTokens: 1 });
    await expect(bad({ ...prompt, format: 'harmony' })).rejects.toMatchObject({ code: 'IE_INVALID_OPTION', option: 'prompt.format' });
    await expect(bad({ ...prompt, ids: [] })).rejects.toMatchObject({ code: 'IE_INVALID_OPTION', option: 'prompt.ids' });
    await expect(bad({ ...prompt, ids: [1, -2] })).rejects.toMatchObject({ code: 'IE_INVALID_OPTION', option: 'prompt.ids' });
    await expect(bad({ ...prompt, stopTokens: ['x'] })).rejects.toMatchObject({ code: 'IE_INVALID_OPTION', option: 'prompt.stopTokens' });
    await expect(bad(null)).rejects.toMatchObject({ code: 'IE_INVALID_OPTION', option: 'messages' });
    // What shapes the rendering belongs to chatPrompt(): refused with a ChatPrompt, not ignored.
    await expect(e.chat(prompt, { templateVariables: { enable_thinking: true } })).rejects.toMatchObject({
      code: 'IE_INVALID_OPTION',
      option: 'templateVariables',
      message: expect.stringMatching(/rendered already: pass it to chatPrompt\(\) instead/),
    });
    await expect(e.chat(prompt, { currentDate: '2026-12-06' })).rejects.toMatchObject({ option: 'currentDate' });
    await expect(bad('hello')).rejects.toMatchObject({ code: 'IE_INVALID_OPTION', option: 'messages' });
    // Token ids past the vocabulary are generate()'s to refuse, as for any prompt of ids.
    await expect(bad({ ...prompt, ids: [1, 1_000_000] })).rejects.toMatchObject({
      code: 'IE_INVALID_OPTION',
      message: expect.stringMatching(/^prompt: token id 1000000 is outside 0\.\.511/),
    });
  });

  it('with logprobs, onText gets every token of the answer with its piece (a chat template; harmony refuses them)', async () => {
    await using e = await Engine.load(dirs.chat);
    const messages = [{ role: 'user' as const, content: 'hello' }];
    const pieces: Piece[] = [];
    let text = '';
    const r = await e.chat(messages, {
      temperature: 0,
      maxTokens: 8,
      logprobs: true,
      topLogprobs: 2,
      onText: (t, channel, piece) => {
        expect(channel).toBe('final');
        text += t;
        if (piece && piece.token >= 0) pieces.push(piece);
      },
    });
    expect(pieces.map((p) => p.token)).toEqual(r.tokens);
    expect(text).toBe(r.final);
    // Greedy: each token is its step's likeliest.
    for (const p of pieces) {
      expect(p.topLogprobs).toHaveLength(2);
      expect(p.topLogprobs?.[0]).toEqual({ token: p.token, logprob: p.logprob });
    }
  });

  it('a Hugging Face conversion (tokenizer.json, tokenizer_config.json) gives the same prompt tokens', async () => {
    await using a = await Engine.load(dirs.chat);
    await using b = await Engine.load(dirs.hf);
    expect(b.tokenizer.kind).toBe('hf');
    const messages = [
      { role: 'system' as const, content: 'Be brief.' },
      { role: 'user' as const, content: 'hello' },
    ];
    expect(b.chatPrompt(messages).text).toBe(a.chatPrompt(messages).text);
    expect(b.chatPrompt(messages).ids).toEqual(a.chatPrompt(messages).ids);
    const r = await b.chat(messages, { temperature: 0, maxTokens: 4 });
    expect(r.tokens.length).toBeGreaterThan(0);
  });

  it('a model without a template is IE_CHAT_NO_TEMPLATE, saying to use generate(); bad messages are IE_INVALID_OPTION', async () => {
    await using e = await Engine.load(dirs.plain);
    const err = await e.chat([{ role: 'user', content: 'hi' }]).catch((x: unknown) => x);
    expect(err).toMatchObject({ name: 'IeRuntimeError', code: 'IE_CHAT_NO_TEMPLATE' });
    expect((err as Error).message).toMatch(/has no chat template .*generate\(\).*tokenizer_config\.json has a chat_template/);
    // generate() is unaffected.
    expect((await e.complete('hi', { maxTokens: 2, temperature: 0 })).tokens.length).toBeGreaterThan(0);
    await using c = await Engine.load(dirs.chat);
    await expect(c.chat([])).rejects.toMatchObject({ code: 'IE_INVALID_OPTION' });
    await expect(c.chat([{ role: 'user', content: 3 as unknown as string }])).rejects.toMatchObject({
      code: 'IE_INVALID_OPTION',
      message: 'messages[0].content: must be a string',
    });
  });

  it('a conversation far longer than the context is IE_CONTEXT_OVERFLOW, not a stack overflow while its ids are gathered', async () => {
    await using c = await Engine.load(dirs.chat);
    const long = [{ role: 'user' as const, content: 'a b '.repeat(100_000) }];
    expect(c.chatPrompt(long).ids.length).toBeGreaterThan(150_000);
    // Refused before it is encoded: 400,000 characters cannot be fewer than 400,000 / maxCharsPerToken tokens.
    await expect(c.chat(long, { maxTokens: 1 })).rejects.toMatchObject({
      code: 'IE_CONTEXT_OVERFLOW',
      message: expect.stringMatching(/^the conversation is \d+ characters, at least \d+ tokens; the context holds/),
    });
  });
});

describe('common-prefix reuse of the KV cache', () => {
  it('a prompt extending a cached prompt prefills only its new tokens, with the logits of a fresh engine bit for bit (fp32)', async () => {
    await using e = await Engine.load(dirs.chat);
    const first = ids(20, 1);
    await e.complete(first, { maxTokens: 1, temperature: 0, reusePrefix: true });
    const second = [...first, ...ids(15, 2).slice(1)];
    const calls = spy(e);
    const r = await pieces(e, second, { maxTokens: 8, ignoreEos: true, reusePrefix: true });
    expect(r.g.metrics?.promptTokens).toBe(34);
    expect(r.g.metrics?.cachedTokens).toBe(20);
    // Prefill: one chunk of the 14 new tokens at position 20; then 7 decode steps.
    expect(calls.map((c) => [c.rows, c.pos])).toEqual([[14, 20], ...Array.from({ length: 7 }, (_, i) => [1, 34 + i])]);
    await using fresh = await Engine.load(dirs.chat);
    const fcalls = spy(fresh);
    const f = await pieces(fresh, second, { maxTokens: 8, ignoreEos: true });
    expect(f.g.metrics?.cachedTokens).toBe(0);
    expect(fcalls[0]).toMatchObject({ rows: 34, pos: 0 });
    expect(r.g.tokens).toEqual(f.g.tokens);
    expect(r.pieces.map((p) => p.logprob)).toEqual(f.pieces.map((p) => p.logprob));
    // The logits after the prefill and after every decode step: the rows of a prefill chunk do not depend on the chunk.
    expect(calls.length).toBe(fcalls.length);
    for (let i = 0; i < calls.length; i++) expect(calls[i].logits, `run ${i}`).toEqual(fcalls[i].logits);
  });

  it('a prompt extending the previous prompt and output (a second turn) prefills only the new tokens, with the tokens of a fresh engine', async () => {
    await using e = await Engine.load(dirs.chat);
    const first = ids(20, 1);
    const r1 = await pieces(e, first, { maxTokens: 8, ignoreEos: true, reusePrefix: true });
    expect(r1.g.metrics?.cachedTokens).toBe(0);
    // The cache holds the prompt and 7 of the 8 tokens: the last was sampled, never run.
    const second = [...first, ...r1.g.tokens, ...ids(7, 2).slice(1)];
    const calls = spy(e);
    const r2 = await pieces(e, second, { maxTokens: 8, ignoreEos: true, reusePrefix: true });
    const m = r2.g.metrics;
    expect(m?.promptTokens).toBe(34);
    expect(m?.cachedTokens).toBe(27);
    // Prefill: one chunk of the 7 new tokens at position 27; then 7 decode steps.
    expect(calls.map((c) => [c.rows, c.pos])).toEqual([[7, 27], ...Array.from({ length: 7 }, (_, i) => [1, 34 + i])]);
    await using fresh = await Engine.load(dirs.chat);
    const fcalls = spy(fresh);
    const f = await pieces(fresh, second, { maxTokens: 8, ignoreEos: true });
    expect(r2.g.tokens).toEqual(f.g.tokens);
    // Seven cached keys and values came from decode steps (one-row products), where the fresh engine
    // computed them in its prefill chunk: the sums run in another order, so the logits agree to
    // float rounding, not bit for bit.
    let worst = 0;
    for (let i = 0; i < calls.length; i++) {
      const a = calls[i].logits;
      const b = fcalls[i].logits;
      const scale = b.reduce((x, v) => Math.max(x, Math.abs(v)), 0);
      for (let j = 0; j < a.length; j++) worst = Math.max(worst, Math.abs(a[j] - b[j]) / scale);
    }
    expect(worst).toBeLessThan(1e-5);
  });

  it('keeps only the common part when a prompt diverges, runs the last token of a cached prompt again, and reuses nothing when asked not to', async () => {
    await using e = await Engine.load(dirs.chat);
    await using fresh = await Engine.load(dirs.chat);
    const a = ids(30, 3);
    await e.complete(a, { maxTokens: 4, temperature: 0, ignoreEos: true, reusePrefix: true });
    const b = [...a.slice(0, 10), ...ids(15, 4).slice(1)];
    const rb = await e.complete(b, { maxTokens: 6, temperature: 0, ignoreEos: true, reusePrefix: true });
    expect(rb.metrics.cachedTokens).toBe(10);
    expect(rb.tokens).toEqual((await fresh.complete(b, { maxTokens: 6, temperature: 0, ignoreEos: true })).tokens);
    // The same prompt again: all but its last token are in the cache.
    const again = await e.complete(b, { maxTokens: 6, temperature: 0, ignoreEos: true, reusePrefix: true });
    expect(again.metrics.cachedTokens).toBe(b.length - 1);
    expect(again.tokens).toEqual(rb.tokens);
    // generate() prefills everything by default.
    expect((await e.complete(b, { maxTokens: 1, temperature: 0 })).metrics.cachedTokens).toBe(0);
    // evaluate() leaves its tokens in the cache.
    await e.evaluate(a.slice(0, 12));
    const after = await e.complete(a, { maxTokens: 3, temperature: 0, ignoreEos: true, reusePrefix: true });
    expect(after.metrics.cachedTokens).toBe(12);
    expect(after.tokens).toEqual((await fresh.complete(a, { maxTokens: 3, temperature: 0, ignoreEos: true })).tokens);
  });

  it('an aborted generation leaves only what it ran in the cache', async () => {
    await using e = await Engine.load(dirs.chat, { maxBatch: 8 });
    await using fresh = await Engine.load(dirs.chat, { maxBatch: 8 });
    const a = ids(40, 5);
    const ac = new AbortController();
    const g = e.generate(a, { maxTokens: 10, temperature: 0, ignoreEos: true, signal: ac.signal });
    let n = 0;
    await expect(
      (async () => {
        for await (const _ of g) if (++n === 3) ac.abort();
      })(),
    ).rejects.toMatchObject({ code: 'IE_ABORTED' });
    const r = await e.complete(a, { maxTokens: 5, temperature: 0, ignoreEos: true, reusePrefix: true });
    // The prompt and the two tokens run before the abort.
    expect(r.metrics.cachedTokens).toBe(39);
    expect(r.tokens).toEqual((await fresh.complete(a, { maxTokens: 5, temperature: 0, ignoreEos: true })).tokens);
  });
});

describe('chat sessions', () => {
  it('keep the history, prefill only the new turn, and answer as a fresh engine given the whole conversation', async () => {
    await using e = await Engine.load(dirs.chat);
    const s = e.chatSession({ systemPrompt: 'Be brief.', temperature: 0, maxTokens: 6 });
    const r1 = await s.prompt('hello');
    const p1 = e.chatPrompt([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'hello' },
    ]);
    expect(r1.metrics.promptTokens).toBe(p1.ids.length);
    const calls = spy(e);
    const r2 = await s.prompt('and then?');
    expect(s.history).toEqual([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'hello' },
      { role: 'assistant', content: r1.final },
      { role: 'user', content: 'and then?' },
      { role: 'assistant', content: r2.final },
    ]);
    const p2 = e.chatPrompt(s.history.slice(0, 4));
    // What the cache held: turn 1's prompt and the answer's tokens that were run (all of them when
    // it ended at EOS; all but the last sampled one otherwise); reuse is their common prefix with turn 2's prompt.
    const held = [...p1.ids, ...(r1.stopReason === 'eos' ? r1.tokens : r1.tokens.slice(0, -1))];
    let common = 0;
    while (common < Math.min(held.length, p2.ids.length - 1) && held[common] === p2.ids[common]) common++;
    expect(common).toBeGreaterThanOrEqual(p1.ids.length);
    expect(r2.metrics.cachedTokens).toBe(common);
    // Prefill runs sit below the prompt's end; decode steps at and after it.
    const prefilled = calls.filter((c) => c.pos < p2.ids.length).reduce((a, c) => a + c.rows, 0);
    expect(prefilled).toBe(p2.ids.length - common);
    await using fresh = await Engine.load(dirs.chat);
    const f = await fresh.chat(s.history.slice(0, 4), { temperature: 0, maxTokens: 6 });
    expect(f.metrics.cachedTokens).toBe(0);
    expect(r2.tokens).toEqual(f.tokens);
    expect(r2.final).toBe(f.final);
    // reset() starts over.
    s.reset();
    expect(s.history).toEqual([]);
  });

  it('an aborted turn leaves the history as it was; concurrent prompts run one after the other', async () => {
    await using e = await Engine.load(dirs.chat);
    const s = e.chatSession({ temperature: 0, maxTokens: 3 });
    const ac = new AbortController();
    ac.abort();
    await expect(s.prompt('x', { signal: ac.signal })).rejects.toMatchObject({ code: 'IE_ABORTED' });
    expect(s.history).toEqual([]);
    const [a, b] = await Promise.all([s.prompt('one'), s.prompt('two')]);
    expect(s.history.map((m) => m.content)).toEqual(['one', a.final, 'two', b.final]);
  });
});

describe.skipIf(!HAS_STORIES)(`stories260K${STORIES_REASON}`, () => {
  it("prefix reuse tells run.c's story token for token; the llama2.c model has no chat template", async () => {
    const d = tmp();
    const src = await openLlama2c(join(STORIES_DIR, 'stories260K.bin'), join(STORIES_DIR, 'tok512.bin'));
    await exportIebin(src, d, { converter: 'test' });
    await src.close();
    const txt = readFileSync(join(STORIES_DIR, 'expected', 'greedy_once-upon-a-time_n256.txt'), 'utf8');
    const inputs = (txt.split('\n').find((l) => l.startsWith('input_token_per_position')) as string)
      .split(':')[1]
      .trim()
      .split(/\s+/)
      .map(Number);
    await using e = await Engine.load(d, { precision: 'fp32' });
    const a = await e.complete(inputs.slice(0, 5), { temperature: 0, maxTokens: 60, reusePrefix: true });
    expect([...inputs.slice(0, 5), ...a.tokens]).toEqual(inputs.slice(0, 65));
    // Continue from position 100: 64 positions come from the cache, 36 are prefilled.
    const b = await e.complete(inputs.slice(0, 100), { temperature: 0, maxTokens: 157, reusePrefix: true });
    expect(b.metrics.cachedTokens).toBe(64);
    expect([...inputs.slice(0, 100), ...b.tokens].slice(0, 256)).toEqual(inputs);
    await expect(e.chat([{ role: 'user', content: 'Once upon a time' }])).rejects.toMatchObject({ code: 'IE_CHAT_NO_TEMPLATE' });
  });
});
