import { afterAll, describe, expect, it } from 'vitest';
import { firstDifference, seededFloats } from '@ie/testing';
import { decodeBlocks } from '@ie/format';
import {
  aligned,
  BLOCK_VARIANTS,
  makeBlockMatrix,
  quantizedX,
  refGemv,
  worstRelError,
  xBlock,
  type BlockVariant,
} from '../test/helpers.js';
import { KernelContext, KernelError, matrixByteSize } from './index.js';

const contexts = new Map<string, KernelContext>();
function ctx(isa: string, threads: number): KernelContext {
  const key = `${isa}/${threads}`;
  if (!contexts.has(key)) contexts.set(key, KernelContext.create({ isa: isa as 'scalar', threads }));
  return contexts.get(key) as KernelContext;
}
afterAll(() => contexts.forEach((c) => c.close()));
const ISAS = ctx('scalar', 1).info().supportedIsas as string[];

// Odd row counts (1, 3, 37, past the pool's threshold, the long-row size) at one, a few and many blocks
// (7: the four-block steps of iq4_nl / mxfp4 with int8 activations, then a pair and a lone block);
// 121 rows of > 4096 elements put the two halves of a call more than 128 KiB apart, so the kernels
// that read rows in far-apart pairs (row_streams.h) take 60 pairs and one row alone; 243 put its
// quarters that far apart, so those that read four rows take 60 fours and three rows alone.
function shapes(dtype: BlockVariant): Array<[number, number]> {
  const e = dtype === 'iq4_nl' || dtype === 'mxfp4' ? 32 : 256;
  return [
    [1, e],
    [3, 3 * e],
    [37, 5 * e],
    [19, 7 * e],
    [301, 2 * e],
    [29, e * Math.ceil(4200 / e)],
    [121, e * Math.ceil(4100 / e)],
    [243, e * Math.ceil(4100 / e)],
  ];
}

