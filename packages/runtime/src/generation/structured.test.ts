/**
 * Structured output through the generation loop: Engine.complete/generate/chat and BatchScheduler
 * with jsonSchema / grammar / json, on a random-weight synthetic llama and on stories260K.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { exportIebin, openLlama2c, synthModel, SYNTH_PRESETS } from '@ie/format';
import { HAS_STORIES, STORIES_DIR, STORIES_REASON } from '@ie/testing';
import { BatchScheduler, Engine, GrammarError, Model, SchemaError, StructuredOutputError } from '../index.js';
import { compileGrammar } from '../structured/grammar.js';
import { GrammarMatcher, DEAD } from '../structured/matcher.js';
import { validate } from '../structured/test-validate.js';
import { Decoding } from './decoding.js';

/** Bounded schemas (strings with maxLength, arrays with maxItems): a random model ends them in a few hundred tokens. */
const SCHEMAS: Array<[string, object]> = [
  [
    'person',
    {
      type: 'object',
      properties: {
        name: { type: 'string', minLength: 1, maxLength: 8 },
        age: { type: 'integer' },
        tags: { type: 'array', items: { type: 'string', maxLength: 4 }, maxItems: 2 },
      },
      required: ['name', 'age'],
    },
  ],
  [
    'enum, boolean, null, const',
    {
      type: 'object',
      properties: { color: { enum: ['red', 'green', 'blue'] }, ok: { type: 'boolean' }, nothing: { type: 'null' }, v: { const: 2 } },
      required: ['color', 'ok', 'nothing', 'v'],
    },
  ],
  ['array of numbers', { type: 'array', items: { type: 'number' }, minItems: 1, maxItems: 3 }],
  [
    'tagged union with a date and a pattern',
    {
      anyOf: [
        { type: 'object', properties: { kind: { const: 'day' }, date: { type: 'string', format: 'date' } }, required: ['kind', 'date'] },
        {
          type: 'object',
          properties: { kind: { const: 'code' }, code: { type: 'string', pattern: '^[A-Z]{2}-\\d{3}$' } },
          required: ['kind', 'code'],
        },
      ],
    },
  ],
];

/** `yes` / `no` followed by digits: whether `text` is a sentence of GRAMMAR. */
const GRAMMAR = 'root ::= ("yes" | "no") " " [0-9]{1,3} ("," [0-9]{1,3}){0,2} "."\n';
function matchesGrammar(gbnf: string, text: string): boolean {
  const m = new GrammarMatcher(compileGrammar(gbnf));
  const s = m.stepBytes(m.initial, new TextEncoder().encode(text));
  return s !== DEAD && m.accepting(s);
}

const SEEDS = [1, 2, 3, 4, 5];

