import { afterAll, describe, expect, it } from 'vitest';
import { firstDifference, seededFloats } from '@ie/testing';
import { makeMatrix } from '../test/helpers.js';
import { KernelContext, type ProgramOp, type ProgramSpec } from './index.js';

const ctx = KernelContext.create({ threads: 2 });
afterAll(() => ctx.close());

describe('programs', () => {
  const K = 96;
  const N = 80;
  const m = makeMatrix({ dtype: 'q4', group: 32 }, N, K, 1);
  const w = ctx.matrix(m.spec, m.bytes);
  const emb = makeMatrix({ dtype: 'f16' }, 50, K, 2);
  const e = ctx.matrix(emb.spec, emb.bytes);
  const norm = seededFloats(K, 3, 1);

  /** embed -> rmsnorm -> matmul -> argmax over up to 4 rows. */
  function build(): { spec: ProgramSpec; params: Int32Array; x: Float32Array; h: Float32Array; y: Float32Array } {
    const params = new Int32Array(8);
    const x = new Float32Array(4 * K);
    const h = new Float32Array(4 * K);
    const y = new Float32Array(4 * N);
    const spec: ProgramSpec = {
      buffers: [x, h, y, norm],
      params,
      maxRows: 4,
      ops: [
        { op: 'embed', matrix: e, out: [0, 0, K], idsSlot: 2, mSlot: 0 },
        { op: 'rmsnorm', x: [0, 0, K], weight: [3, 0, 0], out: [1, 0, K], n: K, eps: 1e-5, mSlot: 0 },
        { op: 'matmul', matrix: w, x: [1, 0, K], out: [2, 0, N], mSlot: 0 },
        { op: 'argmax', x: [2, 0, 0], n: N, outSlot: 1 },
      ],
    };
    return { spec, params, x, h, y };
  }

  it('computes what the same kernels compute one call at a time, sync and async', async () => {
    const b = build();
    const p = ctx.compile(b.spec);
    expect(p.size).toBe(4);
    b.params.set([3, -1, 7, 0, 49]);
    p.run();
    const x = new Float32Array(3 * K);
    for (let i = 0; i < 3; i++) ctx.row(e, [7, 0, 49][i], x.subarray(i * K, (i + 1) * K));
    const h = new Float32Array(3 * K);
    for (let i = 0; i < 3; i++) ctx.rmsnorm(x.subarray(i * K, (i + 1) * K), norm, 1e-5, h.subarray(i * K, (i + 1) * K));
    // A few rows (decode rows of several sequences) run the GEMV kernel per row: each as alone.
    const y = new Float32Array(3 * N);
    for (let i = 0; i < 3; i++) ctx.gemv(w, h.subarray(i * K, (i + 1) * K), y.subarray(i * N, (i + 1) * N));
    expect(firstDifference(b.y.subarray(0, 3 * N), y)).toBeNull();
    expect(b.params[1]).toBe(ctx.argmax(y.subarray(0, N)));
    b.y.fill(0);
    await p.runAsync();
    expect(firstDifference(b.y.subarray(0, 3 * N), y)).toBeNull();
  });

  it('refuses params past the declared maxima instead of touching memory', async () => {
    const b = build();
    const p = ctx.compile(b.spec);
    b.params.set([5, 0, 1, 1, 1, 1, 1]);
    expect(() => p.run()).toThrow(/rows 5 is outside 1..4/);
    b.params.set([1, 0, 50]);
    expect(() => p.run()).toThrow(/token id 50 is outside 0..49/);
    await expect(p.runAsync()).rejects.toMatchObject({ code: 'KERNELS_BAD_ARGUMENT' });
  });

  it('refuses views that do not fit their buffers at compile time', () => {
    const b = build();
    b.spec.ops[1] = { op: 'rmsnorm', x: [0, 1, K], weight: [3, 0, 0], out: [1, 0, K], n: K, eps: 1e-5, mSlot: 0 };
    expect(() => ctx.compile(b.spec)).toThrow(/do not fit buffer 0/);
    const c = build();
    c.spec.ops[2] = { op: 'matmul', matrix: w, x: [1, 0, K], out: [2, 0, N], mSlot: 0, lastRowOnly: false };
    c.spec.buffers[2] = new Float32Array(N);
    expect(() => ctx.compile(c.spec)).toThrow(expect.objectContaining({ code: 'KERNELS_BAD_ARGUMENT' }));
    const d = build();
    d.spec.ops.push({ op: 'store', x: [0, 0, K], cache: [1, 0, K], n: K, kvType: 'f16', capacity: 4, posSlot: 3, mSlot: 0 });
    expect(() => ctx.compile(d.spec)).toThrow(/wrong element type/);
  });

  it('runs one program at a time', async () => {
    const b = build();
    const p = ctx.compile(b.spec);
    b.params.set([1, 0, 3]);
    const first = p.runAsync();
    expect(() => p.run()).toThrow(expect.objectContaining({ code: 'KERNELS_BUSY' }));
    await first;
  });
});

