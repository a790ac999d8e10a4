import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { exportIebin, synthModel } from '@ie/format';
import { attentionMaxPositions } from '@ie/kernels';
import {
  ContextOverflowError,
  Engine,
  GenerationAbortedError,
  IeRuntimeError,
  InvalidOptionError,
  type Piece,
  resolveEngineOptions,
} from './index.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'ie-rt-'));
let tiny = '';
let s15 = '';
beforeAll(async () => {
  tiny = tmp();
  await exportIebin(synthModel('tiny', { seed: 1 }), tiny, { converter: 'test' });
  s15 = tmp();
  await exportIebin(synthModel('stories15m', { seed: 1 }), s15, { converter: 'test' });
});

describe('generation', () => {
  it('streams pieces whose text adds up to the completion, with metrics', async () => {
    await using e = await Engine.load(tiny);
    const g = e.generate('abc', { temperature: 0, maxTokens: 12 });
    let text = '';
    const tokens: number[] = [];
    for await (const p of g) {
      text += p.text;
      if (p.token >= 0) tokens.push(p.token);
    }
    expect(text).toBe(g.text);
    expect(tokens).toEqual(g.tokens);
    expect(g.tokens.length).toBe(12);
    expect(g.stopReason).toBe('length');
    const m = g.metrics;
    expect(m?.promptTokens).toBe(e.tokenize('abc').length);
    expect(m?.generatedTokens).toBe(12);
    for (const k of ['ttftMs', 'prefillMs', 'decodeTokensPerSec', 'latencyP50Ms', 'latencyP95Ms', 'effectiveGBs'] as const)
      expect(Number.isFinite(m?.[k]), k).toBe(true);
    expect(m?.latencyP95Ms).toBeGreaterThanOrEqual(m?.latencyP50Ms as number);
    expect(m?.kvCacheBytes).toBe(2 * 2 * 512 * 32 * 4);
    expect(m?.peakRssBytes).toBeGreaterThan(1e6);
    expect(e.detokenize(g.tokens)).toBe(g.text);
  });

  it('samples reproducibly for a seed, and differently for another', async () => {
    await using e = await Engine.load(tiny);
    const a = await e.complete('the', { temperature: 1, topK: 0, topP: 1, minP: 0, seed: 42, maxTokens: 30 });
    const b = await e.complete('the', { temperature: 1, topK: 0, topP: 1, minP: 0, seed: 42, maxTokens: 30 });
    const c = await e.complete('the', { temperature: 1, topK: 0, topP: 1, minP: 0, seed: 43, maxTokens: 30 });
    expect(a.tokens).toEqual(b.tokens);
    expect(a.tokens).not.toEqual(c.tokens);
    // top-k 1 and a tiny top-p are greedy.
    const greedy = await e.complete('the', { temperature: 0, maxTokens: 10 });
    expect((await e.complete('the', { temperature: 2, topK: 1, seed: 1, maxTokens: 10 })).tokens).toEqual(greedy.tokens);
    expect((await e.complete('the', { temperature: 0.7, topK: 0, topP: 1e-9, minP: 0, seed: 1, maxTokens: 10 })).tokens).toEqual(
      greedy.tokens,
    );
  });

  it('a repetition penalty changes what repeats', async () => {
    await using e = await Engine.load(tiny);
    const plain = await e.complete('aaa', { temperature: 0, maxTokens: 40 });
    const penal = await e.complete('aaa', { temperature: 0, maxTokens: 40, repetitionPenalty: 5 });
    const distinct = (t: number[]) => new Set(t).size;
    expect(distinct(penal.tokens)).toBeGreaterThanOrEqual(distinct(plain.tokens));
    expect(penal.tokens).not.toEqual(plain.tokens);
  });

  it("OpenAI's presence and frequency penalties and logit bias reach the sampler; a biased id past the vocabulary is refused", async () => {
    await using e = await Engine.load(tiny);
    const plain = await e.complete('aaa', { temperature: 0, maxTokens: 40 });
    const freq = await e.complete('aaa', { temperature: 0, maxTokens: 40, frequencyPenalty: 2 });
    expect(freq.tokens).not.toEqual(plain.tokens);
    expect(new Set(freq.tokens).size).toBeGreaterThanOrEqual(new Set(plain.tokens).size);
    const pres = await e.complete('aaa', { temperature: 0, maxTokens: 40, presencePenalty: 2 });
    expect(pres.tokens).not.toEqual(plain.tokens);
    // +100 on one ordinary token: greedy decoding takes it at every step.
    const forced = await e.complete('aaa', { temperature: 0, maxTokens: 6, logitBias: { 300: 100 } });
    expect(forced.tokens).toEqual([300, 300, 300, 300, 300, 300]);
    // -100 on greedy's first token: never taken.
    const banned = await e.complete('aaa', { temperature: 0, maxTokens: 6, logitBias: { [plain.tokens[0]]: -100 } });
    expect(banned.tokens).not.toContain(plain.tokens[0]);
    await expect(e.complete('aaa', { maxTokens: 1, logitBias: { 512: 1 } })).rejects.toMatchObject({
      code: 'IE_INVALID_OPTION',
      option: 'logitBias[512]',
      message: 'logitBias[512]: token id 512 is outside 0..511',
    });
  });

  it('stops at a stop string and leaves it out', async () => {
    await using e = await Engine.load(tiny);
    const full = await e.complete('abc', { temperature: 0, maxTokens: 40 });
    const cut = full.text.slice(5, 8);
    expect(cut.length).toBe(3);
    const r = await e.complete('abc', { temperature: 0, maxTokens: 40, stop: [cut] });
    expect(r.stopReason).toBe('stop');
    expect(r.text).toBe(full.text.slice(0, full.text.indexOf(cut)));
    // Streamed with logprobs, for stops at every place in the text: each piece leaves with its
    // whole text, and the tokens that make up the stop string never leave (nor their logprobs).
    const pieceBytes = (pieces: Piece[]) => pieces.map((p) => p.text).join('');
    // Where each token's text starts, from a run without stops (each piece its own token's text).
    const spans: Array<[number, number]> = [];
    let offset = 0;
    for await (const p of e.generate('abc', { temperature: 0, maxTokens: 40 }))
      if (p.token >= 0) {
        spans.push([offset, p.text.length]);
        offset += p.text.length;
      }
    for (let at = 1; at + 2 <= full.text.length && at < 24; at++) {
      const stop = full.text.slice(at, at + 2);
      const want = full.text.slice(0, full.text.indexOf(stop));
      const pieces: Piece[] = [];
      for await (const p of e.generate('abc', { temperature: 0, maxTokens: 40, stop: [stop], logprobs: true })) pieces.push(p);
      expect(pieceBytes(pieces), JSON.stringify(stop)).toBe(want);
      expect(pieces.every((p) => p.token >= 0 && p.logprob !== undefined)).toBe(true);
      // The pieces are the first tokens of the full run: those whose text starts before the stop.
      expect(pieces.map((p) => p.token)).toEqual(full.tokens.slice(0, pieces.length));
      // Up to the last token with text before the stop (tokens without text leave with the text after them).
      const kept = spans.reduce((k, [start, n], i) => (n > 0 && start < want.length ? i + 1 : k), 0);
      expect(pieces.length, JSON.stringify(stop)).toBe(kept);
    }
  });

  it("keeps a multi-byte stop string's first bytes' pieces back too: none of its tokens leaves", async () => {
    await using e = await Engine.load(tiny);
    // A grammar spells the text; the synthetic vocabulary writes CJK characters as byte tokens.
    for (const [text, stop, before] of [
      ['a日本b', '本', 'a日'],
      ['x😀y', '😀', 'x'],
      ['p日q', 'q', 'p日'],
    ]) {
      const pieces: Piece[] = [];
      const g = e.generate('abc', { grammar: `root ::= "${text}"`, stop: [stop], temperature: 0, logprobs: true, maxTokens: 20 });
      for await (const p of g) pieces.push(p);
      expect(g.text, text).toBe(before);
      expect(pieces.map((p) => p.text).join(''), text).toBe(before);
      // Exactly the tokens that spell the text before the stop, each with its logprob.
      const spelled = e.tokenize(before, { bos: false });
      expect(pieces.length, text).toBe(spelled.length);
      expect(pieces.every((p) => p.logprob !== undefined)).toBe(true);
    }
  });

  it('reports logprobs that are log-probabilities', async () => {
    await using e = await Engine.load(tiny);
    const pieces = [];
    for await (const p of e.generate('abc', { temperature: 0, maxTokens: 5, logprobs: true })) pieces.push(p);
    for (const p of pieces.filter((x) => x.token >= 0)) expect(p.logprob).toBeLessThanOrEqual(0);
  });

  it("topLogprobs gives each step's likeliest tokens with the log-softmax of the logits, against a float64 reference", async () => {
    await using e = await Engine.load(tiny);
    const prompt = e.tokenize('abc');
    const pieces = [];
    for await (const p of e.generate(prompt, { temperature: 1.3, seed: 5, maxTokens: 6, logprobs: true, topLogprobs: 4, ignoreEos: true }))
      if (p.token >= 0) pieces.push(p);
    expect(pieces).toHaveLength(6);
    const rows = await e.evaluate([...prompt, ...pieces.map((p) => p.token)]);
    pieces.forEach((p, i) => {
      const x = Array.from(rows[prompt.length - 1 + i], Number);
      const mx = Math.max(...x);
      const lse = mx + Math.log(x.reduce((a, v) => a + Math.exp(v - mx), 0));
      const order = x.map((_, t) => t).sort((a, b) => x[b] - x[a] || a - b);
      expect(p.topLogprobs?.map((t) => t.token)).toEqual(order.slice(0, 4));
      for (const t of p.topLogprobs ?? []) expect(t.logprob).toBeCloseTo(x[t.token] - lse, 4);
      expect(p.logprob).toBeCloseTo(x[p.token] - lse, 4);
    });
    await expect(e.complete('abc', { logprobs: true, topLogprobs: 21 })).rejects.toMatchObject({
      code: 'IE_INVALID_OPTION',
      option: 'topLogprobs',
    });
    await expect(e.complete('abc', { topLogprobs: 2 })).rejects.toMatchObject({
      option: 'topLogprobs',
      message: 'topLogprobs: needs logprobs: true or promptLogprobs: true',
    });
  });

  it('runs concurrent calls one after the other, each with its own result', async () => {
    await using e = await Engine.load(tiny);
    const solo = await e.complete('xyz', { temperature: 0, maxTokens: 15 });
    const [a, b] = await Promise.all([
      e.complete('xyz', { temperature: 0, maxTokens: 15 }),
      e.complete('abc', { temperature: 0, maxTokens: 15 }),
    ]);
    expect(a.tokens).toEqual(solo.tokens);
    expect(b.tokens).toEqual((await e.complete('abc', { temperature: 0, maxTokens: 15 })).tokens);
  });
});

