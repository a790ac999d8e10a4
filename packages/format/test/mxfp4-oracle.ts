/** Test oracles for MXFP4, written from OpenAI's gpt-oss reference (not from the code under test). */
import { MXFP4_VALUES } from '../src/blocks.js';

/** OpenAI's reference dequantization of one HF MXFP4 block: out[2i] = lut[b & 15], out[2i+1] = lut[b >> 4], times 2^(scale - 127). */
export function hfReferenceBlock(bytes: ArrayLike<number>, scale: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < 16; i++) out.push(MXFP4_VALUES[bytes[i] & 15] * 2 ** (scale - 127), MXFP4_VALUES[bytes[i] >> 4] * 2 ** (scale - 127));
  return out;
}
