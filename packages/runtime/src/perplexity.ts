/**
 * Perplexity over a text, as llama.cpp's llama-perplexity measures it (so that figures compare):
 * the tokens cut into chunks of `chunkSize`, each chunk run from position 0 with its first token
 * made BOS (where the vocabulary adds one), and only the second half of each chunk scored (every
 * scored token sees at least chunkSize / 2 tokens before it). PPL = exp(mean NLL), with the
 * standard error of that mean carried through exp. With a reference model (llama-perplexity's
 * --kl-divergence, in one run): the same positions through both, the KL divergence of the model's
 * next-token distribution from the reference's, and how often their likeliest tokens agree.
 */
import { InvalidOptionError } from './errors.js';
import { checkOptionsObject } from './options.js';
import { logSumExp } from './sampler.js';
import type { PromptScorer } from './sequence.js';

export interface PerplexityOptions {
  /** Tokens per chunk (llama-perplexity's `-c`). Default 512, or the context length when shorter. */
  chunkSize?: number;
  /** Score at most this many chunks (llama-perplexity's `--chunks`). Default: every whole chunk of the text. */
  maxChunks?: number;
  /**
   * A reference model (the unquantized one) with the same vocabulary: each chunk runs through it
   * too, and the result's `reference` compares the two position by position.
   */
  reference?: PerplexityEngine;
  /** Called after each chunk with the figures so far. */
  onChunk?: (soFar: PerplexityResult) => void;
  signal?: AbortSignal;
}

/** A mean over the scored positions, with its standard error. */
export interface MeanWithError {
  mean: number;
  stderr: number;
}

export interface ReferenceComparison {
  /** The reference model's perplexity over the same positions. */
  perplexity: number;
  stderr: number;
  meanNll: number;
  /** KL(P_reference || P_model) per position, in nats: its mean (with standard error), largest and 99th percentile. */
  klDivergence: MeanWithError & { max: number; p99: number };
  /** The share of positions where both models' likeliest token is the same (0..1). */
  sameTop: number;
}

export interface PerplexityResult {
  /** exp(mean negative log-likelihood) of the scored tokens. */
  perplexity: number;
  /** The perplexity's standard error: perplexity x the standard error of the mean NLL. */
  stderr: number;
  /** The mean negative log-likelihood, in nats per token. */
  meanNll: number;
  /** Chunks scored so far, of `totalChunks`. */
  chunks: number;
  totalChunks: number;
  /** Tokens scored: chunkSize - 1 - floor(chunkSize / 2) per chunk, as llama-perplexity. */
  tokens: number;
  /** With a reference model. */
  reference?: ReferenceComparison;
}

/** What perplexity needs of an engine: its limits, its tokenizer, and every position's logits. */
export interface PerplexityEngine {
  readonly contextLength: number;
  readonly config: { readonly vocab_size: number };
  tokenize(text: string): number[];
  scorePositions(ids: readonly number[], score: PromptScorer, signal?: AbortSignal): Promise<void>;
}

export const DEFAULT_PERPLEXITY_CHUNK = 512;

/** Running sums of a per-position figure. */
class Moments {
  sum = 0;
  sumSq = 0;
  n = 0;
  add(v: number): void {
    this.sum += v;
    this.sumSq += v * v;
    this.n++;
  }
  get mean(): number {
    return this.sum / this.n;
  }
  /** The standard error of the mean (llama-perplexity's estimate). */
  get stderr(): number {
    if (this.n < 2) return 0;
    const m = this.mean;
    return Math.sqrt(Math.max(0, this.sumSq / this.n - m * m) / (this.n - 1));
  }
}

/** log-softmax of `z` into `out` (float64 sums); returns the index of the largest logit. */
function logSoftmaxInto(z: Float32Array, out: Float32Array): number {
  const lse = logSumExp(z);
  let best = 0;
  for (let i = 0; i < z.length; i++) {
    out[i] = z[i] - lse;
    if (z[i] > z[best]) best = i;
  }
  return best;
}

function checkOptions(engine: PerplexityEngine, options: PerplexityOptions): number {
  checkOptionsObject(options);
  if (engine.contextLength < 4)
    throw new InvalidOptionError(
      'contextLength',
      `is ${engine.contextLength}; perplexity scores chunks of at least 4 tokens, so it needs a context of 4 or more`,
    );
  const chunk = options.chunkSize ?? Math.min(DEFAULT_PERPLEXITY_CHUNK, engine.contextLength);
  if (!Number.isSafeInteger(chunk) || chunk < 4 || chunk > engine.contextLength)
    throw new InvalidOptionError(
      'chunkSize',
      `must be an integer in 4..${engine.contextLength} (the context length), got ${String(chunk)}`,
    );
  if (options.maxChunks !== undefined && (!Number.isSafeInteger(options.maxChunks) || options.maxChunks < 1))
    throw new InvalidOptionError('maxChunks', `must be a positive integer, got ${String(options.maxChunks)}`);
  if (options.onChunk !== undefined && typeof options.onChunk !== 'function')
    throw new InvalidOptionError('onChunk', `must be a function, got ${typeof options.onChunk}`);
  const ref = options.reference;
  if (ref !== undefined) {
    if (typeof ref !== 'object' || ref === null || typeof ref.scorePositions !== 'function' || typeof ref.config?.vocab_size !== 'number')
      throw new InvalidOptionError('reference', 'must be an Engine');
    if (ref.config.vocab_size !== engine.config.vocab_size)
      throw new InvalidOptionError(
        'reference',
        `has a vocabulary of ${ref.config.vocab_size} tokens, the model ${engine.config.vocab_size}: compare models of one vocabulary`,
      );
    if (chunk > ref.contextLength)
      throw new InvalidOptionError('chunkSize', `${chunk} does not fit the reference's context (${ref.contextLength})`);
    // Both read the model's token ids: their tokenizers must agree (BOS and a sample).
    const sample = 'The quick brown fox, 1234: über café! 日本語';
    for (const t of ['', sample])
      if (JSON.stringify(ref.tokenize(t)) !== JSON.stringify(engine.tokenize(t)))
        throw new InvalidOptionError('reference', 'tokenizes text differently from the model: compare models of one tokenizer');
  }
  return chunk;
}

