import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '@ie/runtime';
import { runIe } from '@ie/testing';

describe('ie embed', () => {
  let model = '';
  beforeAll(() => {
    model = mkdtempSync(join(tmpdir(), 'ie-cli-embed-'));
    expect(runIe(['synth', '--preset', 'tiny', '--seed', '3', '--out-dir', model]).code).toBe(0);
  });

  it("prints engine.embed's vector as a JSON array; --pooling, --no-normalize and --json", async () => {
    const engine = await Engine.load(model, { threads: 1 });
    let want: Float32Array[];
    let raw: Float32Array[];
    try {
      want = await engine.embed('The cat sat');
      raw = await engine.embed('The cat sat', { pooling: 'last', normalize: false });
    } finally {
      await engine.dispose();
    }
    const r = runIe(['embed', model, 'The cat sat', '-t', '1']);
    expect(r.code, r.err).toBe(0);
    const v = JSON.parse(r.out) as number[];
    expect(v).toHaveLength(want[0].length);
    v.forEach((x, i) => expect(x).toBeCloseTo(want[0][i], 6));
    expect(Math.hypot(...v)).toBeCloseTo(1, 5);

    const j = runIe(['embed', model, 'The cat sat', '--pooling', 'last', '--no-normalize', '--json']);
    expect(j.code, j.err).toBe(0);
    const o = JSON.parse(j.out) as { dim: number; pooling: string; normalized: boolean; tokens: number; embedding: number[] };
    expect([o.dim, o.pooling, o.normalized]).toEqual([want[0].length, 'last', false]);
    expect(o.tokens).toBeGreaterThan(1);
    o.embedding.forEach((x, i) => expect(x).toBeCloseTo(raw[0][i], 5));

    const cut = runIe(['embed', model, 'The cat sat', '--dimensions', '4', '--json']);
    expect(cut.code, cut.err).toBe(0);
    const c = JSON.parse(cut.out) as { dim: number; embedding: number[] };
    const head = want[0].subarray(0, 4);
    const n = Math.hypot(...head);
    expect(c.dim).toBe(4);
    c.embedding.forEach((x, i) => expect(x).toBeCloseTo(head[i] / n, 5));
    expect(runIe(['embed', model, 'x', '--dimensions', '0']).code).toBe(2);
  });

  it('refuses a bad pooling (usage) and an empty text (bad input)', () => {
    const bad = runIe(['embed', model, 'x', '--pooling', 'max']);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('--pooling');
    const empty = runIe(['embed', model, '']);
    expect(empty.code).not.toBe(0);
    expect(empty.err).toContain('IE_INVALID_OPTION');
  });
});
