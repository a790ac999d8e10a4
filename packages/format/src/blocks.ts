/**
 * Block dtypes: weights stored as llama.cpp's ggml blocks, byte for byte, so that a GGUF file's
 * K-quant and IQ4_NL tensors import without re-quantization. A block holds a fixed number of
 * consecutive elements of one row with its own scales; a row is a whole number of blocks. The
 * layouts (docs/iebin.md, "Block dtypes"):
 *
 * - q4_k (144 bytes / 256): f16 d, f16 dmin, 12 bytes of 6-bit scales and mins for 8 sub-blocks
 *   of 32, 128 bytes of nibbles. Sub-block pair j (0..3) covers elements 64j..64j+63: byte
 *   32j + l holds element 64j + l in its low nibble and 64j + 32 + l in its high nibble.
 *   value = d * sc * q - dmin * m.
 * - q5_k (176 / 256): as q4_k, then 32 bytes of high bits before the nibbles (d, dmin, scales,
 *   qh[32], qs[128]); element 64j + l takes bit 2j of qh[l], element 64j + 32 + l bit 2j + 1.
 * - q6_k (210 / 256): ql[128] low nibbles, qh[64] two-bit highs, 16 int8 scales (one per 16
 *   elements), f16 d. value = d * scale * (q - 32).
 * - iq4_nl (18 / 32): f16 d, 16 bytes of nibbles (element j low, j + 16 high) indexing a fixed
 *   16-entry table of non-linear levels. value = d * table[q].
 * - mxfp4 (17 / 32, OCP MX FP4; gpt-oss experts): u8 e (E8M0 shared exponent), 16 bytes of
 *   nibbles (element j low, j + 16 high), each an FP4 E2M1 code. value = fp4[q] * 2^(e - 127);
 *   e = 255 is E8M0's NaN and decodes to NaN (importers refuse it).
 *
 * Block tensors are 2-D [N, K] or, for stacked experts, 3-D [E, N, K]: either way a row-major
 * sequence of rows of K/elems blocks (expert e's matrix is rows e*N .. e*N + N - 1).
 */
import { HfModelError } from './errors.js';
import { f16BitsToF32 } from './dtype.js';

export const BLOCK_DTYPES = ['q4_k', 'q5_k', 'q6_k', 'iq4_nl', 'mxfp4'] as const;
export type BlockDtype = (typeof BLOCK_DTYPES)[number];

/** Elements and bytes per block, and the ggml type id the block is in GGUF. */
export const BLOCK_FORMATS: Readonly<Record<BlockDtype, { elems: number; bytes: number; ggml: number }>> = Object.freeze({
  q4_k: { elems: 256, bytes: 144, ggml: 12 },
  q5_k: { elems: 256, bytes: 176, ggml: 13 },
  q6_k: { elems: 256, bytes: 210, ggml: 14 },
  iq4_nl: { elems: 32, bytes: 18, ggml: 20 },
  mxfp4: { elems: 32, bytes: 17, ggml: 39 },
});

/**
 * FP4 E2M1 values by code (OCP MX; OpenAI's FP4_VALUES): sign bit 3, then 2 exponent and 1 mantissa
 * bits. Code 8 (-0) decodes to +0 as ggml's table and the kernels do: equal in every product.
 */
export const MXFP4_VALUES: readonly number[] = Object.freeze([0, 0.5, 1, 1.5, 2, 3, 4, 6, 0, -0.5, -1, -1.5, -2, -3, -4, -6]);

/** 2^(e - 127) for an E8M0 byte, exactly (2^-127 is an f32 subnormal); NaN for 255. */
export function e8m0ToF32(e: number): number {
  return e === 255 ? Number.NaN : 2 ** (e - 127);
}

/** IQ4_NL's levels (ggml's kvalues_iq4nl). */
export const IQ4_NL_LEVELS: readonly number[] = Object.freeze([-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113]);

export function isBlockDtype(d: string): d is BlockDtype {
  return (BLOCK_DTYPES as readonly string[]).includes(d);
}