describe('structured output through the generation loop (synthetic llama, vocab 512, random weights)', () => {
  let dir: string;
  let engine: Engine;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ie-structured-'));
    await exportIebin(synthModel(SYNTH_PRESETS.tiny.config, { seed: 7 }), dir, { converter: 'test' });
    engine = await Engine.load(dir, { threads: 2 });
  });
  afterAll(async () => {
    await engine.dispose();
  });

  it.each(SCHEMAS)(
    'jsonSchema (%s): sampled at temperature 0.8, every seed parses and validates, ending at the closing character',
    async (_n, schema) => {
      for (const seed of SEEDS) {
        const r = await engine.complete('Once upon a time', { jsonSchema: schema, temperature: 0.8, seed, maxTokens: 480 });
        expect(r.stopReason, r.text).toBe('eos');
        const value = JSON.parse(r.text);
        expect(validate(schema as never, value), r.text).toEqual([]);
        expect(r.metrics.generatedTokens).toBe(r.tokens.length);
      }
    },
  );

  it('json: true gives a JSON object', async () => {
    let ended = 0;
    // A random model either closes the object at once or wanders in a string to maxTokens: 4 of these 8 close it.
    for (const seed of [...SEEDS, 6, 7, 8]) {
      const r = await engine.complete('Once', { json: true, temperature: 0.8, seed, maxTokens: 480, topK: 8 });
      // Any JSON has unbounded strings: a random model may still be in one at maxTokens (it never ends early, though).
      if (r.stopReason === 'length') {
        expect(r.tokens.length).toBe(480);
        expect(r.text.startsWith('{')).toBe(true);
        continue;
      }
      ended++;
      expect(r.stopReason).toBe('eos');
      const v = JSON.parse(r.text);
      expect(typeof v === 'object' && v !== null && !Array.isArray(v)).toBe(true);
    }
    expect(ended).toBeGreaterThanOrEqual(3);
    // Greedy: deterministic, and the same object every time.
    const a = await engine.complete('Once', { json: true, temperature: 0, maxTokens: 480 });
    expect(a.stopReason).toBe('eos');
    expect(typeof JSON.parse(a.text)).toBe('object');
  });

  it('grammar: the output is a sentence of the grammar', async () => {
    for (const seed of SEEDS) {
      const r = await engine.complete('Once', { grammar: GRAMMAR, temperature: 0.8, seed, maxTokens: 64 });
      expect(matchesGrammar(GRAMMAR, r.text), r.text).toBe(true);
      expect(r.text).toMatch(/^(yes|no) \d{1,3}(,\d{1,3}){0,2}\.$/);
      expect(r.stopReason).toBe('eos');
    }
  });

  it('greedy constrained output is deterministic (the masked logits decide, not the kernels argmax)', async () => {
    const schema = SCHEMAS[0][1];
    const a = await engine.complete('Once upon a time', { jsonSchema: schema, temperature: 0, maxTokens: 480 });
    const b = await engine.complete('Once upon a time', { jsonSchema: schema, temperature: 0, maxTokens: 480 });
    expect(b.text).toBe(a.text);
    expect(b.tokens).toEqual(a.tokens);
    expect(validate(schema as never, JSON.parse(a.text))).toEqual([]);
    // The same seed at temperature 0.8 twice: the same text.
    const c = await engine.complete('Once upon a time', { jsonSchema: schema, temperature: 0.8, seed: 11, maxTokens: 480 });
    const d = await engine.complete('Once upon a time', { jsonSchema: schema, temperature: 0.8, seed: 11, maxTokens: 480 });
    expect(d.tokens).toEqual(c.tokens);
  });

  it('logprobs are the unconstrained model’s (taken before the mask), and finite', async () => {
    const g = engine.generate('Once', { json: true, temperature: 0, maxTokens: 12, logprobs: true });
    const lps: number[] = [];
    for await (const p of g) if (p.token >= 0) lps.push(p.logprob as number);
    const alone = await engine.evaluate([...engine.tokenize('Once'), ...g.tokens.slice(0, -1)]);
    const first = alone[engine.tokenize('Once').length - 1];
    let mx = -Infinity;
    for (const v of first) mx = Math.max(mx, v);
    let s = 0;
    for (const v of first) s += Math.exp(v - mx);
    expect(lps[0]).toBeCloseTo(first[g.tokens[0]] - (mx + Math.log(s)), 4);
    for (const lp of lps) expect(Number.isFinite(lp) && lp <= 0).toBe(true);
  });

  it('errors come from the call itself, before any prefill: bad schema, bad grammar, two options, ignoreEos', () => {
    const runs = vi.spyOn(engine.model, 'run');
    const bad = (o: object) => {
      try {
        engine.generate('Once', o);
      } catch (e) {
        return e as { code: string; name: string };
      }
      throw new Error('no error');
    };
    expect(bad({ jsonSchema: { type: 'object', properties: { a: { type: 'integer', minimum: 3 } } } })).toMatchObject({
      name: 'SchemaError',
      code: 'IE_SCHEMA_UNSUPPORTED',
    });
    expect(bad({ jsonSchema: { type: 'array', minItems: 3, maxItems: 1 } })).toMatchObject({ code: 'IE_SCHEMA_INVALID' });
    expect(bad({ jsonSchema: { $ref: 'http://x/y.json' } })).toMatchObject({ code: 'IE_SCHEMA_BAD_REF' });
    expect(bad({ grammar: 'root ::= "a' })).toBeInstanceOf(GrammarError);
    expect(bad({ grammar: 'root ::= "a"', json: true })).toMatchObject({ name: 'InvalidOptionError', code: 'IE_INVALID_OPTION' });
    expect(bad({ jsonSchema: {}, grammar: 'root ::= "a"' })).toMatchObject({ code: 'IE_INVALID_OPTION' });
    expect(bad({ json: true, ignoreEos: true })).toMatchObject({ code: 'IE_INVALID_OPTION', option: 'ignoreEos' });
    expect(bad({ grammar: 42 })).toMatchObject({ code: 'IE_INVALID_OPTION', option: 'grammar' });
    expect(bad({ jsonSchema: 'string' })).toBeInstanceOf(SchemaError);
    // json: false is no constraint at all.
    expect(() => engine.generate('Once', { json: false, grammar: 'root ::= "a"' })).not.toThrow();
    // None of these reached the model.
    expect(runs).not.toHaveBeenCalled();
    runs.mockRestore();
  });

  it('stop tokens given by the caller are allowed only when the output is complete', async () => {
    // Every letter token as a stop token: the mask keeps them out until the object is complete.
    const letters = Array.from({ length: 26 }, (_, i) => engine.tokenize(String.fromCharCode(97 + i), { bos: false })).flat();
    const schema = SCHEMAS[1][1];
    const r = await engine.complete('Once', { jsonSchema: schema, stopTokens: letters, temperature: 0.8, seed: 3, maxTokens: 480 });
    expect(validate(schema as never, JSON.parse(r.text))).toEqual([]);
  });

  it('through BatchScheduler: two concurrent requests with different schemas each validate, and match what each gets alone', async () => {
    const model = await Model.open(dir, { sequences: 2, threads: 2 });
    try {
      const sched = new BatchScheduler(model);
      const [s1, s2] = [SCHEMAS[0][1], SCHEMAS[2][1]];
      const o1 = { jsonSchema: s1, temperature: 0.8, seed: 21, maxTokens: 480 };
      const o2 = { jsonSchema: s2, temperature: 0.8, seed: 22, maxTokens: 480 };
      const [a, b] = await Promise.all([sched.generate('Once upon a time', o1).complete(), sched.generate('Once', o2).complete()]);
      expect(validate(s1 as never, JSON.parse(a.text)), a.text).toEqual([]);
      expect(validate(s2 as never, JSON.parse(b.text)), b.text).toEqual([]);
      expect([a.stopReason, b.stopReason]).toEqual(['eos', 'eos']);
      expect(sched.stats().steps).toBeLessThan(a.tokens.length + b.tokens.length + 2);
      // Same tokens as each alone on the engine (batched rows are each bit for bit their lone step).
      expect(a.tokens).toEqual((await engine.complete('Once upon a time', o1)).tokens);
      expect(b.tokens).toEqual((await engine.complete('Once', o2)).tokens);
      // A request whose token cannot be chosen (a constraint at a dead end) fails alone; the other goes on.
      const accept = Decoding.prototype.accept;
      const spy = vi.spyOn(Decoding.prototype, 'accept').mockImplementation(function (this: Decoding, ...a) {
        if (this.request.options.seed === 666 && this.generated === 3)
          throw new StructuredOutputError('IE_CONSTRAINT_DEAD_END', 'no token of the vocabulary can continue');
        return accept.apply(this, a);
      });
      try {
        const [dead, alive] = await Promise.allSettled([
          sched.generate('Once', { ...o2, seed: 666 }).complete(),
          sched.generate('Once upon a time', o1).complete(),
        ]);
        expect(dead).toMatchObject({ status: 'rejected', reason: { code: 'IE_CONSTRAINT_DEAD_END' } });
        expect(alive.status === 'fulfilled' && alive.value.tokens).toEqual(a.tokens);
      } finally {
        spy.mockRestore();
      }
      // A bad schema is refused by the scheduler's generate() too.
      expect(() => sched.generate('Once', { jsonSchema: { type: 'object', minProperties: 1 } })).toThrow(SchemaError);
      await sched.close();
    } finally {
      await model.dispose();
    }
  });
});

