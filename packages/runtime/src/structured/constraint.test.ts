import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { openLlama2c, synthGpt2TokenizerJson, synthHarmonyVocabulary, synthHfTokenizerJson, synthVocabulary } from '@ie/format';
import { HAS_STORIES, STORIES_DIR, STORIES_REASON } from '@ie/testing';
import { HfTokenizer } from '../tokenizer/hf.js';
import { Llama2cTokenizer } from '../tokenizer/llama2c.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { type ConstraintSpec, type ConstraintVocabulary, constraintVocabulary, createConstraint } from './constraint.js';
import type { StructuredOutputError } from './errors.js';
import { compileGrammar } from './grammar.js';
import { DEAD, GrammarMatcher } from './matcher.js';
import { llamaLikeVocabulary, rng } from './test-vocab.js';
import { validate } from './test-validate.js';

const enc = new TextEncoder();
const dec = new TextDecoder();

/**
 * A random "model": uniform random logits, plus a pressure that grows with the step count on
 * tokens that close something (last byte " ] or }, no opener) and on stop tokens, so unbounded
 * grammars end in a few hundred steps. Returns the text and ids; throws if the step cap is hit.
 */
function generate(vocab: ConstraintVocabulary, spec: ConstraintSpec, seed: number, cap = 1500): { text: string; ids: number[] } {
  const c = createConstraint(vocab, spec);
  const r = rng(seed);
  const stops = new Set(vocab.stopTokens);
  const closes = vocab.tokens.map((b, i) => {
    if (stops.has(i)) return 1;
    if (b.length === 0) return 0;
    const last = b[b.length - 1];
    return (last === 0x22 || last === 0x5d || last === 0x7d) && !b.includes(0x2c) && !b.includes(0x5b) && !b.includes(0x7b) ? 1 : 0;
  });
  const logits = new Float32Array(vocab.tokens.length);
  const ids: number[] = [];
  const bytes: number[] = [];
  for (let step = 0; step < cap; step++) {
    const push = Math.max(0, step - 15) * 0.3;
    for (let i = 0; i < logits.length; i++) logits[i] = r() * 3 + closes[i] * push;
    c.mask(logits);
    let best = -1;
    for (let i = 0; i < logits.length; i++) if (logits[i] !== Number.NEGATIVE_INFINITY && (best < 0 || logits[i] > logits[best])) best = i;
    if (stops.has(best)) {
      expect(c.canEnd()).toBe(true);
      return { text: dec.decode(Uint8Array.from(bytes)), ids };
    }
    c.accept(best);
    ids.push(best);
    bytes.push(...vocab.tokens[best]);
    if (c.done()) return { text: dec.decode(Uint8Array.from(bytes)), ids };
  }
  throw new Error(`seed ${seed}: no end after ${cap} steps: ${dec.decode(Uint8Array.from(bytes)).slice(0, 200)}`);
}

const SCHEMAS: Array<{ what: string; schema: Record<string, unknown> }> = [
  {
    what: 'a person (required, optional, bounded string, integer, array)',
    schema: {
      type: 'object',
      properties: {
        name: { type: 'string', maxLength: 20 },
        age: { type: 'integer' },
        email: { type: 'string' },
        tags: { type: 'array', items: { type: 'string', maxLength: 8 }, maxItems: 3 },
      },
      required: ['name', 'age'],
    },
  },
  {
    what: 'a tagged union with enums, nulls, numbers and booleans',
    schema: {
      oneOf: [
        { type: 'object', properties: { kind: { const: 'circle' }, r: { type: 'number' } }, required: ['kind', 'r'] },
        {
          type: 'object',
          properties: { kind: { const: 'label' }, color: { enum: ['red', 'green', null] }, bold: { type: 'boolean' } },
          required: ['kind', 'color'],
        },
      ],
    },
  },
  {
    what: 'recursive $defs with formats and patterns',
    schema: {
      $defs: {
        task: {
          type: 'object',
          properties: {
            id: { type: 'string', format: 'uuid' },
            due: { type: 'string', format: 'date' },
            code: { type: 'string', pattern: '^[A-Z]{2}-\\d{1,3}$' },
            sub: { type: 'array', items: { $ref: '#/$defs/task' }, maxItems: 2 },
          },
          required: ['id', 'code'],
        },
      },
      type: 'object',
      properties: { tasks: { type: 'array', items: { $ref: '#/$defs/task' }, minItems: 1, maxItems: 2 } },
      required: ['tasks'],
    },
  },
  {
    what: 'a map of unbounded strings and nested free-form values',
    schema: {
      type: 'object',
      properties: { labels: { type: 'object', additionalProperties: { type: 'string' } }, extra: {} },
      required: ['labels', 'extra'],
    },
  },
];