/** The 6-bit scale and min of sub-block j (0..7) of a q4_k / q5_k block's 12 scale bytes. */
export function kScaleMin(scales: Uint8Array, at: number, j: number): [number, number] {
  if (j < 4) return [scales[at + j] & 63, scales[at + j + 4] & 63];
  return [(scales[at + j + 4] & 0x0f) | ((scales[at + j - 4] >> 6) << 4), (scales[at + j + 4] >> 4) | ((scales[at + j] >> 6) << 4)];
}

const f16 = (b: Uint8Array, at: number) => f16BitsToF32(b[at] | (b[at + 1] << 8));

/** Decodes one block at `at` into out[o..o + elems). */
function decodeBlock(dtype: BlockDtype, b: Uint8Array, at: number, out: Float32Array, o: number): void {
  if (dtype === 'mxfp4') {
    // fp4 * 2^k is exact in f64; the f32 rounding only matters where it overflows (6 * 2^127 → Inf).
    const s = e8m0ToF32(b[at]);
    for (let j = 0; j < 16; j++) {
      const q = b[at + 1 + j];
      out[o + j] = Math.fround(MXFP4_VALUES[q & 15] * s);
      out[o + j + 16] = Math.fround(MXFP4_VALUES[q >> 4] * s);
    }
    return;
  }
  if (dtype === 'iq4_nl') {
    const d = f16(b, at);
    for (let j = 0; j < 16; j++) {
      const q = b[at + 2 + j];
      out[o + j] = Math.fround(d * IQ4_NL_LEVELS[q & 15]);
      out[o + j + 16] = Math.fround(d * IQ4_NL_LEVELS[q >> 4]);
    }
    return;
  }
  if (dtype === 'q6_k') {
    const ql = at,
      qh = at + 128,
      sc = at + 192;
    const d = f16(b, at + 208);
    for (let half = 0; half < 2; half++) {
      for (let l = 0; l < 32; l++) {
        const is = l >> 4;
        const h = b[qh + 32 * half + l];
        const lo = b[ql + 64 * half + l],
          hi = b[ql + 64 * half + l + 32];
        // f32 arithmetic as ggml's: (d * scale) rounded, then times the code.
        const ds = (i: number) => Math.fround(d * ((b[sc + 8 * half + is + i] << 24) >> 24));
        out[o + 128 * half + l] = Math.fround(ds(0) * (((lo & 15) | ((h & 3) << 4)) - 32));
        out[o + 128 * half + l + 32] = Math.fround(ds(2) * (((hi & 15) | (((h >> 2) & 3) << 4)) - 32));
        out[o + 128 * half + l + 64] = Math.fround(ds(4) * (((lo >> 4) | (((h >> 4) & 3) << 4)) - 32));
        out[o + 128 * half + l + 96] = Math.fround(ds(6) * (((hi >> 4) | (((h >> 6) & 3) << 4)) - 32));
      }
    }
    return;
  }
  // q4_k and q5_k
  const d = f16(b, at);
  const dmin = f16(b, at + 2);
  const five = dtype === 'q5_k';
  const qh = at + 16;
  const qs = at + (five ? 48 : 16);
  for (let j = 0; j < 4; j++) {
    const [sc1, mn1] = kScaleMin(b, at + 4, 2 * j);
    const [sc2, mn2] = kScaleMin(b, at + 4, 2 * j + 1);
    // f32 arithmetic as ggml's: d1 = d * sc and m1 = dmin * m rounded, then d1 * q - m1.
    const d1 = Math.fround(d * sc1),
      m1 = Math.fround(dmin * mn1),
      d2 = Math.fround(d * sc2),
      m2 = Math.fround(dmin * mn2);
    for (let l = 0; l < 32; l++) {
      const q = b[qs + 32 * j + l];
      const h = five ? b[qh + l] : 0;
      const lo = (q & 15) + (five && h & (1 << (2 * j)) ? 16 : 0);
      const hi = (q >> 4) + (five && h & (2 << (2 * j)) ? 16 : 0);
      out[o + 64 * j + l] = Math.fround(Math.fround(d1 * lo) - m1);
      out[o + 64 * j + 32 + l] = Math.fround(Math.fround(d2 * hi) - m2);
    }
  }
}

