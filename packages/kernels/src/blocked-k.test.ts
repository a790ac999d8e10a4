import { describe, expect, it } from 'vitest';
import { firstDifference, seededFloats } from '@ie/testing';
import {
  contextMaker,
  makeMatrix,
  quantizedX,
  refGemv,
  supportedIsas,
  type Variant,
  variantName,
  worstRelError,
  xBlock,
} from '../test/helpers.js';
import { type KernelContext, KernelError, type MatrixSpec, blockedKUnfit, preferredBlockK, type WeightMatrix } from './index.js';

// A row-major matrix reordered into K-panels at load (WeightMatrix.reorderBlockedK): its bytes are
// exactly a blocked file's (the format's applyLayout), so every path gives that file's bits; and
// against a float64 reference at odd sizes (a partial last panel, a partial last group), every ISA
// and thread count; the refusals leave the bytes untouched.
const ISAS = supportedIsas();
const context = contextMaker();
const make = (isa: (typeof ISAS)[number], threads: number) => context({ isa, threads });

// Each with the panel width it is cut into.
const VARIANTS: Array<[Variant, number]> = [
  [{ dtype: 'f32' }, 192],
  [{ dtype: 'f16' }, 128],
  [{ dtype: 'bf16' }, 320],
  [{ dtype: 'i8', group: 'row' }, 64],
  [{ dtype: 'i8', group: 32, scale: 'bf16' }, 96 * 2],
  [{ dtype: 'q4', group: 32 }, 128],
  [{ dtype: 'q4', group: 64, affine: true }, 192],
  [{ dtype: 'q4', group: 128, scale: 'f32' }, 256],
];
// [rows, cols]: K below one panel; a partial last panel and group; many rows over several panels.
const SHAPES = [
  [7, 100],
  [33, 1031],
  [130, 700],
] as const;

const withBlockK = (v: Variant, blockK: number): Variant =>
  v.dtype === 'i8' || v.dtype === 'q4' ? { ...v, blockK } : { ...v, layout: blockK };

function matmul(ctx: KernelContext, m: WeightMatrix, X: Float32Array, M: number, activations: 'f32' | 'int8'): Float32Array {
  const y = new Float32Array(M * m.rows).fill(Number.NaN);
  ctx
    .compile({
      buffers: [X, y],
      params: new Int32Array([M]),
      maxRows: M,
      ops: [{ op: 'matmul', matrix: m, x: [0, 0, m.cols], out: [1, 0, m.rows], activations, mSlot: 0 }],
    })
    .run();
  return y;
}

