/**
 * The native boundary (issue 11, item 1): each class of memory corruption that JavaScript could
 * cause through @ie/kernels before, now refused with a coded KernelError or made harmless.
 * Before the fix every "no crash" case here segfaulted, read freed memory (ASan) or wrote
 * outside a buffer; run them under the sanitizer build with `pnpm test:asan`.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, describe, expect, it } from 'vitest';
import { seededFloats } from '@ie/testing';
import { makeMatrix } from '../test/helpers.js';
import { loadAddon } from './addon.js';
import { KernelContext, KernelError, type MappedFile, type ProgramSpec, type WeightMatrix, attentionMaxPositions } from './index.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
setFlagsFromString('--no-expose-gc');

const ctx = KernelContext.create({ threads: 2 });
afterAll(() => ctx.close());
const raw = (o: unknown): any => (o as { native: unknown }).native;
const rawCtx = (): any => (ctx as unknown as { native: unknown }).native;

/** A resizable ArrayBuffer (ES2024; the repository's lib is ES2022). */
const resizable = (n: number, max: number): ArrayBuffer =>
  new (ArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => ArrayBuffer)(n, { maxByteLength: max });
const coded = (code: string) => expect.objectContaining({ code });
/** Detaches an ArrayBuffer the way a postMessage transfer does, and lets its new owner go. */
function transferAway(ab: ArrayBufferLike): void {
  structuredClone(ab, { transfer: [ab as ArrayBuffer] });
}

const K = 256;
const N = 192;
const M = 8;
function weights(seed: number): { w: WeightMatrix; ref: (X: Float32Array) => Float32Array } {
  const m = makeMatrix({ dtype: 'f32' }, N, K, seed);
  const w = ctx.matrix(m.spec, m.bytes);
  const ref = (X: Float32Array) => {
    const Y = new Float32Array(M * N);
    ctx.gemm(w, X, M, Y);
    return Y;
  };
  return { w, ref };
}

