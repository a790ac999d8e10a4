/**
 * Per-step mask time at a 32,000-token Llama-like vocabulary (run on demand, not in the suite):
 *
 *   IE_BENCH_STRUCTURED=1 npx vitest run src/structured/mask.bench.test.ts
 *
 * For each schema: the first generation with a freshly compiled grammar (every grammar state new:
 * a trie walk per step) and then more generations with the same schema (states seen before: one
 * pass over the logits), as a server sees one schema over and over.
 */
import { describe, expect, it } from 'vitest';
import { type ConstraintSpec, type ConstraintVocabulary, createConstraint } from './constraint.js';
import { llamaLikeVocabulary, rng } from './test-vocab.js';
import { TokenTrie } from './trie.js';

const RUN = process.env.IE_BENCH_STRUCTURED === '1';

function steps(vocab: ConstraintVocabulary, spec: ConstraintSpec, seed: number, closes: Uint8Array, times: number[]): void {
  const c = createConstraint(vocab, spec);
  const r = rng(seed);
  const logits = new Float32Array(vocab.tokens.length);
  for (let step = 0; step < 2000; step++) {
    const push = Math.max(0, step - 15) * 0.3;
    for (let i = 0; i < logits.length; i++) logits[i] = r() * 3 + closes[i] * push;
    const t0 = performance.now();
    c.mask(logits);
    times.push(performance.now() - t0);
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
    if (best === 2) return;
    c.accept(best);
    if (c.done()) return;
  }
  throw new Error('no end');
}

const stats = (t: number[]) => {
  const s = [...t].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(s.length * p))] * 1000;
  const mean = (t.reduce((a, b) => a + b, 0) / t.length) * 1000;
  return `${String(t.length).padStart(5)} steps  mean ${mean.toFixed(0).padStart(5)} µs  median ${q(0.5).toFixed(0).padStart(5)} µs  p90 ${q(0.9).toFixed(0).padStart(5)} µs  max ${q(1).toFixed(0).padStart(6)} µs`;
};

describe.skipIf(!RUN)('mask time, 32,000-token vocabulary', () => {
  it('per step, cold grammar and warm', () => {
    const vocab = llamaLikeVocabulary(32000);
    let t0 = performance.now();
    const trie = new TokenTrie(vocab.tokens);
    console.log(`trie: ${trie.nodeCount} nodes for ${vocab.tokens.length} tokens, built in ${(performance.now() - t0).toFixed(0)} ms`);
    const closes = Uint8Array.from(vocab.tokens, (b, i) => {
      if (i === 2) return 1;
      const last = b[b.length - 1];
      return b.length > 0 &&
        (last === 0x22 || last === 0x5d || last === 0x7d) &&
        !b.includes(0x2c) &&
        !b.includes(0x5b) &&
        !b.includes(0x7b)
        ? 1
        : 0;
    });
    // JIT warm-up on a schema not measured below.
    for (let s = 0; s < 5; s++) steps(vocab, { jsonSchema: { type: 'array', items: { type: 'string' } } }, s + 100, closes, []);
    const cases: Array<[string, ConstraintSpec]> = [
      [
        'person (bounded strings)',
        {
          jsonSchema: {
            type: 'object',
            properties: {
              name: { type: 'string', maxLength: 20 },
              age: { type: 'integer' },
              tags: { type: 'array', items: { type: 'string', maxLength: 8 }, maxItems: 3 },
            },
            required: ['name', 'age', 'tags'],
          },
        },
      ],
      [
        'record (unbounded strings, enum, bool)',
        {
          jsonSchema: {
            type: 'object',
            properties: { title: { type: 'string' }, body: { type: 'string' }, level: { enum: ['low', 'high'] }, ok: { type: 'boolean' } },
            required: ['title', 'body', 'level', 'ok'],
          },
        },
      ],
      ['json object ({ json: true })', { json: true }],
    ];
    const all: number[] = [];
    for (const [name, spec] of cases) {
      const cold: number[] = [];
      t0 = performance.now();
      steps(vocab, spec, 1, closes, cold);
      const warm: number[] = [];
      for (let s = 2; s <= 11; s++) steps(vocab, spec, s, closes, warm);
      console.log(`${name}\n  first generation (new grammar): ${stats(cold)}\n  10 more generations:            ${stats(warm)}`);
      all.push(...cold, ...warm);
    }
    console.log(`all steps: ${stats(all)}`);
    expect(all.length).toBeGreaterThan(0);
  });
});
