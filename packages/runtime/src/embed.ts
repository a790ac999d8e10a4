/**
 * Embeddings: the model's last hidden state (the final RMSNorm's output, the classifier's input)
 * for every token of an input, pooled into one vector: the mean over the tokens, the last token's,
 * or the first token's (`cls`), L2-normalized unless asked not to. Each input runs alone from
 * position 0 of one sequence (what its slot held is dropped), so the result does not depend on
 * the other inputs of the call. `dimensions` keeps the first N components (OpenAI's parameter of
 * that name), normalized after the cut.
 */
import { ContextOverflowError, InvalidOptionError } from './errors.js';
import { checkTextFits, type Tokenizer } from './tokenizer/index.js';

/** What embedding needs of a model (a Model; structural so that model.ts and this file do not import each other). */
export interface EmbedModel {
  readonly config: { readonly dim: number; readonly vocab_size: number };
  readonly contextLength: number;
  readonly tokenizer: Tokenizer;
  tokenize(text: string, options: { bos: boolean }): number[];
}

/** What embedding needs of a sequence (a Sequence): its prompt run from position 0, hidden states handed over per chunk. */
export interface EmbedSequence {
  prefillHidden(ids: readonly number[], onRows: (hidden: Float32Array, rows: number) => void): Promise<void>;
}

export type EmbedPooling = 'mean' | 'last' | 'cls';

export interface EmbedOptions {
  /** How the tokens' hidden states become one vector. Default 'mean'. */
  pooling?: EmbedPooling;
  /** Scale each vector to unit L2 norm (after `dimensions` cuts it). Default true. */
  normalize?: boolean;
  /** Keep the first N components of each vector (1..the model's dim). Default: all of them. */
  dimensions?: number;
}

/** One text, several texts, or token-id arrays used as given (texts get BOS as generate() does). */
export type EmbedInput = string | ReadonlyArray<string | readonly number[]>;

/** @internal Inputs tokenized and checked, before any step runs. */
export interface PreparedEmbed {
  inputs: number[][];
  pooling: EmbedPooling;
  normalize: boolean;
  /** The model's hidden size. */
  dim: number;
  /** Components kept per vector. */
  keep: number;
}

const POOLINGS: readonly EmbedPooling[] = ['mean', 'last', 'cls'];

/** @internal Tokenizes and checks every input (empty, too long, bad options) so a call fails before it runs. */
export function prepareEmbed(model: EmbedModel, inputs: EmbedInput, options: EmbedOptions): PreparedEmbed {
  const pooling = options.pooling ?? 'mean';
  if (!POOLINGS.includes(pooling)) throw new InvalidOptionError('pooling', `must be one of ${POOLINGS.join(', ')}, got ${String(pooling)}`);
  const normalize = options.normalize ?? true;
  if (typeof normalize !== 'boolean') throw new InvalidOptionError('normalize', `must be a boolean, got ${String(normalize)}`);
  const dim = model.config.dim;
  const keep = options.dimensions ?? dim;
  if (!Number.isSafeInteger(keep) || keep < 1 || keep > dim)
    throw new InvalidOptionError('dimensions', `must be an integer in 1..${dim} (the model's hidden size), got ${String(keep)}`);
  const list = typeof inputs === 'string' ? [inputs] : inputs;
  if (!Array.isArray(list) || list.length === 0) throw new InvalidOptionError('input', 'give at least one text to embed');
  const V = model.config.vocab_size;
  const ids = list.map((x, i) => {
    if (typeof x === 'string') {
      if (x.length === 0) throw new InvalidOptionError('input', `input ${i} is empty`);
      checkTextFits(x, model.tokenizer, model.contextLength, `input ${i}`);
      return model.tokenize(x, { bos: true });
    }
    if (!Array.isArray(x) || x.length === 0) throw new InvalidOptionError('input', `input ${i} is empty`);
    for (const id of x)
      if (!Number.isSafeInteger(id) || id < 0 || id >= V)
        throw new InvalidOptionError('input', `input ${i}: token id ${String(id)} is outside 0..${V - 1}`);
    return [...x];
  });
  ids.forEach((t, i) => {
    if (t.length === 0) throw new InvalidOptionError('input', `input ${i} gives no tokens`);
    if (t.length > model.contextLength)
      throw new ContextOverflowError(
        `input ${i} is ${t.length} tokens; the model's context holds ${model.contextLength}`,
        t.length,
        model.contextLength,
      );
  });
  return { inputs: ids, pooling, normalize, dim, keep };
}

/** @internal Runs each prepared input on `seq` (from position 0) and pools its hidden states. */
export async function embedPrepared(seq: EmbedSequence, p: PreparedEmbed): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  const D = p.dim;
  for (const ids of p.inputs) {
    const acc = new Float64Array(D);
    let seen = 0;
    await seq.prefillHidden(ids, (hidden, rows) => {
      for (let r = 0; r < rows; r++, seen++) {
        const row = hidden.subarray(r * D, (r + 1) * D);
        if (p.pooling === 'mean') for (let k = 0; k < D; k++) acc[k] += row[k];
        else if ((p.pooling === 'cls' && seen === 0) || (p.pooling === 'last' && seen === ids.length - 1))
          for (let k = 0; k < D; k++) acc[k] = row[k];
      }
    });
    if (p.pooling === 'mean') for (let k = 0; k < D; k++) acc[k] /= ids.length;
    const kept = acc.subarray(0, p.keep);
    if (p.normalize) {
      let s = 0;
      for (let k = 0; k < kept.length; k++) s += kept[k] * kept[k];
      const n = Math.sqrt(s);
      if (n > 0) for (let k = 0; k < kept.length; k++) kept[k] /= n;
    }
    out.push(Float32Array.from(kept));
  }
  return out;
}