describe('buffers and matrices are pinned for the whole of an async operation', () => {
  it('a matrix disposed while gemmAsync runs is released when it ends; the result is right', async () => {
    const { w, ref } = weights(1);
    const X = seededFloats(M * K, 2);
    const want = ref(X);
    const Y = new Float32Array(M * N);
    const p = ctx.gemmAsync(w, X, M, Y);
    w.dispose();
    gc();
    await p;
    expect(Y).toEqual(want);
    expect(() => ctx.gemm(w, X, M, Y)).toThrow(coded('KERNELS_CLOSED'));
    await expect(ctx.gemmAsync(w, X, M, Y)).rejects.toThrow(coded('KERNELS_CLOSED'));
  });

  it("the matrix's own buffer transferred away while gemmAsync runs: memory stays, later use is refused", async () => {
    const m = makeMatrix({ dtype: 'f32' }, N, K, 3);
    const w = ctx.matrix(m.spec, m.bytes);
    const X = seededFloats(M * K, 4);
    const Y = new Float32Array(M * N);
    const p = ctx.gemmAsync(w, X, M, Y);
    transferAway(m.bytes.buffer);
    gc();
    await p;
    expect(() => ctx.gemm(w, X, M, Y)).toThrow(coded('KERNELS_DETACHED'));
  });

  it('X or Y transferred while gemmAsync runs: no use after free, the promise rejects KERNELS_DETACHED', async () => {
    const { w } = weights(5);
    for (const which of ['X', 'Y'] as const) {
      const X = seededFloats(M * K, 6);
      const Y = new Float32Array(M * N);
      const p = ctx.gemmAsync(w, X, M, Y);
      transferAway((which === 'X' ? X : Y).buffer);
      gc();
      await expect(p).rejects.toThrow(coded('KERNELS_DETACHED'));
    }
    // Detached before the call: refused up front.
    const X = seededFloats(M * K, 6);
    transferAway(X.buffer);
    await expect(ctx.gemmAsync(w, X, M, new Float32Array(M * N))).rejects.toThrow(KernelError);
  });

  it('resizable and shared buffers are refused (a shrink cannot be prevented)', async () => {
    const { w } = weights(7);
    const rab = resizable(M * K * 4, M * K * 8);
    const X = new Float32Array(rab);
    const Y = new Float32Array(M * N);
    await expect(ctx.gemmAsync(w, X, M, Y)).rejects.toThrow(coded('KERNELS_BAD_ARGUMENT'));
    expect(() => ctx.gemm(w, X, M, Y)).toThrow(coded('KERNELS_BAD_ARGUMENT'));
    expect(() => ctx.add(X, X, X)).toThrow(coded('KERNELS_BAD_ARGUMENT'));
    const shared = new Float32Array(new SharedArrayBuffer(M * K * 4));
    expect(() => ctx.gemm(w, shared, M, Y)).toThrow(coded('KERNELS_BAD_ARGUMENT'));
    const m = makeMatrix({ dtype: 'f32' }, N, K, 8);
    const rbytes = new Uint8Array(resizable(m.bytes.length, m.bytes.length * 2));
    rbytes.set(m.bytes);
    expect(() => ctx.matrix(m.spec, rbytes)).toThrow(coded('KERNELS_BAD_ARGUMENT'));
    const ok = new Float32Array(4);
    expect(() => ctx.compile({ buffers: [new Float32Array(resizable(16, 32))], params: new Int32Array(2), maxRows: 1, ops: [] })).toThrow(
      coded('KERNELS_BAD_ARGUMENT'),
    );
    expect(() => ctx.compile({ buffers: [ok], params: new Int32Array(resizable(8, 16)), maxRows: 1, ops: [] })).toThrow(
      coded('KERNELS_BAD_ARGUMENT'),
    );
  });

  function program(w: WeightMatrix, x: Float32Array, y: Float32Array): ProgramSpec {
    return { buffers: [x, y], params: new Int32Array(4), maxRows: 1, ops: [{ op: 'matmul', matrix: w, x: [0, 0, K], out: [1, 0, N] }] };
  }

  it('Program.runAsync: a matrix disposed meanwhile is released when the run ends; later runs are refused', async () => {
    const { w } = weights(9);
    const x = seededFloats(K, 10);
    const y = new Float32Array(N);
    const want = new Float32Array(N);
    ctx.gemv(w, x, want);
    const p = ctx.compile(program(w, x, y));
    const run = p.runAsync();
    w.dispose();
    gc();
    await run;
    expect(y).toEqual(want);
    expect(() => p.run()).toThrow(coded('KERNELS_CLOSED'));
    await expect(p.runAsync()).rejects.toThrow(coded('KERNELS_CLOSED'));
  });

  it('Program.runAsync: a buffer transferred meanwhile stays allocated; the run rejects KERNELS_DETACHED, later runs are refused', async () => {
    const { w } = weights(11);
    const x = seededFloats(K, 12);
    const y = new Float32Array(N);
    const p = ctx.compile(program(w, x, y));
    const run = p.runAsync();
    transferAway(y.buffer);
    gc();
    await expect(run).rejects.toThrow(coded('KERNELS_DETACHED'));
    expect(() => p.run()).toThrow(coded('KERNELS_DETACHED'));
  });

  it('a mapping closed while a matrix over it is used asynchronously stays mapped until the matrix lets go', async () => {
    const d = mkdtempSync(join(tmpdir(), 'ie-kb-'));
    const m = makeMatrix({ dtype: 'f32' }, N, K, 13);
    writeFileSync(join(d, 'w.bin'), m.bytes);
    const mapping = ctx.mapFile(join(d, 'w.bin'));
    const w = ctx.matrix(m.spec, mapping.view(0, m.bytes.length), mapping);
    const X = seededFloats(M * K, 14);
    const Y = new Float32Array(M * N);
    const want = new Float32Array(M * N);
    ctx.gemm(ctx.matrix(m.spec, m.bytes), X, M, want);
    const p = ctx.gemmAsync(w, X, M, Y);
    mapping.close();
    w.dispose();
    gc();
    await p;
    expect(Y).toEqual(want);
  });

  it('a mapping closed while gemmAsync writes into a view of it stays mapped until the call ends; the call rejects KERNELS_DETACHED', async () => {
    const m = makeMatrix({ dtype: 'f32' }, 512, K, 15);
    const w = ctx.matrix(m.spec, m.bytes);
    for (const where of ['Y', 'X'] as const) {
      const mem = ctx.allocate(64 * 512 * 4, { hugePages: false });
      const inMap = new Float32Array(mem.view(0, 64 * 512 * 4).buffer);
      const X = where === 'X' ? inMap.subarray(0, 64 * K) : seededFloats(64 * K, 16);
      if (where === 'X') X.set(seededFloats(64 * K, 16));
      const Y = where === 'Y' ? inMap : new Float32Array(64 * 512);
      const p = ctx.gemmAsync(w, X, 64, Y);
      mem.close();
      gc();
      await expect(p, where).rejects.toThrow(coded('KERNELS_DETACHED'));
    }
    w.dispose();
  });
});