/** A [rows, cols] block tensor's values, f32 row-major (cols a whole number of blocks; a 3-D [E, N, K] tensor is rows = E*N). */
export function decodeBlocks(dtype: BlockDtype, bytes: Uint8Array, rows: number, cols: number): Float32Array {
  const f = BLOCK_FORMATS[dtype];
  const per = cols / f.elems;
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++)
    for (let i = 0; i < per; i++) decodeBlock(dtype, bytes, (r * per + i) * f.bytes, out, r * cols + i * f.elems);
  return out;
}

/**
 * Hugging Face's MXFP4 tensors (`X_blocks` U8 [..., rows, cols/32, 16] and `X_scales` U8
 * [..., rows, cols/32], as in gpt-oss checkpoints) → ggml mxfp4 blocks, losslessly. HF byte i of
 * a block holds element 2i in its low nibble and 2i + 1 in its high nibble; ggml byte j holds
 * element j low and j + 16 high. `rows` counts every row (experts x rows per expert). A scale of
 * 255 (E8M0 NaN) is refused: HfModelError HF_BAD_TENSOR naming `name`.
 */
export function mxfp4FromHf(blocks: Uint8Array, scales: Uint8Array, rows: number, cols: number, name = 'mxfp4 tensor'): Uint8Array {
  if (cols % 32 !== 0)
    throw new HfModelError('HF_BAD_TENSOR', `${name}: an MXFP4 row is a whole number of 32-element blocks; ${cols} columns are not`, {
      field: name,
    });
  const n = (rows * cols) / 32;
  if (blocks.length !== n * 16 || scales.length !== n) {
    throw new HfModelError(
      'HF_BAD_TENSOR',
      `${name}: ${rows} x ${cols} MXFP4 needs ${n * 16} block bytes and ${n} scales, got ${blocks.length} and ${scales.length}`,
      { field: name },
    );
  }
  const out = new Uint8Array(n * 17);
  const nib = (at: number, k: number) => (blocks[at + (k >> 1)] >> ((k & 1) << 2)) & 15;
  for (let i = 0; i < n; i++) {
    const e = scales[i];
    if (e === 255) {
      const r = Math.floor((i * 32) / cols);
      throw new HfModelError(
        'HF_BAD_TENSOR',
        `${name}: scale ${e} (E8M0 NaN) in row ${r}, block ${i - (r * cols) / 32}; MXFP4 scales must be 0..254`,
        { field: name },
      );
    }
    const src = i * 16;
    const dst = i * 17;
    out[dst] = e;
    for (let j = 0; j < 16; j++) out[dst + 1 + j] = nib(src, j) | (nib(src, j + 16) << 4);
  }
  return out;
}

/** The index of the first mxfp4 block (17 bytes each) whose scale is 255, or -1. */
export function mxfp4NanBlock(blocks: Uint8Array): number {
  for (let i = 0, at = 0; at < blocks.length; i++, at += 17) if (blocks[at] === 255) return i;
  return -1;
}

/**
 * f32 values → ggml mxfp4 blocks (`values.length` a multiple of 32; any run of whole blocks, so a
 * tensor can be packed in pieces): per 32 values the smallest power-of-two scale 2^(e - 127) that
 * puts the largest |v| at or below E2M1's 6 (e kept in 1..254), each value the nearest E2M1
 * magnitude (ties to the even code), its sign in bit 3 (zero is code 0). The same rule, byte for
 * byte, as @ie/quant's `packBlocks('mxfp4', ...)` and OpenAI's quantizer; used by synthetic
 * gpt-oss models, which cannot depend on @ie/quant.
 */
