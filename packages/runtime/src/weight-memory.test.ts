import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { SYNTH_PRESETS, exportIebin, synthModel } from '@ie/format';
import { Model } from './model.js';
import { resolveEngineOptions } from './options.js';
import { AUTO_COPY_SHARE, planWeightMemory, readSystemMemory, type SystemMemory } from './weight-memory.js';

const GiB = 2 ** 30;
const roomy: SystemMemory = { hugePages: 'madvise', available: 20 * GiB, cgroupRoom: undefined };

describe('where the weights live (weightMemory)', () => {
  it('auto copies when huge pages are on and the weights take at most 60% of what is available', () => {
    expect(planWeightMemory('auto', 0.6 * 20 * GiB, () => roomy).mode).toBe('copy');
    expect(planWeightMemory('auto', 0.6 * 20 * GiB + 1, () => roomy)).toMatchObject({
      mode: 'mmap',
      detail: expect.stringMatching(/exceed 60%/),
    });
    expect(planWeightMemory('auto', GiB, () => ({ ...roomy, hugePages: 'always' })).mode).toBe('copy');
    expect(AUTO_COPY_SHARE).toBe(0.6);
  });

  it('auto maps when huge pages are off or unknown, or the memory available is unknown', () => {
    expect(planWeightMemory('auto', 1000, () => ({ ...roomy, hugePages: 'never' }))).toMatchObject({
      mode: 'mmap',
      detail: expect.stringMatching(/huge pages are off/),
    });
    expect(planWeightMemory('auto', 1000, () => ({ ...roomy, hugePages: undefined })).mode).toBe('mmap');
    expect(planWeightMemory('auto', 1000, () => ({ hugePages: 'madvise', available: undefined, cgroupRoom: undefined })).mode).toBe('mmap');
  });

  it("auto counts a cgroup's limit as the memory available when it is the smaller", () => {
    expect(planWeightMemory('auto', 4 * GiB, () => ({ ...roomy, cgroupRoom: 6 * GiB })).mode).toBe('mmap');
    expect(planWeightMemory('auto', 3 * GiB, () => ({ ...roomy, cgroupRoom: 6 * GiB })).mode).toBe('copy');
    expect(planWeightMemory('auto', 3 * GiB, () => ({ hugePages: 'madvise', available: undefined, cgroupRoom: 6 * GiB })).mode).toBe(
      'copy',
    );
  });

  it('copy and mmap are taken as asked, without reading the system', () => {
    const unread = (): SystemMemory => {
      throw new Error('read');
    };
    expect(planWeightMemory('copy', 100 * GiB, unread).mode).toBe('copy');
    expect(planWeightMemory('mmap', 1, unread).mode).toBe('mmap');
  });

  it('reads this machine without throwing, in the units the policy takes', () => {
    const s = readSystemMemory();
    expect([undefined, 'always', 'madvise', 'never']).toContain(s.hugePages);
    if (s.available !== undefined) expect(s.available).toBeGreaterThan(1 << 20);
  });

  it('takes IE_WEIGHT_MEMORY from the environment; the option wins; bad values are named', () => {
    expect(resolveEngineOptions({}, {}).weightMemory).toBe('auto');
    expect(resolveEngineOptions({}, { IE_WEIGHT_MEMORY: 'mmap' }).weightMemory).toBe('mmap');
    expect(resolveEngineOptions({ weightMemory: 'copy' }, { IE_WEIGHT_MEMORY: 'mmap' }).weightMemory).toBe('copy');
    expect(() => resolveEngineOptions({}, { IE_WEIGHT_MEMORY: 'ram' })).toThrow(
      expect.objectContaining({
        code: 'IE_INVALID_OPTION',
        message: expect.stringMatching(/^IE_WEIGHT_MEMORY: must be one of auto, copy, mmap/),
      }),
    );
    expect(() => resolveEngineOptions({ weightMemory: 'yes' as 'copy' }, {})).toThrow(/^weightMemory: must be one of/);
  });
});

describe('a model with its weights copied or mapped', () => {
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ie-weight-memory-'));
    // An untied f32 embedding of 12,288 x 64 (3 MiB): its first 2 MiB unit stays mapped under copy.
    await exportIebin(synthModel({ ...SYNTH_PRESETS.tiny.config, vocab_size: 12_288 }, { seed: 23 }), dir, { converter: 'test' });
  });

  it('computes the same logits both ways and says which it is', async () => {
    const logits: number[][] = [];
    for (const weightMemory of ['copy', 'mmap'] as const) {
      const model = await Model.open(dir, { threads: 2, contextLength: 32, weightMemory });
      try {
        expect(model.info().weightMemory).toMatchObject({ mode: weightMemory, detail: expect.stringContaining(weightMemory) });
        // A copy leaves the token embedding (a row read per token) as the file's pages.
        if (weightMemory === 'copy')
          expect(model.info().weightMemory.detail).toMatch(/the token embedding \(2 MiB, a row read per token\) stays mapped/);
        const seq = model.sequence();
        await seq.prefill([1, 7, 42, 9, 12_000, 5000]);
        await seq.step(seq.argmax);
        logits.push(Array.from(seq.logits));
      } finally {
        await model.dispose();
      }
    }
    expect(logits[0].some((v) => v !== 0)).toBe(true);
    expect(logits[0]).toEqual(logits[1]);
  });
});
