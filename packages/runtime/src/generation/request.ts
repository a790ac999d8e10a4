/** A generation request checked once, before it queues: the prompt's ids, limits, stop strings, sampling. */
import type { ModelConfig } from '@ie/format';
import { ContextOverflowError, InvalidOptionError } from '../errors.js';
import { resolveSampling, type ResolvedSampling } from '../sampler.js';
import type { Tokenizer } from '../tokenizer/index.js';
import type { GenerateOptions } from './types.js';

export interface PreparedRequest {
  ids: number[];
  maxTokens: number;
  stop: string[];
  sampling: ResolvedSampling;
  options: GenerateOptions;
}

/** Validates `options` and tokenizes `prompt` (text, or ids used as given) for a context of `contextLength`. */
export function prepareRequest(
  prompt: string | readonly number[],
  options: GenerateOptions,
  tokenizer: Tokenizer,
  config: ModelConfig,
  contextLength: number,
): PreparedRequest {
  const sampling = resolveSampling(options);
  const maxTokens = options.maxTokens ?? 256;
  if (!Number.isSafeInteger(maxTokens) || maxTokens < 0)
    throw new InvalidOptionError('maxTokens', `must be a non-negative integer, got ${maxTokens}`);
  const stop = options.stop ?? [];
  if (!Array.isArray(stop) || stop.some((s) => typeof s !== 'string' || s.length === 0))
    throw new InvalidOptionError('stop', 'must be an array of non-empty strings');
  const ids = typeof prompt === 'string' ? tokenizer.encode(prompt, { bos: options.addBos ?? true }) : [...prompt];
  if (ids.length === 0) throw new InvalidOptionError('prompt', 'is empty: give at least one token (BOS)');
  for (const id of ids)
    if (!Number.isSafeInteger(id) || id < 0 || id >= config.vocab_size)
      throw new InvalidOptionError('prompt', `token id ${id} is outside 0..${config.vocab_size - 1}`);
  if (ids.length > contextLength)
    throw new ContextOverflowError(
      `the prompt is ${ids.length} tokens; the context holds ${contextLength} (set contextLength, or shorten the prompt)`,
      ids.length,
      contextLength,
    );
  return { ids, maxTokens, stop, sampling, options };
}
