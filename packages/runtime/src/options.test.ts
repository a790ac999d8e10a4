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

  it('what it resolves, the kernels take as given', () => {
    const c = KernelContext.create(resolveContextOptions({}, { IE_THREADS: '2', IE_ISA: 'scalar' }));
    try {
      expect(c.info()).toMatchObject({ threads: 2, isa: 'scalar' });
    } finally {
      c.close();
    }
  });
});
