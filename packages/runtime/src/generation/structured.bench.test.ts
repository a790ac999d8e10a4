/**
 * The decode-speed cost of structured output on a real generation loop (run on demand, not in the suite):
 *
 *   pnpm ie synth --preset stories15m --out-dir /tmp/s15m
 *   cd packages/runtime && IE_BENCH_STRUCTURED=1 IE_BENCH_MODEL=/tmp/s15m npx vitest run src/generation/structured.bench.test.ts
 *
 * Decode tokens/s (the generation's own metrics) unconstrained, with `{ json: true }` and with a
 * JSON schema, each precision, runs interleaved (the CPU may be shared); the best quarter of each
 * (the runs no neighbour slowed down) is compared, and the medians shown.
 * The first constrained request (trie build, grammar compile, every mask new) is reported apart.
 * On a shared CPU tokens/s swing with the neighbours' load, so the time per token spent choosing
 * it (Decoding.accept: mask + sample + accept, vs sample alone) is measured too: the difference
 * over the unconstrained time per token is the constraint's share, whatever the load.
 */
import { describe, expect, it } from 'vitest';
import { Engine, type GenerateOptions, type Precision } from '../index.js';
import { Decoding } from './decoding.js';

const RUN = process.env.IE_BENCH_STRUCTURED === '1';
const MODEL = process.env.IE_BENCH_MODEL ?? '/tmp/s15m';
const PRECISIONS = (process.env.IE_BENCH_PRECISIONS ?? 'fp32,int4w').split(',') as Precision[];
const ROUNDS = Number(process.env.IE_BENCH_ROUNDS ?? 11);

const SCHEMA = {
  type: 'object',
  properties: {
    name: { type: 'string', maxLength: 24 },
    age: { type: 'integer' },
    tags: { type: 'array', items: { type: 'string' }, maxItems: 4 },
  },
  required: ['name', 'age', 'tags'],
};

const median = (x: number[]) => [...x].sort((a, b) => a - b)[Math.floor(x.length / 2)];
/** The best quarter's mean: on a shared CPU the runs nobody else slowed down. */
const best = (x: number[], high: boolean) => {
  const s = [...x].sort((a, b) => (high ? b - a : a - b)).slice(0, Math.max(1, Math.floor(x.length / 4)));
  return s.reduce((a, b) => a + b, 0) / s.length;
};

describe.skipIf(!RUN)('decode speed with structured output (IE_BENCH_STRUCTURED=1)', () => {
  it.each(PRECISIONS)(
    '%s',
    async (precision) => {
      await using engine = await Engine.load(MODEL, { precision, threads: 2 });
      const base: GenerateOptions = { temperature: 0.8, maxTokens: 200 };
      const modes: Array<[string, GenerateOptions]> = [
        ['unconstrained', {}],
        ['json: true', { json: true }],
        ['jsonSchema', { jsonSchema: SCHEMA }],
      ];
      // Warm-up: the kernels, and the first constrained request of each kind (reported).
      await engine.complete('Once upon a time', { ...base, seed: 0 });
      const first: string[] = [];
      for (const [name, o] of modes.slice(1)) {
        const t0 = performance.now();
        const r = await engine.complete('Once upon a time', { ...base, ...o, seed: 0 });
        first.push(
          `${name}: first request ${(performance.now() - t0).toFixed(0)} ms (${r.tokens.length} tokens, ${r.metrics.decodeTokensPerSec.toFixed(1)} tok/s)`,
        );
      }
      const names = modes.map(([name]) => name);
      const tps: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
      const tokens: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
      const choose: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
      const accept = Decoding.prototype.accept;
      let chooseMs = 0;
      Decoding.prototype.accept = function (this: Decoding, ...a: Parameters<typeof accept>) {
        const t0 = performance.now();
        try {
          return accept.apply(this, a);
        } finally {
          chooseMs += performance.now() - t0;
        }
      };
      for (let round = 1; round <= ROUNDS; round++)
        for (const [name, o] of modes) {
          chooseMs = 0;
          const r = await engine.complete('Once upon a time', { ...base, ...o, seed: round });
          choose[name].push((chooseMs * 1000) / Math.max(1, r.tokens.length));
          if ((o.jsonSchema || o.json) && r.stopReason === 'eos') expect(() => JSON.parse(r.text)).not.toThrow();
          tps[name].push(r.metrics.decodeTokensPerSec);
          tokens[name].push(r.tokens.length);
        }
      Decoding.prototype.accept = accept;
      const plain = best(tps.unconstrained, true);
      const stepUs = 1e6 / plain;
      const lines = modes.map(([name]) => {
        const m = best(tps[name], true);
        const us = best(choose[name], false);
        const extra = us - best(choose.unconstrained, false);
        return `${name.padEnd(14)} ${m.toFixed(1).padStart(6)} tok/s best quarter, ${median(tps[name]).toFixed(1)} median (${tps[name].map((v) => v.toFixed(0)).join(' ')}); ${median(tokens[name])} tokens; choosing a token ${us.toFixed(0)} µs${name === 'unconstrained' ? '' : ` (+${extra.toFixed(0)} µs = ${((extra / stepUs) * 100).toFixed(1)}% of the unconstrained ${stepUs.toFixed(0)} µs step; best-quarter tok/s ${(((plain - m) / plain) * 100).toFixed(1)}% lower)`}`;
      });
      console.log(`[structured decode bench] ${MODEL} ${precision}, 2 threads, ${ROUNDS} rounds\n  ${[...first, ...lines].join('\n  ')}`);
    },
    900_000,
  );
});
