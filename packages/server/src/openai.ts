/**
 * OpenAI's wire format: the request bodies as JSON schemas (Fastify validates them before a handler
 * runs), and the response objects and stream chunks in the exact shapes the official clients parse.
 * Fields ie does not implement are accepted at their default value and refused otherwise, so a
 * client never gets silently different behaviour.
 */
import type { StopReason } from '@ie/runtime';
import { ServerError } from './errors.js';
import type { SamplingRequest } from './scheduler.js';

const MAX_TOKENS = 1 << 24;

const stop = {
  anyOf: [{ type: 'string', minLength: 1 }, { type: 'array', items: { type: 'string', minLength: 1 }, maxItems: 16 }, { type: 'null' }],
} as const;

/** Fields both endpoints share. Unknown fields are ignored, as OpenAI's API does. */
const common = {
  model: { type: 'string', minLength: 1 },
  max_tokens: { anyOf: [{ type: 'integer', minimum: 1, maximum: MAX_TOKENS }, { type: 'null' }] },
  temperature: { anyOf: [{ type: 'number', minimum: 0, maximum: 2 }, { type: 'null' }] },
  top_p: { anyOf: [{ type: 'number', minimum: 0, maximum: 1 }, { type: 'null' }] },
  seed: { anyOf: [{ type: 'integer' }, { type: 'null' }] },
  stop,
  n: { anyOf: [{ type: 'integer', minimum: 1, maximum: 128 }, { type: 'null' }] },
  stream: { anyOf: [{ type: 'boolean' }, { type: 'null' }] },
  stream_options: {
    anyOf: [{ type: 'object', properties: { include_usage: { type: 'boolean' } } }, { type: 'null' }],
  },
  presence_penalty: { anyOf: [{ type: 'number', minimum: -2, maximum: 2 }, { type: 'null' }] },
  frequency_penalty: { anyOf: [{ type: 'number', minimum: -2, maximum: 2 }, { type: 'null' }] },
  logit_bias: { anyOf: [{ type: 'object' }, { type: 'null' }] },
  user: { type: 'string' },
} as const;

const textPart = {
  type: 'object',
  required: ['type', 'text'],
  properties: { type: { const: 'text' }, text: { type: 'string' } },
} as const;

export const CHAT_BODY_SCHEMA = {
  type: 'object',
  required: ['model', 'messages'],
  properties: {
    ...common,
    max_completion_tokens: common.max_tokens,
    messages: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        required: ['role', 'content'],
        properties: {
          role: { enum: ['system', 'developer', 'user', 'assistant'] },
          content: { anyOf: [{ type: 'string' }, { type: 'array', items: textPart }] },
          name: { type: 'string' },
        },
      },
    },
    logprobs: { anyOf: [{ type: 'boolean' }, { type: 'null' }] },
    top_logprobs: { anyOf: [{ type: 'integer' }, { type: 'null' }] },
    tools: { anyOf: [{ type: 'array' }, { type: 'null' }] },
    response_format: { anyOf: [{ type: 'object' }, { type: 'null' }] },
  },
} as const;

export const COMPLETION_BODY_SCHEMA = {
  type: 'object',
  required: ['model', 'prompt'],
  properties: {
    ...common,
    prompt: {
      anyOf: [
        { type: 'string' },
        { type: 'array', minItems: 1, items: { type: 'string' } },
        { type: 'array', minItems: 1, items: { type: 'integer', minimum: 0 } },
      ],
    },
    logprobs: { anyOf: [{ type: 'integer', minimum: 0 }, { type: 'null' }] },
    echo: { anyOf: [{ type: 'boolean' }, { type: 'null' }] },
    best_of: { anyOf: [{ type: 'integer', minimum: 1 }, { type: 'null' }] },
    suffix: { anyOf: [{ type: 'string' }, { type: 'null' }] },
  },
} as const;

interface CommonBody {
  model: string;
  max_tokens?: number | null;
  temperature?: number | null;
  top_p?: number | null;
  seed?: number | null;
  stop?: string | string[] | null;
  n?: number | null;
  stream?: boolean | null;
  stream_options?: { include_usage?: boolean } | null;
  presence_penalty?: number | null;
  frequency_penalty?: number | null;
  logit_bias?: Record<string, number> | null;
}

