import { afterAll, describe, expect, it } from 'vitest';
import { firstDifference, seededFloats } from '@ie/testing';
import { makeBlockMatrix, makeMatrix, type TestMatrix } from '../test/helpers.js';
import { KernelContext, KernelError, type ProgramSpec, type WeightMatrix } from './index.js';

const contexts: KernelContext[] = [];
afterAll(() => contexts.forEach((c) => c.close()));
const ISAS = (() => {
  const c = KernelContext.create({ threads: 1 });
  contexts.push(c);
  return c.info().supportedIsas as string[];
})();

const E = 6;
const TOP = 3;
const D = 64;
const F = 96;
const LIMIT = 1.5;
const ALPHA = 1.702;

/** float64 MoE FFN of one row, from the decoded expert values (the op's definition). */
function refMoe(
  x: Float32Array,
  router: Float32Array,
  gate: TestMatrix[],
  up: TestMatrix[],
  down: TestMatrix[],
  gb: Float32Array,
  ub: Float32Array,
  db: Float32Array,
): Float64Array {
  const chosen: number[] = [];
  for (let j = 0; j < TOP; j++) {
    let best = -1;
    for (let e = 0; e < E; e++) if (!chosen.includes(e) && (best < 0 || router[e] > router[best])) best = e;
    chosen.push(best);
  }
  const w = chosen.map((e) => Math.exp(router[e] - router[chosen[0]]));
  const sum = w.reduce((a, b) => a + b, 0);
  const out = new Float64Array(D);
  chosen.forEach((e, j) => {
    const a = new Float64Array(F);
    for (let f = 0; f < F; f++) {
      let g = gb[e * F + f];
      let u = ub[e * F + f];
      for (let k = 0; k < D; k++) {
        g += gate[e].values[f * D + k] * x[k];
        u += up[e].values[f * D + k] * x[k];
      }
      g = Math.min(g, LIMIT);
      u = Math.min(Math.max(u, -LIMIT), LIMIT);
      a[f] = (g / (1 + Math.exp(-ALPHA * g))) * (u + 1);
    }
    for (let d = 0; d < D; d++) {
      let y = db[e * D + d];
      for (let f = 0; f < F; f++) y += down[e].values[d * F + f] * a[f];
      out[d] += (w[j] / sum) * y;
    }
  });
  return out;
}

interface MoeRun {
  gate: WeightMatrix[];
  up: WeightMatrix[];
  down: WeightMatrix[];
  biases: [Float32Array, Float32Array, Float32Array];
  /** M rows of x, of router logits and of the output to add into. */
  x: Float32Array;
  router: Float32Array;
  out: Float32Array;
  M: number;
  /** The program's most rows (default M): the scratch rows the op has. */
  maxRows?: number;
  activations?: 'f32' | 'int8';
}

/** Compiles and runs a one-op program (the moe op over r.M rows); returns the M output rows. */
function runMoe(ctx: KernelContext, r: MoeRun): Float32Array {
  const [Fr, Dr] = [r.gate[0].rows, r.gate[0].cols];
  const R = r.maxRows ?? r.M;
  const rows = (a: Float32Array, n: number) => {
    const b = new Float32Array(R * n);
    b.set(a);
    return b;
  };
  const out = rows(r.out, Dr);
  const scratch = [new Float32Array(R * Dr), new Float32Array(R * Fr), new Float32Array(R * Fr), new Float32Array(R * Dr)];
  ctx
    .compile({
      buffers: [rows(r.x, Dr), rows(r.router, E), out, ...r.biases, ...scratch],
      params: new Int32Array([r.M]),
      maxRows: R,
      ops: [
        {
          op: 'moe',
          x: [0, 0, Dr],
          router: [1, 0, E],
          out: [2, 0, Dr],
          gate: r.gate,
          up: r.up,
          down: r.down,
          gateBias: [3, 0, Fr],
          upBias: [4, 0, Fr],
          downBias: [5, 0, Dr],
          topK: TOP,
          limit: LIMIT,
          alpha: ALPHA,
          ...(r.activations ? { activations: r.activations } : {}),
          scratch: { x: [6, 0, Dr], gate: [7, 0, Fr], up: [8, 0, Fr], y: [9, 0, Dr] },
          mSlot: 0,
        },
      ],
    })
    .run();
  return out.slice(0, r.M * Dr);
}