describe('a worker thread terminated while an async operation runs', () => {
  it('ends the worker, not the process', async () => {
    const { Worker } = await import('node:worker_threads');
    const entry = new URL('../dist/index.js', import.meta.url).href;
    for (const op of ['gemmAsync', 'runAsync']) {
      const code = `
        const { parentPort } = require('node:worker_threads');
        import(${JSON.stringify(entry)}).then(({ KernelContext }) => {
          const ctx = KernelContext.create({ threads: 1 });
          const w = ctx.matrix({ dtype: 'f32', shape: [1024, 1024] }, new Uint8Array(1024 * 1024 * 4));
          if (${JSON.stringify(op)} === 'gemmAsync') ctx.gemmAsync(w, new Float32Array(128 * 1024), 128, new Float32Array(128 * 1024));
          else
            ctx
              .compile({ buffers: [new Float32Array(128 * 1024), new Float32Array(128 * 1024)], params: new Int32Array([128]), maxRows: 128,
                ops: [{ op: 'matmul', matrix: w, x: [0, 0, 1024], out: [1, 0, 1024], mSlot: 0 }] })
              .runAsync();
          parentPort.postMessage('started');
        });`;
      const worker = new Worker(code, { eval: true });
      await new Promise((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      });
      await worker.terminate();
    }
    // Still here: the process survived both.
    expect(ctx.info().threads).toBe(2);
  });
});

describe('compile() views: overflow-safe extents', () => {
  const buf = new Float32Array(64);
  const spec = (x: readonly [number, number, number], maxRows = 8): ProgramSpec => ({
    buffers: [buf],
    params: new Int32Array(4),
    maxRows,
    ops: [{ op: 'add', a: x, b: [0, 0, 0], out: [0, 0, 0], n: 8, mSlot: 0 }],
  });

  it('refuses strides and offsets whose (rows - 1) * stride + offset wraps 2^64', () => {
    // 7 * 2^61 + 8 wraps to a small number in uint64: the old check passed it.
    for (const x of [
      [0, 0, 2 ** 61],
      [0, 0, 2 ** 62],
      [0, 2 ** 61, 0],
      [0, 2 ** 53 - 1, 2 ** 53 - 1],
      [0, 0, -1],
      [0, -8, 1],
      [0, 0, 1.5],
      [0, Number.NaN, 1],
      [0, 0, Number.POSITIVE_INFINITY],
      [1, 0, 0],
      [-1, 0, 0],
    ] as const)
      expect(() => ctx.compile(spec(x)), JSON.stringify(x)).toThrow(coded('KERNELS_BAD_ARGUMENT'));
    // Exactly fitting is still fine: 8 rows of 8 at stride 8 fill 64.
    expect(ctx.compile(spec([0, 0, 8])).size).toBe(1);
    expect(() => ctx.compile(spec([0, 1, 8]))).toThrow(coded('KERNELS_BAD_ARGUMENT'));
  });

  it('refuses an op without a kind, with a missing count, or with a non-array view', () => {
    const n = rawCtx();
    const base = { buffers: [buf], params: new Int32Array(4), maxRows: 1 };
    expect(() => n.compile({ ...base, ops: [{ a: [0, 0, 0], b: [0, 0, 0], out: [0, 0, 0], n: 4 }] })).toThrow(
      coded('KERNELS_BAD_ARGUMENT'),
    );
    expect(() => n.compile({ ...base, ops: [{ kind: 3, a: [0, 0], b: [0, 0, 0], out: [0, 0, 0], n: 4 }] })).toThrow(
      coded('KERNELS_BAD_ARGUMENT'),
    );
    expect(() => n.compile({ ...base, ops: [{ kind: 3, a: { 0: 0, 1: 0, 2: 0 }, b: [0, 0, 0], out: [0, 0, 0], n: 4 }] })).toThrow(
      coded('KERNELS_BAD_ARGUMENT'),
    );
    expect(() =>
      n.compile({ ...base, ops: [{ kind: 9, x: [0, 0, 0], router: [0, 0, 0], out: [0, 0, 0], gate: [], up: [], down: [] }] }),
    ).toThrow(expect.objectContaining({ code: 'KERNELS_BAD_ARGUMENT', message: expect.stringMatching(/one Matrix per expert/) }));
    // A kind past the last, and a field of the wrong type: both named.
    expect(() => n.compile({ ...base, ops: [{ kind: 12, x: [0, 0, 0], out: [0, 0, 0], n: 4 }] })).toThrow(
      /kind must be an integer in 0..11/,
    );
    expect(() => n.compile({ ...base, ops: [{ kind: 11, x: [0, 0, 0], out: [0, 0, 0], n: '4' }] })).toThrow(/n must be a number/);
  });
});

