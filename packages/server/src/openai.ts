/**
 * OpenAI's wire format: the request bodies as JSON schemas (Fastify validates them before a handler
 * runs), and the response objects and stream chunks in the exact shapes the official clients parse.
 * Fields ie does not implement are accepted at their default value and refused otherwise, so a
 * client never gets silently different behaviour.
 */
import {
  type ChatMessage,
  type ChatOptions,
  type GenerateOptions,
  type StopReason,
  StructuredOutputError,
  compileGrammar,
  schemaToGrammar,
} from '@ie/runtime';
import { ServerError, fromRuntimeError } from './errors.js';
import type { GenerationRequest, SamplingRequest } from './scheduler.js';

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
  // llama.cpp's server's sampling fields, for clients written against it.
  top_k: { anyOf: [{ type: 'integer', minimum: 0, maximum: 16777216 }, { type: 'null' }] },
  min_p: { anyOf: [{ type: 'number', minimum: 0, maximum: 1 }, { type: 'null' }] },
  repeat_penalty: { anyOf: [{ type: 'number', minimum: 0.01, maximum: 100 }, { type: 'null' }] },
  repeat_last_n: { anyOf: [{ type: 'integer', minimum: 0, maximum: 1048576 }, { type: 'null' }] },
  grammar: { anyOf: [{ type: 'string', minLength: 1 }, { type: 'null' }] },
  cache_prompt: { anyOf: [{ type: 'boolean' }, { type: 'null' }] },
  user: { type: 'string' },
  // Its members are checked by responseFormatOf, with messages that name the member.
  response_format: { anyOf: [{ type: 'object' }, { type: 'null' }] },
} as const;

const textPart = {
  type: 'object',
  required: ['type', 'text'],
  properties: { type: { const: 'text' }, text: { type: 'string' } },
} as const;

const toolCall = {
  type: 'object',
  required: ['id', 'type', 'function'],
  properties: {
    id: { type: 'string', minLength: 1, maxLength: 256 },
    type: { const: 'function' },
    function: {
      type: 'object',
      required: ['name', 'arguments'],
      properties: { name: { type: 'string' }, arguments: { type: 'string' } },
    },
  },
} as const;

const tool = {
  type: 'object',
  required: ['type', 'function'],
  properties: {
    type: { const: 'function' },
    function: {
      type: 'object',
      required: ['name'],
      properties: {
        name: { type: 'string' },
        description: { type: 'string' },
        parameters: { type: 'object' },
        strict: { anyOf: [{ type: 'boolean' }, { type: 'null' }] },
      },
    },
  },
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
        // content may be null (or absent) on an assistant message that calls tools; messagesOf checks the rest.
        required: ['role'],
        properties: {
          role: { enum: ['system', 'developer', 'user', 'assistant', 'tool'] },
          content: { anyOf: [{ type: 'string' }, { type: 'array', items: textPart }, { type: 'null' }] },
          name: { type: 'string' },
          tool_calls: { type: 'array', items: toolCall, maxItems: 128 },
          tool_call_id: { type: 'string' },
          // An assistant turn's reasoning as this server returned it (llama.cpp's server takes it back the same way).
          reasoning_content: { anyOf: [{ type: 'string' }, { type: 'null' }] },
        },
      },
    },
    logprobs: { anyOf: [{ type: 'boolean' }, { type: 'null' }] },
    top_logprobs: { anyOf: [{ type: 'integer', minimum: 0, maximum: 20 }, { type: 'null' }] },
    tools: { anyOf: [{ type: 'array', items: tool, maxItems: 128 }, { type: 'null' }] },
    tool_choice: {
      anyOf: [
        { enum: ['none', 'auto', 'required'] },
        {
          type: 'object',
          required: ['type', 'function'],
          properties: {
            type: { const: 'function' },
            function: { type: 'object', required: ['name'], properties: { name: { type: 'string' } } },
          },
        },
        { type: 'null' },
      ],
    },
    parallel_tool_calls: { anyOf: [{ type: 'boolean' }, { type: 'null' }] },
    // gpt-oss's harmony system message says it; a chat template reads it as `reasoning_effort`.
    reasoning_effort: { anyOf: [{ enum: ['low', 'medium', 'high'] }, { type: 'null' }] },
  },
} as const;