export interface ChatBody extends CommonBody {
  messages: Array<{ role: 'system' | 'developer' | 'user' | 'assistant'; content: string | Array<{ type: 'text'; text: string }> }>;
  max_completion_tokens?: number | null;
  logprobs?: boolean | null;
  top_logprobs?: number | null;
  tools?: unknown[] | null;
  response_format?: { type?: string } | null;
}

export interface CompletionBody extends CommonBody {
  prompt: string | string[] | number[];
  logprobs?: number | null;
  echo?: boolean | null;
  best_of?: number | null;
  suffix?: string | null;
}

function unsupported(param: string, message: string): never {
  throw new ServerError('IE_SERVER_UNSUPPORTED', `${param}: ${message}`, param);
}

/** The checks a schema cannot say: parameters ie implements only at their default. */
function checkCommon(b: CommonBody): void {
  if (b.n != null && b.n !== 1) unsupported('n', `only 1 choice per request is supported, got ${b.n}`);
  if (b.presence_penalty) unsupported('presence_penalty', 'is not supported (leave it 0)');
  if (b.frequency_penalty) unsupported('frequency_penalty', 'is not supported (leave it 0)');
  if (b.logit_bias && Object.keys(b.logit_bias).length) unsupported('logit_bias', 'is not supported');
}

export function checkChat(b: ChatBody): void {
  checkCommon(b);
  if (b.logprobs) unsupported('logprobs', 'is not supported');
  if (b.tools?.length) unsupported('tools', 'tool calling is not supported');
  if (b.response_format?.type && b.response_format.type !== 'text')
    unsupported('response_format', `only "text" is supported, got ${JSON.stringify(b.response_format.type)}`);
}

export function checkCompletion(b: CompletionBody): void {
  checkCommon(b);
  if (b.logprobs != null) unsupported('logprobs', 'is not supported');
  if (b.echo) unsupported('echo', 'is not supported');
  if (b.best_of != null && b.best_of !== 1) unsupported('best_of', 'is not supported');
  if (b.suffix) unsupported('suffix', 'is not supported');
  if (Array.isArray(b.prompt) && typeof b.prompt[0] === 'string' && b.prompt.length > 1)
    unsupported('prompt', `one prompt per request is supported, got ${b.prompt.length}`);
}

/**
 * OpenAI's sampling defaults (temperature 1, top_p 1, no top-k or min-p) over the engine's. A seed
 * is taken modulo 2^32, the engine's range; max_tokens defaults to `defaultMaxTokens`.
 */
export function samplingOf(b: CommonBody & { max_completion_tokens?: number | null }, defaultMaxTokens: number): SamplingRequest {
  const stops = b.stop == null ? [] : typeof b.stop === 'string' ? [b.stop] : b.stop;
  return {
    maxTokens: b.max_completion_tokens ?? b.max_tokens ?? defaultMaxTokens,
    temperature: b.temperature ?? 1,
    topP: b.top_p ?? 1,
    ...(b.seed != null ? { seed: ((b.seed % 2 ** 32) + 2 ** 32) % 2 ** 32 } : {}),
    ...(stops.length ? { stop: stops } : {}),
  };
}

export function messageText(content: ChatBody['messages'][number]['content']): string {
  return typeof content === 'string' ? content : content.map((p) => p.text).join('');
}

/** eos and stop strings end a turn ('stop'); the token budget and a full context cut it ('length'). */
export function finishReason(r: StopReason): 'stop' | 'length' {
  return r === 'eos' || r === 'stop' ? 'stop' : 'length';
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  /** Prompt tokens found in the KV cache (a common prefix with the previous request), not computed again. */
  prompt_tokens_details: { cached_tokens: number };
}

export function usage(promptTokens: number, completionTokens: number, cachedTokens = 0): Usage {
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
    prompt_tokens_details: { cached_tokens: cachedTokens },
  };
}
