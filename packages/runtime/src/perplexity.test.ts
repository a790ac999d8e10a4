import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { exportIebin, openLlama2c, synthModel, SYNTH_PRESETS } from '@ie/format';
import { HAS_STORIES, STORIES_DIR, STORIES_REASON } from '@ie/testing';
import { logSoftmax } from '../test/reference.js';
import { Engine, type PerplexityResult } from './index.js';

const config = { ...SYNTH_PRESETS.tiny.config, vocab_size: 301 };
let dir = '';
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ie-ppl-'));
  await exportIebin(synthModel(config, { seed: 31 }), dir, { converter: 'test' });
});

/** Seeded token ids (never BOS/EOS). */
function tokens(n: number, seed: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return 3 + (s % (config.vocab_size - 3));
  });
}

/** llama-perplexity's figures in float64 from the decode path's logits (one step per position). */
async function reference(e: Engine, ids: number[], chunk: number, chunks: number) {
  const bos = e.tokenize('')[0];
  const nll: number[] = [];
  for (let c = 0; c < chunks; c++) {
    const part = ids.slice(c * chunk, (c + 1) * chunk);
    if (bos !== undefined) part[0] = bos;
    const logits = await e.evaluate(part);
    for (let j = chunk / 2; j < chunk - 1; j++) nll.push(-logSoftmax(logits[j])[part[j + 1]]);
  }
  const mean = nll.reduce((a, b) => a + b, 0) / nll.length;
  const variance = nll.reduce((a, b) => a + (b - mean) ** 2, 0) / nll.length;
  const ppl = Math.exp(mean);
  return { perplexity: ppl, stderr: ppl * Math.sqrt(variance / (nll.length - 1)), meanNll: mean, tokens: nll.length };
}