describe('the tap op', () => {
  // x rows 16 wide; a tap takes the first n = 12 of each of the run's rows into `out` (stride 12).
  const W = 16;
  const n = 12;
  const maxRows = 3;
  function tapProgram(over: Partial<Extract<ProgramOp, { op: 'tap' }>> = {}, out = new Float32Array(maxRows * n + 5)) {
    const x = seededFloats(maxRows * W, 7, 1);
    const params = new Int32Array(1);
    const spec: ProgramSpec = {
      buffers: [x, out],
      params,
      maxRows,
      ops: [{ op: 'tap', x: [0, 0, W], out: [1, 0, n], n, mSlot: 0, ...over }],
    };
    return { x, out, params, spec };
  }

  it('copies n floats of each of the run’s rows, and nothing past them', async () => {
    const t = tapProgram();
    t.out.fill(-1);
    const p = ctx.compile(t.spec);
    t.params[0] = 2;
    p.run();
    for (let i = 0; i < 2; i++) expect(t.out.subarray(i * n, (i + 1) * n)).toEqual(t.x.subarray(i * W, i * W + n));
    expect([...t.out.subarray(2 * n)]).toEqual(new Array(n + 5).fill(-1));
    t.params[0] = 3;
    t.x[2 * W] = 42.5;
    await p.runAsync();
    expect(t.out[2 * n]).toBe(42.5);
    expect(t.out.subarray(2 * n, 3 * n)).toEqual(t.x.subarray(2 * W, 2 * W + n));
  });

  it('is validated like the other ops', () => {
    expect(() => ctx.compile(tapProgram({ n: 0 }).spec)).toThrow(/ops\[0\] needs n >= 1/);
    expect(() => ctx.compile(tapProgram({}, new Float32Array(maxRows * n - 1)).spec)).toThrow(
      /ops\[0\]\.out: 3 rows of 12 .* do not fit buffer 1/,
    );
    expect(() => ctx.compile(tapProgram({ x: [0, 0, 4] }).spec)).not.toThrow();
    expect(() => ctx.compile(tapProgram({ x: [0, 40, W] }).spec)).toThrow(
      /ops\[0\]\.x: 3 rows of 12 \(stride 16, offset 40\) do not fit buffer 0/,
    );
    expect(() => ctx.compile(tapProgram({ maxRows: 2 }, new Float32Array(2 * n)).spec)).not.toThrow();
    const t = tapProgram();
    t.params[0] = 4;
    expect(() => ctx.compile(t.spec).run()).toThrow(/rows 4 is outside 1..3/);
  });
});

// Consecutive one-row matmuls of one x (q, k and v; gate and up) run as one pool job: each output
// is bit for bit its matmul's alone, in both activation modes, at 1 and 2 threads; where outputs
// overlap, the program keeps its order (the later matmul's values win).
describe('consecutive one-row matmuls of the same x', () => {
  const one = KernelContext.create({ threads: 1 });
  afterAll(() => one.close());
  const K = 320;
  const specs = [
    makeMatrix({ dtype: 'q4', group: 64 }, 300, K, 11),
    makeMatrix({ dtype: 'f32' }, 64, K, 12),
    makeMatrix({ dtype: 'bf16' }, 129, K, 13),
    makeMatrix({ dtype: 'i8', group: 'row' }, 200, K, 14),
  ];
  const x = seededFloats(K, 15, 1);

  it.each(['f32', 'int8'] as const)('give each matmul’s bits alone (%s activations)', (activations) => {
    for (const c of [ctx, one]) {
      const ws = specs.map((m) => c.matrix(m.spec, m.bytes));
      const outs = specs.map((m) => new Float32Array(m.spec.shape[0]).fill(Number.NaN));
      const ops: ProgramOp[] = ws.map((w, i) => ({
        op: 'matmul',
        matrix: w,
        x: [0, 0, K],
        out: [i + 1, 0, specs[i].spec.shape[0]],
        activations,
      }));
      c.compile({ buffers: [x, ...outs], params: new Int32Array(1), maxRows: 1, ops }).run();
      ws.forEach((w, i) => {
        const alone = new Float32Array(specs[i].spec.shape[0]);
        c.gemv(w, x, alone, { activations });
        expect(firstDifference(outs[i], alone), `matrix ${i}, ${c === one ? 1 : 2} threads`).toBeNull();
      });
    }
  });

  it('run up to a matmul whose rows param is out of range, then refuse it as one at a time would', () => {
    const ws = specs.slice(0, 2).map((m) => ctx.matrix(m.spec, m.bytes));
    const a = new Float32Array(300).fill(Number.NaN);
    const b = new Float32Array(64).fill(Number.NaN);
    const params = new Int32Array([1, 9]);
    const ops: ProgramOp[] = [
      { op: 'matmul', matrix: ws[0], x: [0, 0, K], out: [1, 0, 300], mSlot: 0 },
      { op: 'matmul', matrix: ws[1], x: [0, 0, K], out: [2, 0, 64], mSlot: 1 },
    ];
    const p = ctx.compile({ buffers: [x, a, b], params, maxRows: 1, ops });
    expect(() => p.run()).toThrow(/rows 9 is outside 1..1/);
    const want = new Float32Array(300);
    ctx.gemv(ws[0], x, want);
    expect(firstDifference(a, want)).toBeNull();
    expect(b.every(Number.isNaN)).toBe(true);
  });

  it('keep the program’s order where two outputs overlap', () => {
    const ws = specs.slice(0, 2).map((m) => ctx.matrix(m.spec, m.bytes));
    const out = new Float32Array(300).fill(Number.NaN);
    const ops: ProgramOp[] = [
      { op: 'matmul', matrix: ws[0], x: [0, 0, K], out: [1, 0, 300] },
      { op: 'matmul', matrix: ws[1], x: [0, 0, K], out: [1, 0, 64] },
    ];
    ctx.compile({ buffers: [x, out], params: new Int32Array(1), maxRows: 1, ops }).run();
    const a = new Float32Array(300);
    const b = new Float32Array(64);
    ctx.gemv(ws[0], x, a);
    ctx.gemv(ws[1], x, b);
    expect(firstDifference(out.subarray(0, 64), b)).toBeNull();
    expect(firstDifference(out.subarray(64), a.subarray(64))).toBeNull();
  });
});