/** The q-quantile of ascending `sorted`, interpolated between neighbours (as llama-perplexity's). */
function quantile(sorted: Float64Array, q: number): number {
  const at = q * (sorted.length - 1);
  const lo = Math.floor(at);
  const hi = Math.min(sorted.length - 1, lo + 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo);
}

export async function perplexity(
  engine: PerplexityEngine,
  text: string | readonly number[],
  options: PerplexityOptions = {},
): Promise<PerplexityResult> {
  const chunk = checkOptions(engine, options);
  if (typeof text !== 'string' && !Array.isArray(text) && !ArrayBuffer.isView(text))
    throw new InvalidOptionError('text', `must be a string or an array of token ids, got ${text === null ? 'null' : typeof text}`);
  // BOS where the vocabulary adds one (llama-perplexity's add_bos), as the text's first token and each chunk's.
  const ids = typeof text === 'string' ? engine.tokenize(text) : [...text];
  const whole = Math.floor(ids.length / chunk);
  if (whole === 0)
    throw new InvalidOptionError(
      'text',
      `is ${ids.length} tokens, less than one chunk of ${chunk}: give a longer text or a smaller chunkSize (--context)`,
    );
  const total = Math.min(whole, options.maxChunks ?? whole);
  const bos = engine.tokenize('')[0] as number | undefined;
  const first = Math.floor(chunk / 2);
  const V = engine.config.vocab_size;
  const ref = options.reference;
  // Positions first..chunk-2 predict tokens first+1..chunk-1.
  const scored = chunk - 1 - first;
  const refLogp = ref ? new Float32Array(scored * V) : null;
  const refTop = new Int32Array(scored);
  const logp = new Float32Array(V);
  const nll = new Moments();
  const refNll = new Moments();
  const kl = new Moments();
  const kls: number[] = [];
  let klMax = 0;
  let same = 0;
  let result: PerplexityResult | undefined;
  for (let c = 0; c < total; c++) {
    const part = ids.slice(c * chunk, (c + 1) * chunk);
    if (bos !== undefined) part[0] = bos;
    // The rows of positions first..chunk-2 among a scored chunk's (row(j) is position pos + j's).
    const scoredRows =
      (each: (logits: Float32Array, at: number) => void): PromptScorer =>
      (row, count, pos) => {
        for (let j = 0; j < count; j++) {
          const at = pos + j - first;
          if (at >= 0 && at < scored) each(row(j), at);
        }
      };
    if (ref && refLogp)
      await ref.scorePositions(
        part,
        scoredRows((logits, at) => {
          const out = refLogp.subarray(at * V, (at + 1) * V);
          refTop[at] = logSoftmaxInto(logits, out);
          refNll.add(-out[part[first + at + 1]]);
        }),
        options.signal,
      );
    await engine.scorePositions(
      part,
      scoredRows((logits, at) => {
        const top = logSoftmaxInto(logits, logp);
        nll.add(-logp[part[first + at + 1]]);
        if (!refLogp) return;
        const p = refLogp.subarray(at * V, (at + 1) * V);
        let d = 0;
        for (let i = 0; i < V; i++) {
          // A token the reference gives no mass adds nothing (its -Infinity would make 0 x Infinity).
          const e = Math.exp(p[i]);
          if (e > 0) d += e * (p[i] - logp[i]);
        }
        kl.add(d);
        kls.push(d);
        klMax = Math.max(klMax, d);
        if (top === refTop[at]) same++;
      }),
      options.signal,
    );
    result = figures(nll, c + 1, total);
    // The reference's figures (a sort of every position's KL) where someone reads them.
    if (ref && (options.onChunk || c + 1 === total)) {
      const r = figures(refNll, c + 1, total);
      const sorted = Float64Array.from(kls).sort();
      result.reference = {
        perplexity: r.perplexity,
        stderr: r.stderr,
        meanNll: r.meanNll,
        klDivergence: {
          mean: kl.mean,
          stderr: kl.stderr,
          max: klMax,
          p99: quantile(sorted, 0.99),
        },
        sameTop: same / kl.n,
      };
    }
    options.onChunk?.(result);
  }
  return result as PerplexityResult;
}

function figures(nll: Moments, chunks: number, totalChunks: number): PerplexityResult {
  const ppl = Math.exp(nll.mean);
  return { perplexity: ppl, stderr: ppl * nll.stderr, meanNll: nll.mean, chunks, totalChunks, tokens: nll.n };
}