describe.each(ISAS)('the MoE op on %s', (isa) => {
  const c = KernelContext.create({ isa: isa as 'scalar', threads: 2 });
  const one = KernelContext.create({ isa: isa as 'scalar', threads: 1 });
  contexts.push(c, one);

  it.each(['mxfp4', 'f32'] as const)(
    '%s experts: every row gets the weighted sum of its top-k experts (decode and a 7-row prefill), identical on 1 and 2 threads',
    (dtype) => {
      const make = (rows: number, cols: number, seed: number) =>
        dtype === 'mxfp4' ? makeBlockMatrix('mxfp4', rows, cols, seed) : makeMatrix({ dtype: 'f32' }, rows, cols, seed);
      const gate = Array.from({ length: E }, (_, e) => make(F, D, 10 + e));
      const up = Array.from({ length: E }, (_, e) => make(F, D, 20 + e));
      const down = Array.from({ length: E }, (_, e) => make(D, F, 30 + e));
      const gb = seededFloats(E * F, 41, 0.5);
      const ub = seededFloats(E * F, 42, 0.5);
      const db = seededFloats(E * D, 43, 0.5);
      for (const M of [1, 7]) {
        const x = seededFloats(M * D, 50 + M, 1);
        const router = seededFloats(M * E, 60 + M, 2);
        const residual = seededFloats(M * D, 70 + M, 1);
        const results: Float32Array[] = [];
        for (const ctx of [c, one]) {
          const bind = (ms: TestMatrix[]): WeightMatrix[] => ms.map((m) => ctx.matrix(m.spec, m.bytes));
          const out = runMoe(ctx, { gate: bind(gate), up: bind(up), down: bind(down), biases: [gb, ub, db], x, router, out: residual, M });
          for (let i = 0; i < M; i++) {
            const want = refMoe(x.subarray(i * D, (i + 1) * D), router.subarray(i * E, (i + 1) * E), gate, up, down, gb, ub, db);
            let worst = 0;
            let mag = 0;
            for (let d = 0; d < D; d++) {
              worst = Math.max(worst, Math.abs(out[i * D + d] - residual[i * D + d] - want[d]));
              mag = Math.max(mag, Math.abs(want[d]));
            }
            expect(worst / mag, `row ${i} of ${M}`).toBeLessThan(1e-5);
          }
          results.push(out);
        }
        expect(firstDifference(results[0], results[1]), `${M} rows: 2 threads vs 1`).toBeNull();
      }
    },
  );
});

// Decode rows of several sequences (up to 8 rows a step): each row's MoE output is bit for bit what
// the op gives that row alone, with FP32 and with int8 activations, so a sequence decodes the same
// tokens in a batch as alone.
describe.each(ISAS)('the MoE op over decode rows on %s', (isa) => {
  const c = KernelContext.create({ isa: isa as 'scalar', threads: 2 });
  contexts.push(c);
  it.each([
    ['mxfp4', 'f32'],
    ['mxfp4', 'int8'],
    ['f32', 'f32'],
    ['bf16', 'f32'],
  ] as const)('%s experts, %s activations: each of 2..8 rows equals the row alone', (dtype, activations) => {
    const make = (rows: number, cols: number, seed: number) =>
      dtype === 'mxfp4' ? makeBlockMatrix('mxfp4', rows, cols, seed) : makeMatrix({ dtype }, rows, cols, seed);
    const bind = (ms: TestMatrix[]): WeightMatrix[] => ms.map((m) => c.matrix(m.spec, m.bytes));
    const gate = bind(Array.from({ length: E }, (_, e) => make(F, D, 110 + e)));
    const up = bind(Array.from({ length: E }, (_, e) => make(F, D, 120 + e)));
    const down = bind(Array.from({ length: E }, (_, e) => make(D, F, 130 + e)));
    const biases: MoeRun['biases'] = [seededFloats(E * F, 141, 0.5), seededFloats(E * F, 142, 0.5), seededFloats(E * D, 143, 0.5)];
    const run = (x: Float32Array, router: Float32Array, M: number): Float32Array =>
      runMoe(c, { gate, up, down, biases, x, router, out: new Float32Array(M * D).fill(0.25), M, activations });
    for (const M of [2, 5, 8]) {
      const x = seededFloats(M * D, 150 + M, 1);
      // Few experts for many rows: several rows share each chosen expert.
      const router = seededFloats(M * E, 160 + M, 2);
      const all = run(x, router, M);
      for (let i = 0; i < M; i++) {
        const alone = run(x.slice(i * D, (i + 1) * D), router.slice(i * E, (i + 1) * E), 1);
        expect(firstDifference(all.subarray(i * D, (i + 1) * D), alone), `row ${i} of ${M}`).toBeNull();
      }
    }
  });
});

