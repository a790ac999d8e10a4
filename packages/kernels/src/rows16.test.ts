import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { firstDifference, seededFloats } from '@ie/testing';
import {
  type BlockVariant,
  contextMaker,
  makeBlockMatrix,
  makeMatrix,
  quantizedX,
  refGemv,
  supportedIsas,
  type TestMatrix,
  type Variant,
  variantName,
  worstRelError,
  xBlock,
} from '../test/helpers.js';
import { type KernelContext, KernelError, rows16Unfit, type WeightMatrix } from './index.js';

// Symmetric q4, iq4_nl, q4_k, q6_k and i8 in 16-row records (WeightMatrix.interleaveRows16): every path a matrix takes — the
// FP32 and int8 GEMV, 2..8 decode rows, a prefill chunk, one row's values — against a float64
// reference at sizes with a partial last group, at every ISA and thread count; the SIMD kernel
// against the scalar reference bit for bit; decode rows and prefill tokens bit for bit against the
// lone GEMV; and the refusals.
const ISAS = supportedIsas();
const context = contextMaker();
const make = (isa: (typeof ISAS)[number], threads: number) => context({ isa, threads });

const Q4_VARIANTS: Variant[] = [
  { dtype: 'q4', group: 32 },
  { dtype: 'q4', group: 64, scale: 'bf16' },
  { dtype: 'q4', group: 128, scale: 'f32' },
  { dtype: 'q4', group: 32, scale: 'bf16' },
];
// [rows, cols]: one stripe, K below one 128-group; K with a partial last group; several stripes
// over long rows (past 8192 columns the per-call sums leave the stack); rows whose stripes lie far
// enough apart for a lone row to read them in far-apart pairs (AVX-512 VNNI), with a stripe left over
// at one thread and a range too short for pairs at three.
const Q4_SHAPES = [
  [16, 40],
  [48, 300],
  [80, 1031],
  [144, 96],
  [32, 8352],
  [112, 8352],
] as const;
// i8 records take rows of whole 32-column blocks (and groups that divide them): one stripe of three
// blocks, records of one scale per row over long rows (a prefill chunk's K-slices start inside them),
// far-apart pairs with a stripe left over.
const I8_VARIANTS: Variant[] = [
  { dtype: 'i8', group: 32 },
  { dtype: 'i8', group: 'row' },
  { dtype: 'i8', group: 64, scale: 'bf16' },
  { dtype: 'i8', group: 128, scale: 'f32' },
  { dtype: 'i8', group: 'row', scale: 'bf16' },
];
const I8_SHAPES = [
  [16, 128],
  [48, 384],
  [80, 1152],
  [144, 256],
  [32, 8320],
  [112, 8320],
] as const;
// iq4_nl (GGUF's blocks of 32, records as q4's of group 32): one stripe of one block, an odd number
// of blocks, several stripes over long rows, far-apart pairs with a stripe left over.
const IQ4_SHAPES = [
  [16, 32],
  [48, 96],
  [80, 1056],
  [144, 64],
  [32, 8352],
  [112, 8352],
] as const;
// q4_k and q6_k (GGUF's superblocks of 256, a record a superblock): one stripe of one superblock, an odd
// number of superblocks, several stripes over long rows (past 8192 columns the per-call group sums
// leave the stack), far-apart pairs with a stripe left over.
const Q6K_SHAPES = [
  [16, 256],
  [48, 768],
  [80, 1280],
  [144, 512],
  [32, 8448],
  [112, 8448],
] as const;
const SUITES = [
  { name: 'q4', variants: Q4_VARIANTS, shapes: Q4_SHAPES },
  { name: 'i8', variants: I8_VARIANTS, shapes: I8_SHAPES },
  { name: 'iq4_nl', variants: ['iq4_nl'] as BlockVariant[], shapes: IQ4_SHAPES },
  { name: 'q6_k', variants: ['q6_k'] as BlockVariant[], shapes: Q6K_SHAPES },
  { name: 'q4_k', variants: ['q4_k'] as BlockVariant[], shapes: Q6K_SHAPES },
  { name: 'q5_k', variants: ['q5_k'] as BlockVariant[], shapes: Q6K_SHAPES },
] as const;