describe('errors', () => {
  it('aborts with GenerationAbortedError and stays usable', async () => {
    await using e = await Engine.load(tiny);
    const ac = new AbortController();
    let n = 0;
    const run = async () => {
      for await (const _ of e.generate('abc', { temperature: 0, maxTokens: 100, signal: ac.signal }))
        if (++n === 3) ac.abort(new Error('user cancelled'));
    };
    await expect(run()).rejects.toBeInstanceOf(GenerationAbortedError);
    await expect(run()).rejects.toMatchObject({ code: 'IE_ABORTED' });
    expect(n).toBe(3);
    expect((await e.complete('abc', { temperature: 0, maxTokens: 3 })).tokens.length).toBe(3);
  });

  it('refuses a prompt longer than the context, and stops generation when the cache is full', async () => {
    await using e = await Engine.load(tiny, { contextLength: 16 });
    const long = Array.from({ length: 17 }, (_, i) => 300 + i);
    expect(() => e.generate(long)).toThrow(ContextOverflowError);
    expect(() => e.generate(long)).toThrow(expect.objectContaining({ code: 'IE_CONTEXT_OVERFLOW', tokens: 17, contextLength: 16 }));
    const r = await e.complete(long.slice(0, 10), { temperature: 0, maxTokens: 100 });
    expect(r.stopReason).toBe('context');
    expect(r.tokens.length).toBe(7); // 10 prompt + 6 more fill 16 positions; the 7th is sampled from the last
    // A text the context cannot hold is refused before it is encoded: a 1 MiB prompt used to hold the
    // event loop while it was tokenized. A shorter one that does not fit gives its exact count.
    const per = e.model.tokenizer.maxCharsPerToken as number;
    expect(per).toBeGreaterThan(0);
    const encode = vi.spyOn(e.model.tokenizer, 'encode');
    expect(() => e.generate('once upon a time '.repeat(60_000))).toThrow(
      expect.objectContaining({
        code: 'IE_CONTEXT_OVERFLOW',
        message: expect.stringMatching(/^the prompt is 1020000 characters, at least \d+ tokens/),
      }),
    );
    expect(encode).not.toHaveBeenCalled();
    expect(() => e.generate('once upon a time '.repeat(4))).toThrow(
      expect.objectContaining({ message: expect.stringMatching(/^the prompt is \d+ tokens;/) }),
    );
    expect(encode).toHaveBeenCalledTimes(1); // the short one was encoded, then counted
    encode.mockRestore();
  });

  it('names invalid options', async () => {
    await using e = await Engine.load(tiny);
    expect(() => e.generate('x', { temperature: -1 })).toThrow(InvalidOptionError);
    expect(() => e.generate('x', { topP: 2 })).toThrow(/topP: must be a number in 0..1/);
    expect(() => e.generate('x', { maxTokens: 1.5 })).toThrow(expect.objectContaining({ code: 'IE_INVALID_OPTION' }));
    expect(() => e.generate([99999])).toThrow(/token id 99999/);
    expect(() => resolveEngineOptions({}, { IE_PRECISION: 'fp8' })).toThrow(/IE_PRECISION: must be one of fp32, fp16, bf16, int8w, int4w/);
    expect(() => resolveEngineOptions({ kvCache: 'f8' as 'f16' })).toThrow(InvalidOptionError);
    await expect(Engine.load(tiny, { threads: 0 })).rejects.toMatchObject({ code: 'IE_INVALID_OPTION' });
    // Strict mode takes 0 or 1, nothing else; with it a missing model is the same typed error.
    expect(resolveEngineOptions({}, { IE_REQUIRE_MODEL: '1' }).requireModel).toBe(true);
    expect(resolveEngineOptions({}, { IE_REQUIRE_MODEL: '0' }).requireModel).toBe(false);
    expect(() => resolveEngineOptions({}, { IE_REQUIRE_MODEL: 'yes' })).toThrow(/IE_REQUIRE_MODEL: must be one of 0, 1, got "yes"/);
    // The seed's PRECISION is the host maths (activations), IE_PRECISION the weights.
    expect(resolveEngineOptions({}, { PRECISION: 'fp32' }).activations).toBe('f32');
    expect(resolveEngineOptions({}, { PRECISION: 'int8' }).activations).toBe('int8');
    expect(resolveEngineOptions({}, { PRECISION: 'fp32', IE_ACTIVATIONS: 'int8' }).activations).toBe('int8');
    expect(resolveEngineOptions({}, {}).activations).toBe('auto');
    expect(() => resolveEngineOptions({}, { PRECISION: 'int4w' })).toThrow(
      /PRECISION: is the host maths' precision.*the weights' precision is IE_PRECISION/,
    );
    await expect(Engine.load(join(tiny, 'nope'), { requireModel: true })).rejects.toMatchObject({ code: 'IEBIN_NOT_FOUND' });
    // Options objects from plain JavaScript: named, not a TypeError from deep inside.
    for (const bad of [null, 'fast', [1]])
      await expect(Engine.load(tiny, bad as never)).rejects.toMatchObject({
        code: 'IE_INVALID_OPTION',
        option: 'options',
        message: expect.stringMatching(/^options: must be an object, got (null|string|an array)$/),
      });
    expect(() => e.model.sequence(null as never)).toThrow(expect.objectContaining({ code: 'IE_INVALID_OPTION', option: 'options' }));
  });

  it('refuses a KV cache larger than the machine before allocating any of it, and says what to lower', async () => {
    // 4096 slots x 2^24 positions of even the tiny model's cache is far past any machine's memory.
    const err = await Engine.load(tiny, { contextLength: 1 << 24, sequences: 4096 }).catch((x: unknown) => x);
    expect(err).toBeInstanceOf(IeRuntimeError);
    expect(err).toMatchObject({
      code: 'IE_KV_CACHE_TOO_LARGE',
      message: expect.stringMatching(
        /4096 sequences x 16777216 positions .*--context.*it needs [\d.]+ GiB \([\d.]+ GiB as f16\), this machine has [\d.]+ GiB/,
      ),
    });
    // The same model with a context it can hold still loads.
    await using ok = await Engine.load(tiny, { contextLength: 64, sequences: 2 });
    expect(ok.contextLength).toBe(64);
  });

  it('refuses a context longer than attention can score before allocating anything, and names the longest that fits', async () => {
    // 2^24 positions of the tiny model's f16 cache fit memory (4.3 GiB, allocated lazily), but not
    // one thread's attention scratch (1 GiB): the kernels would refuse it at compile time.
    const err = await Engine.load(tiny, { contextLength: 1 << 24, kvCache: 'f16', maxBatch: 64 }).catch((x: unknown) => x);
    expect(err).toMatchObject({
      code: 'IE_INVALID_OPTION',
      option: 'contextLength',
      message: expect.stringMatching(
        /16777216 positions are more than .* \(at most \d+ with 64-row steps.*lower contextLength \(--context/,
      ),
    });
    const most = Number(/at most (\d+)/.exec((err as Error).message)?.[1]);
    expect(most).toBe(attentionMaxPositions({ heads: 4, kvHeads: 2, headDim: 16, window: 0, queries: 64 }));
    expect(most).toBeGreaterThan(1 << 20);
    expect(most).toBeLessThan(1 << 24);
  });

  it("gives the format's typed error for a missing or corrupt model, and refuses converting up", async () => {
    await expect(Engine.load(join(tiny, 'nope'))).rejects.toMatchObject({ code: 'IEBIN_NOT_FOUND' });
    const bad = tmp();
    await exportIebin(synthModel('tiny', { seed: 2 }), bad, { converter: 'test' });
    const json = JSON.parse(readFileSync(join(bad, 'model.ie.json'), 'utf8'));
    json.tensors[2].bytes += 4;
    writeFileSync(join(bad, 'model.ie.json'), JSON.stringify(json));
    await expect(Engine.load(bad)).rejects.toMatchObject({ code: 'IEBIN_SIZE_MISMATCH' });
    const q = tmp();
    await exportIebin(synthModel('tiny', { seed: 2 }), q, { converter: 'test' });
    {
      await using e4 = await Engine.load(q, { precision: 'int4w' });
      expect(e4.precision).toBe('int4w');
    }
    // A file whose projections are int4 cannot be run at fp32.
    const { packInt4Groupwise } = await import('@ie/quant');
    const src = synthModel('tiny', { seed: 2 });
    const q4dir = tmp();
    await exportIebin(src, q4dir, {
      converter: 'test',
      transform: async (t, role, bytes) => {
        if (role !== 'projection') return null;
        const v = new Float32Array(bytes.slice().buffer);
        const p = packInt4Groupwise(v, t.shape[0], t.shape[1], { scheme: 'symmetric', groupSize: 32 });
        return { dtype: 'q4', quant: p.quant, bytes: p.bytes };
      },
    });
    await expect(Engine.load(q4dir, { precision: 'fp32' })).rejects.toMatchObject({ code: 'IE_PRECISION_UNSUPPORTED' });
    await using e = await Engine.load(q4dir);
    expect(e.precision).toBe('int4w');
  });

  it('runs a mixed-precision export as exported; --precision converts only the matrices above it', async () => {
    // int8 (per row) attention, int4 (g32) MLP, f32 embeddings and classifier: what a policy with two schemes exports.
    const { packInt4Groupwise, packInt8 } = await import('@ie/quant');
    const dir = tmp();
    await exportIebin(synthModel('tiny', { seed: 3 }), dir, {
      converter: 'test',
      transform: async (t, role, bytes) => {
        if (role !== 'projection') return null;
        const v = new Float32Array(bytes.slice().buffer);
        const [rows, cols] = t.shape;
        if (t.name.includes('.attn_')) {
          const p = packInt8(v, rows, cols, { granularity: 'per_row' });
          return { dtype: 'i8', quant: p.quant, bytes: p.bytes };
        }
        const p = packInt4Groupwise(v, rows, cols, { scheme: 'symmetric', groupSize: 32 });
        return { dtype: 'q4', quant: p.quant, bytes: p.bytes };
      },
    });
    const stored = await Engine.load(dir).then(async (e) => {
      const r = { info: e.info(), notices: [...e.notices], out: await e.complete('abc', { temperature: 0, maxTokens: 6 }) };
      await e.dispose();
      return r;
    });
    expect(stored.info.precision).toBe('mixed');
    expect(stored.info.precisionMix).toEqual({ int8w: 8, int4w: 6 });
    expect(stored.notices).toEqual([]);
    expect(stored.out.tokens).toHaveLength(6);
    {
      // At int4w the eight int8 matrices are converted, the int4 ones kept.
      await using e = await Engine.load(dir, { precision: 'int4w' });
      expect(e.info().precisionMix).toEqual({ int4w: 14 });
      expect(e.precision).toBe('int4w');
      expect(e.notices.join(' ')).toMatch(/^8 matrices converted from mixed to int4w/);
    }
    {
      // At int8w the int4 matrices stay as they are: precision never converts up.
      await using e = await Engine.load(dir, { precision: 'int8w' });
      expect(e.info().precisionMix).toEqual({ int8w: 8, int4w: 6 });
      expect(e.notices.join(' ')).toMatch(/6 matrices stay as stored \(int4w, below int8w\)/);
      const r = await e.complete('abc', { temperature: 0, maxTokens: 6 });
      expect(r.tokens).toEqual(stored.out.tokens);
    }
    await expect(Engine.load(dir, { precision: 'fp16' })).rejects.toMatchObject({ code: 'IE_PRECISION_UNSUPPORTED' });
  });

  it('refuses work after dispose', async () => {
    const e = await Engine.load(tiny);
    await e.dispose();
    expect(() => e.generate('x')).toThrow(IeRuntimeError);
    expect(() => e.tokenize('x')).toThrow(expect.objectContaining({ code: 'IE_DISPOSED' }));
  });
});

describe('the event loop stays free', () => {
  it('a 5 ms timer keeps firing on time while a generation runs', async () => {
    await using e = await Engine.load(s15, { threads: 2 });
    const gaps: number[] = [];
    let last = performance.now();
    const timer = setInterval(() => {
      const now = performance.now();
      gaps.push(now - last);
      last = now;
    }, 5);
    const t0 = performance.now();
    // Enough tokens that the run outlasts many timer periods on a fast machine too.
    const r = await e.complete('once', { temperature: 0, maxTokens: 200, ignoreEos: true });
    const elapsed = performance.now() - t0;
    clearInterval(timer);
    expect(r.tokens.length).toBe(200);
    expect(elapsed).toBeGreaterThan(100); // long enough for the timer to matter
    expect(gaps.length).toBeGreaterThan(elapsed / 5 / 2);
    gaps.sort((a, b) => a - b);
    expect(gaps[Math.floor(gaps.length * 0.95)]).toBeLessThan(25);
  });
});

describe('models larger than one JavaScript view', () => {
  it('loads and steps a 4.4 GB TinyLlama-shaped model (a sparse file: all-zero weights)', async () => {
    const { SYNTH_PRESETS, expectedTensors, tensorByteSize, alignUp, formatHeaderJson, synthVocabulary } = await import('@ie/format');
    const { closeSync, ftruncateSync, openSync } = await import('node:fs');
    const cfg = SYNTH_PRESETS['tinyllama-1.1b'].config;
    let off = 0n;
    const tensors = expectedTensors(cfg).map((e) => {
      const offset = alignUp(off);
      const bytes = tensorByteSize('f32', e.shape, null);
      off = offset + bytes;
      return {
        name: e.name,
        dtype: 'f32' as const,
        shape: e.shape,
        offset: Number(offset),
        bytes: Number(bytes),
        layout: { order: 'row_major' as const, block_k: 0 },
        quant: null,
        crc32: '00000000',
      };
    });
    const d = tmp();
    writeFileSync(
      join(d, 'model.ie.json'),
      formatHeaderJson({
        format: 'iebin',
        version: 1,
        config: cfg,
        tokenizer: synthVocabulary(cfg.vocab_size),
        provenance: { converter: 't', source_format: 'synth', sources: [] },
        bin: { file: 'model.ie.bin', bytes: Number(off), alignment: 64 },
        tensors,
        quantization: null,
      }),
    );
    const fd = openSync(join(d, 'model.ie.bin'), 'w');
    ftruncateSync(fd, Number(off));
    closeSync(fd);
    expect(Number(off)).toBeGreaterThan(4 * 2 ** 30);
    await using e = await Engine.load(d, { contextLength: 64 });
    const r = await e.complete([1, 2, 3], { temperature: 0, maxTokens: 2 });
    expect(r.tokens).toEqual([0, 0]); // zero weights: zero logits, argmax 0
  });
});
