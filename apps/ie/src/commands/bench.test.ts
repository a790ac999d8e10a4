/** `ie bench` reports the layout its matrices ran in: the run's JSON and the engine line agree with the flag. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runIe } from '@ie/testing';

const dir = mkdtempSync(join(tmpdir(), 'ie-bench-'));
const gguf = join(dir, 'small-q4_k_m.gguf');
const prompts = join(dir, 'prompts.txt');
// The GGUF's IEBIN conversion goes to a cache of this test's own, not the user's.
const env = { ...process.env, IE_CACHE_DIR: join(dir, 'cache') };

beforeAll(() => {
  // small-256: every row whole 256-element superblocks, so Q4_K_M's recipe holds (attn_v and
  // ffn_down Q6_K, the other projections Q4_K).
  const r = runIe(['synth', '--preset', 'small-256', '--format', 'gguf', '--dtype', 'q4_k_m', '--seed', '5', '--out', gguf]);
  expect(r.code, r.err).toBe(0);
  writeFileSync(prompts, 'Once upon a time\nThe cat sat\n');
});

function bench(layout: string): { run: Record<string, unknown>; engine: string } {
  const r = runIe(
    [
      'bench',
      gguf,
      '--prompts',
      prompts,
      '--runs',
      '1',
      '--warmup',
      '0',
      '--max-new',
      '3',
      '--threads',
      '1',
      '--activations',
      'int8',
      '--q4-layout',
      layout,
    ],
    env,
  );
  expect(r.code, r.err).toBe(0);
  return { run: JSON.parse(r.out.trim().split('\n')[0]), engine: r.err };
}

describe('ie bench --q4-layout on a Q4_K_M file', () => {
  it('rows16: every Q4_K and Q6_K matrix in records, counted per type in the JSON and on the engine line', () => {
    const { run, engine } = bench('rows16');
    // 4 layers x (q, k, o, gate, up) in Q4_K; 4 layers x (v, down) and the classifier in Q6_K.
    expect([run.q4_k_rows16_matrices, run.q6_k_rows16_matrices]).toEqual([20, 9]);
    expect([run.q4_rows16_matrices, run.iq4_nl_rows16_matrices, run.i8_rows16_matrices]).toEqual([0, 0, 0]);
    expect(run.activations).toBe('int8');
    expect(run.tokens).toBe(6);
    expect(engine).toContain('q4_k: 16-row records, 20 matrices; q6_k: 16-row records, 9 matrices');
  });

  it('rows: none in records, and the engine line says nothing of them', () => {
    const { run, engine } = bench('rows');
    expect([run.q4_k_rows16_matrices, run.q6_k_rows16_matrices]).toEqual([0, 0]);
    expect(engine).not.toContain('16-row records');
  });
});