const build = (v: Variant | BlockVariant, rows: number, cols: number, seed: number) =>
  typeof v === 'string' ? makeBlockMatrix(v, rows, cols, seed) : makeMatrix(v, rows, cols, seed);
const nameOf = (v: Variant | BlockVariant) => (typeof v === 'string' ? v : variantName(v));

function interleaved(ctx: KernelContext, v: Variant | BlockVariant, rows: number, cols: number, seed: number) {
  const w = build(v, rows, cols, seed);
  const m = ctx.matrix(w.spec, w.bytes.slice());
  m.interleaveRows16();
  return { w, m };
}

/** A matmul op over M rows of X (M <= 8: decode rows; more: a prefill chunk). */
function matmul(ctx: KernelContext, m: WeightMatrix, X: Float32Array, M: number, activations: 'f32' | 'int8'): Float32Array {
  const [rows, cols] = [m.rows, m.cols];
  const y = new Float32Array(M * rows).fill(Number.NaN);
  const p = ctx.compile({
    buffers: [X, y],
    params: new Int32Array([M]),
    maxRows: M,
    ops: [{ op: 'matmul', matrix: m, x: [0, 0, cols], out: [1, 0, rows], activations, mSlot: 0 }],
  });
  p.run();
  return y;
}

for (const { name, variants: VARIANTS, shapes: SHAPES } of SUITES)
  describe(`${name} in 16-row records`, () => {
    for (const isa of ISAS)
      for (const v of VARIANTS)
        it(`match the float64 reference and the lone GEMV (${isa}, ${nameOf(v)})`, () => {
          for (const [rows, cols] of SHAPES) {
            const what = `${rows}x${cols}`;
            let first: Float32Array | null = null;
            for (const threads of [1, 3]) {
              const ctx = make(isa, threads);
              const { w, m } = interleaved(ctx, v, rows, cols, rows + cols);
              expect(m.layout).toBe('rows16');
              const x = seededFloats(cols, cols + 7, 1);
              // FP32 activations.
              const y = new Float32Array(rows);
              ctx.gemv(m, x, y);
              const ref = refGemv(w.values, rows, cols, x);
              expect(worstRelError(y, ref.y, ref.mag), `${what} f32`).toBeLessThan(1e-5);
              // int8 activations: exact against x as quantized.
              const yq = new Float32Array(rows);
              ctx.gemv(m, x, yq, { activations: 'int8' });
              const refq = refGemv(w.values, rows, cols, quantizedX(x, xBlock(v)));
              expect(worstRelError(yq, refq.y, refq.mag), `${what} int8`).toBeLessThan(1e-5);
              if (first) expect(firstDifference(yq, first), `${what} threads ${threads}`).toBeNull();
              else first = yq;
              // A row's values, exactly as the row-major matrix gives them.
              const plain = ctx.matrix(w.spec, w.bytes);
              for (const r of [0, 5, rows - 1]) {
                const got = new Float32Array(cols);
                const want = new Float32Array(cols);
                ctx.row(m, r, got);
                ctx.row(plain, r, want);
                expect(firstDifference(got, want), `${what} row ${r}`).toBeNull();
              }
              // 2..8 decode rows and a prefill chunk of 13 tokens: each row the lone GEMV's bits (int8),
              // or within the reference (FP32: the chunk takes the GEMM). On AVX-512 a K-quant chunk in the
              // int8 mode takes the several-rows kernel where it is the 512-bit VNNI one (not on Zen 4,
              // family 25, whose 512-bit operations run in halves), else the FP32 GEMM over panels packed
              // from the records as the FP32 mode does: the row layout's bits.
              const X = seededFloats(13 * cols, cols + 9, 1);
              const kquant512 = ctx.info().features.avx512vnni && !(CPU.amd && CPU.family === 25);
              const gemmFromRecords = isa === 'avx512' && (name === 'q4_k' || name === 'q6_k') && !kquant512;
              for (const M of [2, 5, 8, 13]) {
                const Y = matmul(ctx, m, X, M, 'int8');
                const Yf = matmul(ctx, m, X, M, 'f32');
                if (M > 8 && gemmFromRecords) {
                  expect(firstDifference(Y, matmul(ctx, plain, X, M, 'int8')), `${what} M ${M} int8, as the rows`).toBeNull();
                  expect(firstDifference(Yf, Y), `${what} M ${M} f32`).toBeNull();
                } else {
                  const alone = new Float32Array(M * rows);
                  for (let i = 0; i < M; i++)
                    ctx.gemv(m, X.subarray(i * cols, (i + 1) * cols), alone.subarray(i * rows, (i + 1) * rows), { activations: 'int8' });
                  expect(firstDifference(Y, alone), `${what} M ${M} int8`).toBeNull();
                }
                // The FP32 GEMM gives the same bits over records and over the rows, on every ISA.
                if (M > 8) expect(firstDifference(Yf, matmul(ctx, plain, X, M, 'f32')), `${what} M ${M} f32, as the rows`).toBeNull();
                for (let i = 0; i < M; i++) {
                  const r = refGemv(w.values, rows, cols, X.subarray(i * cols, (i + 1) * cols));
                  expect(worstRelError(Yf.subarray(i * rows, (i + 1) * rows), r.y, r.mag), `${what} M ${M} f32 row ${i}`).toBeLessThan(
                    1e-5,
                  );
                }
              }
              m.dispose();
              plain.dispose();
            }
          }
        });

    it('give the scalar reference bit for bit on every ISA (int8 activations)', () => {
      const scalar = make('scalar', 1);
      for (const isa of ISAS) {
        const ctx = make(isa, 2);
        for (const v of VARIANTS)
          for (const [rows, cols] of SHAPES) {
            const a = interleaved(scalar, v, rows, cols, 5 * rows + cols).m;
            const b = interleaved(ctx, v, rows, cols, 5 * rows + cols).m;
            const X = seededFloats(8 * cols, rows, 2);
            expect(
              firstDifference(matmul(ctx, b, X, 8, 'int8'), matmul(scalar, a, X, 8, 'int8')),
              `${isa} ${nameOf(v)} ${rows}x${cols}`,
            ).toBeNull();
          }
      }
    });
  });

