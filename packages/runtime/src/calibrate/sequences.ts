/**
 * Stage 1: the calibration text as sequences. The text is tokenized without BOS and cut into
 * pieces of sequence_length − 1 tokens, each prefixed with BOS; at most max_sequences are used.
 */
import type { IebinReader } from '@ie/format';
import { DEFAULT_CALIBRATION, QuantError, type Policy } from '@ie/quant';
import { createTokenizer } from '../tokenizer/index.js';

/** Fewer text tokens than this measure nothing worth gating on. */
export const MIN_CALIBRATION_TOKENS = 8;

export interface CalibrationSequences {
  seqs: number[][];
  /** Positions per sequence at most (the calibration forward pass's context). */
  seqLen: number;
  /** Positions over all sequences, BOS included. */
  tokens: number;
}

/** BOS + up to seqLen − 1 tokens of `ids` each, at most `max` of them. */
export function splitSequences(ids: readonly number[], bos: number, seqLen: number, max: number): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < ids.length && out.length < max; i += seqLen - 1) {
    const chunk = ids.slice(i, i + seqLen - 1);
    if (chunk.length >= 1) out.push([bos, ...chunk]);
  }
  return out;
}

/** The asked sequence length capped by the model's context; refused when no sequence could hold BOS and a token. */
export function sequenceLength(asked: number, contextLength: number): number {
  const seqLen = Math.min(asked, contextLength);
  if (seqLen < 2)
    throw new QuantError(
      'QUANT_CALIBRATION',
      `the model's context holds ${contextLength} position(s); calibration sequences need at least 2 (BOS and a token)`,
    );
  return seqLen;
}

/** The sequences the calibration run feeds the model; a text too short to measure anything is refused. */
export async function calibrationSequences(
  reader: IebinReader,
  policy: Policy,
  calibration: { text: string; file: string },
): Promise<CalibrationSequences> {
  const c = reader.config;
  const settings = { ...DEFAULT_CALIBRATION, ...(policy.calibration ?? {}) };
  const seqLen = sequenceLength(settings.sequence_length, c.context_length);
  const tokenizer = await createTokenizer(reader.header, reader.directory);
  const seqs = splitSequences(tokenizer.encode(calibration.text, { bos: false }), c.bos_id, seqLen, settings.max_sequences);
  const tokens = seqs.reduce((a, s) => a + s.length, 0);
  const textTokens = tokens - seqs.length;
  if (textTokens < MIN_CALIBRATION_TOKENS)
    throw new QuantError(
      'QUANT_CALIBRATION',
      `${calibration.file} gives ${textTokens} tokens; calibration needs a text of at least a few sentences (a few hundred tokens or more is better)`,
    );
  return { seqs, seqLen, tokens };
}
