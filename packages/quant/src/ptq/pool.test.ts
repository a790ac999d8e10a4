import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { seededFloats } from '@ie/testing';
import { describe, expect, it } from 'vitest';
import { ClipSearchPool, PARALLEL_MIN_WEIGHTS } from './pool.js';
import { quantizeMatrix, quantizeMatrixAsync, searchClip, type QuantTarget } from './quantize.js';

// The worker runs from the build (turbo builds a package before its tests).
const WORKER = new URL('../../dist/clip-worker.js', import.meta.url);
const BUILT = existsSync(fileURLToPath(WORKER));

const targets: Array<[string, QuantTarget]> = [
  ['q4 symmetric g64', { dtype: 'q4', quant: { scheme: 'symmetric', granularity: 'per_group', group_size: 64, scale_dtype: 'f16' } }],
  [
    'q4 affine g128, padded rows',
    { dtype: 'q4', quant: { scheme: 'affine', granularity: 'per_group', group_size: 128, scale_dtype: 'bf16' } },
  ],
  ['i8 per row', { dtype: 'i8', quant: { scheme: 'symmetric', granularity: 'per_row', group_size: 1000, scale_dtype: 'f16' } }],
];

describe.skipIf(!BUILT)(`clip search on worker threads${BUILT ? '' : ' — SKIPPED: dist/clip-worker.js not built (run pnpm build)'}`, () => {
  it.each(targets)('%s: the same ratios and bytes as the single-threaded search', async (_, t) => {
    const rows = 301;
    const cols = 1000;
    expect(rows * cols).toBeGreaterThan(PARALLEL_MIN_WEIGHTS);
    const v = seededFloats(rows * cols, 17, 0.05);
    for (let i = 5; i < v.length; i += 37) v[i] *= 7;
    const pool = new ClipSearchPool({ threads: 3, workerUrl: WORKER });
    try {
      expect(pool.parallel).toBe(true);
      expect(await pool.searchClip(v, rows, cols, t)).toEqual(searchClip(v, rows, cols, t));
      expect((await quantizeMatrixAsync(v, rows, cols, t, 'clip', pool)).bytes).toEqual(quantizeMatrix(v, rows, cols, t, 'clip').bytes);
    } finally {
      await pool.close();
      await pool.close();
    }
  });
});

describe('clip search pool fallbacks', () => {
  it('one thread, a missing worker or a small matrix search on the calling thread', async () => {
    const t = targets[0][1];
    const v = seededFloats(8 * 64, 3, 0.1);
    const one = new ClipSearchPool({ threads: 1, workerUrl: WORKER });
    expect(one.parallel).toBe(false);
    expect(new ClipSearchPool({ threads: 4, workerUrl: undefined }).threads).toBe(4);
    const pool = new ClipSearchPool({ threads: 2, workerUrl: WORKER });
    expect(await pool.searchClip(v, 8, 64, t)).toEqual(searchClip(v, 8, 64, t));
    await pool.close();
    await one.close();
  });
});
