/**
 * Perplexity over a text, as llama.cpp's llama-perplexity measures it (so that figures compare):
 * the tokens cut into chunks of `chunkSize`, each chunk run from position 0 with its first token
 * made BOS (where the vocabulary adds one), and only the second half of each chunk scored (every
 * scored token sees at least chunkSize / 2 tokens before it). PPL = exp(mean NLL), with the
 * standard error of that mean carried through exp.
 */
import { InvalidOptionError } from './errors.js';
import type { GenerateOptions, PromptLogprob } from './generation/types.js';
import { checkOptionsObject } from './options.js';

export interface PerplexityOptions {
  /** Tokens per chunk (llama-perplexity's `-c`). Default 512, or the context length when shorter. */
  chunkSize?: number;
  /** Score at most this many chunks (llama-perplexity's `--chunks`). Default: every whole chunk of the text. */
  maxChunks?: number;
  /** Called after each chunk with the figures so far. */
  onChunk?: (soFar: PerplexityResult) => void;
  signal?: AbortSignal;
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
}

/** What perplexity needs of an engine: scoring a prompt, and its limits. */
export interface PerplexityEngine {
  readonly contextLength: number;
  readonly config: { readonly vocab_size: number };
  tokenize(text: string): number[];
  generate(ids: readonly number[], options: GenerateOptions): { complete(): Promise<{ promptLogprobs?: PromptLogprob[] }> };
}

export const DEFAULT_PERPLEXITY_CHUNK = 512;

export async function perplexity(
  engine: PerplexityEngine,
  text: string | readonly number[],
  options: PerplexityOptions = {},
): Promise<PerplexityResult> {
  checkOptionsObject(options);
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
  if (typeof text !== 'string' && !Array.isArray(text) && !ArrayBuffer.isView(text))
    throw new InvalidOptionError('text', `must be a string or an array of token ids, got ${text === null ? 'null' : typeof text}`);
  // BOS where the vocabulary adds one (llama-perplexity's add_bos), as the text's first token and each chunk's.
  const ids = typeof text === 'string' ? engine.tokenize(text) : [...text];
  const whole = Math.floor(ids.length / chunk);
  if (whole === 0)
    throw new InvalidOptionError(
      'text',
      `is ${ids.length} tokens, less than one chunk of ${chunk}: give a longer text or a smaller chunkSize (--chunk)`,
    );
  const total = Math.min(whole, options.maxChunks ?? whole);
  const bos = engine.tokenize('')[0] as number | undefined;
  const first = Math.floor(chunk / 2);
  let sum = 0;
  let sumSq = 0;
  let n = 0;
  let result: PerplexityResult | undefined;
  for (let c = 0; c < total; c++) {
    const part = ids.slice(c * chunk, (c + 1) * chunk);
    if (bos !== undefined) part[0] = bos;
    const r = await engine.generate(part, { maxTokens: 0, promptLogprobs: true, signal: options.signal }).complete();
    const scores = r.promptLogprobs as PromptLogprob[];
    // Positions first..chunk-2 predict tokens first+1..chunk-1.
    for (let i = first + 1; i < chunk; i++) {
      const nll = -(scores[i].logprob as number);
      sum += nll;
      sumSq += nll * nll;
      n++;
    }
    result = figures(sum, sumSq, n, c + 1, total);
    options.onChunk?.(result);
  }
  return result as PerplexityResult;
}

function figures(sum: number, sumSq: number, n: number, chunks: number, totalChunks: number): PerplexityResult {
  const mean = sum / n;
  const variance = n > 1 ? Math.max(0, sumSq / n - mean * mean) : 0;
  const stderrNll = n > 1 ? Math.sqrt(variance / (n - 1)) : 0;
  const ppl = Math.exp(mean);
  return { perplexity: ppl, stderr: ppl * stderrNll, meanNll: mean, chunks, totalChunks, tokens: n };
}