describe('K-panels made at load', () => {
  it('hold the bytes of the blocked file layout', () => {
    const ctx = make('scalar', 1);
    for (const [v, B] of VARIANTS)
      for (const [rows, cols] of SHAPES) {
        const w = makeMatrix(v, rows, cols, rows * cols);
        const file = makeMatrix(withBlockK(v, B), rows, cols, rows * cols);
        const bytes = w.bytes.slice();
        const m = ctx.matrix(w.spec, bytes);
        expect(m.blockK).toBe(0);
        m.reorderBlockedK(B);
        expect(m.blockK).toBe(B);
        expect(firstDifference(bytes, file.bytes), `${variantName(v)} ${rows}x${cols}`).toBeNull();
        m.dispose();
      }
  });

  for (const isa of ISAS)
    it(`give the blocked file's bits and match the float64 reference (${isa})`, () => {
      for (const [v, B] of VARIANTS)
        for (const [rows, cols] of SHAPES) {
          const what = `${variantName(v)} ${rows}x${cols}`;
          const w = makeMatrix(v, rows, cols, rows + cols);
          const file = makeMatrix(withBlockK(v, B), rows, cols, rows + cols);
          const quant = v.dtype === 'i8' || v.dtype === 'q4';
          for (const threads of [1, 3]) {
            const ctx = make(isa, threads);
            const m = ctx.matrix(w.spec, w.bytes.slice());
            m.reorderBlockedK(B);
            const f = ctx.matrix(file.spec, file.bytes);
            const x = seededFloats(cols, cols + 3, 1);
            const y = new Float32Array(rows);
            const yf = new Float32Array(rows);
            ctx.gemv(m, x, y);
            ctx.gemv(f, x, yf);
            expect(firstDifference(y, yf), `${what} f32 t${threads}`).toBeNull();
            const ref = refGemv(w.values, rows, cols, x);
            expect(worstRelError(y, ref.y, ref.mag), `${what} f32`).toBeLessThan(1e-5);
            if (quant) {
              ctx.gemv(m, x, y, { activations: 'int8' });
              const refq = refGemv(w.values, rows, cols, quantizedX(x, xBlock(v)));
              expect(worstRelError(y, refq.y, refq.mag), `${what} int8`).toBeLessThan(1e-5);
            }
            // Decode rows and a prefill chunk.
            const X = seededFloats(11 * cols, cols + 5, 1);
            for (const M of [3, 11])
              for (const a of quant ? (['f32', 'int8'] as const) : (['f32'] as const)) {
                const Y = matmul(ctx, m, X, M, a);
                expect(firstDifference(Y, matmul(ctx, f, X, M, a)), `${what} M ${M} ${a}`).toBeNull();
                // A prefill chunk in the int8 mode takes the int8 GEMM only where the ISA has one for the matrix.
                if (a === 'int8' && M > 8) continue;
                for (let i = 0; i < M; i++) {
                  const xi = X.subarray(i * cols, (i + 1) * cols);
                  const r = refGemv(w.values, rows, cols, a === 'int8' ? quantizedX(xi, xBlock(v)) : xi);
                  expect(worstRelError(Y.subarray(i * rows, (i + 1) * rows), r.y, r.mag), `${what} M ${M} ${a} row ${i}`).toBeLessThan(
                    1e-5,
                  );
                }
              }
            // One row's values, as the row-major matrix gives them.
            const plain = ctx.matrix(w.spec, w.bytes);
            const got = new Float32Array(cols);
            const want = new Float32Array(cols);
            ctx.row(m, rows - 1, got);
            ctx.row(plain, rows - 1, want);
            expect(firstDifference(got, want), `${what} row`).toBeNull();
            for (const d of [m, f, plain]) d.dispose();
          }
        }
    });

  it('are refused, bytes untouched, where the layout does not apply', () => {
    const ctx = make('scalar', 1);
    const cases: Array<[Variant, number, string]> = [
      [{ dtype: 'f32' }, 100, 'the panel width must be a positive multiple of 64, got 100'],
      [{ dtype: 'f16' }, 0, 'the panel width must be a positive multiple of 64, got 0'],
      [{ dtype: 'q4', group: 128 }, 64, 'the panel width must be a multiple of the group size 128'],
      [{ dtype: 'i8', group: 'row', blockK: 128 }, 128, 'the matrix is K-blocked already'],
      [{ dtype: 'f32', layout: 'pretransposed' }, 64, 'the matrix is pretransposed'],
    ];
    for (const [v, B, why] of cases) {
      const w = makeMatrix(v, 16, 300, 3);
      expect(blockedKUnfit(w.spec, B)).toBe(why);
      const bytes = w.bytes.slice();
      const m = ctx.matrix(w.spec, bytes);
      let err: unknown;
      try {
        m.reorderBlockedK(B);
      } catch (e) {
        err = e;
      }
      expect(err, variantName(v)).toBeInstanceOf(KernelError);
      expect((err as KernelError).code).toMatch(/^KERNELS_BAD_(MATRIX|ARGUMENT)$/);
      expect(firstDifference(bytes, w.bytes), variantName(v)).toBeNull();
      expect(m.blockK).toBe(w.spec.layout?.block_k ?? 0);
    }
    // Block types, and 16-row records.
    expect(blockedKUnfit({ dtype: 'q4_k', shape: [4, 256] }, 256)).toMatch(/whole blocks/);
    const q = makeMatrix({ dtype: 'q4', group: 32 }, 32, 64, 4);
    const r = ctx.matrix(q.spec, q.bytes.slice());
    r.interleaveRows16();
    expect(() => r.reorderBlockedK(64)).toThrow(/16-row records/);
  });

  it('are cut where rows are long, into near-equal panels of at most about 2048 columns', () => {
    const f32 = (K: number): MatrixSpec => ({ dtype: 'f32', shape: [8, K] });
    const quant = (dtype: 'i8' | 'q4', K: number, G: number): MatrixSpec => ({
      dtype,
      shape: [8, K],
      quant: { scheme: 'symmetric', granularity: 'per_group', group_size: G, scale_dtype: 'f16', scales_offset: 0, zeros_offset: null },
    });
    expect(preferredBlockK(f32(2048))).toBe(0);
    expect(preferredBlockK(f32(2049))).toBe(1088);
    expect(preferredBlockK(f32(2880))).toBe(1472);
    expect(preferredBlockK(f32(4096))).toBe(2048);
    expect(preferredBlockK(f32(5632))).toBe(1920);
    expect(preferredBlockK(f32(11008))).toBe(1856);
    expect(preferredBlockK(quant('i8', 2880, 128))).toBe(1536);
    expect(preferredBlockK(quant('i8', 14336, 32))).toBe(2048);
    expect(preferredBlockK(quant('q4', 14336, 32))).toBe(0);
    // int8 activations: panels with the AVX-512 VNNI kernels only.
    expect(preferredBlockK(quant('i8', 5632, 32), 'avx512vnni')).toBe(1920);
    expect(preferredBlockK(quant('i8', 5632, 32), 'avx2')).toBe(0);
    expect(preferredBlockK(f32(5632), 'avx2')).toBe(1920);
    expect(preferredBlockK({ dtype: 'mxfp4', shape: [8, 5632] })).toBe(0);
    for (const K of [2049, 2880, 3000, 5632, 8192, 11008, 14336]) {
      const B = preferredBlockK(f32(K));
      expect(B % 64, `${K}`).toBe(0);
      expect(B, `${K}`).toBeLessThanOrEqual(2048 + 64);
      expect(Math.ceil(K / B), `${K}`).toBe(Math.ceil(K / 2048));
    }
  });
});
