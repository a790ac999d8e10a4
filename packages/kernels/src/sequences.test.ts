import { afterAll, describe, expect, it } from 'vitest';
import { firstDifference, seededFloats } from '@ie/testing';
import { makeMatrix, quantizedX, refGemv, worstRelError, xBlock } from '../test/helpers.js';
import { KernelContext, kvCacheRow, type ProgramOp, type View } from './index.js';

const ctx = KernelContext.create({ threads: 2 });
const ISAS = ctx.info().supportedIsas as Array<'scalar' | 'avx2' | 'avxvnni' | 'avx512'>;
const contexts = new Map(ISAS.map((isa) => [isa, KernelContext.create({ threads: 2, isa })]));
afterAll(() => {
  ctx.close();
  for (const c of contexts.values()) c.close();
});

// Rows of several sequences in one run: RoPE, the KV store and attention at a (slot, position) per row.
describe('programs over a KV arena of several sequences', () => {
  const heads = 4;
  const kvHeads = 2;
  const hd = 16;
  const T = 32;
  const R = 12;
  const S = 3;
  const q = heads * hd;
  const kv = kvHeads * hd;
  const cos = seededFloats((T * hd) / 2, 11, 1);
  const sin = seededFloats((T * hd) / 2, 12, 1);

  /** rope(q), rope(k), store k and v, attention: one sequence at `posSlot`, or an arena with `seqSlot`. */
  function build(kvType: 'f32' | 'f16', slots: number | undefined, window = 0, on = ctx) {
    const n = slots ?? 1;
    const cache = () => (kvType === 'f16' ? new Uint16Array(n * T * kv) : new Float32Array(n * T * kv));
    const bufs = {
      q: new Float32Array(R * q),
      k: new Float32Array(R * kv),
      v: new Float32Array(R * kv),
      out: new Float32Array(R * q),
    };
    const buffers = [bufs.q, bufs.k, bufs.v, bufs.out, cache(), cache(), cos, sin];
    const params = new Int32Array(2 + 2 * R);
    const place = slots === undefined ? { posSlot: 1 } : { seqSlot: 2 };
    const arena = slots === undefined ? {} : { slots };
    const rows = (b: number, w: number): View => [b, 0, w];
    const rope = (x: number, h: number): ProgramOp => ({
      op: 'rope',
      x: rows(x, h * hd),
      cos: [6, 0, 0],
      sin: [7, 0, 0],
      heads: h,
      headDim: hd,
      style: 'adjacent',
      capacity: T,
      mSlot: 0,
      ...place,
    });
    const ops: ProgramOp[] = [
      rope(0, heads),
      rope(1, kvHeads),
      { op: 'store', x: rows(1, kv), cache: rows(4, kv), n: kv, kvType, capacity: T, mSlot: 0, ...arena, ...place },
      { op: 'store', x: rows(2, kv), cache: rows(5, kv), n: kv, kvType, capacity: T, mSlot: 0, ...arena, ...place },
      {
        op: 'attention',
        q: rows(0, q),
        k: rows(4, kv),
        v: rows(5, kv),
        out: rows(3, q),
        heads,
        kvHeads,
        headDim: hd,
        kvType,
        capacity: T,
        window,
        mSlot: 0,
        ...arena,
        ...place,
      },
    ];
    const program = on.compile({ buffers, params, maxRows: R, ops });
    return { program, params, ...bufs, caches: [buffers[4], buffers[5]] };
  }

  /** The inputs of sequence `s` at position `t`: q, k, v rows of their own. */
  const input = (s: number, t: number) => ({
    q: seededFloats(q, 1000 + s * 100 + t, 1),
    k: seededFloats(kv, 2000 + s * 100 + t, 1),
    v: seededFloats(kv, 3000 + s * 100 + t, 1),
  });

  // Steps of (sequence, first position, rows): prefill chunks (6 rows: the batched path; 3: the
  // short one) beside decode rows of other sequences, sequences joining at different steps.
  const steps: Array<Array<[seq: number, pos: number, n: number]>> = [
    [
      [0, 0, 6],
      [1, 0, 3],
    ],
    [
      [0, 6, 1],
      [1, 3, 1],
      [2, 0, 5],
    ],
    [
      [2, 5, 1],
      [0, 7, 1],
      [1, 4, 1],
    ],
    [
      [1, 5, 7],
      [0, 8, 1],
    ],
  ];

  for (const isa of ISAS)
    for (const kvType of ['f32', 'f16'] as const)
      for (const window of [0, 4])
        it(`gives each sequence what it gets alone, bit for bit (${isa}, ${kvType} cache, window ${window})`, () => {
          const on = contexts.get(isa) as KernelContext;
          const multi = build(kvType, S, window, on);
          const alone = [0, 1, 2].map(() => build(kvType, undefined, window, on));
          for (const step of steps) {
            let row = 0;
            const at: number[] = [];
            for (const [s, pos, n] of step) {
              at.push(row);
              const one = alone[s];
              for (let i = 0; i < n; i++, row++) {
                const x = input(s, pos + i);
                multi.q.set(x.q, row * q);
                multi.k.set(x.k, row * kv);
                multi.v.set(x.v, row * kv);
                multi.params.set([s, pos + i], 2 + 2 * row);
                one.q.set(x.q, i * q);
                one.k.set(x.k, i * kv);
                one.v.set(x.v, i * kv);
              }
              one.params.set([n, pos]);
              one.program.run();
            }
            multi.params[0] = row;
            multi.program.run();
            step.forEach(([s, , n], j) => {
              const got = multi.out.subarray(at[j] * q, (at[j] + n) * q);
              expect(firstDifference(got, alone[s].out.subarray(0, n * q))).toBeNull();
            });
          }
          // Sequence s's K and V rows of position t sit at row kvCacheRow(s, t, T) of the arena.
          for (const s of [0, 1, 2])
            for (let t = 0; t < 6; t++)
              for (const c of [0, 1]) {
                const got = multi.caches[c].subarray(kvCacheRow(s, t, T) * kv, kvCacheRow(s, t + 1, T) * kv);
                expect([...got], `slot ${s} position ${t}`).toEqual([...alone[s].caches[c].subarray(t * kv, (t + 1) * kv)]);
                expect(got.some((x) => x !== 0)).toBe(true);
              }
        });

  it('refuses a KV slot or position outside the arena at run time, sync and async', async () => {
    const m = build('f32', S);
    m.params.set([2, 0, 0, 0, 3, 0]);
    expect(() => m.program.run()).toThrow(/kv slot 3 is outside 0\.\.2/);
    m.params.set([2, 0, 0, 0, 1, T]);
    expect(() => m.program.run()).toThrow(new RegExp(`position ${T} is outside 0\\.\\.${T - 1}`));
    m.params.set([1, 0, -1, 0]);
    await expect(m.program.runAsync()).rejects.toMatchObject({ code: 'KERNELS_BAD_ARGUMENT', message: /kv slot -1/ });
    m.params.set([2, 0, 1, 5, 2, 0]);
    m.program.run();
  });

  it('refuses at compile time an arena without seqSlot, seqSlot without room, and caches too small for the slots', () => {
    const params = new Int32Array(2 + 2 * 4);
    const k = new Float32Array(4 * kv);
    const store = (o: Partial<Extract<ProgramOp, { op: 'store' }>>): ProgramOp =>
      ({ op: 'store', x: [0, 0, kv], cache: [1, 0, kv], n: kv, kvType: 'f32', capacity: T, mSlot: 0, ...o }) as ProgramOp;
    const compile = (op: ProgramOp, cache = new Float32Array(S * T * kv)) =>
      ctx.compile({ buffers: [k, cache], params, maxRows: 4, ops: [op] });
    expect(() => compile(store({ posSlot: 1, slots: S }))).toThrow(/needs seqSlot/);
    expect(() => compile(store({ seqSlot: 3, slots: S }))).toThrow(/seqSlot must leave 2 x maxRows params/);
    expect(() => compile(store({ seqSlot: 2, slots: S }), new Float32Array((S * T - 1) * kv))).toThrow(
      expect.objectContaining({ code: 'KERNELS_BAD_ARGUMENT', message: expect.stringMatching(/do not fit buffer 1/) }),
    );
    expect(compile(store({ seqSlot: 2, slots: S })).size).toBe(1);
  });

  for (const [variant, acts] of [
    [{ dtype: 'bf16' }, 'f32'],
    [{ dtype: 'q4', group: 32 }, 'int8'],
    [{ dtype: 'i8', group: 32 }, 'int8'],
  ] as const)
    it(`runs up to 8 rows each as its own GEMV in the op's activation mode, bit for bit, and more as the GEMM (${variant.dtype}, op asks ${acts})`, () => {
      const K = 256;
      const N = 700;
      const w = makeMatrix(variant, N, K, 21);
      const mat = ctx.matrix(w.spec, w.bytes);
      const x = seededFloats(16 * K, 22, 1);
      const y = new Float32Array(16 * N);
      const params = new Int32Array(1);
      const p = ctx.compile({
        buffers: [x, y],
        params,
        maxRows: 16,
        ops: [{ op: 'matmul', matrix: mat, x: [0, 0, K], out: [1, 0, N], activations: acts, mSlot: 0 }],
      });
      for (const M of [2, 5, 8]) {
        params[0] = M;
        p.run();
        const want = new Float32Array(M * N);
        // Decode rows of several sequences: each as it would decode alone (int8 activations where the op asks).
        for (let i = 0; i < M; i++) ctx.gemv(mat, x.subarray(i * K, (i + 1) * K), want.subarray(i * N, (i + 1) * N), { activations: acts });
        expect(firstDifference(y.subarray(0, M * N), want)).toBeNull();
      }
      params[0] = 16;
      p.run();
      // A prefill chunk: the FP32 GEMM, or in the int8 mode the int8 GEMM where the ISA has one
      // (symmetric q4 and i8 on every ISA but scalar; AVX2 takes i8 through vpmaddwd): each token
      // then W times its own quantized x.
      const int8Gemm = ctx.info().int8Gemm !== 'none';
      if (acts === 'int8' && int8Gemm) {
        for (let t = 0; t < 16; t++) {
          const xt = x.subarray(t * K, (t + 1) * K);
          const { y: exact, mag } = refGemv(w.values, N, K, quantizedX(xt, xBlock(variant)));
          expect(worstRelError(y.subarray(t * N, (t + 1) * N), exact, mag), `token ${t}`).toBeLessThan(1e-5);
        }
      } else {
        const want = new Float32Array(16 * N);
        ctx.gemm(mat, x, 16, want);
        expect(firstDifference(y, want)).toBeNull();
      }
    });

  it('gathers the rows whose logits a step needs and takes each one argmax', () => {
    const K = 32;
    const N = 40;
    const w = makeMatrix({ dtype: 'f32' }, N, K, 5);
    const mat = ctx.matrix(w.spec, w.bytes);
    const x = seededFloats(4 * K, 6, 1);
    const picked = new Float32Array(4 * K);
    const logits = new Float32Array(4 * N);
    const params = new Int32Array(2 + 4 + 4);
    const p = ctx.compile({
      buffers: [x, picked, logits],
      params,
      maxRows: 4,
      ops: [
        { op: 'gather', x: [0, 0, K], out: [1, 0, K], n: K, rowsSlot: 2, mSlot: 1 },
        { op: 'matmul', matrix: mat, x: [1, 0, K], out: [2, 0, N], mSlot: 1 },
        { op: 'argmax', x: [2, 0, N], n: N, outSlot: 6, mSlot: 1 },
      ],
    });
    params.set([4, 2, 3, 1]);
    p.run();
    const y = new Float32Array(2 * N);
    ctx.gemv(mat, x.subarray(3 * K, 4 * K), y.subarray(0, N));
    ctx.gemv(mat, x.subarray(K, 2 * K), y.subarray(N));
    expect(firstDifference(logits.subarray(0, 2 * N), y)).toBeNull();
    expect([params[6], params[7]]).toEqual([ctx.argmax(y.subarray(0, N)), ctx.argmax(y.subarray(N))]);
    params.set([4, 1, 4]);
    expect(() => p.run()).toThrow(/gathered row 4 is outside 0\.\.3/);
  });
});