describe('type tags: a spoofed or foreign object is refused, never unwrapped', () => {
  const m = makeMatrix({ dtype: 'f32' }, 16, 32, 20);

  it("matrix()'s mapping must be a Mapping", () => {
    const w = ctx.matrix(m.spec, m.bytes);
    // Before: a Matrix unwrapped as a Mapping (type confusion, segfault).
    expect(() => rawCtx().matrix({ type: 0, rows: 16, cols: 32, bytes: m.bytes.length }, m.bytes, raw(w))).toThrow(
      coded('KERNELS_BAD_ARGUMENT'),
    );
    expect(() => rawCtx().matrix({ type: 0, rows: 16, cols: 32, bytes: m.bytes.length }, m.bytes, {})).toThrow(
      coded('KERNELS_BAD_ARGUMENT'),
    );
    expect(() => ctx.matrix(m.spec, m.bytes, raw(w) as MappedFile)).toThrow(coded('KERNELS_BAD_ARGUMENT'));
  });

  it('an object given a Matrix or Mapping prototype, or a method called on a foreign this, throws KERNELS_BAD_ARGUMENT', () => {
    const addon = loadAddon() as unknown as Record<string, { prototype: Record<string, unknown> }>;
    const w = ctx.matrix(m.spec, m.bytes);
    const fakeMatrix = Object.setPrototypeOf({}, addon.Matrix.prototype);
    const x = new Float32Array(32);
    const y = new Float32Array(16);
    expect(() => rawCtx().gemv(fakeMatrix, x, y, 0)).toThrow(coded('KERNELS_BAD_ARGUMENT'));
    // A real Mapping object dressed as a Matrix.
    const d = mkdtempSync(join(tmpdir(), 'ie-kb-'));
    writeFileSync(join(d, 'f.bin'), new Uint8Array(4096));
    const mapping = ctx.mapFile(join(d, 'f.bin'));
    const dressed = Object.setPrototypeOf(raw(mapping), addon.Matrix.prototype);
    expect(() => rawCtx().gemv(dressed, x, y, 0)).toThrow(coded('KERNELS_BAD_ARGUMENT'));
    // A method on a foreign `this`: V8's receiver check ("Illegal invocation") or the tag check.
    expect(() => (addon.Mapping.prototype.close as () => void).call(raw(w))).toThrow();
    expect(() => (addon.Matrix.prototype.dispose as () => void).call(rawCtx())).toThrow();
    expect(() => (addon.Program.prototype.run as () => void).call({})).toThrow();
    expect(() => Object.getOwnPropertyDescriptor(addon.Matrix.prototype, 'rows')?.get?.call(5)).toThrow();
    expect(() => rawCtx().numaBind(raw(w))).toThrow(coded('KERNELS_BAD_ARGUMENT'));
    expect(() => rawCtx().touch(raw(w), 1, 1, 0)).toThrow(coded('KERNELS_BAD_ARGUMENT'));
    expect(() =>
      rawCtx().compile({
        buffers: [x],
        params: new Int32Array(2),
        maxRows: 1,
        ops: [{ kind: 2, matrix: dressed, a: [0, 0, 32], out: [0, 0, 16] }],
      }),
    ).toThrow(coded('KERNELS_BAD_ARGUMENT'));
  });

  it('Matrix, Mapping and Program cannot be constructed from JavaScript', () => {
    const addon = loadAddon() as unknown as Record<string, new (...a: unknown[]) => unknown>;
    for (const name of ['Matrix', 'Mapping', 'Program']) expect(() => new addon[name](), name).toThrow(coded('KERNELS_BAD_ARGUMENT'));
    const Base = addon.Matrix as new () => object;
    class Sub extends Base {}
    expect(() => new Sub()).toThrow(coded('KERNELS_BAD_ARGUMENT'));
  });
});

