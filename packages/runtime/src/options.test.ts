import { describe, expect, it } from 'vitest';
import { KernelContext } from '@ie/kernels';
import { resolveContextOptions, resolveEngineOptions } from './options.js';

describe('the kernel context options: the environment read once, here', () => {
  it('takes IE_THREADS, IE_AFFINITY, IE_NUMA and IE_ISA from the environment; options win', () => {
    const env = { IE_THREADS: '3', IE_AFFINITY: 'compact', IE_NUMA: 'interleave', IE_ISA: 'scalar' };
    expect(resolveContextOptions({}, env)).toEqual({ threads: 3, affinity: 'compact', numa: 'interleave', isa: 'scalar' });
    expect(resolveContextOptions({ threads: 1, isa: 'avx2' }, { IE_THREADS: '3', IE_ISA: 'scalar' })).toEqual({
      threads: 1,
      affinity: undefined,
      numa: undefined,
      isa: 'avx2',
    });
    expect(resolveContextOptions({}, {})).toEqual({ threads: undefined, affinity: undefined, numa: undefined, isa: undefined });
    // Resolving what was resolved changes nothing (Model.open resolves, then openMapped again).
    const once = resolveContextOptions({ numa: 'local' }, env);
    expect(resolveContextOptions(once, {})).toEqual(once);
    const engine = resolveEngineOptions({}, env);
    expect([engine.threads, engine.affinity, engine.numa, engine.isa]).toEqual([3, 'compact', 'interleave', 'scalar']);
  });

  it('rejects bad values by the name they came under', () => {
    expect(() => resolveContextOptions({}, { IE_THREADS: 'many' })).toThrow(/IE_THREADS: must be an integer/);
    expect(() => resolveContextOptions({}, { IE_THREADS: '2000' })).toThrow(/IE_THREADS: must be an integer in 1..1024/);
    expect(() => resolveContextOptions({}, { IE_AFFINITY: 'tight' })).toThrow(/IE_AFFINITY: must be one of none, compact, scatter/);
    expect(() => resolveContextOptions({ isa: 'neon' as 'scalar' }, {})).toThrow(
      expect.objectContaining({
        code: 'IE_INVALID_OPTION',
        message: expect.stringMatching(/^isa: must be one of scalar, avx2, avxvnni, avx512/),
      }),
    );
  });

  it('takes the q4 and i8 layouts as auto, rows or rows16, from IE_Q4_LAYOUT / IE_I8_LAYOUT when the option is absent', () => {
    expect(resolveEngineOptions({}, {})).toMatchObject({ q4Layout: 'auto', i8Layout: 'auto' });
    expect(resolveEngineOptions({}, { IE_I8_LAYOUT: 'rows16', IE_Q4_LAYOUT: 'rows' })).toMatchObject({
      q4Layout: 'rows',
      i8Layout: 'rows16',
    });
    expect(resolveEngineOptions({ i8Layout: 'rows' }, { IE_I8_LAYOUT: 'rows16' }).i8Layout).toBe('rows');
    expect(() => resolveEngineOptions({}, { IE_I8_LAYOUT: 'records' })).toThrow(/^IE_I8_LAYOUT: .*"records"/);
    expect(() => resolveEngineOptions({ i8Layout: 'x' as 'rows' }, {})).toThrow(/^i8Layout:/);
  });

  it('takes K-panels (blockK) as auto, 0 or a multiple of 64, from IE_BLOCK_K when the option is absent', () => {
    expect(resolveEngineOptions({}, {}).blockK).toBe('auto');
    expect(resolveEngineOptions({}, { IE_BLOCK_K: '0' }).blockK).toBe(0);
    expect(resolveEngineOptions({}, { IE_BLOCK_K: '1024' }).blockK).toBe(1024);
    expect(resolveEngineOptions({ blockK: 'auto' }, { IE_BLOCK_K: '0' }).blockK).toBe('auto');
    expect(resolveEngineOptions({ blockK: 128 }, {}).blockK).toBe(128);
    expect(() => resolveEngineOptions({}, { IE_BLOCK_K: 'wide' })).toThrow(/^IE_BLOCK_K: must be auto, 0/);
    expect(() => resolveEngineOptions({}, { IE_BLOCK_K: '100' })).toThrow(/^IE_BLOCK_K: .* got "100"/);
    expect(() => resolveEngineOptions({ blockK: -64 }, {})).toThrow(/^blockK: .* got -64/);
    expect(() => resolveEngineOptions({ blockK: 64.5 }, {})).toThrow(/^blockK:/);
  });

  it('what it resolves, the kernels take as given', () => {
    const c = KernelContext.create(resolveContextOptions({}, { IE_THREADS: '2', IE_ISA: 'scalar' }));
    try {
      expect(c.info()).toMatchObject({ threads: 2, isa: 'scalar' });
    } finally {
      c.close();
    }
  });
});