/**
 * A matrix whose stripes hold extreme codes, in records at every ISA against 8 activation rows whose
 * first three spans of x sit at +max, -max and alternating ±max: the scalar reference bit for bit,
 * and the float64 product of the row-major matrix's values with x as quantized.
 */
function expectExtremesExact(w: TestMatrix, seed: number, block = 32, plus = 32) {
  const [rows, cols] = w.spec.shape;
  const scalar = make('scalar', 1);
  const records = (c: KernelContext) => {
    const m = c.matrix(w.spec, w.bytes.slice());
    m.interleaveRows16();
    return m;
  };
  const M = 8;
  const X = seededFloats(M * cols, seed, 1);
  // The whole first block of x (its scale) at ±max, so that those activations quantize to ±127: the
  // first `plus` columns at +max, the next `plus` at -max, then alternating.
  const span = Math.min(cols, Math.max(3 * plus, block));
  for (let m = 0; m < M; m++)
    for (let k = 0; k < span; k++) X[m * cols + k] = k < plus ? 0.75 : k < 2 * plus ? -0.75 : k % 2 ? 0.75 : -0.75;
  for (const isa of ISAS) {
    const ctx = make(isa, 2);
    const plain = ctx.matrix(w.spec, w.bytes);
    const values = new Float32Array(rows * cols);
    for (let r = 0; r < rows; r++) ctx.row(plain, r, values.subarray(r * cols, (r + 1) * cols));
    const got = matmul(ctx, records(ctx), X, M, 'int8');
    expect(firstDifference(got, matmul(scalar, records(scalar), X, M, 'int8')), isa).toBeNull();
    for (let m = 0; m < M; m++) {
      const ref = refGemv(values, rows, cols, quantizedX(X.subarray(m * cols, (m + 1) * cols), block));
      expect(worstRelError(got.subarray(m * rows, (m + 1) * rows), ref.y, ref.mag), `${isa} row ${m}`).toBeLessThan(1e-5);
    }
    plain.dispose();
  }
}