describe('mapped files: views are private, never a fault', () => {
  it('writing through MappedFile.bytes or a view neither crashes nor reaches the file', () => {
    const d = mkdtempSync(join(tmpdir(), 'ie-kb-'));
    const file = join(d, 'm.bin');
    const content = new Uint8Array(3 * 4096 + 7).map((_, i) => (i * 13) & 255);
    writeFileSync(file, content);
    const a = ctx.mapFile(file);
    const b = ctx.mapFile(file);
    a.bytes[0] = 255 - content[0]; // PROT_READ before: SIGSEGV
    a.view(4096, 10)[3] = 1;
    a.bytes.fill(0);
    expect(a.bytes[0]).toBe(0);
    expect(b.bytes[0]).toBe(content[0]);
    expect(b.view(4096, 10)[3]).toBe(content[4099]);
    expect(readFileSync(file)).toEqual(Buffer.from(content));
    a.close();
    b.close();
  });

  it('the buffer getter survives its previous buffer being garbage-collected (the ASan "Invalid argument" flake)', () => {
    const d = mkdtempSync(join(tmpdir(), 'ie-kb-'));
    writeFileSync(join(d, 'g.bin'), new Uint8Array(8192).fill(9));
    const m = ctx.mapFile(join(d, 'g.bin'));
    for (let i = 0; i < 5; i++) {
      expect(m.bytes[100]).toBe(9); // a buffer nothing keeps: the weak reference empties at gc
      gc();
    }
    for (let i = 0; i < 200; i++) m.view(0, 16); // views the collector takes are pruned
    gc();
    expect(m.view(8000, 16)[0]).toBe(9);
    m.close();
    expect(() => m.bytes).toThrow(coded('KERNELS_CLOSED'));
  });
});

describe('a matrix spec is read once', () => {
  it('a layout getter that answers differently on a second read cannot make the native matrix differ from the one validated', () => {
    const m = makeMatrix({ dtype: 'f32' }, 16, 64, 17);
    let reads = 0;
    const spec = {
      ...m.spec,
      get layout() {
        reads++;
        return reads === 1 ? { order: 'row_major' as const, block_k: 0 } : { order: 'pretransposed' as const, block_k: 0 };
      },
    };
    const flipping = ctx.matrix(spec as never, m.bytes);
    expect(reads).toBe(1);
    const x = seededFloats(64, 18);
    const [got, want] = [new Float32Array(16), new Float32Array(16)];
    ctx.gemv(flipping, x, got);
    ctx.gemv(ctx.matrix({ ...m.spec, layout: { order: 'row_major', block_k: 0 } }, m.bytes), x, want);
    expect(got).toEqual(want);
    const throwing = {
      ...m.spec,
      get quant(): never {
        throw new Error('boom');
      },
    };
    expect(() => ctx.matrix(throwing as never, m.bytes)).toThrow(coded('KERNELS_BAD_MATRIX'));
  });
});

