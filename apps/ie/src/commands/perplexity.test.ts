import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '@ie/runtime';
import { runIe } from '@ie/testing';

describe('ie perplexity', () => {
  let model = '';
  let text = '';
  beforeAll(() => {
    const d = mkdtempSync(join(tmpdir(), 'ie-cli-ppl-'));
    model = join(d, 'model');
    expect(runIe(['synth', '--preset', 'tiny', '--seed', '5', '--out-dir', model]).code).toBe(0);
    text = join(d, 'text.txt');
    // Seeded words, long enough for several chunks of 32 tokens.
    let s = 11;
    const words = Array.from({ length: 400 }, () => {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      return ['the', 'cat', 'sat', 'on', 'a', 'mat', 'and', 'ran', 'far', 'away'][s % 10];
    });
    writeFileSync(text, words.join(' '));
  });

  it("prints engine.perplexity's figures: the running perplexity per chunk on stderr, the estimate on stdout, --json", async () => {
    const engine = await Engine.load(model, { threads: 1, contextLength: 32 });
    let want: Awaited<ReturnType<Engine['perplexity']>>;
    try {
      want = await engine.perplexity(readFileSync(text, 'utf8'), { chunkSize: 32, maxChunks: 3 });
    } finally {
      await engine.dispose();
    }
    const r = runIe(['perplexity', model, '-f', text, '-c', '32', '--chunks', '3', '-t', '1']);
    expect(r.code, r.err).toBe(0);
    expect(r.out.trim()).toBe(`PPL = ${want.perplexity.toFixed(4)} +/- ${want.stderr.toFixed(5)}`);
    expect(r.err).toContain(`[3/3] ${want.perplexity.toFixed(4)}`);
    expect(r.err).toContain(`${want.tokens} tokens scored in 3 chunks of 32`);
    const j = runIe(['perplexity', model, '-f', text, '-c', '32', '--chunks', '3', '-t', '1', '--json']);
    expect(j.code, j.err).toBe(0);
    const o = JSON.parse(j.out) as Record<string, number>;
    expect([o.chunks, o.totalChunks, o.tokens, o.chunkSize]).toEqual([3, 3, 45, 32]);
    expect(o.perplexity).toBeCloseTo(want.perplexity, 10);
    expect(o.tokensPerSec).toBeGreaterThan(0);
  });

  it('--reference: both perplexities, the mean KL divergence and the top-token agreement, as engine.perplexity gives them', async () => {
    const engine = await Engine.load(model, { threads: 1, contextLength: 32, precision: 'int4w' });
    const ref = await Engine.load(model, { threads: 1, contextLength: 32 });
    let want: Awaited<ReturnType<Engine['perplexity']>>;
    try {
      want = await engine.perplexity(readFileSync(text, 'utf8'), { chunkSize: 32, maxChunks: 2, reference: ref });
    } finally {
      await engine.dispose();
      await ref.dispose();
    }
    const args = ['perplexity', model, '-f', text, '-c', '32', '--chunks', '2', '-t', '1', '--precision', 'int4w', '--reference', model];
    const r = runIe(args);
    expect(r.code, r.err).toBe(0);
    const k = want.reference?.klDivergence as { mean: number; stderr: number };
    expect(k.mean).toBeGreaterThan(0);
    expect(r.out).toContain(`reference PPL = ${want.reference?.perplexity.toFixed(4)}`);
    expect(r.out).toContain(`mean KLD = ${k.mean.toFixed(6)} +/- ${k.stderr.toFixed(6)}`);
    expect(r.out).toContain(`same top = ${(100 * (want.reference?.sameTop as number)).toFixed(2)}%`);
    const j = JSON.parse(runIe([...args, '--json']).out) as { reference: { klDivergence: { mean: number }; sameTop: number } };
    expect(j.reference.klDivergence.mean).toBeCloseTo(k.mean, 12);
    // A reference of another vocabulary is refused before any chunk runs.
    const other = join(tmpdir(), `ie-ppl-other-${process.pid}`);
    expect(runIe(['synth', '--preset', 'stories15m', '--seed', '1', '--out-dir', other, '--layers', '1']).code).toBe(0);
    const bad = runIe(['perplexity', model, '-f', text, '-c', '32', '--reference', other]);
    expect(bad.code).not.toBe(0);
    expect(bad.err).toContain('reference');
  });

  it('refuses a missing --file (usage), a missing file (usage) and a text shorter than one chunk (bad input)', () => {
    expect(runIe(['perplexity', model]).code).toBe(2);
    const missing = runIe(['perplexity', model, '-f', join(tmpdir(), 'no-such-file-ie.txt')]);
    expect([missing.code, missing.err.includes('--file')]).toEqual([2, true]);
    const few = join(tmpdir(), `ie-ppl-short-${process.pid}.txt`);
    writeFileSync(few, 'the cat sat');
    const short = runIe(['perplexity', model, '-f', few, '-c', '32']);
    expect(short.code).not.toBe(0);
    expect(short.err).toContain('IE_INVALID_OPTION');
  });
});
