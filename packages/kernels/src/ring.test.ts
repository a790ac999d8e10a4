import { afterAll, describe, expect, it } from 'vitest';
import { firstDifference, seededFloats } from '@ie/testing';
import { KernelContext, KernelError, type ProgramOp, type View } from './index.js';

// A sliding-window layer's KV cache as a ring: `positions` above `capacity`, position t in row
// t mod capacity. Storing and attending through the ring must give bit for bit what a cache of
// every position gives, for prefill chunks (the batched path) and decode rows, one sequence or an
// arena of several, f32 and f16 caches, and a run long enough to wrap the ring several times.
const ISAS = (() => {
  const c = KernelContext.create({ threads: 1 });
  const isas = c.info().supportedIsas as Array<'scalar' | 'avx2' | 'avxvnni' | 'avx512'>;
  c.close();
  return isas;
})();
const contexts: KernelContext[] = [];
afterAll(() => {
  for (const c of contexts) c.close();
});

const heads = 4;
const kvHeads = 2;
const hd = 16;
const q = heads * hd;
const kv = kvHeads * hd;
const T = 70; // positions a slot runs through
const W = 9; // the window
const R = 6; // rows per run
const rows = (b: number, w: number): View => [b, 0, w];

/** store k, v and attend, at `capacity` rows per slot (T: every position; less: a ring). */
function build(ctx: KernelContext, capacity: number, kvType: 'f32' | 'f16', slots: number) {
  const cache = () => (kvType === 'f16' ? new Uint16Array(slots * capacity * kv) : new Float32Array(slots * capacity * kv));
  const buffers = [new Float32Array(R * q), new Float32Array(R * kv), new Float32Array(R * kv), new Float32Array(R * q), cache(), cache()];
  const params = new Int32Array(2 + 2 * R);
  const place = slots === 1 ? { posSlot: 1 } : { seqSlot: 2, slots };
  const common = { capacity, positions: T, kvType, mSlot: 0, ...place } as const;
  const sinks = seededFloats(heads, 5, 1);
  const ops: ProgramOp[] = [
    { op: 'store', x: rows(1, kv), cache: rows(4, kv), n: kv, ...common },
    { op: 'store', x: rows(2, kv), cache: rows(5, kv), n: kv, ...common },
    {
      op: 'attention',
      q: rows(0, q),
      k: rows(4, kv),
      v: rows(5, kv),
      out: rows(3, q),
      heads,
      kvHeads,
      headDim: hd,
      window: W,
      sinks: rows(6, heads),
      ...common,
    },
  ];
  const program = ctx.compile({ buffers: [...buffers, sinks], params, maxRows: R, ops });
  return {
    program,
    params,
    qb: buffers[0] as Float32Array,
    kb: buffers[1] as Float32Array,
    vb: buffers[2] as Float32Array,
    out: buffers[3] as Float32Array,
  };
}

/** Runs a schedule of steps (rows of [slot, position]) on a program; returns every step's output. */
function drive(p: ReturnType<typeof build>, steps: Array<Array<[number, number]>>, slots: number): Float32Array[] {
  const outs: Float32Array[] = [];
  steps.forEach((step, s) => {
    p.qb.set(seededFloats(step.length * q, 100 + s, 1));
    p.kb.set(seededFloats(step.length * kv, 200 + s, 1));
    p.vb.set(seededFloats(step.length * kv, 300 + s, 1));
    p.params[0] = step.length;
    if (slots === 1) p.params[1] = step[0][1];
    else
      step.forEach(([slot, pos], i) => {
        p.params[2 + 2 * i] = slot;
        p.params[3 + 2 * i] = pos;
      });
    p.program.run();
    outs.push(p.out.slice(0, step.length * q));
  });
  return outs;
}

describe('a ring KV cache (sliding window)', () => {
  for (const isa of ISAS)
    for (const kvType of ['f32', 'f16'] as const)
      it(`gives what a cache of every position gives (${isa}, ${kvType} cache)`, () => {
        const ctx = KernelContext.create({ threads: 2, isa });
        contexts.push(ctx);
        // One sequence: prefill chunks of R rows (batched attention), then decode rows, wrapping the ring.
        const one: Array<Array<[number, number]>> = [];
        let pos = 0;
        for (; pos + R <= 30; pos += R) one.push(Array.from({ length: R }, (_, i) => [0, pos + i] as [number, number]));
        for (; pos < T; pos++) one.push([[0, pos]]);
        const ring = W + R - 1;
        expect(
          firstDifference(
            drive(build(ctx, ring, kvType, 1), one, 1).flatMap((x) => [...x]),
            drive(build(ctx, T, kvType, 1), one, 1).flatMap((x) => [...x]),
          ),
        ).toBeNull();
        // Three sequences in an arena, decode rows of all of them in each step, at different positions.
        const many: Array<Array<[number, number]>> = [];
        for (let t = 0; t < T - 20; t++)
          many.push([
            [0, t],
            [1, t + 10],
            [2, t + 20],
          ]);
        expect(
          firstDifference(
            drive(build(ctx, ring, kvType, 3), many, 3).flatMap((x) => [...x]),
            drive(build(ctx, T, kvType, 3), many, 3).flatMap((x) => [...x]),
          ),
        ).toBeNull();
      });

  it('refuses a ring without a window or smaller than window + rows - 1, and positions past `positions`', () => {
    const ctx = KernelContext.create({ threads: 1 });
    contexts.push(ctx);
    expect(() => build(ctx, W + R - 2, 'f32', 1)).toThrow(KernelError);
    expect(() => build(ctx, W + R - 2, 'f32', 1)).toThrow(/capacity >= window \+ rows - 1/);
    const p = build(ctx, W + R - 1, 'f32', 1);
    p.params[0] = 1;
    p.params[1] = T;
    expect(() => p.program.run()).toThrow(KernelError);
    p.params[1] = T - 1;
    expect(() => p.program.run()).not.toThrow();
  });
});