describe('perplexity', () => {
  it("is llama-perplexity's measure: chunks from BOS, their second halves scored, PPL and its standard error", async () => {
    await using e = await Engine.load(dir, { contextLength: 64, maxBatch: 7 });
    const ids = [1, ...tokens(101, 5)];
    const seen: PerplexityResult[] = [];
    const r = await e.perplexity(ids, { chunkSize: 16, onChunk: (x) => seen.push(x) });
    // 102 tokens: 6 whole chunks of 16, 7 tokens scored in each.
    const want = await reference(e, ids, 16, 6);
    expect([r.chunks, r.totalChunks, r.tokens]).toEqual([6, 6, 42]);
    expect(r.tokens).toBe(want.tokens);
    expect(Math.abs(r.meanNll - want.meanNll)).toBeLessThan(1e-5);
    expect(Math.abs(r.perplexity / want.perplexity - 1)).toBeLessThan(1e-5);
    expect(Math.abs(r.stderr / want.stderr - 1)).toBeLessThan(1e-3);
    expect(seen.map((x) => x.chunks)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(seen[5]).toEqual(r);
    // maxChunks stops early: the first chunks' figures.
    const two = await e.perplexity(ids, { chunkSize: 16, maxChunks: 2 });
    expect(two).toEqual({ ...seen[1], totalChunks: 2 });
  });

  it("compares with a reference model as llama-perplexity's --kl-divergence does: KL per position, top-token agreement, both perplexities", async () => {
    // FP32 activations: the prefill's GEMM and the decode's GEMV then differ only in rounding.
    await using e = await Engine.load(dir, { contextLength: 64, precision: 'int4w', activations: 'f32' });
    await using ref = await Engine.load(dir, { contextLength: 64 });
    const ids = [1, ...tokens(79, 8)];
    const r = await e.perplexity(ids, { chunkSize: 20, reference: ref });
    // float64 from the decode path's logits of both, position by position.
    const klWant: number[] = [];
    let same = 0;
    for (let c = 0; c < 4; c++) {
      const part = [1, ...ids.slice(c * 20 + 1, (c + 1) * 20)];
      const [a, b] = [await e.evaluate(part), await ref.evaluate(part)];
      for (let j = 10; j < 19; j++) {
        const [q, p] = [logSoftmax(a[j]), logSoftmax(b[j])];
        let d = 0;
        for (let i = 0; i < p.length; i++) d += Math.exp(p[i]) * (p[i] - q[i]);
        klWant.push(d);
        if (q.indexOf(Math.max(...q)) === p.indexOf(Math.max(...p))) same++;
      }
    }
    const mean = klWant.reduce((x, y) => x + y, 0) / klWant.length;
    const want = await reference(ref, ids, 20, 4);
    expect(r.tokens).toBe(36);
    expect(r.reference?.klDivergence.mean).toBeGreaterThan(1e-4);
    expect(Math.abs((r.reference?.klDivergence.mean as number) - mean)).toBeLessThan(1e-3 * mean + 1e-6);
    expect(Math.abs((r.reference?.klDivergence.max as number) - Math.max(...klWant))).toBeLessThan(1e-3 * mean + 1e-6);
    // The 99th percentile between neighbours, as llama-perplexity reads it.
    const sorted = [...klWant].sort((x, y) => x - y);
    const at = 0.99 * (sorted.length - 1);
    const p99 = sorted[Math.floor(at)] + (sorted[Math.ceil(at)] - sorted[Math.floor(at)]) * (at - Math.floor(at));
    expect(Math.abs((r.reference?.klDivergence.p99 as number) - p99)).toBeLessThan(1e-3 * mean + 1e-6);
    // Near-ties aside, the same positions agree.
    expect(Math.abs((r.reference?.sameTop as number) * 36 - same)).toBeLessThanOrEqual(1);
    expect(Math.abs((r.reference?.meanNll as number) - want.meanNll)).toBeLessThan(1e-5);
    // Against itself: no divergence, the same top token everywhere.
    const self = await ref.perplexity(ids, { chunkSize: 20, reference: ref });
    expect(self.reference?.klDivergence.max).toBeLessThan(1e-6);
    expect([self.reference?.sameTop, self.reference?.perplexity]).toEqual([1, self.perplexity]);
  });

  it('leaves the tokens as they are where the vocabulary adds no BOS (gpt-oss: byte-level BPE)', async () => {
    const d = mkdtempSync(join(tmpdir(), 'ie-ppl-oss-'));
    await exportIebin(synthModel(SYNTH_PRESETS['gpt-oss-tiny'].config, { seed: 3 }), d, { converter: 'test' });
    await using e = await Engine.load(d, { contextLength: 64 });
    expect(e.tokenize('')).toEqual([]);
    const text = 'the cat sat on the mat and ran far away from the dog '.repeat(12);
    const ids = e.tokenize(text);
    expect(ids[0]).toBe(e.tokenize('the')[0]);
    const r = await e.perplexity(text, { chunkSize: 32, maxChunks: 3 });
    const want = await reference(e, ids, 32, 3);
    expect(r.tokens).toBe(want.tokens);
    expect(Math.abs(r.meanNll - want.meanNll)).toBeLessThan(1e-4);
  });

  it('refuses a text shorter than one chunk and malformed options with IE_INVALID_OPTION naming them', async () => {
    await using e = await Engine.load(dir, { contextLength: 64 });
    const bad = (p: Promise<unknown>, option: string) => expect(p).rejects.toMatchObject({ code: 'IE_INVALID_OPTION', option });
    await bad(e.perplexity(tokens(15, 1), { chunkSize: 16 }), 'text');
    await bad(e.perplexity(tokens(100, 1), { chunkSize: 65 }), 'chunkSize');
    await bad(e.perplexity(tokens(100, 1), { chunkSize: 3 }), 'chunkSize');
    await bad(e.perplexity(tokens(100, 1), { chunkSize: 16, maxChunks: 0 }), 'maxChunks');
    await bad(e.perplexity(null as never, { chunkSize: 16 }), 'text');
    const d = mkdtempSync(join(tmpdir(), 'ie-ppl-other-'));
    await exportIebin(synthModel({ ...config, vocab_size: 300 }, { seed: 1 }), d, { converter: 'test' });
    await using other = await Engine.load(d, { contextLength: 64 });
    await bad(e.perplexity(tokens(100, 1), { chunkSize: 16, reference: other }), 'reference');
    await bad(e.perplexity(tokens(100, 1), { chunkSize: 16, reference: {} as never }), 'reference');
    // A context too short for any chunk is the context's problem, not an empty range of chunk sizes.
    await using short = await Engine.load(dir, { contextLength: 2 });
    await expect(short.perplexity(tokens(100, 1))).rejects.toMatchObject({
      code: 'IE_INVALID_OPTION',
      option: 'contextLength',
      message: 'contextLength: is 2; perplexity scores chunks of at least 4 tokens, so it needs a context of 4 or more',
    });
  });
});

describe.skipIf(!HAS_STORIES)(`perplexity of stories260K${STORIES_REASON}`, () => {
  it("run.c's own greedy story is far likelier than the same tokens shuffled", async () => {
    const d = mkdtempSync(join(tmpdir(), 'ie-ppl-stories-'));
    const src = await openLlama2c(join(STORIES_DIR, 'stories260K.bin'), join(STORIES_DIR, 'tok512.bin'));
    await exportIebin(src, d, { converter: 'test' });
    await src.close();
    await using e = await Engine.load(d, { precision: 'fp32' });
    const story = readFileSync(join(STORIES_DIR, 'expected', 'greedy_once-upon-a-time_n256.stdout'), 'utf8');
    const ids = e.tokenize(story, { bos: true });
    const r = await e.perplexity(ids, { chunkSize: 64 });
    expect(r.totalChunks).toBe(Math.floor(ids.length / 64));
    // Greedy text (each token the likeliest with the whole story before it; here 32 to 62 tokens): a low perplexity.
    expect(r.perplexity).toBeLessThan(2.5);
    let s = 7;
    const shuffled = [...ids];
    for (let i = shuffled.length - 1; i > 0; i--) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      const j = s % (i + 1);
      [shuffled[i], shuffled[j]] = [shuffled[j], shuffled[i]];
    }
    expect((await e.perplexity(shuffled, { chunkSize: 64 })).perplexity).toBeGreaterThan(20 * r.perplexity);
  });
});