describe.skipIf(!HAS_STORIES)(`structured output on stories260K${STORIES_REASON}`, () => {
  let engine: Engine;
  beforeAll(async () => {
    const d = mkdtempSync(join(tmpdir(), 'ie-structured-stories-'));
    const src = await openLlama2c(join(STORIES_DIR, 'stories260K.bin'), join(STORIES_DIR, 'tok512.bin'));
    await exportIebin(src, d, { converter: 'test' });
    await src.close();
    engine = await Engine.load(d, { precision: 'fp32', threads: 2 });
  });
  afterAll(async () => {
    await engine?.dispose();
  });

  it.each(SCHEMAS)('jsonSchema (%s): every seed parses and validates', async (_n, schema) => {
    for (const seed of SEEDS) {
      const r = await engine.complete('Once upon a time', { jsonSchema: schema, temperature: 0.8, seed, maxTokens: 480 });
      expect(r.stopReason, r.text).toBe('eos');
      expect(validate(schema as never, JSON.parse(r.text)), r.text).toEqual([]);
    }
  });

  it('grammar, and greedy determinism', async () => {
    for (const seed of SEEDS) {
      const r = await engine.complete('Once upon a time', { grammar: GRAMMAR, temperature: 0.8, seed, maxTokens: 64 });
      expect(matchesGrammar(GRAMMAR, r.text), r.text).toBe(true);
    }
    const schema = SCHEMAS[0][1];
    const a = await engine.complete('Once upon a time', { jsonSchema: schema, temperature: 0, maxTokens: 480 });
    const b = await engine.complete('Once upon a time', { jsonSchema: schema, temperature: 0, maxTokens: 480 });
    expect(b.tokens).toEqual(a.tokens);
    expect(validate(schema as never, JSON.parse(a.text)), a.text).toEqual([]);
  });
});