describe('MoE op validation', () => {
  it('refuses experts of mismatched shapes and a topK past the expert count, with a typed error', () => {
    const c = KernelContext.create({ threads: 1 });
    contexts.push(c);
    const m = (rows: number, cols: number, seed: number) => {
      const t = makeMatrix({ dtype: 'f32' }, rows, cols, seed);
      return c.matrix(t.spec, t.bytes);
    };
    const buffers = [
      new Float32Array(D),
      new Float32Array(2),
      new Float32Array(D),
      new Float32Array(2 * F),
      new Float32Array(2 * F),
      new Float32Array(2 * D),
      new Float32Array(D),
      new Float32Array(F),
      new Float32Array(F),
      new Float32Array(D),
    ];
    const op = (over: Record<string, unknown>) => ({
      op: 'moe' as const,
      x: [0, 0, D] as const,
      router: [1, 0, 2] as const,
      out: [2, 0, D] as const,
      gate: [m(F, D, 1), m(F, D, 2)],
      up: [m(F, D, 3), m(F, D, 4)],
      down: [m(D, F, 5), m(D, F, 6)],
      gateBias: [3, 0, F] as const,
      upBias: [4, 0, F] as const,
      downBias: [5, 0, D] as const,
      topK: 1,
      limit: 7,
      alpha: 1.702,
      scratch: { x: [6, 0, D] as const, gate: [7, 0, F] as const, up: [8, 0, F] as const, y: [9, 0, D] as const },
      ...over,
    });
    const compile = (over: Record<string, unknown>) => () =>
      c.compile({ buffers, params: new Int32Array(1), maxRows: 1, ops: [op(over)] } as ProgramSpec);
    expect(compile({})).not.toThrow();
    for (const [over, pattern] of [
      [{ down: [m(D, F, 5), m(F, D, 6)] }, /expert 1 has a matrix of another shape/],
      [{ up: [m(F, D, 3)] }, /one Matrix per expert/],
      [{ topK: 3 }, /topK/],
      [{ limit: 0 }, /limit positive/],
    ] as const) {
      expect(compile(over)).toThrow(KernelError);
      expect(compile(over)).toThrow(pattern);
    }
  });
});

// One decode row whose program has scratch rows for its experts (maxRows >= topK) runs the chosen
// experts' gate and up as one pool job and their downs as another (gemv_batch): the same bits as
// expert by expert (maxRows 1), on 1 and 2 threads. Shapes big enough for both jobs to go parallel.
describe.each(ISAS)('the MoE op on one decode row with room for its experts on %s', (isa) => {
  const two = KernelContext.create({ isa: isa as 'scalar', threads: 2 });
  const one = KernelContext.create({ isa: isa as 'scalar', threads: 1 });
  contexts.push(two, one);
  const [Dd, Fd] = [128, 320];
  it.each([
    ['mxfp4', 'f32'],
    ['mxfp4', 'int8'],
    ['f32', 'f32'],
  ] as const)('%s experts, %s activations', (dtype, activations) => {
    const make = (rows: number, cols: number, seed: number) =>
      dtype === 'mxfp4' ? makeBlockMatrix('mxfp4', rows, cols, seed) : makeMatrix({ dtype }, rows, cols, seed);
    const gate = Array.from({ length: E }, (_, e) => make(Fd, Dd, 210 + e));
    const up = Array.from({ length: E }, (_, e) => make(Fd, Dd, 220 + e));
    const down = Array.from({ length: E }, (_, e) => make(Dd, Fd, 230 + e));
    const x = seededFloats(Dd, 251, 1);
    const router = seededFloats(E, 252, 2);
    const biases: MoeRun['biases'] = [seededFloats(E * Fd, 241, 0.5), seededFloats(E * Fd, 242, 0.5), seededFloats(E * Dd, 243, 0.5)];
    const out = seededFloats(Dd, 253, 1);
    const run = (ctx: KernelContext, maxRows: number): Float32Array => {
      const bind = (ms: TestMatrix[]): WeightMatrix[] => ms.map((m) => ctx.matrix(m.spec, m.bytes));
      return runMoe(ctx, { gate: bind(gate), up: bind(up), down: bind(down), biases, x, router, out, M: 1, maxRows, activations });
    };
    const expertByExpert = run(one, 1);
    for (const [ctx, name] of [
      [one, '1 thread'],
      [two, '2 threads'],
    ] as const) {
      expect(firstDifference(run(ctx, 8), expertByExpert), name).toBeNull();
      expect(firstDifference(run(ctx, TOP), expertByExpert), `${name}, maxRows = topK`).toBeNull();
    }
  });
});
