/**
 * A generation request checked once, before it queues: the prompt's ids, limits, stop strings,
 * sampling, and the structured-output constraint (built here so a bad schema or grammar fails
 * the call itself, before any prefill).
 */
import type { ModelConfig } from '@ie/format';
import { ContextOverflowError, InvalidOptionError } from '../errors.js';
import { checkOptionsObject } from '../options.js';
import { resolveSampling, type ResolvedSampling } from '../sampler.js';
import { constraintVocabulary, createConstraint, type ConstraintSpec, type TokenConstraint } from '../structured/index.js';
import { checkTextFits, type Tokenizer } from '../tokenizer/index.js';
import type { GenerateOptions } from './types.js';

export interface PreparedRequest {
  ids: number[];
  maxTokens: number;
  stop: string[];
  sampling: ResolvedSampling;
  options: GenerateOptions;
  /** Whether the cache's common prefix is kept (reusePrefix, unless the prompt is scored: every position runs). */
  reusePrefix: boolean;
  /** The request's own constraint (jsonSchema, grammar or json), or null; it holds the grammar state of this one generation. */
  constraint: TokenConstraint | null;
}

/** Validates `options` and tokenizes `prompt` (text, or ids used as given) for a context of `contextLength`. */
/** The prompt's and the options' kinds, before anything reads them (a null would be a TypeError deep inside). */
function checkRequestShape(prompt: unknown, options: unknown): asserts options is GenerateOptions {
  if (typeof prompt !== 'string' && !Array.isArray(prompt) && !ArrayBuffer.isView(prompt))
    throw new InvalidOptionError('prompt', `must be a string or an array of token ids, got ${prompt === null ? 'null' : typeof prompt}`);
  checkOptionsObject(options);
  const o = options as Record<string, unknown>;
  if (o.stopTokens !== undefined && (!Array.isArray(o.stopTokens) || o.stopTokens.some((t) => !Number.isSafeInteger(t))))
    throw new InvalidOptionError('stopTokens', 'must be an array of token ids');
  for (const name of ['onText', 'onToken'])
    if (o[name] !== undefined && typeof o[name] !== 'function')
      throw new InvalidOptionError(name, `must be a function, got ${typeof o[name]}`);
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) throw new InvalidOptionError('signal', 'must be an AbortSignal');
}

export function prepareRequest(
  prompt: string | readonly number[],
  options: GenerateOptions,
  tokenizer: Tokenizer,
  config: ModelConfig,
  contextLength: number,
): PreparedRequest {
  checkRequestShape(prompt, options);
  const sampling = resolveSampling(options);
  for (const [id] of sampling.logitBias)
    if (id >= config.vocab_size) throw new InvalidOptionError(`logitBias[${id}]`, `token id ${id} is outside 0..${config.vocab_size - 1}`);
  const top = options.topLogprobs ?? 0;
  if (!Number.isSafeInteger(top) || top < 0 || top > 20)
    throw new InvalidOptionError('topLogprobs', `must be an integer in 0..20, got ${String(top)}`);
  if (top > 0 && !options.logprobs && !options.promptLogprobs)
    throw new InvalidOptionError('topLogprobs', 'needs logprobs: true or promptLogprobs: true');
  for (const name of ['logprobs', 'promptLogprobs', 'reusePrefix'] as const)
    if (options[name] !== undefined && typeof options[name] !== 'boolean')
      throw new InvalidOptionError(name, `must be a boolean, got ${typeof options[name]}`);
  const maxTokens = options.maxTokens ?? 256;
  if (!Number.isSafeInteger(maxTokens) || maxTokens < 0)
    throw new InvalidOptionError('maxTokens', `must be a non-negative integer, got ${maxTokens}`);
  const stop = options.stop ?? [];
  if (!Array.isArray(stop) || stop.some((s) => typeof s !== 'string' || s.length === 0))
    throw new InvalidOptionError('stop', 'must be an array of non-empty strings');
  if (typeof prompt === 'string') checkTextFits(prompt, tokenizer, contextLength, 'the prompt');
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
  const constraint = buildConstraint(options, tokenizer, config);
  const reusePrefix = !!options.reusePrefix && !options.promptLogprobs;
  return { ids, maxTokens, stop, sampling, options, reusePrefix, constraint };
}

/** The options that constrain the output, in the order the spec is read. */
const CONSTRAINT_OPTIONS = ['jsonSchema', 'grammar', 'json'] as const;

/** Which constraint option a request sets, if any (`json: false` is none). Throws IE_INVALID_OPTION for two or more. */
export function constraintOption(options: GenerateOptions): (typeof CONSTRAINT_OPTIONS)[number] | undefined {
  const given = CONSTRAINT_OPTIONS.filter((k) => options[k] !== undefined && options[k] !== false);
  if (given.length > 1)
    throw new InvalidOptionError(given[1], `give only one of jsonSchema, grammar and json (got ${given.join(' and ')})`);
  return given[0];
}

/**
 * The request's constraint. Its stop tokens are every token that ends the generation (the
 * tokenizer's EOS, the model's stop ids, the request's stopTokens): the mask allows them only
 * once the output is complete, so a generation never stops mid-object.
 */
function buildConstraint(o: GenerateOptions, tokenizer: Tokenizer, config: ModelConfig): TokenConstraint | null {
  const which = constraintOption(o);
  if (which === undefined) return null;
  if (o.ignoreEos)
    throw new InvalidOptionError('ignoreEos', `cannot be combined with ${which}: a constrained output ends where the grammar completes`);
  if (which === 'json' && o.json !== true) throw new InvalidOptionError('json', `must be a boolean, got ${JSON.stringify(o.json)}`);
  if (which === 'grammar' && typeof o.grammar !== 'string')
    throw new InvalidOptionError('grammar', `must be GBNF text (a string), got ${typeof o.grammar}`);
  const spec: ConstraintSpec =
    which === 'jsonSchema'
      ? { jsonSchema: o.jsonSchema as object | boolean }
      : which === 'grammar'
        ? { grammar: o.grammar as string }
        : { json: true };
  const vocab = constraintVocabulary(tokenizer); // IE_CONSTRAINT_VOCAB when the tokenizer cannot list its tokens' bytes
  // vocab.tokens itself, not a copy: the token trie and compiled grammars are cached on that array.
  return createConstraint(
    { tokens: vocab.tokens, stopTokens: [...vocab.stopTokens, ...(config.stop_ids ?? []), ...(o.stopTokens ?? [])] },
    spec,
  );
}