export function quantizeMxfp4(values: Float32Array, out: Uint8Array = new Uint8Array((values.length / 32) * 17)): Uint8Array {
  if (values.length % 32 !== 0) throw new RangeError(`MXFP4 packs whole 32-value blocks; got ${values.length} values`);
  const nb = values.length / 32;
  if (out.length < nb * 17) throw new RangeError(`${nb} MXFP4 blocks take ${nb * 17} bytes; the output holds ${out.length}`);
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  for (let b = 0; b < nb; b++) {
    const at = 32 * b;
    let amax = 0;
    for (let j = 0; j < 32; j++) {
      const a = Math.abs(values[at + j]);
      if (a > amax) amax = a;
    }
    const e = amax > 0 ? Math.min(254, Math.max(1, Math.ceil(Math.log2(amax / 6)) + 127)) : 1;
    // |v| * 2^(127 - e) * 4, exact: the E2M1 midpoints are all multiples of 1/4.
    const inv4 = 2 ** (129 - e);
    const o = 17 * b;
    out[o] = e;
    for (let j = 0; j < 16; j++)
      out[o + 1 + j] = e2m1Code(values[at + j], bits[at + j], inv4) | (e2m1Code(values[at + j + 16], bits[at + j + 16], inv4) << 4);
  }
  return out;
}

/**
 * E2M1 codes by quarter steps of |v| / scale and sign: entry i (+ 25 when negative) for |v| in
 * (i/4, (i+1)/4) in OPEN, for exactly i/4 in AT (a midpoint ties to the even code); zero keeps code 0.
 */
const E2M1_OPEN = new Uint8Array(50);
const E2M1_AT = new Uint8Array(50);
{
  const nearest = (a: number) =>
    a <= 0.25 ? 0 : a < 0.75 ? 1 : a <= 1.25 ? 2 : a < 1.75 ? 3 : a <= 2.5 ? 4 : a < 3.5 ? 5 : a <= 5 ? 6 : 7;
  for (let i = 0; i <= 24; i++) {
    const open = nearest(i / 4 + 0.125);
    const at = nearest(i / 4);
    E2M1_OPEN[i] = open;
    E2M1_AT[i] = at;
    E2M1_OPEN[25 + i] = open === 0 ? 0 : open | 8;
    E2M1_AT[25 + i] = at === 0 ? 0 : at | 8;
  }
}

/** The E2M1 code of v (f32 bits `bits`) given 4 / scale: table lookups, as a chain of comparisons and the sign mispredict on most values. */
function e2m1Code(v: number, bits: number, inv4: number): number {
  const q = Math.abs(v) * inv4;
  const i = (q >= 24 ? 24 : q | 0) + 25 * (bits >>> 31);
  return q === (q >= 24 ? q : q | 0) ? E2M1_AT[i] : E2M1_OPEN[i];
}

/**
 * ggml mxfp4 blocks → Hugging Face's MXFP4 pair (the inverse of {@link mxfp4FromHf}): block i's 16
 * nibble bytes go to `blocks` at (blocksAt + 16 i), HF order (byte k holds element 2k low, 2k + 1
 * high), its scale to `scales[scalesAt + i]`.
 */
export function mxfp4ToHf(ggml: Uint8Array, blocks: Uint8Array, blocksAt: number, scales: Uint8Array, scalesAt: number): void {
  const n = ggml.length / 17;
  if (!Number.isInteger(n)) throw new RangeError(`${ggml.length} bytes are not whole 17-byte MXFP4 blocks`);
  const nib = (at: number, k: number) => (k < 16 ? ggml[at + 1 + k] & 15 : ggml[at + 1 + k - 16] >> 4);
  for (let i = 0; i < n; i++) {
    const src = 17 * i;
    scales[scalesAt + i] = ggml[src];
    const dst = blocksAt + 16 * i;
    for (let k = 0; k < 16; k++) blocks[dst + k] = nib(src, 2 * k) | (nib(src, 2 * k + 1) << 4);
  }
}