export const COMPLETION_BODY_SCHEMA = {
  type: 'object',
  required: ['model', 'prompt'],
  properties: {
    ...common,
    // Text, token ids, or a batch of either (each prompt its own choices).
    prompt: {
      anyOf: [
        { type: 'string' },
        { type: 'array', minItems: 1, items: { type: 'string' } },
        { type: 'array', minItems: 1, items: { type: 'integer', minimum: 0 } },
        { type: 'array', minItems: 1, items: { type: 'array', minItems: 1, items: { type: 'integer', minimum: 0 } } },
      ],
    },
    // 0 with echo scores the prompt alone (OpenAI's legacy completions; lm-evaluation-harness).
    max_tokens: { anyOf: [{ type: 'integer', minimum: 0, maximum: MAX_TOKENS }, { type: 'null' }] },
    logprobs: { anyOf: [{ type: 'integer', minimum: 0, maximum: 5 }, { type: 'null' }] },
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
  top_k?: number | null;
  min_p?: number | null;
  repeat_penalty?: number | null;
  repeat_last_n?: number | null;
  cache_prompt?: boolean | null;
  grammar?: string | null;
  response_format?: ResponseFormat | null;
}

/** OpenAI's response_format (chat; ie takes it on completions too, as llama.cpp's server does). */
export interface ResponseFormat {
  type?: string;
  json_schema?: { name?: string; description?: string; schema?: object | boolean; strict?: boolean | null } | null;
}

export interface ChatBody extends CommonBody {
  messages: Array<{
    role: 'system' | 'developer' | 'user' | 'assistant' | 'tool';
    content?: string | Array<{ type: 'text'; text: string }> | null;
    name?: string;
    tool_calls?: Array<{ id: string; type: 'function'; function: { name: string; arguments: string } }>;
    tool_call_id?: string;
    reasoning_content?: string | null;
  }>;
  max_completion_tokens?: number | null;
  reasoning_effort?: 'low' | 'medium' | 'high' | null;
  logprobs?: boolean | null;
  top_logprobs?: number | null;
  tools?: Array<{
    type: 'function';
    function: { name: string; description?: string; parameters?: Record<string, unknown>; strict?: boolean | null };
  }> | null;
  tool_choice?: 'none' | 'auto' | 'required' | { type: 'function'; function: { name: string } } | null;
  parallel_tool_calls?: boolean | null;
}

export interface CompletionBody extends CommonBody {
  prompt: string | string[] | number[] | number[][];
  logprobs?: number | null;
  echo?: boolean | null;
  best_of?: number | null;
  suffix?: string | null;
}

export const EMBEDDINGS_BODY_SCHEMA = {
  type: 'object',
  required: ['model', 'input'],
  properties: {
    model: { type: 'string', minLength: 1 },
    input: {
      anyOf: [
        { type: 'string' },
        { type: 'array', minItems: 1, maxItems: 2048, items: { type: 'string' } },
        { type: 'array', minItems: 1, items: { type: 'integer', minimum: 0 } },
        { type: 'array', minItems: 1, maxItems: 2048, items: { type: 'array', items: { type: 'integer', minimum: 0 } } },
      ],
    },
    encoding_format: { anyOf: [{ enum: ['float', 'base64'] }, { type: 'null' }] },
    dimensions: { anyOf: [{ type: 'integer', minimum: 1 }, { type: 'null' }] },
    user: { type: 'string' },
  },
} as const;

export interface EmbeddingsBody {
  model: string;
  input: string | string[] | number[] | number[][];
  encoding_format?: 'float' | 'base64' | null;
  dimensions?: number | null;
  user?: string;
}

/** The inputs as runtime embed() takes them: texts, or token-id arrays (one array of ids is one input). */
export function embeddingInputs(b: EmbeddingsBody): Array<string | number[]> {
  const x = b.input;
  if (typeof x === 'string') return [x];
  if (typeof x[0] === 'number') return [x as number[]];
  return x as Array<string | number[]>;
}

/** One embedding as OpenAI sends it: an array of numbers, or (base64) its float32 little-endian bytes. */
export function encodeEmbedding(v: Float32Array, format: 'float' | 'base64'): number[] | string {
  if (format === 'float') return Array.from(v);
  const bytes = Buffer.alloc(v.length * 4);
  for (let i = 0; i < v.length; i++) bytes.writeFloatLE(v[i], i * 4);
  return bytes.toString('base64');
}

function unsupported(param: string, message: string): never {
  throw new ServerError('IE_SERVER_UNSUPPORTED', `${param}: ${message}`, param);
}

/** The checks a schema cannot say: parameters ie implements only at their default. */
function checkCommon(b: CommonBody): void {
  if (b.n != null && b.n > MAX_CHOICES) unsupported('n', `at most ${MAX_CHOICES} choices per request are supported, got ${b.n}`);
  for (const [k, v] of Object.entries(b.logit_bias ?? {})) {
    if (!/^\d+$/.test(k) || !Number.isSafeInteger(Number(k)))
      throw new ServerError('IE_SERVER_BAD_REQUEST', `logit_bias: the keys are token ids, got ${JSON.stringify(k)}`, 'logit_bias');
    if (typeof v !== 'number' || !Number.isFinite(v) || v < -100 || v > 100)
      throw new ServerError(
        'IE_SERVER_BAD_REQUEST',
        `logit_bias[${k}]: must be a number in -100..100, got ${JSON.stringify(v)}`,
        'logit_bias',
      );
  }
}

export function checkChat(b: ChatBody): void {
  checkCommon(b);
  if (b.top_logprobs && !b.logprobs) throw new ServerError('IE_SERVER_BAD_REQUEST', 'top_logprobs: needs logprobs: true', 'top_logprobs');
  if (b.tool_choice != null && !b.tools?.length) throw new ServerError('IE_SERVER_BAD_REQUEST', 'tool_choice: needs tools', 'tool_choice');
}

function badMessage(i: number, field: string, message: string): never {
  throw new ServerError('IE_SERVER_BAD_REQUEST', `messages[${i}].${field}: ${message}`, `messages[${i}].${field}`);
}

/**
 * The conversation as the engine takes it: contents as text, an assistant's tool_calls as its calls,
 * and a tool message's result addressed to the function whose call (an earlier assistant message's
 * tool_calls id) it answers.
 */
export function messagesOf(b: ChatBody): ChatMessage[] {
  const calledBy = new Map<string, string>();
  return b.messages.map((m, i) => {
    const content = m.content == null ? '' : messageText(m.content);
    if (m.content == null && !(m.role === 'assistant' && m.tool_calls?.length))
      badMessage(i, 'content', 'is required (null only on an assistant message with tool_calls)');
    if (m.tool_calls && m.role !== 'assistant') badMessage(i, 'tool_calls', 'belong to assistant messages');
    if (m.role === 'assistant' && m.tool_calls?.length) {
      for (const c of m.tool_calls) calledBy.set(c.id, c.function.name);
      return {
        role: 'assistant',
        content,
        toolCalls: m.tool_calls.map((c) => ({ id: c.id, name: c.function.name, arguments: c.function.arguments })),
        ...(m.reasoning_content ? { reasoning: m.reasoning_content } : {}),
      };
    }
    if (m.role === 'tool') {
      if (m.tool_call_id === undefined) badMessage(i, 'tool_call_id', 'is required on a tool message: the id of the call it answers');
      const name = calledBy.get(m.tool_call_id) ?? m.name;
      if (name === undefined) badMessage(i, 'tool_call_id', `${JSON.stringify(m.tool_call_id)} answers no earlier assistant tool call`);
      return { role: 'tool', content, name, toolCallId: m.tool_call_id };
    }
    if (m.reasoning_content && m.role !== 'assistant') badMessage(i, 'reasoning_content', 'belongs to assistant messages');
    return { role: m.role, content, ...(m.role === 'assistant' && m.reasoning_content ? { reasoning: m.reasoning_content } : {}) };
  });
}

/** tools and tool_choice as the engine's chat options (none when no tools are given). */
export function toolsOf(b: ChatBody): Pick<ChatOptions, 'tools' | 'toolChoice'> {
  if (!b.tools?.length) return {};
  const c = b.tool_choice;
  return {
    tools: b.tools.map((t) => ({
      name: t.function.name,
      ...(t.function.description !== undefined ? { description: t.function.description } : {}),
      ...(t.function.parameters !== undefined ? { parameters: t.function.parameters } : {}),
    })),
    toolChoice: c == null ? 'auto' : typeof c === 'string' ? c : { name: c.function.name },
  };
}

export function checkCompletion(b: CompletionBody): void {
  checkCommon(b);
  if (b.best_of != null) {
    const n = b.n ?? 1;
    if (b.best_of < n) throw new ServerError('IE_SERVER_BAD_REQUEST', `best_of: must be at least n (${n}), got ${b.best_of}`, 'best_of');
    if (b.best_of > MAX_CHOICES) unsupported('best_of', `at most ${MAX_CHOICES} candidates per request are supported, got ${b.best_of}`);
    if (b.best_of > n && b.stream)
      throw new ServerError('IE_SERVER_BAD_REQUEST', 'best_of: cannot be streamed (the best are known at the end)', 'best_of');
  }
  const prompts = promptCount(b.prompt);
  const perPrompt = Math.max(b.n ?? 1, b.best_of ?? 1);
  if (prompts * perPrompt > MAX_CHOICES)
    unsupported('prompt', `at most ${MAX_CHOICES} generations per request are supported, got ${prompts} prompts x ${perPrompt}`);
  if (b.best_of != null && b.best_of > (b.n ?? 1) && prompts > 1)
    unsupported('best_of', 'with several prompts is not supported: send one prompt per request');
  if (b.suffix) unsupported('suffix', 'is not supported');
}

/** How many prompts a completions request holds: a batch of texts or of token arrays, else one. */
export function promptCount(p: CompletionBody['prompt']): number {
  return Array.isArray(p) && (typeof p[0] === 'string' || Array.isArray(p[0])) ? p.length : 1;
}

function badFormat(message: string): never {
  throw new ServerError('IE_SERVER_BAD_REQUEST', `response_format: ${message}`, 'response_format');
}

/**
 * response_format as generate options: `text` (or none) is free text, `json_object` any JSON object,
 * `json_schema` output that validates against `json_schema.schema` (any JSON value when it has
 * none). The schema is compiled here, so an unsupported or malformed one is a 400 before the
 * request queues; `strict` changes nothing, since the output always adheres to the schema.
 */
export function responseFormatOf(b: CommonBody): Pick<GenerateOptions, 'json' | 'jsonSchema'> {
  const f = b.response_format;
  if (f == null || f.type === 'text') return {};
  if (f.type === 'json_object') return { json: true };
  if (f.type !== 'json_schema')
    unsupported('response_format', `type must be "text", "json_object" or "json_schema", got ${JSON.stringify(f.type)}`);
  const js = f.json_schema;
  if (typeof js !== 'object' || js === null || Array.isArray(js))
    badFormat('json_schema is required with type "json_schema": {name, schema}');
  if (typeof js.name !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(js.name))
    badFormat('json_schema.name must be 1 to 64 letters, digits, _ or -');
  if (js.strict != null && typeof js.strict !== 'boolean') badFormat('json_schema.strict must be a boolean');
  const schema = js.schema ?? {};
  if (typeof schema !== 'boolean' && (typeof schema !== 'object' || schema === null || Array.isArray(schema)))
    badFormat('json_schema.schema must be a JSON schema (an object)');
  try {
    // Compiled too, so a grammar too large is refused here; compileGrammar keeps the program for the constraint.
    compileGrammar(schemaToGrammar(schema));
  } catch (e) {
    throw e instanceof StructuredOutputError ? fromRuntimeError(e) : e;
  }
  return { jsonSchema: schema };
}

/**
 * OpenAI's sampling defaults (temperature 1, top_p 1, no top-k or min-p) over the engine's, with
 * llama.cpp's server's top_k, min_p, repeat_penalty, repeat_last_n and grammar where given. A seed
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
    // Over the last 64 tokens, the prompt's included, as llama.cpp's server.
    ...(b.presence_penalty ? { presencePenalty: b.presence_penalty } : {}),
    ...(b.frequency_penalty ? { frequencyPenalty: b.frequency_penalty } : {}),
    ...(b.logit_bias && Object.keys(b.logit_bias).length ? { logitBias: b.logit_bias } : {}),
    ...(b.top_k != null ? { topK: b.top_k } : {}),
    ...(b.min_p != null ? { minP: b.min_p } : {}),
    ...(b.repeat_penalty != null ? { repetitionPenalty: b.repeat_penalty } : {}),
    ...(b.repeat_last_n != null ? { repeatLastN: b.repeat_last_n } : {}),
    // llama.cpp's server's cache_prompt: keep (or copy from another request) the prompt's cached
    // prefix. Off by default for completions (the prompt prefilled whole: the same logits every
    // time), on for chat (each turn extends the last).
    ...(b.cache_prompt != null ? { reusePrefix: b.cache_prompt } : {}),
    ...responseFormatOf(b),
    ...grammarOf(b),
  };
}

/** llama.cpp's server's `grammar` (GBNF, start rule `root`): compiled here, so a bad one is a 400 naming it. */
function grammarOf(b: CommonBody): Pick<GenerateOptions, 'grammar'> {
  if (b.grammar == null) return {};
  if (b.response_format != null && b.response_format.type !== 'text')
    throw new ServerError('IE_SERVER_BAD_REQUEST', 'grammar: give either grammar or a JSON response_format, not both', 'grammar');
  try {
    compileGrammar(b.grammar);
  } catch (e) {
    if (e instanceof StructuredOutputError) throw new ServerError('IE_SERVER_BAD_REQUEST', `grammar: ${e.message} [${e.code}]`, 'grammar');
    throw e;
  }
  return { grammar: b.grammar };
}

/** The most choices (`n`) one request may ask for: each is a generation of its own, in a slot of its own. */
export const MAX_CHOICES = 16;

/**
 * A request's `n` choices as generations: the same prompt and settings, choice i seeded with
 * seed + i (mod 2^32) when a seed is given, so that a seeded request is reproducible and its
 * choices differ where sampling does.
 */
export function choicesOf<R extends GenerationRequest>(n: number | null | undefined, request: R): R[] {
  const seed = request.options.seed;
  return Array.from({ length: n ?? 1 }, (_, i) =>
    i === 0 || seed === undefined ? request : { ...request, options: { ...request.options, seed: (seed + i) % 2 ** 32 } },
  );
}

/** Chat's logprobs / top_logprobs as the engine's options. */
export function chatLogprobsOf(b: ChatBody): Pick<SamplingRequest, 'logprobs' | 'topLogprobs'> {
  return b.logprobs ? { logprobs: true, topLogprobs: b.top_logprobs ?? 0 } : {};
}

/**
 * Completions' logprobs N (0..5): each token's log-probability and its step's N likeliest; with
 * echo, the prompt's tokens' too (scored).
 */
export function completionLogprobsOf(b: CompletionBody): Pick<SamplingRequest, 'logprobs' | 'topLogprobs' | 'promptLogprobs'> {
  if (b.logprobs == null) return {};
  return { logprobs: true, topLogprobs: b.logprobs, ...(b.echo ? { promptLogprobs: true } : {}) };
}

export function messageText(content: string | Array<{ type: 'text'; text: string }>): string {
  return typeof content === 'string' ? content : content.map((p) => p.text).join('');
}

export type FinishReason = 'stop' | 'length' | 'tool_calls';

/** A turn that called tools ends 'tool_calls'; eos and stop strings end it ('stop'); the token budget and a full context cut it ('length'). */
export function finishReason(r: StopReason, toolCalls = 0): FinishReason {
  if (toolCalls > 0) return 'tool_calls';
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