function checkJson(schema: Record<string, unknown>, text: string): void {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new Error(`not JSON (${(e as Error).message}): ${text}`);
  }
  expect(validate(schema, v), text).toEqual([]);
}

describe('token constraint: masks are exactly the tokens the grammar allows', () => {
  const grammars = [
    'root ::= "{" ws ("\\"" [a-z]* "\\"" ws ":" ws [0-9]+) "}"\nws ::= [ ]?',
    'root ::= ("ab" | "a" "é"+ | "日本")* "!"',
    'root ::= [^"\\\\]{0,3} "\\"" ("x" | "yy")?',
  ];
  // Token pieces drawn from bytes that matter (quotes, digits, a multi-byte character split anywhere).
  const atoms = ['{', '}', '"', ':', ' ', 'a', 'b', 'z', '1', '9', '!', 'x', 'y', 'é', '日', '本', '\\'];
  const token = fc
    .array(fc.constantFrom(...atoms), { minLength: 1, maxLength: 4 })
    .chain((parts) => {
      const b = enc.encode(parts.join(''));
      return fc.tuple(fc.nat(b.length - 1), fc.nat(b.length)).map(([i, j]) => (i < j ? b.slice(i, j) : b.slice(j, i + 1)));
    })
    .filter((b) => b.length > 0);

  it('equals a brute-force check of every token (fast-check, random vocabularies and walks)', () => {
    fc.assert(
      fc.property(
        fc.array(token, { minLength: 5, maxLength: 60 }),
        fc.constantFrom(...grammars),
        fc.array(fc.nat(), { maxLength: 12 }),
        (toks, g, picks) => {
          const tokens = [new Uint8Array(0), ...toks];
          const vocab = { tokens, stopTokens: [0] };
          const c = createConstraint(vocab, { grammar: g });
          const m = new GrammarMatcher(compileGrammar(g));
          let state = m.initial;
          for (const pick of picks) {
            const logits = new Float32Array(tokens.length);
            const expected = tokens.map((t, id) => (id === 0 ? m.accepting(state) : m.stepBytes(state, t) !== DEAD));
            if (!expected.includes(true)) {
              // Nothing in this vocabulary continues the grammar: a coded error, not an all -Infinity row.
              expect(() => c.mask(logits)).toThrow(expect.objectContaining({ code: 'IE_CONSTRAINT_DEAD_END' }));
              break;
            }
            c.mask(logits);
            for (let id = 0; id < tokens.length; id++)
              expect(logits[id] === 0, `token ${JSON.stringify(dec.decode(tokens[id]))}`).toBe(expected[id]);
            const allowed = [...logits.keys()].filter((i) => i > 0 && logits[i] === 0);
            if (allowed.length === 0) break;
            const id = allowed[pick % allowed.length];
            c.accept(id);
            state = m.stepBytes(state, tokens[id]);
          }
        },
      ),
      { numRuns: 150, seed: 13 },
    );
  });

  it('EOS only when complete; done() when nothing may follow; a disallowed token is refused with a code', () => {
    const v = llamaLikeVocabulary(4000);
    const id = (s: string) => 3 + s.charCodeAt(0); // the byte tokens
    const c = createConstraint(v, { grammar: 'root ::= "[" [0-9]+ "]" | "ok"' });
    const logits = new Float32Array(4000);
    c.mask(logits);
    expect(logits[2]).toBe(Number.NEGATIVE_INFINITY); // </s>
    expect(logits[id('[')]).toBe(0);
    expect(logits[id('"')]).toBe(Number.NEGATIVE_INFINITY);
    expect(() => c.accept(id('"'))).toThrow(expect.objectContaining({ code: 'IE_CONSTRAINT_REJECTED' }));
    expect(() => c.accept(2)).toThrow(expect.objectContaining({ code: 'IE_CONSTRAINT_REJECTED' }));
    c.accept(id('['));
    c.accept(id('1'));
    expect(c.done()).toBe(false);
    const f = c.fork();
    c.accept(id(']'));
    expect([c.canEnd(), c.done()]).toEqual([true, true]);
    expect(f.done()).toBe(false); // the fork stayed where it was
    expect(f.allows(id('9'))).toBe(true);
    const d = createConstraint(v, { grammar: 'root ::= "a" [0-9]*' });
    d.accept(id('a'));
    expect([d.canEnd(), d.done()]).toEqual([true, false]); // may end, may go on
    d.mask(logits.fill(0));
    expect(logits[2]).toBe(0);
    d.accept(2);
    expect(d.done()).toBe(true);
  });

  it('refuses bad options and vocabularies with codes', () => {
    const v = { tokens: [Uint8Array.of(0x61)], stopTokens: [] };
    const code = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return (e as StructuredOutputError).code;
      }
      return 'none';
    };
    expect(code(() => createConstraint(v, {} as never))).toBe('IE_CONSTRAINT_OPTIONS');
    expect(code(() => createConstraint(v, { grammar: 'root ::= "a"', json: true } as never))).toBe('IE_CONSTRAINT_OPTIONS');
    expect(code(() => createConstraint({ kind: 'hf', stopTokens: new Set() } as unknown as Tokenizer, { json: true }))).toBe(
      'IE_CONSTRAINT_VOCAB',
    );
    const c = createConstraint(v, { grammar: 'root ::= "b"' });
    expect(code(() => c.mask(new Float32Array(1)))).toBe('IE_CONSTRAINT_DEAD_END');
  });
});

