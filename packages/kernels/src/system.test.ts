import { spawnSync } from 'node:child_process';
import { closeSync, ftruncateSync, mkdtempSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { seededFloats } from '@ie/testing';
import { makeMatrix } from '../test/helpers.js';
import { AFFINITIES, ISAS, KernelContext, KernelError, NUMA_POLICIES, checkContextOptions } from './index.js';

const contexts: KernelContext[] = [];
const make = (o: Parameters<typeof KernelContext.create>[0] = {}) => {
  const c = KernelContext.create(o);
  contexts.push(c);
  return c;
};
afterAll(() => contexts.forEach((c) => c.close()));

describe('context options', () => {
  it('reports the ISA chosen from CPUID, the pool and the topology', () => {
    const info = make().info();
    expect(info.supportedIsas[0]).toBe('scalar');
    expect(info.isa).toBe(info.supportedIsas[info.supportedIsas.length - 1]);
    expect(info.threads).toBe(info.physicalCores);
    expect(info.features).toHaveProperty('avx2');
    expect(make({ isa: 'scalar', threads: 3 }).info()).toMatchObject({ isa: 'scalar', threads: 3 });
  });

  it('takes its options as given, whatever the environment says, and rejects bad values by name', () => {
    // The environment is the engine's (resolveEngineOptions): the kernels never read it.
    const saved = process.env.IE_ISA;
    process.env.IE_ISA = 'scalar';
    try {
      expect(checkContextOptions({ threads: 3, affinity: 'compact', numa: 'interleave', isa: 'avx2' })).toEqual({
        threads: 3,
        affinity: 'compact',
        numa: 'interleave',
        isa: 'avx2',
      });
      expect(checkContextOptions({})).toEqual({ threads: undefined, affinity: undefined, numa: undefined, isa: undefined });
      const info = make({ threads: 1 }).info();
      expect(info.isa).toBe(info.supportedIsas.at(-1));
    } finally {
      if (saved === undefined) delete process.env.IE_ISA;
      else process.env.IE_ISA = saved;
    }
    expect(() => checkContextOptions({ affinity: 'tight' as 'none' })).toThrow(
      /affinity must be one of none, compact, scatter, got "tight"/,
    );
    expect(() => checkContextOptions({ isa: 'neon' as 'scalar' })).toThrow(expect.objectContaining({ code: 'KERNELS_BAD_OPTION' }));
    expect(() => checkContextOptions(null as never)).toThrow(expect.objectContaining({ code: 'KERNELS_BAD_OPTION' }));
    expect(() => make({ threads: 0 })).toThrow(/threads must be an integer in 1..1024/);
    expect([AFFINITIES, NUMA_POLICIES, ISAS]).toEqual([
      ['none', 'compact', 'scatter'],
      ['none', 'interleave', 'local'],
      ['scalar', 'avx2', 'avxvnni', 'avx512'],
    ]);
  });

  it('pins workers with compact affinity', () => {
    const info = make({ affinity: 'compact', threads: 2 }).info();
    expect(info.affinity).toBe('compact');
    expect(info.pinnedCpus.length).toBe(2);
    expect(new Set(info.pinnedCpus).size).toBe(Math.min(2, info.logicalCpus));
    const c = contexts[contexts.length - 1];
    const m = makeMatrix({ dtype: 'f32' }, 300, 333, 1);
    const y = new Float32Array(300);
    c.gemv(c.matrix(m.spec, m.bytes), seededFloats(333, 2), y);
    expect(c.info().pinError).toBe('');
  });

  it('reports that NUMA hints do nothing on a single-node machine, and why', () => {
    const c = make({ numa: 'interleave' });
    const info = c.info();
    const d = mkdtempSync(join(tmpdir(), 'ie-k-'));
    writeFileSync(join(d, 'w.bin'), new Uint8Array(1 << 16).fill(7));
    const mapping = c.mapFile(join(d, 'w.bin'));
    const r = c.numaBind(mapping);
    expect(r.nodes).toBe(info.numa.nodes);
    if (info.numa.nodes === 1) {
      expect(r.applied).toBe(false);
      expect(r.detail).toMatch(/single NUMA node/);
    } else {
      expect(r.applied).toBe(true);
    }
    mapping.close();
  });
});

describe('memory maps', () => {
  const d = mkdtempSync(join(tmpdir(), 'ie-k-'));
  const file = join(d, 'weights.bin');
  const content = new Uint8Array(3 * 4096 + 100).map((_, i) => (i * 31) & 255);
  writeFileSync(file, content);

  it('maps a region zero-copy, with advice and a huge-page report', () => {
    const c = make();
    const m = c.mapFile(file, { offset: 4096 + 10, length: 5000, advice: 'sequential', hugePages: true });
    expect(m.bytes.length).toBe(5000);
    expect(m.bytes[0]).toBe(content[4106]);
    expect(m.bytes[4999]).toBe(content[4106 + 4999]);
    expect(typeof m.hugePages).toBe('boolean');
    expect(m.hugePagesDetail).toMatch(/MADV_HUGEPAGE/);
    m.close();
    expect(() => m.bytes).toThrow(expect.objectContaining({ code: 'KERNELS_CLOSED' }));
  });

  it('keeps a mapping alive for the matrices built on it after close()', () => {
    const c = make({ threads: 1 });
    const mat = makeMatrix({ dtype: 'f32' }, 16, 64, 5);
    writeFileSync(join(d, 'mat.bin'), mat.bytes);
    const m = c.mapFile(join(d, 'mat.bin'));
    const view = m.bytes;
    const w = c.matrix(mat.spec, view, m);
    m.close();
    expect(view.length).toBe(0); // the JS view is detached: JS cannot read unmapped memory
    const x = seededFloats(64, 1);
    const y = new Float32Array(16);
    c.gemv(w, x, y); // the matrix holds the mapping
    const ref = new Float32Array(16);
    c.gemv(c.matrix(mat.spec, mat.bytes), x, ref);
    expect(Array.from(y)).toEqual(Array.from(ref));
  });

  it('work-touch counts the bytes that move (whole cache lines), not the span it strides over', () => {
    const c = make({ threads: 1 });
    const m = c.mapFile(file); // page-aligned: lines start at multiples of 64
    const span = 3 * 4096;
    expect(c.touch(m, span, 256).bytesRead).toBe((span / 256) * 64); // one line in four
    expect(c.touch(m, span, 64).bytesRead).toBe(span);
    expect(c.touch(m, span, 8).bytesRead).toBe(span); // eight reads per line, each line once
    const t = c.touch(m, 1024, 256, 4096);
    expect(t).toMatchObject({ bytesRead: 256, next: 4096 + 1024 });
    m.close();
  });

  it('refuses ranges outside the file and missing files', () => {
    const c = make();
    expect(() => c.mapFile(file, { offset: 4096, length: 1 << 20 })).toThrow(expect.objectContaining({ code: 'KERNELS_MAP_FAILED' }));
    expect(() => c.mapFile(join(d, 'nope.bin'))).toThrow(expect.objectContaining({ code: 'KERNELS_MAP_FAILED' }));
  });
});

describe('files read into memory (loadFile)', () => {
  const d = mkdtempSync(join(tmpdir(), 'ie-k-load-'));
  // Past two of loadFile's 64 MiB read pieces, at a size that is no multiple of a page.
  const big = join(d, 'big.bin');
  const content = new Uint8Array(2 * 64 * 1024 * 1024 + 12_345);
  const words = new Uint32Array(content.buffer, 0, Math.floor(content.length / 4));
  let s = 0x9e3779b9;
  for (let i = 0; i < words.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    words[i] = s >>> 0;
  }
  for (let i = words.length * 4; i < content.length; i++) content[i] = (i * 131) & 255;
  writeFileSync(big, content);

  it('holds exactly the file region, in anonymous memory that outlives nothing it should not', async () => {
    const c = make();
    const at = 4096 * 3 + 7;
    const m = await c.loadFile(big, { offset: at });
    expect(m.length).toBe(content.length - at);
    const v = m.bytes;
    expect(v.byteOffset % 64).toBe(0);
    let same = true;
    for (let i = 0; i < v.length; i += 4093) same &&= v[i] === content[at + i];
    expect(same).toBe(true);
    expect(v[v.length - 1]).toBe(content[content.length - 1]);
    expect(Buffer.compare(Buffer.from(v.buffer, v.byteOffset, v.length), Buffer.from(content.buffer, at))).toBe(0);
    expect(typeof m.hugePages).toBe('boolean');
    expect(m.hugePagesDetail).toMatch(/MADV_HUGEPAGE/);
    m.close();
    expect(() => m.bytes).toThrow(expect.objectContaining({ code: 'KERNELS_CLOSED' }));
  });

  it("leaves the whole 2 MiB units of `mapped` ranges as the file's own pages, the bytes the same", async () => {
    const c = make();
    // From offset 4096: one range with whole units inside and ragged ends, one too short for a
    // unit, one spanning the end; units of overlapping ranges merge.
    const at = 4096;
    const len = content.length - at;
    const MiB = 1024 * 1024;
    const mapped = [
      { offset: 3 * MiB + 17, length: 9 * MiB },
      { offset: 5 * MiB, length: 4 * MiB },
      { offset: 20 * MiB + 5, length: MiB },
      { offset: len - 5 * MiB - 3, length: 5 * MiB + 3 },
    ];
    const m = await c.loadFile(big, { offset: at, mapped });
    // Units [4, 12) MiB and [len - 5 MiB rounded up to a unit, the last whole unit).
    const tail = Math.floor(len / (2 * MiB)) * 2 * MiB - Math.ceil((len - 5 * MiB - 3) / (2 * MiB)) * 2 * MiB;
    expect(m.fileBackedBytes).toBe(8 * MiB + tail);
    const v = m.view(0, m.length);
    expect(Buffer.compare(Buffer.from(v.buffer, v.byteOffset, v.length), Buffer.from(content.buffer, at))).toBe(0);
    // Linux shows the file mapped in the process; a write through a view stays private.
    if (process.platform === 'linux') expect(readFileSync('/proc/self/maps', 'utf8')).toContain(big);
    v[4 * MiB + 1] ^= 0xff;
    expect(readFileSync(big)[at + 4 * MiB + 1]).toBe(content[at + 4 * MiB + 1]);
    m.close();
    // A region whose file offset is no page multiple is copied whole.
    const odd = await c.loadFile(big, { offset: 7, mapped: [{ offset: 0, length: 8 * MiB }] });
    expect(odd.fileBackedBytes).toBe(0);
    expect(odd.view(6 * MiB, 1)[0]).toBe(content[7 + 6 * MiB]);
    odd.close();
    for (const bad of [[{ offset: -1, length: 1 }], [{ offset: 0, length: len + 1 }], [{ offset: 0.5, length: 1 }], [null], 'all']) {
      await expect(c.loadFile(big, { offset: at, mapped: bad as never })).rejects.toMatchObject({ code: 'KERNELS_BAD_ARGUMENT' });
    }
  });

  it('gives matrices the same products as a mapping of the same file', async () => {
    const c = make({ threads: 2 });
    const mat = makeMatrix({ dtype: 'q4', group: 32 }, 37, 192, 11);
    const path = join(d, 'mat.bin');
    writeFileSync(path, mat.bytes);
    const x = seededFloats(192, 4);
    const y = (m: ReturnType<typeof c.mapFile>) => {
      const out = new Float32Array(37);
      c.gemv(c.matrix(mat.spec, m.bytes, m), x, out);
      m.close();
      return Array.from(out);
    };
    expect(y(await c.loadFile(path, { hugePages: false }))).toEqual(y(c.mapFile(path)));
  });

  it('refuses bad arguments, ranges outside the file and missing files, before allocating', async () => {
    const c = make();
    await expect(c.loadFile(join(d, 'nope.bin'))).rejects.toMatchObject({
      code: 'KERNELS_MAP_FAILED',
      message: expect.stringMatching(/nope\.bin/),
    });
    await expect(c.loadFile(big, { offset: content.length - 10, length: 11 })).rejects.toMatchObject({ code: 'KERNELS_MAP_FAILED' });
    await expect(c.loadFile(big, { offset: content.length })).rejects.toMatchObject({ code: 'KERNELS_MAP_FAILED' });
    await expect(c.loadFile(big, { length: 0 })).rejects.toMatchObject({ code: 'KERNELS_BAD_ARGUMENT' });
    await expect(c.loadFile(big, { offset: -1 })).rejects.toMatchObject({ code: 'KERNELS_BAD_ARGUMENT' });
    await expect(c.loadFile(big, { hugePages: 'yes' as unknown as boolean })).rejects.toMatchObject({ code: 'KERNELS_BAD_ARGUMENT' });
    await expect(c.loadFile('')).rejects.toMatchObject({ code: 'KERNELS_BAD_ARGUMENT' });
  });

  it('allocates zeroed memory, and refuses sizes it cannot', () => {
    const c = make();
    const m = c.allocate(3 * 1024 * 1024 + 5);
    expect(m.length).toBe(3 * 1024 * 1024 + 5);
    expect(m.bytes.every((b) => b === 0)).toBe(true);
    m.bytes.fill(7, 1000, 2000);
    expect(m.view(999, 3)).toEqual(new Uint8Array([0, 7, 7]));
    m.close();
    expect(() => c.allocate(0)).toThrow(expect.objectContaining({ code: 'KERNELS_BAD_ARGUMENT' }));
    expect(() => c.allocate(1.5)).toThrow(expect.objectContaining({ code: 'KERNELS_BAD_ARGUMENT' }));
    expect(() => c.allocate(2 ** 53)).toThrow(expect.objectContaining({ code: 'KERNELS_BAD_ARGUMENT' }));
  });

  it('close() gives the memory back at once, though JavaScript still holds a view of it', () => {
    const c = make();
    const size = 256 * 1024 * 1024;
    const m = c.allocate(size);
    const view = m.bytes;
    view.fill(3); // every page touched: resident
    const before = process.memoryUsage().rss;
    m.close();
    const after = process.memoryUsage().rss;
    expect(view.length).toBe(0); // detached, so nothing can read freed memory
    expect(before - after).toBeGreaterThan(0.9 * size);
  });

  it('fails cleanly when the file is shorter than the range asked for by the time it is read', async () => {
    const c = make();
    const path = join(d, 'short.bin');
    writeFileSync(path, content.subarray(0, 8192));
    const reading = c.loadFile(path, { length: 8192 });
    const fd = openSync(path, 'r+');
    ftruncateSync(fd, 100); // after the size check, before the reads
    closeSync(fd);
    await expect(reading).rejects.toMatchObject({ code: 'KERNELS_MAP_FAILED', message: expect.stringMatching(/ended at byte 100/) });
  });
});

describe('argument checking never lets a bad call reach C++', () => {
  const c = make({ threads: 2 });
  const m = makeMatrix({ dtype: 'q4', group: 64 }, 8, 128, 1);
  const w = c.matrix(m.spec, m.bytes);
  it.each([
    ['short x', () => c.gemv(w, new Float32Array(127), new Float32Array(8)), 'KERNELS_BAD_ARGUMENT'],
    ['short y', () => c.gemv(w, new Float32Array(128), new Float32Array(7)), 'KERNELS_BAD_ARGUMENT'],
    ['x of the wrong type', () => c.gemv(w, new Float64Array(128) as unknown as Float32Array, new Float32Array(8)), 'KERNELS_BAD_ARGUMENT'],
    ['gemm with too few rows of X', () => c.gemm(w, new Float32Array(128 * 2), 3, new Float32Array(24)), 'KERNELS_BAD_ARGUMENT'],
    ['row out of range', () => c.row(w, 8, new Float32Array(128)), 'KERNELS_BAD_ARGUMENT'],
    ['bytes of the wrong size', () => c.matrix(m.spec, m.bytes.subarray(1)), 'KERNELS_BAD_MATRIX'],
    ['wrong scales offset', () => c.matrix({ ...m.spec, quant: { ...m.spec.quant!, scales_offset: 0 } }, m.bytes), 'KERNELS_BAD_MATRIX'],
    ['group 48', () => c.matrix({ ...m.spec, quant: { ...m.spec.quant!, group_size: 48 } }, m.bytes), 'KERNELS_BAD_MATRIX'],
    ['3-D shape', () => c.matrix({ dtype: 'f32', shape: [2, 2, 2] }, new Uint8Array(32)), 'KERNELS_BAD_MATRIX'],
    ['misaligned f32 data', () => c.matrix({ dtype: 'f32', shape: [1, 4] }, new Uint8Array(20).subarray(2, 18)), 'KERNELS_MISALIGNED'],
    [
      'rope with odd head dim',
      () => c.rope(new Float32Array(6), 2, 3, new Float32Array(2), new Float32Array(2), 'adjacent'),
      'KERNELS_BAD_ARGUMENT',
    ],
    [
      'attention with a short cache',
      () =>
        c.attention({
          q: new Float32Array(8),
          k: new Float32Array(8),
          v: new Float32Array(8),
          out: new Float32Array(8),
          nHeads: 2,
          nKvHeads: 1,
          headDim: 4,
          pos0: 2,
        }),
      'KERNELS_BAD_ARGUMENT',
    ],
    [
      'attention with mixed cache types',
      () =>
        c.attention({
          q: new Float32Array(8),
          k: new Uint16Array(8),
          v: new Float32Array(8),
          out: new Float32Array(8),
          nHeads: 2,
          nKvHeads: 1,
          headDim: 4,
          pos0: 0,
        }),
      'KERNELS_BAD_ARGUMENT',
    ],
  ])('%s', (_n, f, code) => {
    expect(f).toThrow(expect.objectContaining({ code }));
    expect(f).toThrow(KernelError);
  });

  it('a closed context refuses work', () => {
    const k = KernelContext.create({ threads: 1 });
    k.close();
    expect(() => k.argmax(new Float32Array(3))).toThrow(expect.objectContaining({ code: 'KERNELS_CLOSED' }));
  });
});

describe('the loader', () => {
  it('says how to build a missing addon', () => {
    const r = spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { KernelContext } from ${JSON.stringify(join(__dirname, '..', 'dist', 'index.js'))}; try { KernelContext.create(); } catch (e) { console.log(e.code + ' ' + e.message); }`,
      ],
      {
        encoding: 'utf8',
        env: { ...process.env, IE_KERNELS_ADDON: '/nonexistent/ie_kernels.node' },
      },
    );
    expect(r.stdout).toMatch(/^KERNELS_NOT_BUILT .*pnpm --filter @ie\/kernels build/);
  });
});

describe('dispose', () => {
  it('releases a matrix; using it afterwards throws KERNELS_CLOSED', () => {
    const c = make({ threads: 1 });
    const m = makeMatrix({ dtype: 'f32' }, 4, 16, 1);
    const w = c.matrix(m.spec, m.bytes);
    w.dispose();
    expect(() => c.gemv(w, new Float32Array(16), new Float32Array(4))).toThrow(expect.objectContaining({ code: 'KERNELS_CLOSED' }));
  });
});

describe('mappings larger than one JavaScript view', () => {
  it('hands out per-region views past 4 GiB and refuses a whole-file buffer', () => {
    const d = mkdtempSync(join(tmpdir(), 'ie-k-'));
    const file = join(d, 'big.bin');
    const size = 5 * 2 ** 30;
    const fd = openSync(file, 'w');
    ftruncateSync(fd, size); // sparse: no disk used
    writeSync(fd, Buffer.from([1, 2, 3, 4]), 0, 4, size - 4);
    closeSync(fd);
    const c = make({ threads: 1 });
    const m = c.mapFile(file);
    expect(m.length).toBe(size);
    expect(() => m.buffer).toThrow(expect.objectContaining({ code: 'KERNELS_MAP_TOO_LARGE' }));
    const tail = m.view(size - 64, 64);
    expect(Array.from(tail.subarray(60))).toEqual([1, 2, 3, 4]);
    expect(() => m.view(size - 10, 64)).toThrow(expect.objectContaining({ code: 'KERNELS_BAD_ARGUMENT' }));
    m.close();
    expect(tail.length).toBe(0); // detached with the mapping
  });
});