describe('attention and programs refuse shapes that would run past their buffers or their memory', () => {
  it('attention whose scratch would pass 1 GiB a thread is refused before any thread allocates (it aborted the process)', () => {
    const H = 65536;
    const P = 2 ** 20;
    const args = {
      q: new Float32Array(H),
      k: new Float32Array(P),
      v: new Float32Array(P),
      out: new Float32Array(H),
      nHeads: H,
      nKvHeads: 1,
      headDim: 1,
      pos0: P - 1,
    };
    expect(() => ctx.attention(args as never)).toThrow(coded('KERNELS_BAD_ARGUMENT'));
    expect(() => ctx.attention(args as never)).toThrow(/MiB of scratch a thread, over the 1024 MiB limit/);
  });

  it('attentionMaxPositions names the longest context compile() accepts for a shape, and one more is refused', () => {
    const compileOver = (heads: number, capacity: number, window: number, maxRows: number) =>
      ctx.compile({
        buffers: [
          new Float32Array(maxRows * heads),
          new Float32Array(maxRows * heads),
          new Float32Array(capacity),
          new Float32Array(capacity),
        ],
        params: new Int32Array([maxRows]),
        maxRows,
        ops: [
          {
            op: 'attention',
            q: [0, 0, heads],
            out: [1, 0, heads],
            k: [2, 0, 1],
            v: [3, 0, 1],
            heads,
            kvHeads: 1,
            headDim: 1,
            kvType: 'f32',
            capacity,
            ...(window ? { window } : {}),
          },
        ],
      } as unknown as ProgramSpec);
    for (const [heads, maxRows] of [
      [65536, 1],
      [40000, 3],
      [9001, 16],
    ] as const) {
      const P = attentionMaxPositions({ heads, kvHeads: 1, headDim: 1, window: 0, queries: maxRows });
      expect(P, `${heads} heads`).toBeGreaterThan(100);
      expect(P, `${heads} heads`).toBeLessThan(2 ** 28 / heads);
      expect(() => compileOver(heads, P, 0, maxRows)).not.toThrow();
      expect(() => compileOver(heads, P + 1, 0, maxRows)).toThrow(/MiB of scratch a thread, over the 1024 MiB limit/);
    }
    // A window bounds the span: any context fits where the window does.
    expect(attentionMaxPositions({ heads: 64, kvHeads: 8, headDim: 64, window: 128, queries: 512 })).toBe(2 ** 31 - 1);
    expect(attentionMaxPositions({ heads: 65536, kvHeads: 1, headDim: 1, window: 2 ** 20, queries: 1 })).toBeLessThan(2 ** 20);
    expect(() => attentionMaxPositions({ heads: 0, kvHeads: 1, headDim: 1, window: 0, queries: 1 })).toThrow(coded('KERNELS_BAD_ARGUMENT'));
    expect(() => attentionMaxPositions({ heads: 8, kvHeads: 1, headDim: 1.5, window: 0, queries: 1 })).toThrow(
      /headDim must be an integer/,
    );
  });

  it('an attention or rope op with no position slot over more rows than its cache or tables hold is refused, not read past their end', () => {
    const hd = 4;
    for (const R of [2, 4096]) {
      const attention = ctx.compile({
        buffers: [new Float32Array(R * hd), new Float32Array(R * hd), new Float32Array(hd), new Float32Array(hd)],
        params: new Int32Array([R]),
        maxRows: R,
        ops: [
          {
            op: 'attention',
            q: [0, 0, hd],
            out: [1, 0, hd],
            k: [2, 0, hd],
            v: [3, 0, hd],
            heads: 1,
            kvHeads: 1,
            headDim: hd,
            kvType: 'f32',
            capacity: 1,
            mSlot: 0,
          },
        ],
      } as unknown as ProgramSpec);
      expect(() => attention.run(), `attention, ${R} rows`).toThrow(/position 0 is outside 0\.\.-\d+ \(the op has no slot/);
      const rope = ctx.compile({
        buffers: [new Float32Array(R * hd), new Float32Array(hd / 2), new Float32Array(hd / 2)],
        params: new Int32Array([R]),
        maxRows: R,
        ops: [{ op: 'rope', x: [0, 0, hd], cos: [1, 0, hd / 2], sin: [2, 0, hd / 2], heads: 1, headDim: hd, capacity: 1, mSlot: 0 }],
      } as unknown as ProgramSpec);
      expect(() => rope.run(), `rope, ${R} rows`).toThrow(/position 0 is outside/);
    }
  });
});

describe('the raw attention binding validates every field', () => {
  const q = new Float32Array(64);
  const k = new Float32Array(256);
  const out = new Float32Array(64);
  const full = {
    q,
    k,
    v: k,
    out,
    nHeads: 4,
    nKvHeads: 2,
    headDim: 16,
    nQueries: 1,
    pos0: 0,
    kvStride: 32,
    window: 0,
    scale: 0.25,
    kvType: 0,
  };

  it('works with every field, refuses each one missing or wrong (no division by zero)', () => {
    rawCtx().attention(full);
    for (const key of ['nHeads', 'nKvHeads', 'headDim', 'pos0', 'scale', 'q', 'k', 'v', 'out']) {
      const a: Record<string, unknown> = { ...full };
      delete a[key];
      expect(() => rawCtx().attention(a), key).toThrow(coded('KERNELS_BAD_ARGUMENT'));
    }
    for (const [key, value] of [
      ['nKvHeads', 0],
      ['nKvHeads', 3],
      ['nHeads', -4],
      ['headDim', 1.5],
      ['kvStride', 8],
      ['pos0', 2 ** 40],
      ['kvType', 1],
      ['q', new Float32Array(63)],
      ['k', new Uint16Array(256)],
      ['sinks', new Float32Array(1)],
      ['out', new Float32Array(new SharedArrayBuffer(256))],
    ] as const)
      expect(() => rawCtx().attention({ ...full, [key]: value }), key).toThrow(coded('KERNELS_BAD_ARGUMENT'));
  });

  it('reads every field before touching a buffer: a getter that detaches one cannot cause a use after free', () => {
    const kk = new Float32Array(256);
    const args = {
      ...full,
      k: kk,
      v: kk,
      get scale() {
        transferAway(kk.buffer);
        return 0.25;
      },
    };
    expect(() => rawCtx().attention(args)).toThrow(coded('KERNELS_DETACHED'));
  });
});