describe('16-row records at the extremes', () => {
  // A file's codes may be -128 (GGUF Q8_0 bytes are not checked against it) and quantized
  // activations reach ±127: the products a kernel sums in 16 or 32 bits stay exact at every ISA
  // (AVX2's vpmaddwd pairs of up to 255 x 127, the sign trick's |w| = 128).
  it('i8: codes at -128 and 127 give the scalar reference bit for bit and the float64 reference', () => {
    const rows = 64;
    const cols = 384;
    const w = makeMatrix({ dtype: 'i8', group: 32 }, rows, cols, 11);
    // Stripe 0 all -128, stripe 1 all 127, stripe 2 alternating, stripe 3 seeded bytes of the full range.
    const noise = seededFloats(16 * cols, 12, 1);
    for (let r = 0; r < rows; r++)
      for (let k = 0; k < cols; k++) {
        const i = r * cols + k;
        w.bytes[i] = [0x80, 0x7f, k % 2 ? 0x80 : 0x7f, Math.floor((noise[i - 48 * cols] + 1) * 127.99) & 0xff][r >> 4];
      }
    expectExtremesExact(w, 13);
  });

  // Codes 0 and 15 against activations at ±127 over whole groups: AVX2 sums four four-column steps
  // in vpmaddubsw's 16 bits (up to 4 x 2 x 15 x 127) before each vpmaddwd; a kernel that summed more
  // (16 steps of a group of 64) fails here.
  it.each([32, 64])('q4 group %i: codes 0 and 15 give the scalar reference bit for bit and the float64 reference', (group) => {
    const rows = 64;
    const cols = 384;
    const w = makeMatrix({ dtype: 'q4', group }, rows, cols, 15);
    // Stripe 0 all code 0, stripe 1 all code 15, stripe 2 alternating 0 and 15, stripe 3 as quantized.
    for (let r = 0; r < 48; r++) for (let j = 0; j < cols / 2; j++) w.bytes[r * (cols / 2) + j] = [0x00, 0xff, j % 2 ? 0x0f : 0xf0][r >> 4];
    // x at +max over a whole group, so that no product cancels another in the sums.
    expectExtremesExact(w, 17, group, group);
  });

  // Levels at -127 (code 0) and 113 (code 15) against activations at ±127: AVX2's sign trick pairs
  // reach 2 x 127 x 127 in vpmaddubsw's 16 bits, AVX-VNNI's levels + 128 reach 255 x 127 in vpdpbusd.
  it('iq4_nl: levels at -127 and 113 give the scalar reference bit for bit and the float64 reference', () => {
    const rows = 64;
    const cols = 192;
    const w = makeBlockMatrix('iq4_nl', rows, cols, 21);
    const noise = seededFloats(rows * cols, 22, 1);
    // Stripe 0 all code 0, stripe 1 all code 15, stripe 2 alternating 0 and 15, stripe 3 as quantized.
    for (let r = 0; r < 48; r++)
      for (let b = 0; b < cols / 32; b++)
        for (let j = 0; j < 16; j++) {
          const at = (r * (cols / 32) + b) * 18 + 2 + j;
          w.bytes[at] = [0x00, 0xff, (j + (noise[r * cols + b] > 0 ? 1 : 0)) % 2 ? 0x0f : 0xf0][r >> 4];
        }
    expectExtremesExact(w, 23);
  });

  // Codes 0 and 63 (values -32 and 31) under scales of -128 and 127 against activations at ±127: the
  // records kernel sums two chunk products in vpmaddubsw's 16 bits (up to 2 x 2 x 63 x 127) and takes
  // the -32 off through 16 x a group's sum of x, both at their limits here.
  it('q6_k: codes at 0 and 63 under scales of -128 and 127 give the scalar reference bit for bit and the float64 reference', () => {
    const rows = 64;
    const cols = 512;
    const w = makeBlockMatrix('q6_k', rows, cols, 31);
    // Stripe 0 all code 0, stripe 1 all code 63, stripe 2 alternating 0 and 63, stripe 3 as quantized.
    for (let r = 0; r < 48; r++)
      for (let b = 0; b < cols / 256; b++) {
        const at = (r * (cols / 256) + b) * 210;
        for (let j = 0; j < 192; j++) w.bytes[at + j] = [0x00, 0xff, j % 2 ? 0xff : 0x00][r >> 4];
        for (let g = 0; g < 16; g++) w.bytes[at + 192 + g] = g % 2 ? 0x80 : 0x7f;
      }
    expectExtremesExact(w, 33, 256);
  });

  // Codes 15 (q4_k; 31 with q5_k's high bit) under scales and mins of 63 against activations at ±127:
  // eight nibble products of a sub-block summed in vpmaddubsw's 16 bits (the 256-bit q4_k kernel)
  // reach 8 x 2 x 15 x 127 (q5_k's four, 4 x 2 x 31 x 127), the mins' products 63 x 32 x 127; q5_k's
  // high bits reach the kernels as two masks a vector, so stripe 2 alternates them column by column
  // and row by row.
  it.each([
    ['q4_k', 144, 41, 43],
    ['q5_k', 176, 47, 53],
  ] as const)(
    '%s: codes at both ends under scales and mins of 63 give the scalar reference bit for bit and the float64 reference',
    (dtype, bytes, seed, xSeed) => {
      const rows = 64;
      const cols = 512;
      const w = makeBlockMatrix(dtype, rows, cols, seed);
      const qs = dtype === 'q5_k' ? 48 : 16;
      // Stripe 0 all code 0, stripe 1 all at the top, stripe 2 alternating, stripe 3 as quantized; every
      // scale and min 63 in the first three (the 12 packed bytes all ones).
      for (let r = 0; r < 48; r++)
        for (let b = 0; b < cols / 256; b++) {
          const at = (r * (cols / 256) + b) * bytes;
          for (let j = 0; j < 12; j++) w.bytes[at + 4 + j] = 0xff;
          for (let j = 16; j < qs; j++) w.bytes[at + j] = [0x00, 0xff, (j + r) % 2 ? 0xff : 0x00][r >> 4];
          for (let j = 0; j < 128; j++) w.bytes[at + qs + j] = [0x00, 0xff, j % 2 ? 0xff : 0x00][r >> 4];
        }
      expectExtremesExact(w, xSeed, 256);
    },
  );
});