describe('random-logit generation always parses and validates (32,000-token Llama-like vocabulary)', () => {
  const vocab = llamaLikeVocabulary(32000);
  for (const { what, schema } of SCHEMAS) {
    it(what, () => {
      for (let seed = 1; seed <= 12; seed++) checkJson(schema, generate(vocab, { jsonSchema: schema }, seed).text);
    });
  }
  it('{ json: true }: any JSON object', () => {
    for (let seed = 1; seed <= 12; seed++) {
      const { text } = generate(vocab, { json: true }, seed);
      expect(typeof JSON.parse(text)).toBe('object');
      expect(text.startsWith('{')).toBe(true);
    }
  });
  it('a GBNF grammar: every output is a sentence of it', () => {
    const g = 'root ::= item ("; " item){0,3}\nitem ::= [A-Z] [a-z]{1,6} "=" ([0-9]{1,3} | "yes" | "no")';
    const m = new GrammarMatcher(compileGrammar(g));
    for (let seed = 1; seed <= 12; seed++) {
      const { text } = generate(vocab, { grammar: g }, seed);
      expect(m.matches(text), text).toBe(true);
    }
  });
});

describe('real tokenizers: token bytes match decode, outputs validate', () => {
  const run = (t: Tokenizer, seeds: number) => {
    const vocab = constraintVocabulary(t);
    for (const { schema } of SCHEMAS) {
      for (let seed = 1; seed <= seeds; seed++) {
        const { text, ids } = generate(vocab, { jsonSchema: schema }, seed, 4000);
        expect(t.decode(ids)).toBe(text);
        checkJson(schema, text);
      }
    }
  };
  it.skipIf(!HAS_STORIES)(`stories260K's llama2.c tokenizer (512 pieces)${STORIES_REASON}`, async () => {
    const src = await openLlama2c(join(STORIES_DIR, 'stories260K.bin'), join(STORIES_DIR, 'tok512.bin'));
    await src.close();
    if (src.tokenizer.model !== 'llama2c') throw new Error('expected llama2c');
    run(new Llama2cTokenizer(src.tokenizer, 1, 2), 6);
  });
  it('a byte-level BPE tokenizer.json (gpt-oss vocabulary, ByteLevel decoder)', () => {
    const json = JSON.parse(synthGpt2TokenizerJson(synthHarmonyVocabulary(1024)));
    const eos = 1024 - 21 + 3;
    // As ie builds GGUF byte-level tokenizers: no transformers-style clean-up of spaces on decode.
    run(new HfTokenizer(json, eos, eos, { cleanUpSpaces: false }), 4);
  });
  it('a Llama-style tokenizer.json (U+2581 and <0xHH> byte fallback)', () => {
    // Clean-up off: with it on, decode drops the space of " ," (text differs from the bytes the grammar saw; still JSON).
    const t = new HfTokenizer(JSON.parse(synthHfTokenizerJson(synthVocabulary(600))), 1, 2, { cleanUpSpaces: false });
    expect(dec.decode(t.tokenBytes()[t.tokenId('\u2581ab') as number])).toBe(' ab');
    expect(t.tokenBytes()[3 + 0x7b]).toEqual(Uint8Array.of(0x7b));
    expect(t.tokenBytes()[1]).toEqual(new Uint8Array(0));
    run(t, 4);
  });
});