describe.each(ISAS)('block types on %s', (isa) => {
  it.each(BLOCK_VARIANTS)(
    '%s GEMV (FP32 activations) matches the float64 product of the decoded blocks, the same for 1-4 threads',
    (dtype) => {
      for (const [rows, cols] of shapes(dtype)) {
        const m = makeBlockMatrix(dtype, rows, cols, rows * 31 + cols);
        const x = seededFloats(cols, cols + 1);
        const { y: want, mag } = refGemv(m.values, rows, cols, x);
        let first: Float32Array | null = null;
        for (const threads of [1, 2, 3, 4]) {
          const c = ctx(isa, threads);
          const y = new Float32Array(rows).fill(Number.NaN);
          c.gemv(c.matrix(m.spec, m.bytes), x, y);
          expect(worstRelError(y, want, mag), `${rows}x${cols} threads ${threads}`).toBeLessThan(1e-5);
          if (first) expect(firstDifference(y, first), `${rows}x${cols} threads ${threads} vs 1`).toBeNull();
          else first = y;
        }
      }
    },
  );

  it.each(['f32', 'int8'] as const)(
    'mxfp4 GEMV (%s activations) is right over the whole E8M0 range, subnormal scales included',
    (activations) => {
      // Scales base..base+3 per matrix (bytes 0..252; 255 is NaN and refused by the importers), x
      // scaled by a power of two so that every product stays a normal f32. 13 blocks a row: the
      // kernels' eight-block steps (their scales built as one vector), then pairs and a lone block.
      const rows = 5,
        cols = 13 * 32;
      for (const base of [0, 1, 2, 30, 100, 127, 200, 249]) {
        const bytes = new Uint8Array((rows * cols * 17) / 32);
        let s = base * 7919 + 1;
        for (let i = 0; i < bytes.length; i++) bytes[i] = s = (s * 1103515245 + 12345) & 0xff;
        for (let b = 0; b < bytes.length; b += 17) bytes[b] = base + (bytes[b + 1] & 3);
        const values = decodeBlocks('mxfp4', bytes, rows, cols);
        const x = seededFloats(cols, base + 3).map((v) => v * 2 ** Math.max(-100, Math.min(100, 127 - base)));
        const { y: want, mag } = refGemv(values, rows, cols, activations === 'int8' ? quantizedX(x, xBlock('mxfp4')) : x);
        const c = ctx(isa, 1);
        const y = new Float32Array(rows).fill(Number.NaN);
        c.gemv(c.matrix({ dtype: 'mxfp4', shape: [rows, cols] }, aligned(bytes)), x, y, { activations });
        expect(worstRelError(y, want, mag), `scales ${base}..${base + 3}`).toBeLessThan(1e-5);
      }
    },
  );

  it.each(BLOCK_VARIANTS)('%s GEMV with int8 activations equals the blocks times the quantized x', (dtype) => {
    for (const [rows, cols] of shapes(dtype)) {
      const m = makeBlockMatrix(dtype, rows, cols, rows * 17 + cols);
      const x = seededFloats(cols, cols + 9, 3);
      const { y: want, mag } = refGemv(m.values, rows, cols, quantizedX(x, xBlock(dtype)));
      let first: Float32Array | null = null;
      for (const threads of [1, 2, 3, 4]) {
        const c = ctx(isa, threads);
        const y = new Float32Array(rows).fill(Number.NaN);
        c.gemv(c.matrix(m.spec, m.bytes), x, y, { activations: 'int8' });
        expect(worstRelError(y, want, mag), `${rows}x${cols} threads ${threads}`).toBeLessThan(1e-5);
        if (first) expect(firstDifference(y, first)).toBeNull();
        else first = y;
      }
    }
  });

  // A prefill chunk (a matmul op over more than 8 rows) in the int8 mode: iq4_nl and mxfp4 take the
  // int8 GEMM (each panel decoded to i8 levels), so each token is the blocks times its own quantized
  // x; the K-quants take the FP32 GEMM. Rows past a 16-row panel, tokens past an 8-token tile.
  it.each(BLOCK_VARIANTS)('%s prefill chunk in the int8 mode matches its float64 product, the same for 1-4 threads', (dtype) => {
    const e = dtype === 'iq4_nl' || dtype === 'mxfp4' ? 32 : 256;
    const int8Gemm = e === 32;
    for (const [rows, cols, M] of [
      [37, 3 * e, 9],
      [70, (e === 32 ? 33 : 5) * e, 29],
      [16, (e === 32 ? 16 : 2) * e, 12],
    ] as const) {
      const m = makeBlockMatrix(dtype, rows, cols, rows * 13 + cols);
      const X = seededFloats(M * cols, M + cols, 3);
      let first: Float32Array | null = null;
      for (const threads of [1, 2, 3, 4]) {
        const c = ctx(isa, threads);
        const Y = new Float32Array(M * rows).fill(Number.NaN);
        c.compile({
          buffers: [X, Y],
          params: new Int32Array([M]),
          maxRows: M,
          ops: [{ op: 'matmul', matrix: c.matrix(m.spec, m.bytes), x: [0, 0, cols], out: [1, 0, rows], activations: 'int8', mSlot: 0 }],
        }).run();
        for (let t = 0; t < M; t++) {
          const x = X.subarray(t * cols, (t + 1) * cols);
          const { y: exact, mag } = refGemv(m.values, rows, cols, int8Gemm ? quantizedX(x, xBlock(dtype)) : x);
          expect(
            worstRelError(Y.subarray(t * rows, (t + 1) * rows), exact, mag),
            `${rows}x${cols} token ${t} threads ${threads}`,
          ).toBeLessThan(1e-5);
        }
        if (first) expect(firstDifference(Y, first), `${rows}x${cols} threads ${threads} vs 1`).toBeNull();
        else first = Y;
      }
    }
  });

  it.each(BLOCK_VARIANTS)(
    '%s GEMM (prefill) matches the float64 product per token; rows dequantize bit-identically to the decoder',
    (dtype) => {
      const e = dtype === 'iq4_nl' || dtype === 'mxfp4' ? 32 : 256;
      for (const [rows, cols, M] of [
        [37, 3 * e, 7],
        [45, 5 * e, 15],
      ] as const) {
        const m = makeBlockMatrix(dtype, rows, cols, rows + cols);
        const X = seededFloats(M * cols, M + 5);
        let first: Float32Array | null = null;
        for (const threads of [1, 3]) {
          const c = ctx(isa, threads);
          const Y = new Float32Array(M * rows).fill(Number.NaN);
          c.gemm(c.matrix(m.spec, m.bytes), X, M, Y);
          for (let t = 0; t < M; t++) {
            const { y, mag } = refGemv(m.values, rows, cols, X.subarray(t * cols, (t + 1) * cols));
            expect(worstRelError(Y.subarray(t * rows, (t + 1) * rows), y, mag), `${rows}x${cols} token ${t}`).toBeLessThan(1e-5);
          }
          if (first) expect(firstDifference(Y, first)).toBeNull();
          else first = Y;
        }
        const c = ctx(isa, 1);
        const mat = c.matrix(m.spec, m.bytes);
        const row = new Float32Array(cols);
        for (const r of [0, rows - 1]) {
          c.row(mat, r, row);
          expect(firstDifference(row, m.values.subarray(r * cols, (r + 1) * cols)), `row ${r}`).toBeNull();
        }
      }
    },
  );
});

describe('block-type matrix specs', () => {
  it('have the size of their blocks and refuse what the kernels cannot run, with a typed error', () => {
    expect(matrixByteSize({ dtype: 'q4_k', shape: [3, 512] })).toBe(3 * 2 * 144);
    expect(matrixByteSize({ dtype: 'q6_k', shape: [5, 256] })).toBe(5 * 210);
    expect(matrixByteSize({ dtype: 'iq4_nl', shape: [7, 96] })).toBe(7 * 3 * 18);
    const bad = (f: () => unknown, pattern: RegExp) => {
      try {
        f();
      } catch (e) {
        expect(e).toBeInstanceOf(KernelError);
        expect((e as KernelError).code).toBe('KERNELS_BAD_MATRIX');
        expect((e as Error).message).toMatch(pattern);
        return;
      }
      throw new Error('expected KERNELS_BAD_MATRIX');
    };
    bad(() => matrixByteSize({ dtype: 'q5_k', shape: [4, 300] }), /whole 256-element blocks/);
    bad(() => matrixByteSize({ dtype: 'iq4_nl', shape: [4, 48] }), /whole 32-element blocks/);
    bad(
      () =>
        matrixByteSize({
          dtype: 'q4_k',
          shape: [4, 256],
          quant: {
            scheme: 'symmetric',
            granularity: 'per_group',
            group_size: 32,
            scale_dtype: 'f16',
            scales_offset: 0,
            zeros_offset: null,
          },
        }),
      /no quant block/,
    );
    bad(() => matrixByteSize({ dtype: 'q6_k', shape: [4, 256], layout: { order: 'row_major', block_k: 128 } }), /not K-blocked/);
    const c = ctx('scalar', 1);
    bad(() => c.matrix({ dtype: 'q4_k', shape: [2, 256] }, new Uint8Array(287)), /takes 288/);
  });
});