/** The CPU's vendor and family, as the kernels' CPU-specific choices read them from CPUID. */
const CPU = (() => {
  const text = existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '';
  return { amd: /^vendor_id\s*:\s*AuthenticAMD$/m.test(text), family: Number(/^cpu family\s*:\s*(\d+)$/m.exec(text)?.[1] ?? 0) };
})();

describe('16-row records', () => {
  it('are taken by auto for one sequence only where they were measured to pay (info)', () => {
    for (const isa of ISAS) {
      const info = make(isa, 1).info();
      if (isa === 'scalar') {
        expect([info.q4Rows16, info.iq4NlRows16, info.q4kRows16, info.q5kRows16, info.q6kRows16, info.i8Rows16]).toEqual([
          'none',
          'none',
          'none',
          'none',
          'none',
          'none',
        ]);
        continue;
      }
      // iq4_nl goes into records exactly where q4 does for one sequence on AVX2 (Zen 3), nowhere else (AVX-512
      // CPUs keep the AVX-512 row kernel; other AVX2 cores are not measured); the K-quants on Zen 3 and on Zen 5
      // and later (AMD family 26+) and on Intel's cores, at every ISA (the 256-bit kernels, on AVX-512 VNNI the
      // 512-bit ones).
      const zen3 = isa === 'avx2' && info.q4Rows16 === 'always';
      expect(info.iq4NlRows16, isa).toBe(zen3 ? 'always' : 'none');
      const kquants = zen3 || !CPU.amd || CPU.family >= 26 ? 'always' : 'none';
      expect([info.q4kRows16, info.q6kRows16], isa).toEqual([kquants, kquants]);
      // q5_k: the AVX-512 VNNI kernel wherever the other K-quants go into records (512-bit operations whole:
      // not Zen 4); the 256-bit one, no faster than rows for one sequence, there for several only.
      const q5k = kquants === 'none' ? 'none' : isa === 'avx512' && info.features.avx512vnni ? 'always' : 'batched';
      expect(info.q5kRows16, isa).toBe(q5k);
      if (info.features.avx512f) expect(info.iq4NlRows16, isa).toBe('none');
      // i8 on AVX-512 VNNI: for one sequence too on Zen 5 and later and on Intel's cores; else when serving several.
      const i8 = isa === 'avx512' && info.features.avx512vnni && (!CPU.amd || CPU.family >= 26) ? 'always' : 'batched';
      expect(info.i8Rows16, isa).toBe(i8);
    }
  });

  it('are refused, bytes untouched, where the layout does not apply', () => {
    const ctx = make('scalar', 1);
    const cases: Array<[Variant, number, number, string]> = [
      [{ dtype: 'q4', group: 32, affine: true }, 32, 64, 'only symmetric q4 with groups, i8, iq4_nl, q4_k, q5_k and q6_k'],
      [{ dtype: 'f16' }, 32, 64, 'only symmetric q4 with groups, i8, iq4_nl, q4_k, q5_k and q6_k'],
      [{ dtype: 'q4', group: 32 }, 24, 64, 'rows must be a multiple of 16'],
      [{ dtype: 'i8', group: 'row' }, 32, 80, 'i8 rows must be a whole number of 32-column blocks'],
      [{ dtype: 'i8', group: 64 }, 32, 96, 'i8 groups must be multiples of 32 that divide the row'],
      [{ dtype: 'i8', group: 32 }, 40, 64, 'rows must be a multiple of 16'],
      [{ dtype: 'i8', group: 'row', blockK: 64 }, 32, 128, 'the matrix must be row-major and not K-blocked'],
      [{ dtype: 'q4', group: 32, blockK: 128 }, 32, 300, 'the matrix must be row-major and not K-blocked'],
    ];
    for (const [v, rows, cols, why] of cases) {
      const w = makeMatrix(v, rows, cols, 3);
      expect(rows16Unfit(w.spec)).toBe(why);
      const bytes = w.bytes.slice();
      const m = ctx.matrix(w.spec, bytes);
      let err: unknown;
      try {
        m.interleaveRows16();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(KernelError);
      expect((err as KernelError).code).toBe('KERNELS_BAD_MATRIX');
      expect((err as KernelError).message).toContain(why);
      expect(firstDifference(bytes, w.bytes), variantName(v)).toBeNull();
      expect(m.layout).toBe('row_major');
    }
    const w = makeMatrix({ dtype: 'q4', group: 32 }, 32, 64, 4);
    expect(rows16Unfit(w.spec)).toBeUndefined();
    const m = ctx.matrix(w.spec, w.bytes.slice());
    m.interleaveRows16();
    expect(() => m.interleaveRows16()).toThrow(/interleaved already/);
  });
});
